"""ViewOrder: a sort and filter proxy that keeps the view's order as Python lists.

Sorting 10,000 rows is one `sorted`, where a QSortFilterProxyModel over a Python model calls back into Python twice
per comparison. Rows are "model rows" (the source model's row numbers) in every public method.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractItemModel, QAbstractProxyModel, QModelIndex, QObject, QPersistentModelIndex, Qt


class ViewOrder(QAbstractProxyModel):
    """The view's rows over a table model with `names() -> list[str]` and `sort_keys(col) -> list` (one key per model
    row; e.g. ImageListModel): model rows whose name contains the filter text (case-insensitive), sorted by
    `sort(column, order)` with those keys; `natural_columns` are already in model-row order (no keys needed).
    A None key (no IoU yet) sorts last in either order; ties keep dataset order. The order is recomputed when the sort column's keys change (a live sort).

    The model only resets or changes data (it never inserts or moves rows): those are the signals followed.
    """

    def __init__(self, parent: QObject | None = None, natural_columns: tuple[int, ...] = (0,)) -> None:
        super().__init__(parent)
        self._natural = tuple(natural_columns)
        self._columns = 0  # the source model's column count (fixed)
        self._rows: list[int] = []  # view row -> model row
        self._at: list[int] = []  # model row -> view row, -1 when filtered out
        self._keys: list[Any] = []  # sort keys of the model rows for the sort column
        self._column = self._natural[0] if self._natural else 0
        self._order = Qt.SortOrder.AscendingOrder
        self._needle = ""

    def setSourceModel(self, model: QAbstractItemModel) -> None:  # noqa: N802 (Qt API)
        self.beginResetModel()
        super().setSourceModel(model)
        self._columns = model.columnCount()
        model.modelAboutToBeReset.connect(self.beginResetModel)
        model.modelReset.connect(self._on_reset)
        model.dataChanged.connect(self._on_data_changed)
        model.headerDataChanged.connect(self.headerDataChanged)
        self._compute()
        self.endResetModel()

    def set_filter(self, text: str) -> None:
        """Show only rows whose file name contains `text` (case-insensitive); "" shows all."""
        needle = text.casefold()
        if needle != self._needle:
            self._needle = needle
            self._relayout()

    def model_rows(self) -> list[int]:
        """Model rows in view order."""
        return list(self._rows)

    # ------------------------------------------------------------------------------------- QAbstractProxyModel

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._column, self._order = column, order
        self._relayout()

    def mapToSource(self, proxy_index: QModelIndex | QPersistentModelIndex) -> QModelIndex:  # noqa: N802
        if not proxy_index.isValid() or not 0 <= proxy_index.row() < len(self._rows):
            return QModelIndex()
        return self.sourceModel().index(self._rows[proxy_index.row()], proxy_index.column())

    def mapFromSource(self, source_index: QModelIndex | QPersistentModelIndex) -> QModelIndex:  # noqa: N802
        if not source_index.isValid() or not 0 <= source_index.row() < len(self._at):
            return QModelIndex()
        at = self._at[source_index.row()]
        return self.index(at, source_index.column()) if at >= 0 else QModelIndex()

    def index(self, row: int, column: int,
              parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if parent.isValid() or not (0 <= row < len(self._rows) and 0 <= column < self._columns):
            return QModelIndex()
        return self.createIndex(row, column)

    def parent(self, index: QModelIndex | QPersistentModelIndex | None = None) -> Any:
        if index is None:
            return super().parent()  # QObject.parent()
        return QModelIndex()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self._columns

    def hasChildren(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and bool(self._rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        source = self.sourceModel()
        data_at = getattr(source, "data_at", None)  # (row, column, role): no source index made while painting
        if data_at is not None:
            row = index.row()
            if not index.isValid() or not 0 <= row < len(self._rows):
                return None
            return data_at(self._rows[row], index.column(), role)
        return source.data(self.mapToSource(index), role)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        return self.sourceModel().headerData(section, orientation, role)

    # ------------------------------------------------------------------------------------------------ helpers

    def _on_reset(self) -> None:
        self._compute()
        self.endResetModel()

    def _on_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, roles: list[int] = ()) -> None:
        first, last = top_left.row(), bottom_right.row()
        if top_left.column() <= self._column <= bottom_right.column() and self._column not in self._natural:
            keys = self.sourceModel().sort_keys(self._column)
            if keys[first:last + 1] != self._keys[first:last + 1]:
                self._relayout(keys)
        at = [self._at[r] for r in range(first, last + 1) if self._at[r] >= 0]
        if at:
            self.dataChanged.emit(self.index(min(at), top_left.column()), self.index(max(at), bottom_right.column()),
                                  list(roles))

    def _relayout(self, keys: list[Any] | None = None) -> None:
        """Recompute the order, keeping the view's current and selected rows on the same model rows."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        model_rows = [self._rows[i.row()] if i.isValid() and i.row() < len(self._rows) else -1 for i in old]
        self._compute(keys)
        new = [self.index(self._at[r], i.column()) if r >= 0 and self._at[r] >= 0 else QModelIndex()
               for r, i in zip(model_rows, old)]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def _compute(self, keys: list[Any] | None = None) -> None:
        model = self.sourceModel()
        n = model.rowCount() if model is not None else 0
        rows = list(range(n))
        if self._needle:
            needle = self._needle
            rows = [r for r, name in zip(rows, model.names()) if needle in name.casefold()]
        descending = self._order == Qt.SortOrder.DescendingOrder
        if self._column in self._natural:  # the model's rows are in this order already
            self._keys = []
            if descending:
                rows.reverse()
        elif 0 <= self._column < self._columns:
            self._keys = keys if keys is not None else model.sort_keys(self._column)
            known = [r for r in rows if self._keys[r] is not None]
            known.sort(key=self._keys.__getitem__, reverse=descending)  # stable either way: ties in dataset order
            rows = known + [r for r in rows if self._keys[r] is None]
        self._rows = rows
        self._at = [-1] * n
        for view_row, model_row in enumerate(rows):
            self._at[model_row] = view_row
