"""Regression test for the PySide6 6.12.0 signal bug (DESIGN.md): every bool/object `Signal.emit(True)` dropped a
reference to True, and after about 2,000 emits the process died with `Fatal Python error: bool_dealloc`.

On an affected PySide6 these tests either fail on the reference counts or kill the test process; both are failures.
"""

from __future__ import annotations

import sys
import threading

import PySide6
from PySide6.QtCore import QObject, Signal

EMITS = 20_000


class Emitter(QObject):
    flag = Signal(bool)
    payload = Signal(object)


class Receiver(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.flags = 0
        self.payloads = 0

    def on_flag(self, value: bool) -> None:
        assert value is True
        self.flags += 1

    def on_payload(self, value: object) -> None:
        self.payloads += 1


def test_pyside6_is_not_the_broken_release():
    assert PySide6.__version__ != "6.12.0", "PySide6 6.12.0 crashes with bool/object signals: pin 6.11.3"


def test_bool_and_object_signals_keep_reference_counts():
    emitter, receiver = Emitter(), Receiver()
    emitter.flag.connect(receiver.on_flag)
    emitter.payload.connect(receiver.on_payload)
    sentinel = object()  # not immortal on any Python: its count must come back exactly
    true_before, sentinel_before = sys.getrefcount(True), sys.getrefcount(sentinel)
    for _ in range(EMITS):
        emitter.flag.emit(True)
        emitter.payload.emit(True)
        emitter.payload.emit(sentinel)
    assert receiver.flags == EMITS and receiver.payloads == 2 * EMITS
    assert sys.getrefcount(sentinel) == sentinel_before
    # other code may take references to True meanwhile, but 20,000 lost ones would show (and would have crashed)
    assert sys.getrefcount(True) > true_before - 100


def test_queued_object_signals_from_a_worker_thread_keep_reference_counts(qtbot):
    """The app's pattern: a worker thread emits, a receiver on the UI thread gets the call queued."""
    emitter, receiver = Emitter(), Receiver()
    emitter.flag.connect(receiver.on_flag)
    emitter.payload.connect(receiver.on_payload)
    sentinel = object()
    sentinel_before = sys.getrefcount(sentinel)
    n = EMITS // 4

    def work() -> None:
        for _ in range(n):
            emitter.flag.emit(True)
            emitter.payload.emit(sentinel)

    worker = threading.Thread(target=work)
    worker.start()
    qtbot.waitUntil(lambda: receiver.flags == n and receiver.payloads == n, timeout=30_000)
    worker.join()
    assert sys.getrefcount(sentinel) == sentinel_before
