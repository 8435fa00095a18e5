"""The annotation window driven as a user would drive it (offscreen Qt), with the tiny seeded SAM and synthetic scenes.

Clicks and drags are real Qt mouse events sent to the canvas's viewport at the widget position of an image pixel.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QObject, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.evaluation.metrics import mask_metrics
from synthetic_scenes import interior_point, make_flood_scene
from tiny_sam import tiny_sam_checkpoint

SCENES = (("a_lake", 240, 320, "lake"), ("b_river", 200, 300, "river"), ("c_scattered", 260, 200, "scattered"))


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """QSettings in a temporary folder: tests never read or write the user's settings."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("sam") / "tiny.pth", seed=0)


@pytest.fixture
def data(tmp_path):
    """Image/ + Mask/ with three synthetic scenes; returns (folder, {stem: (image, mask)})."""
    root = tmp_path / "floods"
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    scenes = {}
    for i, (stem, h, w, kind) in enumerate(SCENES):
        image, mask = make_flood_scene(h, w, seed=i, kind=kind)
        Image.fromarray(image).save(root / "Image" / f"{stem}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "Mask" / f"{stem}.png")
        scenes[stem] = (image, mask)
    return root, scenes


@pytest.fixture
def session(checkpoint, tmp_path):
    return SegmentationSession.open(str(checkpoint), cache_dir=tmp_path / "cache")


def wait_ready(qtbot, w, timeout=20000):
    qtbot.waitUntil(lambda: w.controller.embedding is not None and w.controller.item is not None, timeout=timeout)


def click(w, x, y, button=Qt.MouseButton.LeftButton):
    QTest.mouseClick(w.canvas.main_viewport, button, Qt.KeyboardModifier.NoModifier, w.canvas.widget_pos(x, y))


def drag(w, p0, p1, modifiers=Qt.KeyboardModifier.NoModifier, steps=5):
    """A left-button drag from image point p0 to p1 with real press / move / release events."""
    vp = w.canvas.main_viewport
    a, b = w.canvas.widget_pos(*p0), w.canvas.widget_pos(*p1)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, modifiers, a)
    for k in range(1, steps + 1):
        pos = QPointF(a + (b - a) * (k / steps))
        ev = QMouseEvent(QEvent.Type.MouseMove, pos, vp.mapToGlobal(pos), Qt.MouseButton.NoButton,
                         Qt.MouseButton.LeftButton, modifiers)
        QApplication.sendEvent(vp, ev)
        QTest.qWait(5)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, modifiers, b)


def wait_mask(qtbot, w, timeout=10000):
    """Until the decodes are done and the native mask matches the screen (it follows the paint, `native_ready`)."""
    c = w.controller
    qtbot.waitUntil(lambda: c.native_mask is not None and c.decoder.idle and c.native_ready(), timeout=timeout)
    QTest.qWait(50)  # let any last queued result land


# ------------------------------------------------------------------------------------------------------------ tests


def test_opens_on_first_image_and_a_click_segments_with_live_iou(qtbot, window, data, session):
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    assert "a_lake.png (1 / 3)" in w.windowTitle()
    image, gt = scenes["a_lake"]
    x, y = interior_point(gt)
    ex, ey = w.canvas.image_pos(w.canvas.widget_pos(x, y))  # the click lands on a whole screen pixel
    click(w, x, y)
    wait_mask(qtbot, w)
    ann = w.controller.annotation
    assert ann.click_count == 1 and ann.prompt.labels.tolist() == [1]
    assert abs(ann.prompt.points[0, 0] - ex) <= 1.0 and abs(ann.prompt.points[0, 1] - ey) <= 1.0
    mask = w.controller.native_mask
    assert mask.shape == gt.shape and mask.dtype == bool
    # the shown IoU is the IoU of the mask that would be saved, recomputed independently here
    expected = mask_metrics(mask, gt).iou
    assert w.metrics_panel.iou_label.text() == f"{expected:.3f}"
    # the overlay on screen shows the same mask (view size == image size for small images)
    assert np.array_equal(w.canvas.overlay_array().astype(bool), mask)


