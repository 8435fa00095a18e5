"""The annotation canvas: the image with the predicted mask ("Prediction") beside the ground truth, in pyqtgraph.

The canvas only renders and turns the mouse into signals; it holds no annotation state. Every coordinate it takes
or emits is in the original image frame: float (x, y), x right, y down, pixel (i, j) spans [j, j+1) x [i, i+1).

Overlays are (h, w) uint8 arrays (0 = clear, 1 = water) drawn through a 2-entry lookup table and stretched over
the image's extent with `ImageItem.setRect`, so a mask decoded at view size (long side <= 2048) lines up with an
image of any size and no RGBA copy is built per update (see DESIGN.md, "Overlay").

Mouse, main view ("Prediction"): `pointer.PointerInput` turns it into the signals below by tool (prompt: left /
right click = positive / negative point, Shift+left-drag = box; box: left-drag = box; brush / erase: left-drag or
click = a stroke); every tool pans with the middle button and zooms with the wheel, right-drag does nothing (a shaky
right click is not a zoom), there is no context menu. The two views are linked: zoom and pan in either moves both.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from floodlabel.core.annotation.annotation import draw_stroke_segment, view_size
from floodlabel.gui.canvas.markers import PromptMarkers
from floodlabel.gui.canvas.pointer import CanvasViewBox, PointerInput, PressFilter

pg.setConfigOptions(imageAxisOrder="row-major")

WATER_RGB = (30, 144, 255)      # predicted water (dodger blue)
GT_RGB = (255, 214, 0)          # ground truth (yellow), fill in the GT view and outline in the main view
COMPARE_RGB = (255, 128, 0)    # the second model's mask in compare mode (orange)
DIFF_RGB = (255, 0, 160)       # pixels where the two compared models disagree
DEFAULT_OPACITY = 0.45
VIEW_SETTLE_MS = 60
"""view_changed is emitted this long after the last zoom / pan / resize step (a drag emits once it pauses)."""


class MaskCanvas(QWidget):
    """Two linked pyqtgraph views side by side: "Prediction" (`main_view`) and "Ground truth" (`gt_view`).

    Signals (original frame):
        point_pressed(x, y, positive)   a left / right press inside the image (not with a brush tool): the point
                                        its click would add, emitted before the release brings the click
        press_dropped()                 that press became a drag: no click follows
        point_clicked(x, y, positive)   left click = positive, right click = negative (no drag), inside the image
        box_changed(x0, y0, x1, y1)     while box-dragging; x0 <= x1, y0 <= y1, clipped to the image
        box_finished(x0, y0, x1, y1)    on release
        hovered(x, y)                   mouse moved over the image with no button down
        hover_left()                    the mouse left the image (or the view)
        stroke_started(mode, x, y)      brush/erase left press-drag (mode "paint" | "erase"); a click is a
        stroke_moved(x, y)              one-point stroke; the canvas does not draw strokes itself, call
        stroke_finished()               draw_stroke_segment for live feedback
        view_changed(x0, y0, x1, y1, w, h)  the main view's visible range (original frame) on w x h device pixels,
                                        after a zoom, pan or resize settles (VIEW_SETTLE_MS)
        compare_changed(mask)           compare mode's B mask was set (`set_compare`; None: compare mode ended), for
                                        the detail layer of a map
    """

    point_pressed = Signal(float, float, bool)
    press_dropped = Signal()
    point_clicked = Signal(float, float, bool)
    box_changed = Signal(float, float, float, float)
    box_finished = Signal(float, float, float, float)
    hovered = Signal(float, float)
    hover_left = Signal()
    stroke_started = Signal(str, float, float)
    stroke_moved = Signal(float, float)
    stroke_finished = Signal()
    view_changed = Signal(float, float, float, float, int, int)
    compare_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image_size: tuple[int, int] | None = None   # (H, W) original
        self._opacity = DEFAULT_OPACITY
        self._overlay_owned = False      # False: the overlay array is the caller's mask (copy before drawing)
        self._markers = PromptMarkers()   # point markers, prompt box, drag box, brush cursor
        self._pointer = PointerInput(self, self._markers, lambda: self._image_size)

        self.main_view = CanvasViewBox(self._pointer)
        self.gt_view = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.main_graphics = pg.GraphicsView(background=(32, 32, 32))
        self.gt_graphics = pg.GraphicsView(background=(32, 32, 32))
        self.main_graphics.setCentralItem(self.main_view)
        self._press_filter = PressFilter(self.main_view, self._pointer)
        self.gt_graphics.setCentralItem(self.gt_view)
        self.main_graphics.viewport().setCursor(Qt.CursorShape.CrossCursor)
        for view in (self.main_view, self.gt_view):
            view.setDefaultPadding(0.02)

        self._image_item = pg.ImageItem()
        self._overlay_item = pg.ImageItem()
        self._outline_item = pg.ImageItem()
        self._gt_image_item = pg.ImageItem()
        self._gt_overlay_item = pg.ImageItem()
        self._overlay_item.setLookupTable(_lut(WATER_RGB, self._opacity))
        self._outline_item.setLookupTable(_lut(GT_RGB, 1.0))
        self._gt_overlay_item.setLookupTable(_lut(GT_RGB, self._opacity))
        self._overlay_item.setZValue(1)
        self._outline_item.setZValue(1.15)
        self._gt_overlay_item.setZValue(1)
        self._outline_item.setVisible(False)
        self._compare_item = pg.ImageItem()   # compare mode: model B's mask in the right view
        self._compare_item.setLookupTable(_lut(COMPARE_RGB, self._opacity))
        self._compare_item.setZValue(1)
        self._diff_item = pg.ImageItem()      # compare mode: A xor B on the main view
        self._diff_item.setLookupTable(_lut(DIFF_RGB, 0.85))
        self._diff_item.setZValue(1.1)
        # a large map zoomed in past its view image: a full-resolution window of the image with the masks over it
        # at that resolution (`set_detail`, `set_detail_gt`, `set_detail_compare`), above the view-size image and
        # overlays (the opaque detail image hides them inside the window), below the markers
        self._detail_item = pg.ImageItem()
        self._detail_item.setZValue(1.2)
        self._detail_overlay = pg.ImageItem()
        self._detail_overlay.setLookupTable(_lut(WATER_RGB, self._opacity))
        self._detail_overlay.setZValue(1.3)
        self._detail_diff = pg.ImageItem()
        self._detail_diff.setLookupTable(_lut(DIFF_RGB, 0.85))
        self._detail_diff.setZValue(1.5)
        self._detail_outline = pg.ImageItem()
        self._detail_outline.setLookupTable(_lut(GT_RGB, 1.0))
        self._detail_outline.setZValue(2)
        self._detail_outline.setVisible(False)
        self._gt_detail_item = pg.ImageItem()  # the same detail image in the right view, with its GT / B mask
        self._gt_detail_item.setZValue(1.05)
        self._gt_detail_overlay = pg.ImageItem()
        self._gt_detail_overlay.setLookupTable(_lut(GT_RGB, self._opacity))
        self._gt_detail_overlay.setZValue(1.1)
        self._compare_detail = pg.ImageItem()
        self._compare_detail.setLookupTable(_lut(COMPARE_RGB, self._opacity))
        self._compare_detail.setZValue(1.1)
        self._detail_window: tuple[int, int, int, int] | None = None
        self._detail_owned = False
        self._view_timer = QTimer(self, singleShot=True, interval=VIEW_SETTLE_MS)
        self._view_timer.timeout.connect(self._emit_view)

        self.main_view.addItem(self._image_item)
        for item in (self._overlay_item, self._detail_item, self._detail_overlay, self._diff_item,
                     self._outline_item, self._detail_diff, self._detail_outline, *self._markers.items()):
            self.main_view.addItem(item, ignoreBounds=True)
        self.main_view.sigRangeChanged.connect(lambda *_: self._view_timer.start())
        self.main_view.sigResized.connect(lambda *_: self._view_timer.start())
        self.gt_view.addItem(self._gt_image_item)
        for item in (self._gt_detail_item, self._gt_overlay_item, self._compare_item, self._gt_detail_overlay,
                     self._compare_detail):
            self.gt_view.addItem(item, ignoreBounds=True)
        self._link_views(True)

        self._gt_title = QLabel("Ground truth")
        self._gt_pane = _pane(self._gt_title, self.gt_graphics)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self._main_title = QLabel("Prediction")
        self._comparing = False
        layout.addWidget(_pane(self._main_title, self.main_graphics), 1)
        layout.addWidget(self._gt_pane, 1)

    # ----- public API -------------------------------------------------------------------------------------------

    @property
    def main_viewport(self) -> QWidget:
        """The widget that receives the main view's mouse events (send QTest clicks here)."""
        return self.main_graphics.viewport()

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the current image, None without one."""
        return self._image_size

    def set_image(self, image: np.ndarray | None, size: tuple[int, int] | None = None) -> None:
        """Show a new (H, W, 3) uint8 RGB image (None = nothing) and fit it to the view. size: the original (H, W)
        when `image` is smaller (a large map's view): it is stretched over that extent, coordinates stay original.

        Clears the mask, ground truth, markers and box of the previous image: call this first, then set_mask etc.
        The array is displayed without a copy; do not modify it afterwards.
        """
        self._clear_overlays()
        self.set_markers(np.empty((0, 2)), np.empty(0), None, False)
        if image is None:
            self._image_size = None
            self._image_item.clear()
            self._gt_image_item.clear()
            return
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        self._image_size = tuple(int(v) for v in (size or image.shape[:2]))
        self._image_item.setImage(image, autoLevels=False)
        self._gt_image_item.setImage(image, autoLevels=False)
        rect = self._extent()
        self._image_item.setRect(rect)
        self._gt_image_item.setRect(rect)
        self.fit()

    def set_mask(self, mask: np.ndarray | None) -> None:
        """Show the predicted (h, w) bool mask (any size: it is stretched over the image's extent); None hides it.

        The mask is displayed without a copy; the first draw_stroke_segment after set_mask copies it, so the
        caller's array is never changed.
        """
        if mask is None:
            self._overlay_item.clear()
            self._overlay_owned = False
            return
        self._show_overlay(_as_uint8(mask), owned=False)

    def set_compare(self, mask: np.ndarray | None, diff: np.ndarray | None = None,
                    titles: tuple[str, str] | None = None) -> None:
        """Compare mode: the right view shows model B's (h, w) bool mask (orange) instead of the ground truth, the
        main view highlights `diff` (where A and B disagree, any size), and `titles` name both views.
        `set_compare(None)` leaves compare mode (the right view shows the ground truth again)."""
        comparing = mask is not None
        if comparing:
            self._show_item(self._compare_item, _as_uint8(mask))
            if diff is not None:
                self._show_item(self._diff_item, _as_uint8(diff))
            else:
                self._diff_item.clear()
        else:
            self._compare_item.clear()
            self._diff_item.clear()
        if comparing != self._comparing:
            self._comparing = comparing
            self._gt_overlay_item.setVisible(not comparing)
            self._gt_detail_overlay.setVisible(not comparing)
        if titles is not None and comparing:
            self._main_title.setText(titles[0])
            self._gt_title.setText(titles[1])
        elif not comparing:
            self._main_title.setText("Prediction")
            self._gt_title.setText("Ground truth" if self._gt_overlay_item.image is not None or
                                   not self._image_size else "Ground truth: none for this image")
        self.compare_changed.emit(mask)

    def _show_item(self, item: pg.ImageItem, array: np.ndarray) -> None:
        item.setImage(array, autoLevels=False, levels=(0, 1))
        item.setRect(self._extent())

    def set_detail(self, image: np.ndarray | None, window: tuple[int, int, int, int] | None = None,
                   mask: np.ndarray | None = None) -> None:
        """A large map zoomed in: show `image` ((h, w, 3) uint8, full-resolution pixels of `window` = (col_off,
        row_off, width, height) in the original frame, decimated to about the screen's resolution) over that window,
        with `mask` ((h, w) bool or None) over it. None: back to the view image alone. Displayed without a copy."""
        if image is None or window is None:
            for item in (self._detail_item, self._gt_detail_item, self._detail_overlay, self._detail_diff,
                         self._detail_outline, self._gt_detail_overlay, self._compare_detail):
                item.clear()
            self._detail_window, self._detail_owned = None, False
            return
        self._detail_window = tuple(int(v) for v in window)
        for item in (self._detail_item, self._gt_detail_item):
            item.setImage(image, autoLevels=False)
            item.setRect(QRectF(*(float(v) for v in self._detail_window)))
        self.set_detail_mask(mask)

    def set_detail_mask(self, mask: np.ndarray | None) -> None:
        """The mask over the detail window ((h, w) bool at the detail image's size, or None: none)."""
        if self._detail_window is None or mask is None:
            self._detail_overlay.clear()
            self._detail_owned = False
            return
        self._show_detail_item(self._detail_overlay, _as_uint8(mask))
        self._detail_owned = False

    def set_detail_gt(self, gt: np.ndarray | None) -> None:
        """The ground truth over the detail window ((h, w) bool at the detail image's size, or None: none): filled
        in the right view and outlined on the main view, as `set_gt` draws the whole image's."""
        if self._detail_window is None or gt is None:
            self._gt_detail_overlay.clear()
            self._detail_outline.clear()
            return
        gt_u8 = _as_uint8(gt)
        outline = cv2.morphologyEx(gt_u8, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        self._show_detail_item(self._gt_detail_overlay, gt_u8)
        self._show_detail_item(self._detail_outline, outline)

    def set_detail_compare(self, mask: np.ndarray | None, diff: np.ndarray | None = None) -> None:
        """Compare mode over the detail window: model B's mask in the right view and `diff` (A xor B) on the main
        view, both (h, w) bool at the detail image's size; None: none."""
        for item, array in ((self._compare_detail, mask), (self._detail_diff, diff)):
            if self._detail_window is None or array is None:
                item.clear()
            else:
                self._show_detail_item(item, _as_uint8(array))

    @property
    def detail_window(self) -> tuple[int, int, int, int] | None:
        """The full-resolution window shown over the view image (col_off, row_off, width, height), or None."""
        return self._detail_window

    def visible_range(self) -> tuple[tuple[float, float, float, float], tuple[int, int]]:
        """((x0, y0, x1, y1) of the main view, original frame; (width, height) of its viewport in device pixels)."""
        (x0, x1), (y0, y1) = self.main_view.viewRange()
        viewport = self.main_viewport
        ratio = viewport.devicePixelRatioF()
        return (x0, y0, x1, y1), (round(viewport.width() * ratio), round(viewport.height() * ratio))

    def set_gt(self, gt: np.ndarray | None) -> None:
        """Ground truth (H, W) bool (None = no GT): filled in the GT view and outlined on the main view.

        Both are rendered at view size (long side <= 2048); the outline is computed here, once per call.
        """
        if gt is None or self._image_size is None:
            self._gt_overlay_item.clear()
            self._outline_item.clear()
            self._gt_title.setText("Ground truth: none for this image" if self._image_size else "Ground truth")
            return
        gt_u8 = _as_uint8(gt)
        h, w = view_size(gt_u8.shape)
        if (h, w) != gt_u8.shape:
            gt_u8 = cv2.resize(gt_u8, (w, h), interpolation=cv2.INTER_NEAREST)
        k = 3 if max(h, w) <= 1024 else 5
        outline = cv2.morphologyEx(gt_u8, cv2.MORPH_GRADIENT, np.ones((k, k), np.uint8))
        rect = self._extent()
        self._gt_overlay_item.setImage(gt_u8, autoLevels=False, levels=(0, 1))
        self._gt_overlay_item.setRect(rect)
        self._outline_item.setImage(outline, autoLevels=False, levels=(0, 1))
        self._outline_item.setRect(rect)
        self._gt_title.setText("Ground truth")

    def set_markers(self, points: Any, labels: Any, box: Any | None, pending: bool) -> None:
        """Prompt markers: points (N, 2) float (x, y), labels (N,) int (1 positive, 0 negative), box (4,)
        (x0, y0, x1, y1) or None. pending=True (embedding not ready yet) draws them hollow / dashed."""
        self._markers.set_prompt(points, labels, box, pending)

    def set_tool(self, tool: str) -> None:
        """"prompt" | "box" | "brush" | "erase" (`pointer.TOOLS`); ValueError otherwise."""
        self._pointer.set_tool(tool)

    @property
    def tool(self) -> str:
        return self._pointer.tool

    def set_brush_radius(self, r: float) -> None:
        """Brush radius in original-frame pixels (the circle cursor's size)."""
        self._pointer.set_brush_radius(r)

    def set_opacity(self, a: float) -> None:
        """Fill opacity of the predicted and ground-truth overlays, 0..1 (the GT outline stays opaque)."""
        self._opacity = float(np.clip(a, 0.0, 1.0))
        self._overlay_item.setLookupTable(_lut(WATER_RGB, self._opacity))
        self._gt_overlay_item.setLookupTable(_lut(GT_RGB, self._opacity))
        self._compare_item.setLookupTable(_lut(COMPARE_RGB, self._opacity))
        self._detail_overlay.setLookupTable(_lut(WATER_RGB, self._opacity))
        self._gt_detail_overlay.setLookupTable(_lut(GT_RGB, self._opacity))
        self._compare_detail.setLookupTable(_lut(COMPARE_RGB, self._opacity))

    def set_overlay_visible(self, b: bool) -> None:
        self._overlay_item.setVisible(bool(b))
        self._detail_overlay.setVisible(bool(b))

    def set_gt_outline_visible(self, b: bool) -> None:
        self._outline_item.setVisible(bool(b))
        self._detail_outline.setVisible(bool(b))

    def set_gt_view_visible(self, b: bool) -> None:
        """Show or hide the GT view; hidden, it is unlinked (a hidden view's stale geometry would skew the main
        view's range), shown again, it takes the main view's range."""
        if bool(b) == self._gt_pane.isVisibleTo(self):
            return
        if not b:
            self._link_views(False)
        self._gt_pane.setVisible(bool(b))
        if b:
            self._link_views(True)

    def fit(self) -> None:
        """Fit the whole image into the main view (the GT view follows)."""
        if self._image_size is not None:
            self.main_view.autoRange(items=[self._image_item])

    def draw_stroke_segment(self, mode: str, radius: float, p0: tuple[float, float],
                            p1: tuple[float, float]) -> None:
        """Live brush feedback: draw the segment p0 -> p1 (original frame, radius in original pixels) onto the
        displayed overlay only, in place at the overlay's own scale ("paint" sets water, "erase" clears it).

        Drawn by the annotation's own rasteriser (`core.annotation.annotation.draw_stroke_segment`), so a
        stroke drawn live as (q0, q0), (q0, q1), ... has the pixels the saved stroke gets at the same size.
        Without a mask it starts an empty one at view size. The window replaces it with the composed mask
        when the stroke is done.
        """
        if self._image_size is None:
            return
        overlay = self._overlay_item.image
        if overlay is None:
            overlay = np.zeros(view_size(self._image_size), np.uint8)
            self._show_overlay(overlay, owned=True)
        elif not self._overlay_owned:
            overlay = overlay.copy()
            self._show_overlay(overlay, owned=True)
        draw_stroke_segment(overlay, p0, p1, radius, self._image_size, 1 if mode == "paint" else 0)
        self._overlay_item.updateImage()
        if self._detail_window is not None:  # zoomed in on a map: the stroke shows on the detail's mask too
            self._draw_detail_segment(mode, radius, p0, p1)

    def overlay_array(self) -> np.ndarray | None:
        """The (h, w) uint8 array the prediction overlay shows (0/1), None without one (for tests)."""
        return self._overlay_item.image

    def overlay_rect(self) -> QRectF:
        """The prediction overlay's extent in the original frame (equals the image extent; for tests)."""
        return self._overlay_item.mapRectToParent(self._overlay_item.boundingRect())

    def widget_pos(self, x: float, y: float) -> QPoint:
        """Original-frame (x, y) -> QPoint in main_viewport coordinates (for QTest clicks)."""
        scene = self.main_view.mapViewToScene(QPointF(x, y))
        return self.main_graphics.mapFromScene(scene)

    def image_pos(self, widget_pos: QPointF | QPoint) -> tuple[float, float]:
        """main_viewport coordinates -> original-frame (x, y)."""
        inverse, _ = self.main_graphics.viewportTransform().inverted()
        scene = inverse.map(QPointF(widget_pos))
        p = self.main_view.mapSceneToView(scene)
        return float(p.x()), float(p.y())

    # ----- helpers ----------------------------------------------------------------------------------------------

    def _extent(self) -> QRectF:
        H, W = self._image_size if self._image_size is not None else (1, 1)
        return QRectF(0.0, 0.0, float(W), float(H))

    def _show_overlay(self, overlay: np.ndarray, owned: bool) -> None:
        if self._image_size is None:
            self._image_size = overlay.shape   # no image: the mask defines the extent
        self._overlay_item.setImage(overlay, autoLevels=False, levels=(0, 1))
        self._overlay_item.setRect(self._extent())
        self._overlay_owned = owned

    def _show_detail_item(self, item: pg.ImageItem, array: np.ndarray) -> None:
        item.setImage(array, autoLevels=False, levels=(0, 1))
        item.setRect(QRectF(*(float(v) for v in self._detail_window)))

    def _draw_detail_segment(self, mode: str, radius: float, p0: tuple[float, float],
                             p1: tuple[float, float]) -> None:
        c0, r0, width, height = self._detail_window
        overlay = self._detail_overlay.image
        if overlay is None:
            overlay = np.zeros(self._detail_item.image.shape[:2], np.uint8)
        elif not self._detail_owned:
            overlay = overlay.copy()
        if overlay is not self._detail_overlay.image:
            self._detail_overlay.setImage(overlay, autoLevels=False, levels=(0, 1))
            self._detail_overlay.setRect(QRectF(*(float(v) for v in self._detail_window)))
            self._detail_owned = True
        local = ((p0[0] - c0, p0[1] - r0), (p1[0] - c0, p1[1] - r0))  # the window is the frame of this overlay
        draw_stroke_segment(overlay, *local, radius, (height, width), 1 if mode == "paint" else 0)
        self._detail_overlay.updateImage()

    def _emit_view(self) -> None:
        if self._image_size is not None:
            (x0, y0, x1, y1), (w, h) = self.visible_range()
            self.view_changed.emit(x0, y0, x1, y1, w, h)

    def _clear_overlays(self) -> None:
        self.set_detail(None)
        for item in (self._overlay_item, self._outline_item, self._gt_overlay_item, self._compare_item,
                     self._diff_item):
            item.clear()
        self._overlay_owned = False
        self._markers.show_drag_box(None)
        self._gt_title.setText("Ground truth")

    def _link_views(self, on: bool) -> None:
        """Link the views both ways (a pan or zoom in either moves the other; blockLink stops the echo). The GT
        view is linked first, so it takes the main view's range."""
        for a, b in ((self.gt_view, self.main_view), (self.main_view, self.gt_view)):
            a.setXLink(b if on else None)
            a.setYLink(b if on else None)


def _lut(rgb: tuple[int, int, int], alpha: float) -> np.ndarray:
    """2-entry RGBA lookup table: 0 transparent, 1 the colour at alpha (0..1)."""
    return np.array([[0, 0, 0, 0], [*rgb, int(round(255 * alpha))]], dtype=np.uint8)


def _as_uint8(mask: np.ndarray) -> np.ndarray:
    """(h, w) 0/1 uint8: a view of a contiguous bool mask (no copy), else a converted copy."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    if mask.dtype == np.bool_ and mask.flags.c_contiguous:
        return mask.view(np.uint8)
    return (mask != 0).astype(np.uint8)


def _pane(title: QLabel, view: QWidget) -> QWidget:
    pane = QWidget()
    box = QVBoxLayout(pane)
    box.setContentsMargins(0, 0, 0, 0)
    box.setSpacing(2)
    title.setAlignment(Qt.AlignmentFlag.AlignCenter)
    box.addWidget(title)
    box.addWidget(view, 1)
    return pane
