"""gui.workers.daemon_thread: a worker thread that held the last reference to a Qt relay frees it on the UI thread
(with a plain threading.Thread the relay's C++ destructor runs on the worker, which segfaulted CI), and every
thread the GUI starts is one."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal

from floodlabel.gui.workers.daemon_thread import DaemonThread

GUI = Path(__file__).resolve().parents[1] / "floodlabel" / "gui"


class _Relay(QObject):
    event = Signal(str)


class _Worker:
    """Like the GUI's workers: a plain object with a relay, whose bound method is the thread's target."""

    def __init__(self, destroyed_on: list[str]) -> None:
        self.relay = _Relay()
        self.relay.destroyed.connect(lambda *_: destroyed_on.append(threading.current_thread().name),
                                     Qt.ConnectionType.DirectConnection)

    def run(self, text: str) -> None:
        self.relay.event.emit(text)


def _start_and_drop(make_thread, destroyed_on: list[str]) -> threading.Thread:
    worker = _Worker(destroyed_on)
    thread = make_thread(worker.run)
    del worker  # the thread's target holds the only reference now
    thread.start()
    thread.join(10)
    return thread


def test_the_last_reference_to_a_relay_is_released_on_the_ui_thread(qapp, qtbot):
    destroyed_on: list[str] = []
    thread = _start_and_drop(lambda run: DaemonThread(run, "worker", args=("done",)), destroyed_on)
    assert not thread.is_alive() and thread.daemon
    assert destroyed_on == []  # handed to the UI thread, not freed by the worker
    qtbot.waitUntil(lambda: bool(destroyed_on), timeout=5000)
    assert destroyed_on == [threading.main_thread().name]


def test_a_plain_thread_frees_it_on_the_worker_which_is_why(qapp):
    destroyed_on: list[str] = []
    _start_and_drop(lambda run: threading.Thread(target=run, args=("done",), name="worker"), destroyed_on)
    assert destroyed_on == ["worker"]


def test_a_target_that_raises_is_released_too(qapp, qtbot):
    destroyed_on: list[str] = []
    worker = _Worker(destroyed_on)
    errors = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_type)
    try:
        def fail(relay: _Relay = worker.relay) -> None:
            relay.event.emit("x")
            raise ValueError("boom")

        thread = DaemonThread(fail, "worker")
        del worker, fail
        thread.start()
        thread.join(10)
    finally:
        threading.excepthook = old_hook
    assert errors == [ValueError]
    qtbot.waitUntil(lambda: bool(destroyed_on), timeout=5000)
    assert destroyed_on == [threading.main_thread().name]


def test_the_gui_starts_no_plain_thread():
    offenders = []
    for path in sorted(GUI.rglob("*.py")):
        code = re.sub(r'"""[\s\S]*?"""', "", path.read_text())  # docstrings may name threading.Thread
        if path.name != "daemon_thread.py" and "threading.Thread(" in code:
            offenders.append(str(path.relative_to(GUI)))
    assert offenders == [], "start GUI threads as gui.workers.daemon_thread.DaemonThread"
