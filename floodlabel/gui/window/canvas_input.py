"""The window's canvas input: the canvas's mouse signals (original frame) turned into segmentation controller steps.

A click goes to the text prompt first (Pick on, or Ctrl+click, toggles an instance), else, with the prompt tool, it
is a point, whose decode starts on the press; a box being dragged is decoded as a preview (not a step) and becomes a step on release (a box under 2 px
is ignored); hovering with the prompt tool previews the mask a click would give; a brush or eraser stroke is drawn
live on the canvas and becomes one Stroke step on release. [ and ] step the brush radius through BRUSH_SIZES.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from floodlabel.core.annotation.annotation import Stroke
from floodlabel.gui.canvas.mask_canvas import MaskCanvas
from floodlabel.gui.window.segmentation_controller import SegmentationController

BRUSH_SIZES = (2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
"""Brush radii to step through with [ and ], in original-image pixels."""


class CanvasInput:
    """`canvas`'s signals to `controller`'s steps. text_click(x, y, positive) -> True when the text prompt took the
    click; show_status(text, ms): a passing status-bar line. `tool` is the window's tool ("prompt" | "box" |
    "brush" | "erase"), `brush_radius` the brush's radius in original pixels."""

    def __init__(self, canvas: MaskCanvas, controller: SegmentationController,
                 text_click: Callable[[float, float, bool], bool], show_status: Callable[[str, int], None]) -> None:
        self.tool = "prompt"
        self.brush_radius = 16.0
        self._canvas = canvas
        self._controller = controller
        self._text_click = text_click
        self._show_status = show_status
        self._stroke_points: list[tuple[float, float]] = []
        self._stroke_mode = "paint"
        canvas.point_pressed.connect(self._on_press)
        canvas.press_dropped.connect(controller.press_dropped)
        canvas.point_clicked.connect(self.on_point)
        canvas.box_changed.connect(self._on_box_changed)
        canvas.box_finished.connect(self._on_box_finished)
        canvas.hovered.connect(self._on_hover)
        canvas.hover_left.connect(controller.hover_left)
        canvas.stroke_started.connect(self._on_stroke_started)
        canvas.stroke_moved.connect(self._on_stroke_moved)
        canvas.stroke_finished.connect(self._on_stroke_finished)

    def on_point(self, x: float, y: float, positive: bool) -> None:
        """A canvas click: an instance toggle of the text prompt, else a point with the prompt tool."""
        if self._text_click(x, y, positive):
            self._controller.press_dropped()
            return
        if self.tool == "prompt":
            self._controller.add_point(x, y, positive)

    def _on_press(self, x: float, y: float, positive: bool) -> None:
        """A press that may become a prompt-tool click: its point is decoded at once (`controller.press`)."""
        if self.tool == "prompt":
            self._controller.press(x, y, positive)

    def change_brush(self, step: int) -> None:
        """The next smaller (step -1) or larger (+1) of BRUSH_SIZES from the current radius."""
        sizes = BRUSH_SIZES
        i = min(range(len(sizes)), key=lambda k: abs(sizes[k] - self.brush_radius))
        self.brush_radius = float(sizes[max(0, min(len(sizes) - 1, i + step))])
        self._canvas.set_brush_radius(self.brush_radius)
        self._show_status(f"Brush radius: {self.brush_radius:g} px", 2000)

    def _on_box_changed(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self._canvas.set_markers(*self._markers_with_box((x0, y0, x1, y1)))
        self._controller.preview_box((x0, y0, x1, y1))

    def _on_box_finished(self, x0: float, y0: float, x1: float, y1: float) -> None:
        if abs(x1 - x0) < 2 and abs(y1 - y0) < 2:
            return
        self._controller.set_box((x0, y0, x1, y1))

    def _on_hover(self, x: float, y: float) -> None:
        if self.tool == "prompt":
            self._controller.hover(x, y)

    def _on_stroke_started(self, mode: str, x: float, y: float) -> None:
        self._stroke_mode = mode
        self._stroke_points = [(x, y)]
        self._canvas.draw_stroke_segment(mode, self.brush_radius, (x, y), (x, y))

    def _on_stroke_moved(self, x: float, y: float) -> None:
        if not self._stroke_points:
            return
        self._canvas.draw_stroke_segment(self._stroke_mode, self.brush_radius, self._stroke_points[-1], (x, y))
        self._stroke_points.append((x, y))

    def _on_stroke_finished(self) -> None:
        if self._stroke_points:
            points = np.asarray(self._stroke_points, np.float32)
            self._stroke_points = []
            self._controller.add_stroke(Stroke(self._stroke_mode, self.brush_radius, points))

    def _markers_with_box(self, box):
        ann = self._controller.annotation
        if ann is None:
            return np.zeros((0, 2)), np.zeros(0, int), np.asarray(box, float), True
        return ann.prompt.points, ann.prompt.labels, np.asarray(box, float), self._controller.embedding is None
