"""The image list dock: one row per image of a FloodDataset, with its annotation status, IoU, size and problems.

The columns (order, widths, status glyphs, which are optional) are `gui/panels/image_columns`'s: the list reads
whole in a ~300-px dock.

The review queue: "Conf." is the model's own predicted IoU of the mask shown for that image (set by the window as
the model scores it; useful where there is no GT), and "Least confident first" sorts by it. "A↔B" (shown once a
value is set, in compare mode) is the IoU between the two compared models' masks: low = they disagree, an
informative image to label next; a click on its header sorts by it.

Rows appear at once (nothing is decoded, no header is read: 10,000 images list in 10 ms). Image and mask sizes are
read afterwards, once the rows are painted (`gui/on_screen.py`), from file headers by a daemon thread
(`gui/panels/size_scan.SizeScanner`) in chunks, reported through a relay QObject, so the list never
blocks. A pair whose header cannot be read, or whose image is over the pixel limit (core/images.MAX_IMAGE_PIXELS),
is a red row with the reason; a pair whose image and mask sizes differ is a red "size mismatch" row; an image
without a ground-truth mask says "no GT" in grey.

Rows are "model rows": the index into `dataset.pairs`. The view may be sorted (by IoU, worst first) or filtered by
name through `gui/panels/view_order.ViewOrder`, a proxy that keeps the view's order as Python lists (sorting
10,000 rows is one `sorted`).
Every public method and signal speaks model rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (QAbstractTableModel, QItemSelectionModel, QModelIndex, QObject, QPersistentModelIndex, Qt,
                            QTimer, Signal)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QDockWidget, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QTableView, QVBoxLayout, QWidget)

from floodlabel.core.data.datasets import FloodDataset
from floodlabel.gui.panels.image_columns import (COL_AGREEMENT, COL_CONFIDENCE, COL_INDEX, COL_IOU, COL_NAME,
                                                 COL_PROBLEM, COL_SIZE, COL_STATUS, COLUMNS, HEADER_TIPS,
                                                 STATUS_GLYPHS, fit_index_column, preferred_width, set_up_columns)
from floodlabel.gui.panels.size_scan import SizeScanner
from floodlabel.gui.panels.view_order import ViewOrder
from floodlabel.gui.workers.on_screen import when_on_screen

STATUSES = tuple(STATUS_GLYPHS)  # "new", "proposed", "in progress", "accepted"
NO_GT = "no GT"
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ERROR_COLOUR = QColor(200, 40, 40)
ERROR_BACKGROUND = QColor(255, 225, 225)
INFO_COLOUR = QColor(128, 128, 128)
ACCEPTED_COLOUR = QColor(30, 130, 60)
SIZES_APPLY_MS = 150
"""The header scan's results are applied to the list at most this often."""
_NO_DATA_ROLES = frozenset(int(r) for r in (Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.FontRole,
                                             Qt.ItemDataRole.CheckStateRole, Qt.ItemDataRole.SizeHintRole))


