"""Full-resolution display of a large map zoomed in past its view image (issue 17): the window reads the visible
window of the file in a worker and the canvas draws it, with the mask at that resolution, over the 2048 px view.

- When: after each zoom / pan / resize (`MaskCanvas.view_changed`, once the view settles) on a MapItem, the window
  to read is `core.tiles.detail.detail_window` (None while the view image has a pixel per screen pixel: the detail
  is dropped). A window already shown or being read is not read again (snapped windows with a margin: small pans
  need no read).
- Reads run in one latest-request-wins worker (`read_detail`, rasterio; no-data drawn as the view draws it); the UI
  thread only hands the result to the canvas. The UI never waits on a read.
- The same view range goes to the refiner (`TiledRefiner.visible`: a refine decodes the tiles in view first) and,
  once the image's embedding is ready, starts the prefetch of the tiles in and around the view
  (`TiledRefiner.prefetch`; none when zoomed out).
- The mask over it: the full-size mask (`SegmentationController.native_mask`, the one that would be saved) cropped
  to the window (`detail_mask`: a view of the mask and one nearest resize at about screen size, milliseconds),
  refreshed whenever the native mask changes (`metrics_changed`). Between a change on screen and its full-size mask
  (hover, box drag, a decode in flight) the view-size mask shown is cropped instead, so the detail never shows an
  older mask than the view.
- The ground truth over it: the map's full-size GT (`MapItem.gt`, the one the metrics use) cropped to the window in
  the read worker with the image (`detail_mask`), filled in the right view and outlined on the main one. A map over
  the pixel limit has no GT in memory (`MapItem.gt_problem`): none is drawn, as in the overview.
- Compare mode: model B's view-size mask (`MaskCanvas.compare_changed`) as its full-size upscale has it inside the
  window (`upscaled_detail_mask`, milliseconds at screen size), in the right view, and where A and B differ
  (A's detail mask xor B's) on the main view.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from floodlabel.core.tiles.detail import DetailWindow, detail_mask, detail_window, read_detail, upscaled_detail_mask
from floodlabel.core.tiles.map_item import MapItem
from floodlabel.gui.canvas.mask_canvas import MaskCanvas
from floodlabel.gui.canvas.nodata import display_image
from floodlabel.gui.workers.latest_request import LatestRequestWorker


class MapDetail(QObject):
    """Keeps the canvas's detail layer in step with the view (rules in the module docstring). Signal shown(window)
    after a detail image is drawn (tests, benchmarks), window (col_off, row_off, width, height) or None."""

    shown = Signal(object)

    def __init__(self, controller, canvas: MaskCanvas, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.canvas = canvas
        self.worker = LatestRequestWorker("map-detail", passing=True)
        self.worker.done.connect(self._on_read)
        self.worker.failed.connect(self._on_failed)
        self._request = 0
        self._wanted: tuple[str, DetailWindow] | None = None  # (image key, window) read or being read
        self._detail: DetailWindow | None = None  # the window on the canvas
        self._mask: np.ndarray | None = None  # A's mask over it (detail size)
        self._compare: np.ndarray | None = None  # compare mode's B mask (view size), None when not comparing
        self._compare_detail: np.ndarray | None = None  # B's over the detail window
        self.failure: str | None = None
        canvas.view_changed.connect(self.on_view)
        canvas.compare_changed.connect(self._on_compare)
        controller.image_loaded.connect(self._reset)
        controller.mask_changed.connect(self._on_view_mask)
        controller.metrics_changed.connect(self._on_native)

    def on_view(self, x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> None:
        """The canvas shows (x0, y0, x1, y1) (full frame) on width x height device pixels."""
        item = self.controller.item
        if not isinstance(item, MapItem):
            return
        refiner = self.controller.refiner
        refiner.visible = (x0, y0, x1, y1)
        if self.controller.session is not None and self.controller.embedding is not None:
            refiner.prefetch(self.controller.session, item)
        wanted = detail_window((x0, y0, x1, y1), item.original_size, item.image.shape[:2], (width, height))
        if wanted is None:
            self._request += 1  # a read in flight is no longer wanted
            self._wanted = self._detail = None
            self.canvas.set_detail(None)
            self.shown.emit(None)
            return
        if self._wanted == (item.key, wanted):
            return
        self._wanted = (item.key, wanted)
        self._request += 1
        path, stretch, valid_view, gt, full = item.path, item.stretch, item.valid is not None, item.gt, item.full_size

        def read():
            image = read_detail(path, stretch, wanted)
            gt_detail = detail_mask(gt, full, wanted) if gt is not None else None
            return wanted, display_image(image.rgb, image.valid) if valid_view else image.rgb, gt_detail

        self.worker.submit(self._request, read)

    def shutdown(self, timeout: float = 5.0) -> None:
        self.worker.stop()
        self.worker.join(timeout)

    def _on_read(self, request_id: int, result: tuple[DetailWindow, np.ndarray, np.ndarray | None]) -> None:
        if request_id != self._request:
            return
        detail, rgb, gt = result
        self._detail = detail
        self._mask = self._mask_for(detail, self.controller.native_mask)
        self.canvas.set_detail(rgb, detail.window, self._mask)
        self.canvas.set_detail_gt(gt)
        self._compare_detail = self._b_for(detail)
        self._show_compare()
        self.shown.emit(detail.window)

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id == self._request:
            self.failure = message
            self._wanted = None

    def _on_view_mask(self, mask: np.ndarray | None) -> None:
        self._set_mask(mask)

    def _on_native(self, *_: object) -> None:
        self._set_mask(self.controller.native_mask)

    def _set_mask(self, mask: np.ndarray | None) -> None:
        if self._detail is not None:
            self._mask = self._mask_for(self._detail, mask)
            self.canvas.set_detail_mask(self._mask)
            self._show_compare()

    def _on_compare(self, mask: np.ndarray | None) -> None:
        self._compare = mask
        if self._detail is not None:
            self._compare_detail = self._b_for(self._detail)
            self._show_compare()

    def _b_for(self, detail: DetailWindow) -> np.ndarray | None:
        item, b = self.controller.item, self._compare
        if b is None or not isinstance(item, MapItem):
            return None
        if b.shape == tuple(item.full_size):
            return detail_mask(b, item.full_size, detail)
        return upscaled_detail_mask(b, item.full_size, detail)

    def _show_compare(self) -> None:
        """B's detail mask and A xor B (B alone without A's mask, as compare_controller does) on the canvas."""
        b, a = self._compare_detail, self._mask
        diff = None if b is None else (a ^ b if a is not None and a.shape == b.shape else b)
        self.canvas.set_detail_compare(b, diff)

    def _mask_for(self, detail: DetailWindow, mask: np.ndarray | None) -> np.ndarray | None:
        item = self.controller.item
        if mask is None or item is None:
            return None
        return detail_mask(mask, item.original_size, detail)

    def _reset(self, *_: object) -> None:
        self.controller.refiner.visible = None
        self._request += 1
        self._wanted = self._detail = None
        self._mask = self._compare = self._compare_detail = None
        self.failure = None
