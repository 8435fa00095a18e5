"""Work put off until a widget has painted: the click's overlay first, the side panels in the frame after it.

When a click's mask comes in, the main view's overlay is what the user waits for; the candidate strip, the metrics,
the image list's row and the GT view are not. Done in the same turn of the event loop, their Python work and their
paints come before the frame that shows the overlay (about 4 ms of a 30 ms click on a 2-core CPU). `AfterPaint`
runs such work once the widget's next paint has been flushed: from a zero timer posted by that Paint event.
A widget that is hidden, or that does not paint within `LATEST_MS`, does not hold the work up.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

LATEST_MS = 50
"""The work runs this long after it was put off at the latest, painted or not."""


class AfterPaint(QObject):
    """`call(fn)`: fn() after `widget`'s next paint (in the order given), or at once when nothing is pending to
    paint it (the widget is not visible); `flush()` runs what waits now."""

    def __init__(self, widget: QWidget) -> None:
        super().__init__(widget)
        self._widget = widget
        self._waiting: list[Callable[[], None]] = []
        self._latest = QTimer(self, singleShot=True, interval=LATEST_MS)
        self._latest.timeout.connect(self.flush)
        widget.installEventFilter(self)

    def call(self, fn: Callable[[], None]) -> None:
        if not self._widget.isVisible():
            self.flush()
            fn()
            return
        self._waiting.append(fn)
        if not self._latest.isActive():
            self._latest.start()

    def flush(self) -> None:
        self._latest.stop()
        waiting, self._waiting = self._waiting, []
        for fn in waiting:
            fn()

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 (Qt API)
        if ev.type() == QEvent.Type.Paint and self._waiting:
            QTimer.singleShot(0, self, self.flush)  # after this paint is flushed to the screen
        return False


class Due:
    """One piece of put-off work at a time (a decode's side panels): `put(fn)` replaces what is due and hands `run`
    to `after` (an `AfterPaint.call`; by default it runs at once); `run()` does what is due now, `drop()` forgets
    it, `pending` tells whether something is due."""

    def __init__(self) -> None:
        self.after: Callable[[Callable[[], None]], None] = lambda fn: fn()
        self._fn: Callable[[], None] | None = None

    @property
    def pending(self) -> bool:
        return self._fn is not None

    def put(self, fn: Callable[[], None]) -> None:
        self._fn = fn
        self.after(self.run)

    def run(self) -> None:
        fn, self._fn = self._fn, None
        if fn is not None:
            fn()

    def drop(self) -> None:
        self._fn = None


class HeldMarkers(QObject):
    """A new prompt's markers, held back until its mask is drawn, so that they are painted in the mask's frame and
    no paint of the window runs beside the decode: `put(markers, hold)` gives `emit(*markers)` at once, or holds
    them (the newest wins) until `release()` or `latest_ms` later at the latest (a slow decoder)."""

    def __init__(self, emit: Callable[..., None], latest_ms: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._emit = emit
        self._held: tuple | None = None
        self._timer = QTimer(self, singleShot=True, interval=latest_ms)
        self._timer.timeout.connect(self.release)

    def put(self, markers: tuple, hold: bool) -> None:
        self._held = markers
        if hold:
            self._timer.start()
        else:
            self.release()

    def release(self) -> None:
        self._timer.stop()
        markers, self._held = self._held, None
        if markers is not None:
            self._emit(*markers)
