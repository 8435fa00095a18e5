"""Start background work once the window is on the screen.

A busy Python thread (importing torch, reading 20,000 image headers, decoding masks for statistics) makes each of
Qt's calls into Python wait for the GIL, up to Python's 5 ms switch interval each: a paint that overlaps it takes
ten times as long, so a window that starts such work while it is first shown appears blank for a while. Work started
through `when_on_screen` begins after the window's first paint.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QWidget

POLL_MS = 20
MAX_WAIT_MS = 1000
"""A shown window that is still not exposed after this long gets its work started anyway."""
SETTLE_MS = 250
"""Once the window is exposed (painted), work waits this long more, so that the display server puts the first
frame on the screen before a worker takes a core (two cores: the X server, the app's UI thread and the worker)."""


def when_on_screen(context: QObject, widget: QWidget | None, fn: Callable[[], None]) -> None:
    """Call `fn()` from the event loop SETTLE_MS after `widget`'s window is exposed (at most MAX_WAIT_MS after it is
    shown); on the next turn when the window is hidden (it is not painted soon) or `widget` is None. Nothing is
    called once `context` is deleted."""
    QTimer.singleShot(0, context, partial(_check, context, widget, fn, 0))


def _check(context: QObject, widget: QWidget | None, fn: Callable[[], None], waited_ms: int) -> None:
    # partial, not a closure calling itself: a reference cycle would keep the widgets alive until the garbage
    # collector runs, maybe in a worker thread, and a Qt object deleted there can deadlock with the UI thread
    window = widget.window() if widget is not None else None
    handle = window.windowHandle() if window is not None else None
    if handle is None or not window.isVisible():
        fn()
    elif not handle.isExposed() and waited_ms < MAX_WAIT_MS:
        QTimer.singleShot(POLL_MS, context, partial(_check, context, widget, fn, waited_ms + POLL_MS))
    else:
        QTimer.singleShot(SETTLE_MS, context, fn)
