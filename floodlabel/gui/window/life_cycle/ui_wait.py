"""Waiting on the UI thread without freezing it: events keep being processed (painting, timers, the workers'
queued signals; user input is held back) until a condition holds or a bound passes; and workers stopped and
joined within one bound."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

POLL_MS = 20


def wait_with_ui(done: Callable[[], bool], timeout: float) -> bool:
    """Process events (no user input) until `done()` or `timeout` s; True when `done()` held.

    It calls `processEvents` rather than running a local QEventLoop: a local loop would also run the deferred
    deletions posted outside any loop (a widget closed and `deleteLater`ed just before), under its caller's feet."""
    if done():
        return True
    deadline = time.monotonic() + timeout
    wake = QTimer(interval=POLL_MS)  # WaitForMoreEvents returns at least this often
    wake.start()
    flags = QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents | QEventLoop.ProcessEventsFlag.WaitForMoreEvents
    try:
        while not done() and time.monotonic() < deadline:
            QCoreApplication.processEvents(flags)
    finally:
        wake.stop()
    return done()


def stop_and_join(stop: Iterable[Any], join: Iterable[Any], timeout: float) -> None:
    """`stop()` each worker of `stop`, then `join(seconds)` each of `join` (None skipped), `timeout` s in all."""
    for worker in stop:
        worker.stop()
    deadline = time.monotonic() + timeout
    for worker in join:
        if worker is not None:
            worker.join(max(0.0, deadline - time.monotonic()))
