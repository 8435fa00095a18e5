"""MaskCanvas, CandidateStrip and MetricsPanel (offscreen Qt): overlay alignment, mouse -> signals, live strokes."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from floodlabel.core.evaluation.metrics import MaskMetrics
from floodlabel.gui.panels.candidate_strip import THUMB_SIDE, CandidateStrip, thumbnail_image
from floodlabel.gui.canvas.mask_canvas import MaskCanvas
from floodlabel.gui.panels.metrics_panel import NO_GT_TEXT, MetricsPanel
from tests.synthetic_scenes import make_flood_scene

H, W = 240, 320
MOVE_GAP_MS = 15   # pyqtgraph drops mouse moves closer than 10 ms apart (mouseRateLimit)


@pytest.fixture
def canvas(qtbot):
    c = MaskCanvas()
    qtbot.addWidget(c)
    c.resize(900, 420)
    c.show()
    qtbot.waitExposed(c)
    image, _ = make_flood_scene(H, W, seed=0, kind="lake")
    c.set_image(image)
    QApplication.processEvents()
    return c


def _move(widget, pos: QPoint, buttons=Qt.MouseButton.NoButton, mods=Qt.KeyboardModifier.NoModifier) -> None:
    """A mouse move carrying buttons (QTest.mouseMove does not in Qt 6)."""
    p = QPointF(pos)
    ev = QMouseEvent(QEvent.Type.MouseMove, p, widget.mapToGlobal(p), Qt.MouseButton.NoButton, buttons, mods)
    QApplication.sendEvent(widget, ev)


def _drag(qtbot, canvas, points, mods=Qt.KeyboardModifier.NoModifier, left=Qt.MouseButton.LeftButton) -> None:
    """Drag (left button unless told) through original-frame points on the main view."""
    vp = canvas.main_viewport
    _move(vp, canvas.widget_pos(*points[0]))
    qtbot.wait(MOVE_GAP_MS)
    QTest.mousePress(vp, left, mods, canvas.widget_pos(*points[0]))
    for p in points[1:]:
        qtbot.wait(MOVE_GAP_MS)
        _move(vp, canvas.widget_pos(*p), left, mods)
    qtbot.wait(MOVE_GAP_MS)
    QTest.mouseRelease(vp, left, mods, canvas.widget_pos(*points[-1]))


def _flat(view_range) -> list[float]:
    return [v for pair in view_range for v in pair]


def _record(signal) -> list:
    calls: list = []
    signal.connect(lambda *args: calls.append(args))
    return calls


def test_overlay_of_any_size_covers_the_image_extent(canvas):
    mask = np.zeros((60, 80), bool)
    mask[10:20, 30:50] = True
    canvas.set_mask(mask)
    r = canvas.overlay_rect()
    assert (r.x(), r.y(), r.width(), r.height()) == pytest.approx((0, 0, W, H))
    assert canvas.overlay_array().dtype == np.uint8 and canvas.overlay_array().shape == (60, 80)
    gt = np.zeros((H, W), bool)
    gt[50:100, 60:200] = True
    canvas.set_gt(gt)
    canvas.set_gt_outline_visible(True)
    canvas.set_markers([[10, 20], [30, 40]], [1, 0], (5, 6, 100, 90), pending=True)
    canvas.set_mask(None)
    assert canvas.overlay_array() is None


def test_widget_and_image_positions_round_trip(canvas):
    for x, y in [(0.5, 0.5), (160.0, 120.0), (300.2, 230.7)]:
        assert canvas.image_pos(QPointF(canvas.widget_pos(x, y))) == pytest.approx((x, y), abs=1.0)


def test_left_and_right_clicks_emit_points(canvas, qtbot):
    clicks = _record(canvas.point_clicked)
    vp = canvas.main_viewport
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, canvas.widget_pos(100, 50))
    qtbot.wait(MOVE_GAP_MS)
    QTest.mouseClick(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, canvas.widget_pos(200, 150))
    assert len(clicks) == 2
    assert clicks[0][:2] == pytest.approx((100, 50), abs=1.0) and clicks[0][2] is True
    assert clicks[1][:2] == pytest.approx((200, 150), abs=1.0) and clicks[1][2] is False


def test_a_press_announces_the_exact_point_its_click_adds(canvas, qtbot):
    presses, clicks, dropped = _record(canvas.point_pressed), _record(canvas.point_clicked), _record(canvas.press_dropped)
    vp = canvas.main_viewport
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, canvas.widget_pos(100.3, 50.7))
    assert len(presses) == 1 and clicks == []                       # before the release
    qtbot.wait(MOVE_GAP_MS)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, canvas.widget_pos(100.3, 50.7))
    qtbot.wait(MOVE_GAP_MS)
    QTest.mouseClick(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, canvas.widget_pos(200, 150))
    assert clicks == presses and len(clicks) == 2                   # the same floats: a press's decode is the click's
    assert clicks[1][2] is False and dropped == []


def test_a_press_that_becomes_a_drag_is_dropped(canvas, qtbot):
    presses, dropped = _record(canvas.point_pressed), _record(canvas.press_dropped)
    _drag(qtbot, canvas, [(200, 150), (150, 110), (60, 40)])
    assert len(presses) == 1 and len(dropped) == 1
    canvas.set_tool("brush")
    _drag(qtbot, canvas, [(100, 100), (120, 100)])
    QTest.mouseClick(canvas.main_viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     canvas.widget_pos(-8, 100))                    # outside the image
    assert len(presses) == 1                                        # no point to decode with a brush, or outside


def test_click_outside_the_image_is_ignored(canvas):
    clicks = _record(canvas.point_clicked)
    QTest.mouseClick(canvas.main_viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     canvas.widget_pos(-8, 100))
    assert clicks == []


def test_click_on_a_marker_still_adds_a_point(canvas):
    canvas.set_markers([[100, 50]], [1], None, pending=False)
    clicks = _record(canvas.point_clicked)
    QTest.mouseClick(canvas.main_viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     canvas.widget_pos(100, 50))
    assert len(clicks) == 1


def test_shift_drag_draws_a_box_and_plain_drag_pans(canvas, qtbot):
    changed, finished = _record(canvas.box_changed), _record(canvas.box_finished)
    clicks = _record(canvas.point_clicked)
    before = canvas.main_view.viewRange()
    _drag(qtbot, canvas, [(200, 150), (150, 110), (60, 40)], Qt.KeyboardModifier.ShiftModifier)
    assert len(changed) >= 1 and len(finished) == 1 and clicks == []
    assert finished[0] == pytest.approx((60, 40, 200, 150), abs=1.0)
    assert changed[-1] == pytest.approx(finished[0])
    assert _flat(canvas.main_view.viewRange()) == pytest.approx(_flat(before))   # a box drag does not pan

    _drag(qtbot, canvas, [(200, 150), (150, 110), (60, 40)])
    assert len(finished) == 1                                       # no box without Shift in the prompt tool
    x_range = canvas.main_view.viewRange()[0]
    assert x_range[0] > before[0][0] + 50                           # the view panned
    assert canvas.gt_view.viewRange()[0] == pytest.approx(x_range)  # and the GT view followed


def test_a_quick_drag_whose_moves_came_as_one_is_still_a_drag(canvas, qtbot):
    """A busy UI thread gets X's moves of a quick drag as one, right after the hover move and the press: within
    pyqtgraph's 10 ms rate limit. It is a box (or a stroke), not a click at the release (seen under Xvfb)."""
    finished, clicks = _record(canvas.box_finished), _record(canvas.point_clicked)
    strokes = _record(canvas.stroke_moved)
    vp = canvas.main_viewport
    for tool in ("box", "brush"):
        canvas.set_tool(tool)
        _move(vp, canvas.widget_pos(60, 40))                        # the hover move just before: no gap after it
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, canvas.widget_pos(60, 40))
        _move(vp, canvas.widget_pos(200, 150), Qt.MouseButton.LeftButton)
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                           canvas.widget_pos(200, 150))
    assert clicks == [] and len(finished) == 1
    assert finished[0] == pytest.approx((60, 40, 200, 150), abs=1.0)
    assert strokes and strokes[-1] == pytest.approx((200, 150), abs=1.0)


