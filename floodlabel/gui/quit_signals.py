"""SIGTERM and SIGINT (Ctrl+C in the terminal, `kill`, a session logout) close the app as Ctrl+Q does: every window
runs its closeEvent, so queued accepts reach the disk and the project store checkpoints its WAL and closes.

Python runs signal handlers only between bytecodes, and Qt's event loop runs none while it waits; the signal's
wakeup fd (a socket pair watched by a QSocketNotifier) wakes the loop so the handler runs at once.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtCore import QCoreApplication, QSocketNotifier
from PySide6.QtWidgets import QApplication

QUIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def quit_on_signals() -> Iterator[None]:
    """While inside, SIGTERM / SIGINT close every window and end the event loop with status 128 + signal number.
    The previous handlers and wakeup fd come back on leaving."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    old_fd = signal.set_wakeup_fd(writer.fileno())
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)
    notifier.activated.connect(lambda *_: _drain(reader))  # Python's handler below runs right after
    old_handlers = {signum: signal.signal(signum, _close_all) for signum in QUIT_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in old_handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(old_fd)
        notifier.setEnabled(False)
        reader.close()
        writer.close()


closing_on_signal = False
"""True once a quit signal came: windows close without asking anything (nobody may be there to answer)."""


def _close_all(signum: int, _frame: object) -> None:
    global closing_on_signal
    closing_on_signal = True
    app = QApplication.instance()
    if isinstance(app, QApplication):
        app.setQuitOnLastWindowClosed(False)  # the loop ends with the signal's status, not 0
    QApplication.closeAllWindows()  # each window's closeEvent saves and closes its project
    QCoreApplication.exit(128 + signum)


def _drain(reader: socket.socket) -> None:
    try:
        while reader.recv(512):
            pass
    except (BlockingIOError, InterruptedError, OSError):
        pass