def test_right_click_adds_a_negative_point_and_undo_redo(qtbot, window, data, session):
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    gt = scenes["a_lake"][1]
    x, y = interior_point(gt)
    click(w, x, y)
    wait_mask(qtbot, w)
    first = w.controller.native_mask.copy()
    click(w, 5, 5, Qt.MouseButton.RightButton)
    qtbot.waitUntil(lambda: len(w.controller.annotation.prompt.points) == 2)
    wait_mask(qtbot, w)
    assert w.controller.annotation.prompt.labels.tolist() == [1, 0]
    QTest.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(w.controller.annotation.prompt.points) == 1)
    wait_mask(qtbot, w)
    assert np.array_equal(w.controller.native_mask, first)
    QTest.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: len(w.controller.annotation.prompt.points) == 2)


def test_box_drag_follows_the_box_and_commits_on_release(qtbot, window, data, session):
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    previews = []
    w.canvas.box_changed.connect(lambda *b: previews.append(b))
    drag(w, (40, 30), (260, 200), Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: w.controller.annotation.prompt.box is not None)
    wait_mask(qtbot, w)
    assert len(previews) >= 2  # the mask was asked for while dragging
    box = w.controller.annotation.prompt.box
    assert np.allclose(box, [40, 30, 260, 200], atol=2.5)  # screen pixels are ~1.7 image pixels here
    assert w.controller.native_mask is not None


def test_after_a_click_escape_and_a_box_the_metrics_are_the_box_masks(qtbot, window, data, session):
    """The metrics panel and the overlay follow the box's decode, not the earlier click's (seen on a screenshot)."""
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    gt = scenes["a_lake"][1]
    click(w, *interior_point(gt))
    wait_mask(qtbot, w)
    QTest.keyClick(w.canvas.main_viewport, Qt.Key.Key_Escape)
    assert w.controller.annotation.prompt.is_empty
    drag(w, (40, 30), (260, 200), Qt.KeyboardModifier.ShiftModifier)
    c = w.controller
    key = lambda: c.prompt_key(c.annotation.prompt)  # noqa: E731
    qtbot.waitUntil(lambda: c.annotation.prompt.box is not None and c.shown is not None
                    and c.shown.kind in ("prompt", "native") and c.shown.prompt_key == key()
                    and c.native_mask is not None and not c.decoder.pending, timeout=20000)
    QTest.qWait(50)
    mask = c.native_mask
    assert w.metrics_panel.iou_label.text() == f"{mask_metrics(mask, gt).iou:.3f}"
    assert np.array_equal(w.canvas.overlay_array().astype(bool), mask)
    assert c.annotation.click_count == 1  # the box is not a click


def test_clicks_before_the_embedding_is_ready_are_kept_and_applied(qtbot, window, data, session):
    folder, scenes = data
    gate = threading.Event()
    real = session.embedding

    def slow_embedding(image, key=None, checkpoint=None):
        gate.wait(20)
        return real(image, key, checkpoint=checkpoint)

    session.embedding = slow_embedding
    w = window(folder, session=session)
    qtbot.waitUntil(lambda: w.controller.item is not None, timeout=10000)
    assert w.controller.embedding is None
    gt = scenes["a_lake"][1]
    x, y = interior_point(gt)
    click(w, x, y)
    qtbot.waitUntil(lambda: w.controller.annotation.click_count == 1)
    assert w.controller.native_mask is None  # nothing decoded yet, the click is pending
    assert "Encoding" in w.embed_label.text()
    gate.set()
    wait_ready(qtbot, w)
    wait_mask(qtbot, w)
    assert w.controller.annotation.click_count == 1


def test_candidates_keys_pick_and_undo_covers_the_choice(qtbot, window, data, session):
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    x, y = interior_point(scenes["a_lake"][1])
    click(w, x, y)
    wait_mask(qtbot, w)
    pred = w.controller.shown.prediction
    target = (pred.best + 1) % 3
    QTest.keyClick(w, Qt.Key(Qt.Key.Key_1 + target))
    qtbot.waitUntil(lambda: w.controller.annotation.candidate == target)
    wait_mask(qtbot, w)
    assert np.array_equal(w.controller.native_mask, pred.mask(target))
    assert [b.isChecked() for b in w.candidates.buttons].index(True) == target
    QTest.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: w.controller.annotation.candidate is None)