def test_box_tool_drag_is_clipped_to_the_image(canvas, qtbot):
    canvas.set_tool("box")
    finished = _record(canvas.box_finished)
    _drag(qtbot, canvas, [(100, 100), (200, 200), (310, 239)])
    _drag(qtbot, canvas, [(100, 100), (330, 260)])
    assert finished[0] == pytest.approx((100, 100, 310, 239), abs=1.0)
    assert finished[1][2:] == pytest.approx((W, H))


def test_brush_drag_emits_a_stroke_without_panning(canvas, qtbot):
    canvas.set_tool("brush")
    canvas.set_brush_radius(6)
    started, moved, ended = (_record(s) for s in (canvas.stroke_started, canvas.stroke_moved,
                                                   canvas.stroke_finished))
    before = canvas.main_view.viewRange()
    _drag(qtbot, canvas, [(50, 50), (80, 60), (120, 90)])
    assert len(started) == 1 and len(ended) == 1
    assert started[0][0] == "paint" and started[0][1:] == pytest.approx((50, 50), abs=1.0)
    assert moved[-1] == pytest.approx((120, 90), abs=1.0)
    assert _flat(canvas.main_view.viewRange()) == pytest.approx(_flat(before))

    canvas.set_tool("erase")
    _drag(qtbot, canvas, [(50, 50), (90, 50)])
    assert started[1][0] == "erase" and len(ended) == 2

    _drag(qtbot, canvas, [(200, 150), (150, 110), (60, 40)], left=Qt.MouseButton.MiddleButton)
    assert len(started) == 2                                        # middle-drag pans in every tool
    assert canvas.main_view.viewRange()[0][0] > before[0][0] + 50


