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


def when_on_screen(context: QObject, widget: QWidget | None, fn: Callable[[], None]) -> None:
    """Call `fn()` from the event loop once `widget`'s window is exposed (painted): on the next turn when it is
    exposed or hidden (a hidden window is not painted soon) or `widget` is None, after at most MAX_WAIT_MS anyway.
    Nothing is called once `context` is deleted."""
    QTimer.singleShot(0, context, partial(_check, context, widget, fn, 0))


def _check(context: QObject, widget: QWidget | None, fn: Callable[[], None], waited_ms: int) -> None:
    # partial, not a closure calling itself: a reference cycle would keep the widgets alive until the garbage
    # collector runs, maybe in a worker thread, and a Qt object deleted there can deadlock with the UI thread
    window = widget.window() if widget is not None else None
    handle = window.windowHandle() if window is not None else None
    if handle is not None and window.isVisible() and not handle.isExposed() and waited_ms < MAX_WAIT_MS:
        QTimer.singleShot(POLL_MS, context, partial(_check, context, widget, fn, waited_ms + POLL_MS))
        return
    fn()
