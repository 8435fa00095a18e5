"""The canvas's mouse on its main view: clicks, left drags and hovers turned into the canvas's signals by tool.

Every position is in the original image frame (float (x, y), x right, y down). Tools: "prompt" (left click positive,
right click negative, Shift+left-drag box, left-drag pans), "box" (left-drag box, clicks as in "prompt"), "brush" /
"erase" (left-drag or a left click = a stroke; a circle of the brush radius follows the mouse). Every tool:
middle-drag pans, the wheel zooms (pyqtgraph); right-drag does nothing. Clicks outside the image are ignored.
"""

from __future__ import annotations

from typing import Any, Callable

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt

from floodlabel.gui.canvas.markers import PromptMarkers

TOOLS = ("prompt", "box", "brush", "erase")


class PointerInput:
    """The tool, the brush radius and the drag in progress of the main view.

    signals: the object whose Qt signals are emitted (the canvas: point_pressed, press_dropped, point_clicked,
    box_changed, box_finished, hovered, hover_left, stroke_started, stroke_moved, stroke_finished); markers: the drag box and brush cursor drawn;
    image_size: () -> (H, W) of the image on screen, None without one.
    """

    def __init__(self, signals: Any, markers: PromptMarkers,
                 image_size: Callable[[], tuple[int, int] | None]) -> None:
        self.tool = "prompt"
        self.brush_radius = 20.0
        self._signals = signals
        self._markers = markers
        self._image_size = image_size
        self._hover_inside = False
        self._drag_kind: str | None = None   # "box" | "stroke" | "pan" | None during a left drag
        self._drag_start = (0.0, 0.0)
        self._last_stroke_pos: tuple[float, float] | None = None

    def set_tool(self, tool: str) -> None:
        """One of TOOLS; ValueError otherwise. The brush cursor goes with a brush tool."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; expected one of {TOOLS}")
        self.tool = tool
        if not self._brush_tool():
            self._show_cursor(None)

    def set_brush_radius(self, r: float) -> None:
        """Brush radius in original-frame pixels (the circle cursor, redrawn where it is)."""
        self.brush_radius = max(0.5, float(r))
        centre = self._markers.cursor_centre()
        if centre is not None:
            self._show_cursor(centre)

    def press(self, button: Qt.MouseButton, x: float, y: float) -> None:
        """A button went down at (x, y): `point_pressed` for the point a left / right click there would add (the
        click, on the release, has the very same coordinates), unless a brush tool is on or it is outside."""
        if self._brush_tool() or not self._inside(x, y):
            return
        if button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self._signals.point_pressed.emit(x, y, button == Qt.MouseButton.LeftButton)

    def drag_started(self) -> None:
        """The press became a drag: no click follows it (`press_dropped`)."""
        self._signals.press_dropped.emit()

    def click(self, button: Qt.MouseButton, x: float, y: float) -> None:
        if not self._inside(x, y):
            return
        s = self._signals
        if self._brush_tool():
            if button == Qt.MouseButton.LeftButton:
                s.stroke_started.emit(self._stroke_mode(), x, y)
                s.stroke_finished.emit()
        elif button == Qt.MouseButton.LeftButton:
            s.point_clicked.emit(x, y, True)
        elif button == Qt.MouseButton.RightButton:
            s.point_clicked.emit(x, y, False)

    def left_drag(self, start: tuple[float, float], pos: tuple[float, float], shift: bool,
                  is_start: bool, is_finish: bool) -> bool:
        """Handle a left drag step; False = not ours (the view pans)."""
        s = self._signals
        if is_start:
            if self._brush_tool():
                self._drag_kind = "stroke"
            elif self.tool == "box" or shift:
                self._drag_kind = "box"
            else:
                self._drag_kind = "pan"
            self._drag_start = start
            if self._drag_kind == "stroke":
                s.stroke_started.emit(self._stroke_mode(), *start)
                self._last_stroke_pos = start
        kind = self._drag_kind
        if is_finish:
            self._drag_kind = None
        if kind == "box":
            box = self._clipped_box(self._drag_start, pos)
            self._markers.show_drag_box(None if is_finish else box)
            s.box_changed.emit(*box)
            if is_finish:
                s.box_finished.emit(*box)
            return True
        if kind == "stroke":
            self._show_cursor(pos)
            if pos != self._last_stroke_pos:
                s.stroke_moved.emit(*pos)
                self._last_stroke_pos = pos
            if is_finish:
                self._last_stroke_pos = None
                s.stroke_finished.emit()
            return True
        return False

    def hover(self, pos: tuple[float, float] | None, buttons_down: bool) -> None:
        """pos None = the mouse left the view."""
        if pos is None or not self._inside(*pos):
            if pos is None or not buttons_down:
                self._show_cursor(pos if pos is not None and self._brush_tool() else None)
            if self._hover_inside:
                self._hover_inside = False
                self._signals.hover_left.emit()
            return
        if self._brush_tool():
            self._show_cursor(pos)
        if not buttons_down:
            self._hover_inside = True
            self._signals.hovered.emit(*pos)

    def _brush_tool(self) -> bool:
        return self.tool in ("brush", "erase")

    def _stroke_mode(self) -> str:
        return "paint" if self.tool == "brush" else "erase"

    def _inside(self, x: float, y: float) -> bool:
        size = self._image_size()
        if size is None:
            return False
        H, W = size
        return 0.0 <= x < W and 0.0 <= y < H

    def _clipped_box(self, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float, float, float]:
        H, W = self._image_size() or (0, 0)
        x0, x1 = sorted((a[0], b[0]))
        y0, y1 = sorted((a[1], b[1]))
        return (min(max(x0, 0.0), W), min(max(y0, 0.0), H), min(max(x1, 0.0), W), min(max(y1, 0.0), H))

    def _show_cursor(self, pos: tuple[float, float] | None) -> None:
        self._markers.show_cursor(pos, self.brush_radius)


class CanvasViewBox(pg.ViewBox):
    """The main view: hands clicks, drags and hovers to a PointerInput (positions in the original frame)."""

    def __init__(self, pointer: PointerInput) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._pointer = pointer

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802 (Qt API)
        ev.accept()
        p = self.mapToView(ev.pos())
        self._pointer.click(ev.button(), float(p.x()), float(p.y()))

    def mouseDragEvent(self, ev: Any, axis: int | None = None) -> None:  # noqa: N802 (Qt API)
        if ev.isStart():
            self._pointer.drag_started()
        button = ev.button()
        if button == Qt.MouseButton.LeftButton:
            start = self.mapToView(ev.buttonDownPos())
            pos = self.mapToView(ev.pos())
            shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            if self._pointer.left_drag((float(start.x()), float(start.y())), (float(pos.x()), float(pos.y())),
                                       shift, ev.isStart(), ev.isFinish()):
                ev.accept()
                return
            super().mouseDragEvent(ev, axis)
        elif button == Qt.MouseButton.MiddleButton:
            super().mouseDragEvent(ev, axis)
        else:
            ev.accept()   # right-drag: nothing (no pyqtgraph zoom)

    def hoverEvent(self, ev: Any) -> None:  # noqa: N802 (Qt API)
        if ev.isExit():
            self._pointer.hover(None, False)
            return
        p = self.mapToView(ev.pos())
        self._pointer.hover((float(p.x()), float(p.y())), bool(ev.buttons()))


class PressFilter(QObject):
    """Watches `view`'s scene for mouse presses and hands each to `pointer.press` (original frame), leaving the
    event to pyqtgraph, which turns the release into the click. The position is mapped as the click's will be
    (the press's scene position through the view box), so a click's point equals its press's.

    It also lets through pyqtgraph's rate limit (`mouseRateLimit`: moves closer than 10 ms to the last one are
    dropped) every move with a button down until a drag has begun. When the UI thread was busy, X's moves of a quick
    drag come in as one, a millisecond after the press: dropped, the drag would end as a click at its release."""

    def __init__(self, view: CanvasViewBox, pointer: PointerInput) -> None:
        super().__init__(view.scene())
        self._view = view
        self._pointer = pointer
        view.scene().installEventFilter(self)

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 (Qt API)
        kind = ev.type()
        if kind == QEvent.Type.GraphicsSceneMousePress:
            view = self._view
            p = view.mapToView(pg.Point(view.mapFromScene(ev.scenePos())))
            self._pointer.press(ev.button(), float(p.x()), float(p.y()))
        elif kind == QEvent.Type.GraphicsSceneMouseMove and ev.buttons() and not getattr(obj, "dragButtons", True):
            obj._lastMoveEventTime = 0  # pyqtgraph's GraphicsScene: the rate limit's last move (ms)
        return False