def test_hover_emits_inside_the_image_only(canvas, qtbot):
    hovered, left = _record(canvas.hovered), _record(canvas.hover_left)
    _move(canvas.main_viewport, canvas.widget_pos(100, 100))
    qtbot.wait(MOVE_GAP_MS)
    _move(canvas.main_viewport, canvas.widget_pos(110, 105))
    assert hovered and hovered[-1] == pytest.approx((110, 105), abs=1.0)
    qtbot.wait(MOVE_GAP_MS)
    _move(canvas.main_viewport, canvas.widget_pos(-10, 105))
    assert len(left) == 1


def test_draw_stroke_segment_paints_and_erases_the_overlay_only(canvas):
    mask = np.zeros((120, 160), bool)           # half the image size
    canvas.set_mask(mask)
    canvas.draw_stroke_segment("paint", 10, (100, 100), (200, 100))
    ov = canvas.overlay_array()
    assert ov[50, 50:100].all()                 # (x 100..200, y 100) at half scale
    assert not ov[80:].any() and not ov[:, :40].any()
    assert not mask.any()                        # the caller's mask is untouched
    canvas.draw_stroke_segment("erase", 4, (150, 100), (150, 100))
    assert not canvas.overlay_array()[50, 75]
    canvas.set_mask(None)
    canvas.draw_stroke_segment("paint", 5, (10, 10), (10, 10))   # no mask yet: starts an empty one
    assert canvas.overlay_array().shape == (H, W) and canvas.overlay_array()[10, 10]


@pytest.mark.parametrize("image_hw, mask_hw", [((H, W), (H, W)), ((H, W), (120, 160)),
                                                 ((3000, 4100), (1499, 2048))])
