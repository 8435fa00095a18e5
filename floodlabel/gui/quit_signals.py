"""SIGTERM and SIGINT (Ctrl+C in the terminal, `kill`, a session logout) close the app as Ctrl+Q does: every window
runs its closeEvent, so queued accepts reach the disk and the project store checkpoints its WAL and closes.

Python runs signal handlers only between bytecodes, and Qt's event loop runs none while it waits; the signal's
wakeup fd (a socket pair watched by a QSocketNotifier) wakes the loop so the handler runs at once.
"""

from __future__ import annotations

import signal
import socket

from PySide6.QtCore import QObject, QSocketNotifier
from PySide6.QtWidgets import QApplication

QUIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_quit_signals(app: QApplication) -> QObject:
    """Make SIGTERM / SIGINT close every window and quit `app`. Returns the watcher (keep it alive)."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, app)
    notifier.activated.connect(lambda *_: _drain(reader))  # Python's handler below runs right after
    notifier._sockets = (reader, writer)  # type: ignore[attr-defined]  # alive as long as the notifier

    def close_all(signum: int, _frame: object) -> None:
        app.closeAllWindows()  # each window's closeEvent saves and closes its project
        app.exit(128 + signum)

    for signum in QUIT_SIGNALS:
        signal.signal(signum, close_all)
    return notifier


def _drain(reader: socket.socket) -> None:
    try:
        while reader.recv(512):
            pass
    except (BlockingIOError, InterruptedError):
        pass