def test_brush_and_eraser_strokes_change_the_mask_and_undo(qtbot, window, data, session):
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    x, y = interior_point(scenes["a_lake"][1])
    click(w, x, y)
    wait_mask(qtbot, w)
    before = w.controller.native_mask.copy()
    w.set_tool("brush")
    drag(w, (10, 200), (100, 200))
    qtbot.waitUntil(lambda: len(w.controller.annotation.strokes) == 1)
    painted = w.controller.native_mask
    assert painted[200, 50] and (painted & ~before).sum() > 0
    w.set_tool("erase")
    drag(w, (x - 20, y), (x + 20, y))
    qtbot.waitUntil(lambda: len(w.controller.annotation.strokes) == 2)
    assert not w.controller.native_mask[int(y), int(x)]
    # strokes are overrides: picking another candidate keeps the painted line
    QTest.keyClick(w, Qt.Key.Key_3)
    qtbot.waitUntil(lambda: w.controller.annotation.candidate == 2)
    wait_mask(qtbot, w)
    assert w.controller.native_mask[200, 50]
    for _ in range(3):
        QTest.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not w.controller.annotation.strokes)
    wait_mask(qtbot, w)
    assert np.array_equal(w.controller.native_mask, before)


def test_escape_drops_prompts_and_clear_empties(qtbot, window, data, session):
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    x, y = interior_point(scenes["a_lake"][1])
    click(w, x, y)
    wait_mask(qtbot, w)
    QTest.keyClick(w, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: w.controller.annotation.prompt.is_empty)
    assert w.controller.native_mask is None
    QTest.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not w.controller.annotation.prompt.is_empty)
    wait_mask(qtbot, w)
    QTest.keyClick(w, Qt.Key.Key_Backspace, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: w.controller.annotation.prompt.is_empty)
    assert w.controller.native_mask is None and w.canvas.overlay_array() is None or \
        not w.canvas.overlay_array().any()


def test_next_image_and_a_broken_file_is_a_red_row(qtbot, window, data, session):
    folder, scenes = data
    (folder / "Image" / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    rows = {p.stem: i for i, p in enumerate(w.dataset.pairs)}
    w.select_image(rows["b_broken"])
    qtbot.waitUntil(lambda: w.message_label.isVisible(), timeout=10000)
    problem, is_error = w.image_list.model.problem(rows["b_broken"])
    assert is_error and "unreadable" in problem.lower()
    w.select_image(rows["b_river"])
    wait_ready(qtbot, w)
    assert "b_river.png" in w.windowTitle()
    gt = scenes["b_river"][1]
    click(w, *interior_point(gt))
    wait_mask(qtbot, w)
    assert w.controller.native_mask.shape == gt.shape


def test_hover_previews_before_the_first_click(qtbot, window, data, session):
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    x, y = interior_point(scenes["a_lake"][1])
    w.canvas.hovered.emit(x, y)
    qtbot.waitUntil(lambda: w.controller.shown is not None and w.controller.shown.kind == "hover", timeout=5000)
    assert w.canvas.overlay_array() is not None and w.canvas.overlay_array().any()
    assert w.controller.annotation.prompt.is_empty  # a preview is not a step


def test_without_a_checkpoint_the_classic_backend_and_the_banner(qtbot, window, data):
    folder, scenes = data
    w = window(folder)
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=20000)
    assert w.controller.session.model_id.startswith("classic")
    from floodlabel.gui.panels.model_status import first_guess_gpu, recommended

    name = recommended(first_guess_gpu())[0]  # sam2.1_hiera_tiny without a GPU (and with sam2), else vit_b
    assert w.banner.isVisible() and f"floodlabel models download {name}" in w.banner.text()
    wait_ready(qtbot, w)
    click(w, *interior_point(scenes["a_lake"][1]))
    wait_mask(qtbot, w, timeout=20000)