@pytest.mark.parametrize("mode", ["paint", "erase"])
def test_the_live_stroke_has_the_saved_strokes_pixels(qtbot, image_hw, mask_hw, mode):
    """Same points, radius and image size: the live overlay and Annotation.stroke_layer agree pixel for pixel."""
    from floodlabel.core.annotation.annotation import (ERASED, PAINTED, Annotation, Stroke,
                                                   apply_stroke_layer)
    c = MaskCanvas()
    qtbot.addWidget(c)
    c.set_image(np.zeros((*image_hw, 3), np.uint8))
    base = np.ones(mask_hw, bool) if mode == "erase" else np.zeros(mask_hw, bool)
    c.set_mask(base)
    sy, sx = image_hw[0] / H, image_hw[1] / W
    pts = [(10.3 * sx, 20.7 * sy), (10.3 * sx, 20.7 * sy), (55.5 * sx, 31.2 * sy), (56.1 * sx, 31.0 * sy),
           (120.9 * sx, 200.4 * sy), (-3.0 * sx, 230.0 * sy)]
    radius = 3.3 * sx
    c.draw_stroke_segment(mode, radius, pts[0], pts[0])
    for p0, p1 in zip(pts, pts[1:]):
        c.draw_stroke_segment(mode, radius, p0, p1)
    a = Annotation(image_hw)
    a.add_stroke(Stroke(mode, radius, np.asarray(pts, np.float32)))
    layer = a.stroke_layer(mask_hw)
    live = c.overlay_array().astype(bool)
    np.testing.assert_array_equal(live != base, layer == (PAINTED if mode == "paint" else ERASED))
    np.testing.assert_array_equal(live, apply_stroke_layer(base.copy(), layer))


def test_candidate_strip_shows_scores_and_emits_the_clicked_one(qtbot):
    strip = CandidateStrip()
    qtbot.addWidget(strip)
    thumbs = [np.eye(400, 300, dtype=bool), np.ones((50, 60), bool), np.zeros((10, 10), bool)]
    strip.set_candidates(thumbs, [0.931, 0.5, 0.12], chosen=0)
    strip.show()
    assert [b.text() for b in strip.buttons] == ["0.93", "0.50", "0.12"]
    assert [b.isChecked() for b in strip.buttons] == [True, False, False]
    with qtbot.waitSignal(strip.chosen) as blocker:
        QTest.mouseClick(strip.buttons[2], Qt.MouseButton.LeftButton)
    assert blocker.args == [2]
    assert [b.isChecked() for b in strip.buttons] == [False, False, True]
    img = thumbnail_image(thumbs[0])
    assert max(img.width(), img.height()) == THUMB_SIDE == 80 and (img.width(), img.height()) == (60, 80)
    strip.clear()
    assert not any(b.isVisible() for b in strip.buttons)


def test_metrics_panel_text(qtbot):
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.set_metrics(MaskMetrics(iou=0.8734, dice=0.9324, precision=0.9, recall=0.95), has_gt=True)
    panel.set_clicks(5, 3, None)
    assert panel.iou_label.text() == "0.873"
    assert panel.dice_label.text() == "0.932"
    assert panel.clicks_label.text() == "Clicks: 5 · IoU ≥ 85% at click 3 · ≥ 90%: not yet"
    panel.set_metrics(None, has_gt=False)
    assert panel.no_gt_label.text() == NO_GT_TEXT and not panel.no_gt_label.isHidden()
    assert panel._numbers.isHidden()
    assert panel.clicks_label.text() == "Clicks: 5"
    panel.set_metrics(MaskMetrics(iou=1.0, dice=1.0, precision=1.0, recall=1.0), has_gt=True)
    panel.set_clicks(0, 0, 0)  # a reopened (or recovered) accepted mask: no click made, no NoC to tell
    assert panel.clicks_label.text() == "Clicks: 0"
