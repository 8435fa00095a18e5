"""The main view's prompt graphics: point markers, the prompt box, the box being dragged and the brush cursor.

Every position is in the original image frame (x right, y down, pixel (i, j) spans [j, j+1) x [i, i+1)); the pens
are cosmetic, so line widths stay in screen pixels at any zoom.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem, QGraphicsRectItem

POSITIVE_RGB = (40, 220, 60)
NEGATIVE_RGB = (240, 40, 40)
BOX_RGB = (235, 70, 235)     # magenta: apart from the yellow GT outline
MARKER_SIZE = 13                # screen pixels


class PromptMarkers:
    """The graphics items (add `items()` to the main view, ignoreBounds) and the calls that update them."""

    def __init__(self) -> None:
        self._markers = _InertScatter(size=MARKER_SIZE, pxMode=True)
        self._markers.setZValue(10)
        self._box_item = QGraphicsRectItem()
        self._box_item.setZValue(9)
        self._box_item.setVisible(False)
        self._drag_box_item = QGraphicsRectItem()
        self._drag_box_item.setPen(cosmetic_pen(BOX_RGB, 1.5, Qt.PenStyle.DashLine))
        self._drag_box_item.setZValue(9)
        self._drag_box_item.setVisible(False)
        self._cursor_items = (QGraphicsEllipseItem(), QGraphicsEllipseItem())
        self._cursor_items[0].setPen(cosmetic_pen((0, 0, 0), 3.0))
        self._cursor_items[1].setPen(cosmetic_pen((255, 255, 255), 1.2))
        for z, item in enumerate(self._cursor_items):
            item.setZValue(20 + z)
            item.setVisible(False)

    def items(self) -> tuple[QGraphicsItem, ...]:
        """Markers, prompt box, drag box and the two cursor circles (z 9..21: above every overlay)."""
        return (self._markers, self._box_item, self._drag_box_item, *self._cursor_items)

    def set_prompt(self, points: Any, labels: Any, box: Any | None, pending: bool) -> None:
        """points (N, 2) float (x, y), labels (N,) int (1 positive: green disc, 0 negative: red square), box (4,)
        (x0, y0, x1, y1) or None. pending=True (embedding not ready yet) draws them hollow / dashed."""
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
        labs = np.asarray(labels).reshape(-1)
        styles = [_marker_style(bool(label), pending) for label in labs]
        self._markers.setData(pos=pts, brush=[s[0] for s in styles], pen=[s[1] for s in styles],
                              symbol=["o" if label else "s" for label in labs])
        if box is None:
            self._box_item.setVisible(False)
            return
        x0, y0, x1, y1 = (float(v) for v in box)
        self._box_item.setRect(QRectF(min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)))
        style = Qt.PenStyle.DashLine if pending else Qt.PenStyle.SolidLine
        self._box_item.setPen(cosmetic_pen(BOX_RGB, 2.0, style))
        self._box_item.setVisible(True)

    def show_drag_box(self, box: tuple[float, float, float, float] | None) -> None:
        """The box being dragged, (x0, y0, x1, y1) with x0 <= x1, y0 <= y1; None hides it."""
        if box is None:
            self._drag_box_item.setVisible(False)
            return
        self._drag_box_item.setRect(QRectF(box[0], box[1], box[2] - box[0], box[3] - box[1]))
        self._drag_box_item.setVisible(True)

    def show_cursor(self, pos: tuple[float, float] | None, radius: float) -> None:
        """The brush circle (radius in original pixels) centred at pos; None hides it."""
        for item in self._cursor_items:
            if pos is None:
                item.setVisible(False)
                continue
            item.setRect(QRectF(pos[0] - radius, pos[1] - radius, 2 * radius, 2 * radius))
            item.setVisible(True)

    def cursor_centre(self) -> tuple[float, float] | None:
        """Where the brush circle is shown, None while hidden."""
        if not self._cursor_items[0].isVisible():
            return None
        c = self._cursor_items[0].rect().center()
        return c.x(), c.y()


@lru_cache(maxsize=None)
def _marker_style(positive: bool, pending: bool) -> tuple[QBrush, QPen]:
    """(brush, pen) of a marker, made once: pyqtgraph's symbol atlas keys on the objects' identity, so new ones per
    click re-rendered every symbol and grew the atlas on each click (about 1 ms of the click on the UI thread)."""
    rgb = POSITIVE_RGB if positive else NEGATIVE_RGB
    if pending:
        return pg.mkBrush(None), pg.mkPen(rgb, width=3)
    return pg.mkBrush(*rgb), pg.mkPen((255, 255, 255), width=1.5)


def cosmetic_pen(rgb: tuple[int, int, int], width: float, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    """A pen of `width` screen pixels at any zoom."""
    pen = QPen(QColor(*rgb))
    pen.setWidthF(width)
    pen.setCosmetic(True)
    pen.setStyle(style)
    return pen


class _InertScatter(pg.ScatterPlotItem):
    """Markers that never take a click (a click on a marker adds a point there, it does not select the marker)."""

    def mouseClickEvent(self, ev: Any) -> None:
        ev.ignore()