def test_a_failing_worker_leaves_a_message_and_a_usable_window(qtbot, window, data, session):
    folder, scenes = data
    real = session.predict
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("decoder exploded")
        return real(*args, **kwargs)

    session.predict = flaky
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    x, y = interior_point(scenes["a_lake"][1])
    click(w, x, y)
    qtbot.waitUntil(lambda: w.message_label.isVisible(), timeout=5000)
    assert "decoder exploded" in w.message_label.text()
    click(w, x + 3, y + 3)
    wait_mask(qtbot, w)
    assert w.controller.native_mask is not None


def test_floodlabel_data_opens_the_window_on_the_first_image(qtbot, data, monkeypatch, checkpoint):
    from floodlabel import cli
    from floodlabel.commands import gui_command

    folder, _ = data
    opened = {}

    def fake_exec(args):
        from floodlabel.gui.app import create_annotation_window, create_app

        create_app()
        w = create_annotation_window(args.data, args.model)
        qtbot.addWidget(w)
        opened["window"] = w
        return 0

    monkeypatch.setattr(gui_command, "run", fake_exec)
    assert cli.main([str(folder), "--model", str(checkpoint)]) == 0
    w = opened["window"]
    qtbot.waitUntil(lambda: w.controller.item is not None, timeout=20000)
    assert w.controller.row == 0 and "a_lake.png" in w.windowTitle() and not w.windowIcon().isNull()
    w.close()


def test_auto_proposes_a_water_mask_in_a_worker(qtbot, window, data, session, monkeypatch):
    from floodlabel.gui.window import segmentation_controller

    monkeypatch.setattr(segmentation_controller, "AUTO_POINTS_PER_SIDE", 2)  # 4 prompts: seconds, not minutes
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    w.run_auto()  # no positive point yet: a clear message, the window stays usable
    qtbot.waitUntil(lambda: w.message_label.isVisible(), timeout=10000)
    assert "Click on water first" in w.message_label.text()
    h, wd = scenes["a_lake"][1].shape
    click(w, wd / 2, h / 2)
    wait_mask(qtbot, w)
    w.run_auto()
    assert w.auto_cancel.isVisible()
    qtbot.waitUntil(lambda: not w.controller.auto_running and not w.auto_cancel.isVisible(), timeout=60000)
    auto = w.controller.fixed_mask
    assert auto is not None and auto.shape == (h, wd)
    assert np.array_equal(w.controller.native_mask, auto)


# ------------------------------------------------------------------------------------------- accept and the store


def test_accept_stores_the_native_mask_moves_on_and_reopening_restores(qtbot, window, data, session):
    from floodlabel.core.store.project_store import ProjectStore

    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    gt = scenes["a_lake"][1]
    click(w, *interior_point(gt))
    wait_mask(qtbot, w)
    w.set_tool("brush")
    drag(w, (10, 200), (60, 200))
    qtbot.waitUntil(lambda: len(w.controller.annotation.strokes) == 1)
    saved = w.controller.native_mask.copy()
    state = w.controller.annotation.to_dict()
    QTest.keyClick(w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "b_river.png" in w.windowTitle(), timeout=5000)  # the next image not accepted
    qtbot.waitUntil(lambda: "Accepted 1 / 3" in w.project_label.text(), timeout=5000)
    assert w.image_list.model.row(0).status == "accepted"
    w.close()

    with ProjectStore(folder, read_only=True) as store:
        record = store.record("Image/a_lake.png")
        assert record.accepted and np.array_equal(record.load_mask(), saved)
        assert record.accepted_state["strokes"] == state["strokes"]
        assert record.metrics["iou"] == pytest.approx(mask_metrics(saved, gt).iou)

    w2 = window(folder, session=session)
    wait_ready(qtbot, w2)
    assert "Accepted 1 / 3" in w2.project_label.text()
    assert "b_river.png" in w2.windowTitle()  # where the user left off (the accept moved on to it)
    w2.select_image(0)
    qtbot.waitUntil(lambda: w2.controller.row == 0 and w2.controller.item is not None, timeout=5000)
    qtbot.waitUntil(lambda: w2.controller.native_mask is not None, timeout=5000)
    assert np.array_equal(w2.controller.native_mask, saved)  # the accepted mask is the current mask again
    assert len(w2.controller.annotation.strokes) == 1 and w2.controller.annotation.click_count == 1


