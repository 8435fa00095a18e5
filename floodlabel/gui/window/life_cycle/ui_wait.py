"""Waiting on the UI thread without freezing it: events keep being processed (painting, timers, the workers'
queued signals; user input is held back) until a condition holds or a bound passes."""

from __future__ import annotations

import time
from typing import Callable

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
