"""The image list's columns: their order, their widths, the status glyphs and the header's show/hide menu.

Made to be read in a ~300-px dock (a 1366x768 screen) without scrolling sideways: the review queue (Status, IoU,
Conf.) comes right after the name, the status is one glyph (its word in the tooltip), the name is elided in the
middle ("flo…0123.jpg" keeps the number), and Size is optional (hidden until the header's right-click menu shows
it; the row's tooltip says it). Widths come from the font, each with room for the header's sort arrow, so a header
is never cut to "Sta…" whichever column sorts.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, Qt
from PySide6.QtWidgets import (QHeaderView, QMenu, QStyle, QStyledItemDelegate, QStyleOptionHeader,
                               QStyleOptionViewItem, QTableView)

COLUMNS = ("#", "Name", "Status", "IoU", "Conf.", "A↔B", "Size", "Problem")
COL_INDEX, COL_NAME, COL_STATUS, COL_IOU, COL_CONFIDENCE, COL_AGREEMENT, COL_SIZE, COL_PROBLEM = range(len(COLUMNS))
STATUS_GLYPHS = {"new": "○", "proposed": "◇", "in progress": "◐", "accepted": "✓"}
"""What the Status column shows for each status (the word is in the cell's tooltip and the header's)."""
HEADER_TIPS = {COL_STATUS: "Status: " + " · ".join(f"{g} {s}" for s, g in STATUS_GLYPHS.items()),
               COL_IOU: "IoU of the shown mask against the ground truth",
               COL_CONFIDENCE: "Confidence: the model's own predicted IoU of the shown mask, or a proposal's "
                               "confidence (no GT needed)",
               COL_AGREEMENT: "Agreement in compare mode: IoU between model A's and model B's masks (low = they "
                              "disagree)",
               COL_SIZE: "Image size in pixels (width × height)"}
OPTIONAL_COLUMNS = (COL_SIZE, COL_CONFIDENCE, COL_PROBLEM)
"""Columns the header's right-click menu shows or hides; Size starts hidden."""
_WIDEST_CELL = {COL_INDEX: "8888", COL_NAME: "00000.jpg", COL_STATUS: "✓", COL_IOU: "0.888",
                COL_CONFIDENCE: "0.88", COL_AGREEMENT: "0.88", COL_SIZE: "8888×8888", COL_PROBLEM: "no GT"}
"""The text each column is sized for (a longer name is elided in the middle; # grows with the row count)."""


class MiddleElide(QStyledItemDelegate):
    """Elides a cell's text in the middle: "flood_0123.jpg" -> "flo…123.jpg" keeps the image's number."""

    def initStyleOption(self, option: QStyleOptionViewItem,
                        index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideMiddle


def set_up_columns(view: QTableView) -> None:
    """Widths, the name's elision, Size hidden, A↔B hidden until compare mode, and the show/hide header menu."""
    view.setItemDelegateForColumn(COL_NAME, MiddleElide(view))
    header = view.horizontalHeader()
    header.setStretchLastSection(True)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)  # never ResizeToContents: O(rows)
    for col in range(len(COLUMNS)):
        view.setColumnWidth(col, column_width(view, col))
    view.setColumnHidden(COL_SIZE, True)
    view.setColumnHidden(COL_AGREEMENT, True)
    header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    header.customContextMenuRequested.connect(lambda pos: column_menu(view).exec(header.mapToGlobal(pos)))


def fit_index_column(view: QTableView, row_count: int) -> None:
    """Widen # for the row count's digits (beyond 9,999 rows)."""
    view.setColumnWidth(COL_INDEX, column_width(view, COL_INDEX, "8" * max(4, len(str(row_count)))))


def column_width(view: QTableView, col: int, widest: str | None = None) -> int:
    """Pixels for column `col`: its widest expected cell (`widest`, else _WIDEST_CELL's) and its header label with
    the sort arrow beside it, whichever needs more."""
    style = view.style()
    cell_margin = 2 * (style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, view) + 1)
    cell = view.fontMetrics().horizontalAdvance(widest or _WIDEST_CELL[col]) + cell_margin + 2
    header = view.horizontalHeader()
    opt = QStyleOptionHeader()
    opt.initFrom(header)
    height = max(header.sizeHint().height(), header.fontMetrics().height() + 4)
    opt.rect = QRect(0, 0, 1000, height)
    opt.state |= QStyle.StateFlag.State_Horizontal
    opt.sortIndicator = QStyleOptionHeader.SortIndicator.SortDown
    label_room = style.subElementRect(QStyle.SubElement.SE_HeaderLabel, opt, header).width()
    label = header.fontMetrics().horizontalAdvance(COLUMNS[col]) + (1000 - label_room) + 2
    return max(cell, label)


def preferred_width(view: QTableView) -> int:
    """The view's width that shows every visible column whole, with a vertical scroll bar and the frame."""
    header = view.horizontalHeader()  # the last column stretches: its own width, not the stretched one, counts
    columns = sum(view.columnWidth(c) if c == COL_INDEX else column_width(view, c)
                  for c in range(header.count()) if not header.isSectionHidden(c))
    scroll_bar = view.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, view)
    return columns + scroll_bar + 2 * view.frameWidth()


def column_menu(view: QTableView) -> QMenu:
    """The header's right-click menu: a check for each of OPTIONAL_COLUMNS (shown or hidden)."""
    menu = QMenu(view)
    for col in OPTIONAL_COLUMNS:
        action = menu.addAction(COLUMNS[col])
        action.setCheckable(True)
        action.setChecked(not view.isColumnHidden(col))
        action.setToolTip(HEADER_TIPS.get(col, ""))
        action.toggled.connect(lambda on, c=col: _show_column(view, c, on))
    return menu


def _show_column(view: QTableView, col: int, on: bool) -> None:
    view.setColumnHidden(col, not on)
    if on and view.columnWidth(col) < column_width(view, col):
        view.setColumnWidth(col, column_width(view, col))