def test_in_progress_work_is_autosaved_and_restored(qtbot, window, data, session):
    from floodlabel.core.store.project_store import ProjectStore

    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    x, y = interior_point(scenes["a_lake"][1])
    click(w, x, y)
    wait_mask(qtbot, w)

    def saved_points():
        with ProjectStore(folder, read_only=True) as store:
            record = store.record("Image/a_lake.png")
            return None if record is None else record.annotation_state["prompt"]["points"]

    qtbot.waitUntil(lambda: saved_points() is not None, timeout=3000)  # within a second or so, no accept needed
    assert len(saved_points()) == 1
    w.close()
    w2 = window(folder, session=session)
    wait_ready(qtbot, w2)
    assert w2.controller.annotation.prompt.points.shape == (1, 2)
    wait_mask(qtbot, w2)
    assert w2.image_list.model.row(0).status == "in progress"


def test_a_second_window_on_the_same_project_is_read_only(qtbot, window, data, session):
    folder, _ = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    w2 = window(folder, session=session)
    assert w2.store is not None and w2.store.read_only
    assert not w2.accept_action.isEnabled() and "read-only" in w2.project_label.text()
    assert w2.project_notice.isVisible() and "read-only" in w2.project_notice.text().lower()


def test_switching_model_re_embeds_and_keeps_the_prompts(qtbot, window, data, session, tmp_path):
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    click(w, *interior_point(scenes["a_lake"][1]))
    wait_mask(qtbot, w)
    old_scores = w.controller.shown.prediction.scores.copy()
    other = SegmentationSession.open(str(tiny_sam_checkpoint(tmp_path / "other.pth", seed=1)),
                                     cache_dir=tmp_path / "cache2")
    w.controller.set_session(other)
    wait_ready(qtbot, w)
    qtbot.waitUntil(lambda: w.controller.shown is not None
                    and not np.allclose(w.controller.shown.prediction.scores, old_scores), timeout=10000)
    assert w.controller.annotation.click_count == 1 and len(w.controller.annotation.prompt.points) == 1
    assert w.controller.embedding.model_id == other.model_id


def test_compare_view_shows_two_models_on_the_same_prompts(qtbot, window, data, session, tmp_path):
    folder, scenes = data
    other = str(tiny_sam_checkpoint(tmp_path / "b.pth", seed=1))
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    w.compare_with(other)
    qtbot.waitUntil(lambda: w.compare.session is not None, timeout=20000)
    gt = scenes["a_lake"][1]
    click(w, *interior_point(gt))
    wait_mask(qtbot, w)
    qtbot.waitUntil(lambda: w.compare.result is not None, timeout=20000)
    b = w.compare.result
    assert b.key[1] == repr(w.controller.annotation.prompt.to_dict())  # the same prompt as A
    assert b.view_mask.shape == gt.shape and b.metrics is not None
    qtbot.waitUntil(lambda: "B: IoU" in w.compare_label.text(), timeout=5000)
    assert w.canvas._compare_item.image is not None
    expected_diff = w.controller.native_mask ^ b.view_mask
    assert np.array_equal(w.canvas._diff_item.image.astype(bool), expected_diff)
    w.compare_with(None)
    qtbot.waitUntil(lambda: w.canvas._compare_item.image is None)


def test_show_image_with_prompt_applies_the_prompt(qtbot, window, data, session):
    from floodlabel.core.annotation.prompts import Prompt

    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    scores = []
    w.controller.scored.connect(lambda row, s: scores.append((row, s)))
    gt = scenes["b_river"][1]
    x, y = interior_point(gt)
    w.show_image_with_prompt(1, Prompt.point(x, y).with_box((5, 5, 200, 150)))
    wait_ready(qtbot, w)
    wait_mask(qtbot, w)
    ann = w.controller.annotation
    assert "b_river.png" in w.windowTitle() and len(ann.prompt.points) == 1 and ann.prompt.box is not None
    qtbot.waitUntil(lambda: any(row == 1 for row, _ in scores), timeout=5000)


