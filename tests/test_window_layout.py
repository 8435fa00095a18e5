"""The window's layout holds still while labelling, and the image list is readable, at 1366x768 and 1920x1080.

Offscreen Qt, a window of a fixed size, the classic backend (no weights) on synthetic scenes: a click fills SAM's
candidate strip and the metrics panel; nothing on screen may move or change size because of it (the image must not
shift under the mouse between the first and the second click). The image list shows every column header whole
inside its viewport (no sideways scrolling) with the status and IoU of a row not elided.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QRect, QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QStyle, QStyleOptionHeader, QStyleOptionViewItem

from floodlabel.gui.panels.image_list import COL_IOU, COL_STATUS
from synthetic_scenes import interior_point, make_flood_scene

SIZES = ((1366, 768), (1920, 1080))


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path):
    """QSettings in a temporary folder: no saved window state from the user's settings."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield


@pytest.fixture
def data(tmp_path):
    """Image/ + Mask/ with three synthetic scenes of the shape of a flood photo (wider than tall)."""
    root = tmp_path / "floods"
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    masks = {}
    for i, (stem, kind) in enumerate((("flood_0001", "lake"), ("flood_0002", "river"), ("flood_0003", "lake"))):
        image, mask = make_flood_scene(300, 480, seed=i, kind=kind)
        Image.fromarray(image).save(root / "Image" / f"{stem}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "Mask" / f"{stem}.png")
        masks[stem] = mask
    return root, masks


def _open(qtbot, folder, size):
    from floodlabel.gui.window.annotation_window import AnnotationWindow

    w = AnnotationWindow(folder, model="classic")
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.controller.embedding is not None and w.controller.item is not None, timeout=30000)
    qtbot.waitUntil(lambda: not w.image_list.scanning(), timeout=10000)
    QTest.qWait(200)  # let the layout settle (queued resizes, the first fit)
    return w


def _geometry(w) -> dict[str, object]:
    """Where everything is: the prediction view's viewport, the image's on-screen rectangle, the docks and panels."""
    c = w.canvas
    vp = c.main_viewport
    ih, iw = c.image_size
    out = {"viewport size": vp.size().toTuple(),
           "viewport at": vp.mapTo(w, QPoint(0, 0)).toTuple(),
           "image top-left": c.widget_pos(0, 0).toTuple(),
           "image bottom-right": c.widget_pos(iw, ih).toTuple()}
    for name in ("image_list", "mask_dock", "dataset_dock", "canvas", "candidates", "metrics_panel", "banner"):
        widget = getattr(w, name)
        out[name] = QRect(widget.mapTo(w, QPoint(0, 0)), widget.size()).getRect()
    return out


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_nothing_moves_when_the_first_click_fills_the_candidates_and_the_metrics(qtbot, data, size):
    folder, masks = data
    w = _open(qtbot, folder, size)
    assert w.size().toTuple() == size
    assert not any(b.isVisible() for b in w.candidates.buttons)  # nothing to show before the first click
    before = _geometry(w)
    x, y = interior_point(masks["flood_0001"])
    QTest.mouseClick(w.canvas.main_viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     w.canvas.widget_pos(x, y))
    qtbot.waitUntil(lambda: w.controller.native_mask is not None and not w.controller.decoder.pending, timeout=30000)
    qtbot.waitUntil(lambda: any(b.isVisible() for b in w.candidates.buttons), timeout=10000)
    qtbot.waitUntil(lambda: w.metrics_panel.iou_label.text() != "—", timeout=10000)
    QTest.qWait(200)
    after = _geometry(w)
    moved = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not moved, f"moved after the first click (before, after): {moved}"
    w.close()


def _header_label_fits(header, col: int) -> tuple[bool, int, int]:
    """(whole, text width, room): the header label of `col` drawn without eliding, the sort arrow counted."""
    opt = QStyleOptionHeader()
    opt.initFrom(header)
    opt.rect = QRect(0, 0, header.sectionSize(col), header.height())
    opt.state |= QStyle.StateFlag.State_Horizontal
    opt.sortIndicator = QStyleOptionHeader.SortIndicator.SortDown  # room as if it were the sorted column
    text = header.model().headerData(col, Qt.Orientation.Horizontal)
    room = header.style().subElementRect(QStyle.SubElement.SE_HeaderLabel, opt, header).width()
    width = header.fontMetrics().horizontalAdvance(text)
    return width <= room, width, room


def _cell_fits(view, row: int, col: int) -> tuple[bool, str]:
    """(whole, text): the cell's display text fits its column (the delegate's text margins counted)."""
    index = view.model().index(row, col)
    text = index.data()
    opt = QStyleOptionViewItem()
    opt.initFrom(view)
    opt.rect = view.visualRect(index)
    opt.text = text
    opt.features |= QStyleOptionViewItem.ViewItemFeature.HasDisplay
    style = view.style()
    room = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, view).width()
    margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, view) + 1
    return view.fontMetrics().horizontalAdvance(text) <= room - 2 * margin, text


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_image_list_column_is_readable_without_scrolling_sideways(qtbot, data, size):
    folder, _ = data
    w = _open(qtbot, folder, size)
    lst = w.image_list
    lst.set_status(0, "in progress")
    lst.set_status(1, "accepted")
    lst.set_iou(0, 0.9134)
    lst.set_confidence(0, 0.87)
    QTest.qWait(100)
    view, header = lst.view, lst.view.horizontalHeader()
    shown = [c for c in range(header.count()) if not header.isSectionHidden(c)]
    right = max(header.sectionViewportPosition(c) + header.sectionSize(c) for c in shown)
    assert right <= view.viewport().width(), (right, view.viewport().width())
    assert view.horizontalScrollBar().maximum() == 0
    for c in shown:
        assert header.sectionViewportPosition(c) >= 0
        whole, width, room = _header_label_fits(header, c)
        assert whole, f"header {header.model().headerData(c, Qt.Orientation.Horizontal)!r}: {width} px in {room}"
    assert COL_STATUS in shown and COL_IOU in shown
    for row in (0, 1, 2):
        for col in (COL_STATUS, COL_IOU):
            whole, text = _cell_fits(view, row, col)
            assert whole and text, (row, col, text)
    w.close()


def test_the_status_message_at_start_does_not_overlap_the_project_label(qtbot, data):
    """'Loading classic …' is shown before the window is; QStatusBar left the project label visible under it."""
    from floodlabel.gui.window.annotation_window import AnnotationWindow

    folder, _ = data
    w = AnnotationWindow(folder, model="classic")
    qtbot.addWidget(w)
    assert w.statusBar().currentMessage().startswith("Loading")
    w.show()
    qtbot.waitExposed(w)
    qtbot.wait(50)
    status = w.statusBar()
    assert status.currentMessage() and not w.project_label.isVisible()
    status.clearMessage()
    assert w.project_label.isVisible()  # back when the message goes
    w.close()
