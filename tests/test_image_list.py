"""The image list dock: rows at once, sizes and problems filled by a background header scan, sorting, selection."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from floodlabel.core.data.datasets import FloodDataset, ImagePair, open_dataset
from floodlabel.gui.panels.image_list import (COL_IOU, COL_NAME, COL_PROBLEM, COL_SIZE, COL_STATUS, ERROR_COLOUR,
                                              INFO_COLOUR, STATUS_GLYPHS, ImageListDock)
from tests.image_factories import make_dataset


@pytest.fixture
def dock(qtbot):
    d = ImageListDock()
    qtbot.addWidget(d)
    d.resize(520, 400)
    d.show()
    return d


def _text(d: ImageListDock, row: int, col: int) -> str:
    return d.model.index(row, col).data()


def _wait_scanned(qtbot, d: ImageListDock) -> None:
    qtbot.waitUntil(lambda: not d.scanning() and "reading" not in d.summary_label.text(), timeout=10_000)


def _fake_dataset(n: int) -> FloodDataset:
    """n pairs of files that do not exist, with their sizes already cached (no disk access at all)."""
    root = Path("/nonexistent/ds")
    pairs = [ImagePair(str(i), root / "Image" / f"{i}.jpg", root / "Mask" / f"{i}.png" if i % 2 else None)
             for i in range(n)]
    ds = FloodDataset(root=root, image_dir=root / "Image", mask_dir=root / "Mask", pairs=pairs,
                      masks_without_images=[])
    for p in pairs:
        ds._sizes[p.image] = (640, 480)
        if p.mask is not None:
            ds._sizes[p.mask] = (640, 480) if p.stem != "7" else (320, 240)
    return ds


def test_thousand_rows_list_at_once_and_sizes_fill_in_later(qtbot, dock):
    ds = _fake_dataset(1000)
    dock.set_dataset(ds)
    assert dock.row_count == 1000 and dock.proxy.rowCount() == 1000  # rows present before any header is read
    assert _text(dock, 999, COL_NAME) == "999.jpg" and _text(dock, 0, COL_STATUS) == STATUS_GLYPHS["new"]
    _wait_scanned(qtbot, dock)
    assert _text(dock, 999, COL_SIZE) == "640×480"
    assert _text(dock, 7, COL_PROBLEM) == "size mismatch 640x480 vs 320x240"
    assert _text(dock, 2, COL_PROBLEM) == "no GT"
    assert _text(dock, 3, COL_PROBLEM) == ""
    assert dock.summary_label.text() == "1,000 images · 1 with problems"


def test_broken_mismatched_and_missing_gt_rows(qtbot, dock, tmp_path):
    root = make_dataset(tmp_path / "ds", images={"1": (40, 30), "2": (40, 30), "3": (40, 30), "4": (40, 30)},
                        masks={"1": (40, 30), "2": (20, 30), "3": (40, 30)})
    (root / "Image" / "3.jpg").write_bytes(b"not an image at all")
    dock.set_dataset(open_dataset(root))
    _wait_scanned(qtbot, dock)
    m = dock.model
    assert [_text(dock, r, COL_SIZE) for r in range(4)] == ["40×30", "40×30", "", "40×30"]
    assert _text(dock, 0, COL_PROBLEM) == ""
    assert _text(dock, 1, COL_PROBLEM) == "size mismatch 40x30 vs 20x30"
    assert _text(dock, 2, COL_PROBLEM).startswith("unreadable: ")
    assert _text(dock, 3, COL_PROBLEM) == "no GT"
    red = ERROR_COLOUR.rgb()
    assert m.index(1, COL_NAME).data(Qt.ItemDataRole.ForegroundRole).color().rgb() == red
    assert m.index(2, COL_NAME).data(Qt.ItemDataRole.ForegroundRole).color().rgb() == red
    assert _text(dock, 2, COL_PROBLEM) in m.index(2, COL_NAME).data(Qt.ItemDataRole.ToolTipRole)
    assert m.index(3, COL_NAME).data(Qt.ItemDataRole.ForegroundRole) is None  # "no GT" is not an error
    assert m.index(3, COL_PROBLEM).data(Qt.ItemDataRole.ForegroundRole).color().rgb() == INFO_COLOUR.rgb()
    assert m.index(3, COL_NAME).data(Qt.ItemDataRole.BackgroundRole) is None
    assert dock.summary_label.text() == "4 images · 2 with problems"

    dock.set_problem(0, "decode failed: truncated")  # the window's own finding wins, and can be removed
    assert _text(dock, 0, COL_PROBLEM) == "decode failed: truncated"
    dock.set_problem(0, None)
    assert _text(dock, 0, COL_PROBLEM) == ""


def test_sort_by_iou_worst_first_none_last_and_selection_uses_model_rows(qtbot, dock):
    dock.set_dataset(_fake_dataset(6))
    for row, iou in {0: 0.9, 1: None, 2: 0.2, 3: 0.5, 4: None, 5: 0.2}.items():
        dock.set_iou(row, iou)
    dock.set_status(3, "accepted")
    dock.set_status(2, "in progress")
    assert _text(dock, 3, COL_STATUS) == STATUS_GLYPHS["accepted"] == "✓" and _text(dock, 0, COL_IOU) == "0.900"
    assert dock.model.index(2, COL_STATUS).data(Qt.ItemDataRole.ToolTipRole).startswith("Status: in progress\n")
    assert _text(dock, 1, COL_IOU) == "–"
    with pytest.raises(ValueError):
        dock.set_status(0, "done")

    dock.sort_by_iou()
    assert dock.visible_rows() == [2, 5, 3, 0, 1, 4]
    dock.view.sortByColumn(COL_IOU, Qt.SortOrder.DescendingOrder)  # header click the other way: None still last
    assert dock.visible_rows() == [0, 3, 2, 5, 1, 4]
    dock.sort_by_iou()

    selected = []
    dock.row_selected.connect(selected.append)
    dock.view.selectRow(0)  # the user clicks the first visible row: model row 2
    assert selected == [2] and dock.current_row() == 2
    dock.select_row(4)
    assert selected == [2, 4] and dock.current_row() == 4
    assert dock.view.currentIndex().row() == 5  # shown last
    dock.select_row(0, emit=False)
    assert selected == [2, 4] and dock.current_row() == 0

    dock.set_iou(4, 0.1)  # dynamic re-sort keeps the selection on the same model row
    assert dock.visible_rows()[0] == 4 and dock.current_row() == 0


def test_name_filter_and_select_row_clears_a_hiding_filter(qtbot, dock):
    dock.set_dataset(_fake_dataset(12))
    dock.filter_edit.setText("1")
    assert dock.visible_rows() == [1, 10, 11]
    dock.select_row(5)
    assert dock.filter_edit.text() == "" and dock.current_row() == 5


def test_new_dataset_replaces_rows_and_ignores_the_old_scan(qtbot, dock):
    dock.set_dataset(_fake_dataset(500))
    dock.set_dataset(_fake_dataset(3))
    _wait_scanned(qtbot, dock)
    assert dock.row_count == 3 and dock.summary_label.text() == "3 images · 0 with problems"
    dock.set_dataset(None)
    assert dock.row_count == 0 and dock.summary_label.text() == "No dataset"


def test_screenshot(qtbot, dock, tmp_path):
    ds = _fake_dataset(30)
    dock.set_dataset(ds)
    _wait_scanned(qtbot, dock)
    dock.set_problem(4, "unreadable: not an image file")
    for r, v in ((0, 0.91), (1, 0.42), (3, 0.77)):
        dock.set_iou(r, v)
    dock.set_status(0, "accepted")
    dock.set_status(1, "in progress")
    dock.select_row(1)
    path = tmp_path / "image_list.png"
    assert dock.grab().save(str(path))


def test_review_columns_come_first_size_is_optional_and_names_elide_in_the_middle(qtbot, dock):
    from floodlabel.gui.panels.image_columns import COLUMNS, column_menu
    from PySide6.QtWidgets import QStyleOptionViewItem

    assert COLUMNS[:5] == ("#", "Name", "Status", "IoU", "Conf.")
    dock.set_dataset(_fake_dataset(30))
    _wait_scanned(qtbot, dock)
    view = dock.view
    assert view.isColumnHidden(COL_SIZE) and not view.isColumnHidden(COL_PROBLEM)
    assert "640×480 pixels" in dock.model.index(0, COL_NAME).data(Qt.ItemDataRole.ToolTipRole)  # still told
    menu = column_menu(view)
    size = next(a for a in menu.actions() if a.text() == "Size")
    assert not size.isChecked()
    size.setChecked(True)
    assert not view.isColumnHidden(COL_SIZE) and view.columnWidth(COL_SIZE) > 0
    assert column_menu(view).actions()[0].isChecked()

    opt = QStyleOptionViewItem()
    view.itemDelegateForColumn(COL_NAME).initStyleOption(opt, dock.proxy.index(0, COL_NAME))
    assert opt.textElideMode == Qt.TextElideMode.ElideMiddle  # "flo…0123.jpg" keeps the number

    narrow = view.columnWidth(0)
    dock.set_dataset(_fake_dataset(12_345))  # five digits: # widens
    assert view.columnWidth(0) > narrow
    assert dock.preferred_width() > 0