def test_a_large_image_decodes_at_view_size_and_scores_the_native_mask(qtbot, window, tmp_path, session):
    """3000x2400 > the 2048 view cap: the overlay is decoded smaller, the saved mask and its IoU at full size."""
    root = tmp_path / "big"
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    image, gt = make_flood_scene(600, 750, seed=3, kind="lake")
    big = np.repeat(np.repeat(image, 4, axis=0), 4, axis=1)
    big_gt = np.repeat(np.repeat(gt, 4, axis=0), 4, axis=1)
    Image.fromarray(big).save(root / "Image" / "big.png")
    Image.fromarray(big_gt.astype(np.uint8) * 255).save(root / "Mask" / "big.png")
    w = window(root, session=session)
    wait_ready(qtbot, w, timeout=60000)
    x, y = interior_point(big_gt)
    click(w, x, y)
    qtbot.waitUntil(lambda: w.controller.native_mask is not None and w.controller.native_ready(), timeout=20000)
    assert w.canvas.overlay_array().shape == (1638, 2048)  # view size
    mask = w.controller.native_mask
    assert mask.shape == big_gt.shape
    assert w.metrics_panel.iou_label.text() == f"{mask_metrics(mask, big_gt).iou:.3f}"
    # a stroke after the decode: composed on the UI thread from the native mask, same rule
    w.set_tool("brush")
    drag(w, (100, 2000), (600, 2000))
    qtbot.waitUntil(lambda: len(w.controller.annotation.strokes) == 1)
    qtbot.waitUntil(lambda: w.controller.native_ready() and w.controller.native_mask[2000, 300], timeout=20000)
    assert w.metrics_panel.iou_label.text() == f"{mask_metrics(w.controller.native_mask, big_gt).iou:.3f}"


def test_a_clicks_overlay_is_painted_first_with_its_marker_then_the_panels(qtbot, window, data, session):
    folder, scenes = data
    w = window(folder, session=session)
    wait_ready(qtbot, w)
    c, log = w.controller, []
    _, gt = scenes["a_lake"]
    click(w, *interior_point(gt))  # the first decode sets the image's decoder state up (slower than the others)
    wait_mask(qtbot, w)
    QTest.keyClick(w, Qt.Key.Key_Escape)

    class Paints(QObject):
        def eventFilter(self, obj, ev):  # noqa: N802 (Qt API)
            if ev.type() == QEvent.Type.Paint:
                log.append("paint")
            return False

    paints = Paints()
    w.canvas.main_viewport.installEventFilter(paints)
    c.markers_changed.connect(lambda *a: log.append("markers"))
    c.mask_changed.connect(lambda m: log.append("mask"))
    c.candidates_changed.connect(lambda *a: log.append("candidates"))
    c.metrics_changed.connect(lambda *a: log.append("metrics"))
    c.history_changed.connect(lambda *a: log.append("history"))
    QTest.qWait(50)
    c.markers._timer.setInterval(5000)  # the fallbacks for a slow decode (the tiny SAM's decoder is vit_b's)
    c.panels.after.__self__._latest.setInterval(5000)
    log.clear()
    click(w, *interior_point(gt))
    wait_mask(qtbot, w)
    qtbot.waitUntil(lambda: "metrics" in log, timeout=5000)
    first = log.index("mask")
    assert log[:first].count("paint") == 0 and "markers" in log[:first]  # no paint beside the decode
    assert log[first + 1] == "paint"                                        # the overlay's frame, with the marker
    assert log.index("history") < first                                    # at once: the autosave follows it
    for panel in ("candidates", "metrics"):
        assert log.index(panel) > first + 1                                 # after that frame
    assert w.metrics_panel.iou_label.text() == f"{mask_metrics(c.native_mask, gt).iou:.3f}"