class ImageListDock(QDockWidget):
    """A dock with a sortable, filterable table of the dataset's images.

    Signals: row_selected(int model row) when the current row changes (by the user, or by `select_row`).
    Attributes for tests and the window: model (ImageListModel), proxy (ViewOrder), view (QTableView),
    filter_edit (QLineEdit), worst_button (QPushButton: sort by IoU, worst first), confidence_button (QPushButton:
    sort by confidence, least first), summary_label (QLabel).
    """

    row_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Images", parent)
        self.setObjectName("imageListDock")
        self.model = ImageListModel(self)
        self.proxy = ViewOrder(self, natural_columns=(COL_INDEX, COL_NAME))
        self.proxy.setSourceModel(self.model)

        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(COL_INDEX, Qt.SortOrder.AscendingOrder)
        self.view.setWordWrap(False)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(self.view.fontMetrics().height() + 6)
        set_up_columns(self.view)  # A↔B hidden until compare mode gives a value, Size until the user shows it
        self.view.selectionModel().currentRowChanged.connect(self._on_current_changed)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_filter)
        self.worst_button = QPushButton("Worst IoU first")
        self.worst_button.setToolTip("Sort by IoU against the ground truth, lowest first (images without IoU last)")
        self.worst_button.clicked.connect(self.sort_by_iou)
        self.confidence_button = QPushButton("Least confident first")
        self.confidence_button.setToolTip("Review queue without GT: sort by the model's own predicted IoU, lowest "
                                          "first (images not scored yet last). In compare mode, click the A↔B "
                                          "header to sort by the disagreement between the two models")
        self.confidence_button.clicked.connect(self.sort_by_confidence)
        self.summary_label = QLabel("No dataset")
        self.summary_label.setStyleSheet("color: gray")

        sorts = QHBoxLayout()
        sorts.addWidget(self.worst_button)
        sorts.addWidget(self.confidence_button)
        sorts.addStretch(1)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter_edit)
        layout.addLayout(sorts)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.summary_label)
        self.setWidget(body)

        self._scanner: SizeScanner | None = None
        self._generation = 0
        self._emit_selection = True
        # scan results wait here and are applied together every SIZES_APPLY_MS: one dataChanged and one repaint
        # per batch instead of one per 64-row chunk
        self._pending_sizes: list = []
        self._sizes_timer = QTimer(self, singleShot=True, interval=SIZES_APPLY_MS)
        self._sizes_timer.timeout.connect(self._apply_sizes)

    # ------------------------------------------------------------------------------------------------ public API

    def set_dataset(self, dataset: FloodDataset | None) -> None:
        """Show `dataset`'s images (all rows at once, status "new"); sizes and problems follow from a worker."""
        if self._scanner is not None:
            self._scanner.stop()
            self._scanner = None
        self._pending_sizes = []
        self._generation += 1
        self.filter_edit.clear()
        self.model.set_dataset(dataset)
        fit_index_column(self.view, self.model.rowCount())
        self.view.sortByColumn(COL_INDEX, Qt.SortOrder.AscendingOrder)
        if dataset is not None and dataset.pairs:
            self._scanner = SizeScanner(dataset, self._generation)
            self._scanner.relay.sizes.connect(self._on_sizes)
            self._scanner.relay.done.connect(self._on_scan_done)
            when_on_screen(self, self, self._start_scan)  # the rows are painted first
        self._update_summary()

    def set_status(self, row: int, status: str) -> None:
        """Status of model row `row`: "new", "proposed", "in progress" or "accepted"."""
        self.model.set_status(row, status)

    def set_statuses(self, statuses: dict[int, str]) -> None:
        """Statuses of many model rows ({row: status}) in one change: the project's statuses when a folder opens."""
        self.model.set_statuses(statuses)

    def set_iou(self, row: int, iou: float | None) -> None:
        """IoU of model row `row` against its ground truth (None: not known)."""
        self.model.set_iou(row, iou)

    def set_confidence(self, row: int, value: float | None) -> None:
        """The model's predicted IoU of the mask shown for model row `row` (None: not known)."""
        if 0 <= row < self.model.rowCount():
            self.model.set_value(row, COL_CONFIDENCE, value)

    def set_confidences(self, values: dict[int, float]) -> None:
        """Confidences of many model rows at once ({row: value}, e.g. the project's proposals when a folder opens):
        one change signal, whatever their number."""
        self.model.set_values(COL_CONFIDENCE, values)

    def set_agreement(self, row: int, value: float | None) -> None:
        """IoU between the two compared models' masks on model row `row` (None: not known); shows the A↔B column."""
        if 0 <= row < self.model.rowCount():
            self.model.set_value(row, COL_AGREEMENT, value)
            if value is not None:
                self.view.setColumnHidden(COL_AGREEMENT, False)

    def clear_agreement(self) -> None:
        """Forget every A↔B value (the compared model changed) and hide the column."""
        for row in range(self.model.rowCount()):
            self.model.set_value(row, COL_AGREEMENT, None)
        self.view.setColumnHidden(COL_AGREEMENT, True)

    def set_problem(self, row: int, text: str | None) -> None:
        """A problem found by the window (e.g. the image failed to decode); shown red, before the list's own.
        None removes it (the list's own findings stay)."""
        self.model.set_problem(row, text)
        self._update_summary()

    def select_row(self, row: int, emit: bool = True) -> None:
        """Make model row `row` current and scroll to it; clears the name filter if it hides the row.
        Emits row_selected(row) when the current row changes, unless `emit` is False."""
        if not 0 <= row < self.model.rowCount():
            return
        proxy_index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not proxy_index.isValid():
            self.filter_edit.clear()
            proxy_index = self.proxy.mapFromSource(self.model.index(row, 0))
        self._emit_selection = emit
        try:
            self.view.selectionModel().setCurrentIndex(
                proxy_index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        finally:
            self._emit_selection = True
        self.view.scrollTo(proxy_index)

    def current_row(self) -> int:
        """The current model row, or -1."""
        index = self.view.selectionModel().currentIndex()
        return self.proxy.mapToSource(index).row() if index.isValid() else -1

    def visible_rows(self) -> list[int]:
        """Model rows in the order the view shows them (sorted and filtered); for next/previous navigation."""
        return self.proxy.model_rows()

    def preferred_width(self) -> int:
        """The dock's width that shows every visible column whole (no sideways scrolling)."""
        margins = self.widget().layout().contentsMargins()
        return preferred_width(self.view) + margins.left() + margins.right()

    @property
    def row_count(self) -> int:
        return self.model.rowCount()

    def sort_by_iou(self) -> None:
        """Sort the view by IoU, worst first; rows without an IoU go last."""
        self.view.sortByColumn(COL_IOU, Qt.SortOrder.AscendingOrder)

    def sort_by_confidence(self) -> None:
        """Sort the view by the model's confidence, least first; rows without one go last."""
        self.view.sortByColumn(COL_CONFIDENCE, Qt.SortOrder.AscendingOrder)

    def sort_by_agreement(self) -> None:
        """Sort the view by A↔B agreement, most disagreement first; rows without one go last."""
        self.view.sortByColumn(COL_AGREEMENT, Qt.SortOrder.AscendingOrder)

    def scanning(self) -> bool:
        """True while image sizes are still to be read (the scan is queued or running)."""
        return self._scanner is not None

    # ------------------------------------------------------------------------------------------------ slots

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid() and self._emit_selection:
            self.row_selected.emit(self.proxy.mapToSource(current).row())

    def _start_scan(self) -> None:
        if self._scanner is not None and not self._scanner.started:
            self._scanner.start()

    def _on_sizes(self, generation: int, results: list) -> None:
        if generation == self._generation:
            self._pending_sizes.extend(results)
            if not self._sizes_timer.isActive():
                self._sizes_timer.start()

    def _apply_sizes(self) -> None:
        results, self._pending_sizes = self._pending_sizes, []
        if results:
            self.model.set_sizes(results)
            self._update_summary()

    def _on_scan_done(self, generation: int) -> None:
        if generation == self._generation:
            self._sizes_timer.stop()
            self._apply_sizes()
            self._scanner = None
            self._update_summary()

    def _update_summary(self) -> None:
        n = self.model.rowCount()
        if n == 0:
            self.summary_label.setText("No dataset")
            return
        problems = self.model.error_count()
        text = f"{n:,} image{'s' if n != 1 else ''} · {problems:,} with problems"
        if self._scanner is not None:
            text += " · reading sizes…"
        self.summary_label.setText(text)
        self.summary_label.setToolTip(
            f"{problems:,} image{'s' if problems != 1 else ''} in this list (red rows) cannot be labelled as they are.\n"
            "The Dataset panel's Problems also counts what is not a row: masks without images, duplicates,\n"
            "files that are not images.")


class ImageListModel(QAbstractTableModel):
    """Rows of a FloodDataset (model row = index into dataset.pairs) and the columns in COLUMNS.

    Roles: DisplayRole text, ToolTipRole (paths, problem), ForegroundRole/BackgroundRole (red problems, grey "no
    GT"), SORT_ROLE (a number per column; IoU None is None, placed last by the proxy).
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._errors = 0  # rows whose problem is an error, kept up to date (the summary asks on every scan chunk)

    def set_dataset(self, dataset: FloodDataset | None) -> None:
        self.beginResetModel()
        self._rows = [_Row(p.stem, p.image, p.mask) for p in dataset.pairs] if dataset is not None else []
        self._errors = 0
        self.endResetModel()

    def set_status(self, row: int, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
        self._rows[row].status = status
        self._changed(row, COL_STATUS, COL_STATUS)

    def set_statuses(self, statuses: dict[int, str]) -> None:
        """Status of many model rows at once ({row: status}): one change signal, whatever their number."""
        bad = set(statuses.values()) - set(STATUSES)
        if bad:
            raise ValueError(f"unknown status {sorted(bad)[0]!r}; expected one of {STATUSES}")
        if not statuses:
            return
        for row, status in statuses.items():
            self._rows[row].status = status
        self.dataChanged.emit(self.index(min(statuses), COL_STATUS), self.index(max(statuses), COL_STATUS))

    def set_iou(self, row: int, iou: float | None) -> None:
        self._rows[row].iou = None if iou is None or math.isnan(iou) else float(iou)
        self._changed(row, COL_IOU, COL_IOU)

    def set_value(self, row: int, col: int, value: float | None) -> None:
        """A number column (COL_CONFIDENCE, COL_AGREEMENT) of model row `row`; None or NaN: not known."""
        attr = _VALUE_ATTRS[col]
        value = None if value is None or math.isnan(value) else float(value)
        if getattr(self._rows[row], attr) != value:
            setattr(self._rows[row], attr, value)
            self._changed(row, col, col)

    def set_values(self, col: int, values: dict[int, float]) -> None:
        """`set_value` for many model rows ({row: value}) with one change signal."""
        if not values:
            return
        attr = _VALUE_ATTRS[col]
        for row, value in values.items():
            setattr(self._rows[row], attr, None if value is None or math.isnan(value) else float(value))
        self.dataChanged.emit(self.index(min(values), col), self.index(max(values), col))

    def set_problem(self, row: int, text: str | None) -> None:
        r = self._rows[row]
        was_error = r.problem()[1]
        r.external_problem = text or None
        self._errors += r.problem()[1] - was_error
        self._changed(row, 0, len(COLUMNS) - 1)

    def set_sizes(self, results: list[tuple[int, tuple[int, int] | None, tuple[int, int] | None, str | None]]) -> None:
        """Scanner results: (row, image size, mask size, header error) with sizes as (width, height) or None."""
        if not results:
            return
        for row, image_size, mask_size, error in results:
            r = self._rows[row]
            was_error = r.problem()[1]
            r.image_size, r.mask_size, r.header_error, r.scanned = image_size, mask_size, error, True
            self._errors += r.problem()[1] - was_error
        first, last = min(x[0] for x in results), max(x[0] for x in results)
        self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))

    def row(self, row: int) -> "_Row":
        return self._rows[row]

    def problem(self, row: int) -> tuple[str | None, bool]:
        """(problem text or None, is_error) of model row `row`: what the Problem column shows."""
        return self._rows[row].problem()

    def error_count(self) -> int:
        """Rows whose problem is an error (red)."""
        return self._errors

    def sort_keys(self, col: int) -> list[Any]:
        """The sort key of every model row for column `col` (None: not known, sorted last)."""
        key = self._sort_key
        return [key(i, r, col) for i, r in enumerate(self._rows)]

    def names(self) -> list[str]:
        """File names of the model rows, in model order (what the name filter matches)."""
        return [r.image.name for r in self._rows]

    # ------------------------------------------------------------------------------------- QAbstractTableModel

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(section)
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        return self.data_at(index.row(), index.column(), role)

    def data_at(self, row: int, col: int, role: int) -> Any:
        """`data` of model row `row`, column `col` without a QModelIndex (ViewOrder calls this while painting:
        the view asks ~1,200 times per paint, and each index made in Python costs)."""
        if role in _NO_DATA_ROLES:
            return None
        r = self._rows[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, r, col)
        if role == SORT_ROLE:
            return self._sort_key(row, r, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            problem, _ = r.problem()
            tip = str(r.image) + (f"\nmask: {r.mask}" if r.mask else "\nno ground-truth mask")
            if r.image_size is not None:
                tip += f"\n{r.image_size[0]}×{r.image_size[1]} pixels"
            tip = f"{problem}\n\n{tip}" if problem else tip
            return f"Status: {r.status}\n\n{tip}" if col == COL_STATUS else tip
        if role == Qt.ItemDataRole.ForegroundRole:
            problem, error = r.problem()
            if error:
                return QBrush(ERROR_COLOUR)
            if col == COL_PROBLEM and problem:
                return QBrush(INFO_COLOUR)
            if col == COL_STATUS and r.status == "accepted":
                return QBrush(ACCEPTED_COLOUR)
            return None
        if role == Qt.ItemDataRole.BackgroundRole:
            return QBrush(ERROR_BACKGROUND) if r.problem()[1] else None
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_INDEX, COL_IOU, COL_CONFIDENCE, COL_AGREEMENT):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == COL_STATUS:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    # ------------------------------------------------------------------------------------------------ helpers

    def _text(self, i: int, r: "_Row", col: int) -> str:
        if col == COL_INDEX:
            return str(i + 1)
        if col == COL_NAME:
            return r.image.name
        if col == COL_SIZE:
            if r.image_size is not None:
                return f"{r.image_size[0]}×{r.image_size[1]}"
            return "" if r.scanned else "…"
        if col == COL_STATUS:
            return STATUS_GLYPHS[r.status]
        if col == COL_IOU:
            return f"{r.iou:.3f}" if r.iou is not None else "–"
        if col in _VALUE_ATTRS:
            value = getattr(r, _VALUE_ATTRS[col])
            return f"{value:.2f}" if value is not None else "–"
        return r.problem()[0] or ""

    def _sort_key(self, i: int, r: "_Row", col: int) -> Any:
        if col in (COL_INDEX, COL_NAME):  # dataset.pairs is in natural name order already
            return i
        if col == COL_SIZE:
            return r.image_size[0] * r.image_size[1] if r.image_size else -1
        if col == COL_STATUS:
            return STATUSES.index(r.status)
        if col == COL_IOU:
            return r.iou
        if col in _VALUE_ATTRS:
            return getattr(r, _VALUE_ATTRS[col])
        problem, error = r.problem()
        return (2 if error else 1 if problem else 0)

    def _changed(self, row: int, first_col: int, last_col: int) -> None:
        self.dataChanged.emit(self.index(row, first_col), self.index(row, last_col))


@dataclass
class _Row:
    stem: str
    image: Path
    mask: Path | None
    status: str = "new"
    iou: float | None = None
    image_size: tuple[int, int] | None = None
    mask_size: tuple[int, int] | None = None
    header_error: str | None = None
    scanned: bool = False
    external_problem: str | None = None
    confidence: float | None = None
    agreement: float | None = None

    def problem(self) -> tuple[str | None, bool]:
        """(text, is_error): the window's problem, else an unreadable header, a size mismatch, or "no GT"."""
        if self.external_problem:
            return self.external_problem, True
        if self.header_error:
            return self.header_error, True
        if self.image_size and self.mask_size and self.image_size != self.mask_size:
            (iw, ih), (mw, mh) = self.image_size, self.mask_size
            return f"size mismatch {iw}x{ih} vs {mw}x{mh}", True
        if self.mask is None:
            return NO_GT, False
        return None, False


_VALUE_ATTRS = {COL_CONFIDENCE: "confidence", COL_AGREEMENT: "agreement"}
