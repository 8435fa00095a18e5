"""Test hook: where a window and its image view are on the screen, written as JSON for real-window tests.

Active only when the environment variable FLOODLABEL_TEST_GEOMETRY_FILE names a file; otherwise
`install_geometry_probe` does nothing and returns None. Real-window tests (tests/test_real_window.py) and
benchmarks/screenshots.py start the app as a separate process under Xvfb and read this file to know where to
click with real X input events.

The file (rewritten atomically by `atomic_files.write_atomic`, without the folder's fsync, whenever the window is
shown, moved or resized, or `update()` is called) holds one JSON object; all screen coordinates are X screen pixels
(global, device-independent == device pixels under Xvfb), rectangles are [x, y, w, h]:

    {
      "window": [x, y, w, h],                # the top-level window's screen rectangle (frame excluded)
      "view": [x, y, w, h],                  # the main image view's screen rectangle (only when a view is given)
      "image_to_screen": [[ix, iy, sx, sy], ...],  # >= 3 non-collinear points: image pixel (original frame,
                                             # x right / y down) -> screen pixel; [] while no image is shown
      "ready": true                          # the app accepts clicks on the image (embedding ready); false before
    }

The annotation window calls `install_geometry_probe(window, view=..., image_to_screen=..., ready=...)` and then
`probe.update()` whenever the image, the view's zoom/pan or readiness changes. Nothing here costs anything when the
variable is unset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QPoint, QTimer
from PySide6.QtWidgets import QWidget

from floodlabel.core.common.atomic_files import write_atomic

ENV_VAR = "FLOODLABEL_TEST_GEOMETRY_FILE"

ImageToScreen = Callable[[], Sequence[Sequence[float]]]
"""Returns [[ix, iy, sx, sy], ...]: image pixels (original frame) and where they are on the screen."""


def install_geometry_probe(
    window: QWidget,
    *,
    view: QWidget | None = None,
    image_to_screen: ImageToScreen | None = None,
    ready: Callable[[], bool] | None = None,
) -> GeometryProbe | None:
    """Start writing `window`'s geometry to $FLOODLABEL_TEST_GEOMETRY_FILE; None (and nothing done) when unset.

    `view`: the main image view widget; `image_to_screen`: see ImageToScreen; `ready`: whether clicks on the image
    are accepted now (default: always true).
    """
    path = os.environ.get(ENV_VAR, "").strip()
    if not path:
        return None
    probe = GeometryProbe(window, Path(path), view, image_to_screen, ready)
    window._floodlabel_geometry_probe = probe  # type: ignore[attr-defined]  # keep the Python object alive
    return probe


class GeometryProbe(QObject):
    """Child of the window; rewrites the JSON file after show / move / resize events and on `update()`."""

    def __init__(self, window: QWidget, path: Path, view: QWidget | None, image_to_screen: ImageToScreen | None,
                 ready: Callable[[], bool] | None) -> None:
        super().__init__(window)
        self.path = path
        self._window, self._view = window, view
        self._image_to_screen, self._ready = image_to_screen, ready
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)  # after the event that triggered it has been handled (layouts settled)
        self._timer.timeout.connect(self.write)
        window.installEventFilter(self)

    def update(self) -> None:
        """Rewrite the file soon (on the next event-loop turn)."""
        self._timer.start()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() in (QEvent.Type.Show, QEvent.Type.Move, QEvent.Type.Resize, QEvent.Type.Expose):
            self._timer.start()
        return False

    def snapshot(self) -> dict:
        """The JSON object described in the module docstring."""
        data: dict = {"window": _screen_rect(self._window)}
        if self._view is not None:
            data["view"] = _screen_rect(self._view)
        points = self._image_to_screen() if self._image_to_screen is not None else []
        data["image_to_screen"] = [[float(v) for v in p] for p in points]
        data["ready"] = bool(self._ready()) if self._ready is not None else True
        return data

    def write(self) -> None:
        """Rewrite the file now (readers never see a half-written one); nothing while the window is hidden."""
        if not self._window.isVisible():
            return
        write_atomic(self.path, json.dumps(self.snapshot()).encode(), sync_dir=False)


def _screen_rect(widget: QWidget) -> list[int]:
    top_left = widget.mapToGlobal(QPoint(0, 0))
    return [top_left.x(), top_left.y(), widget.width(), widget.height()]
