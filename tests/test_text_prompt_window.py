"""The window's text prompt with the text-prompt TEST DOUBLE (tests/text_segmenter_double: instances are the given
water's connected components, scores 0.9 / 0.6 / 0.3): Run in a worker, the threshold re-filters without the model,
Pick toggles an instance, undo, a click adds its decode, Enter saves phrase and threshold; proposals in the list,
least confident first, opened and accepted as they stand; the panel is off for a model without a text prompt."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from synthetic_scenes import make_flood_scene
from text_segmenter_double import TextSegmenterDouble

from floodlabel.core.common.hashing import image_key
from floodlabel.core.data.images import read_image
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.store.project_store import ProjectStore, Status


@pytest.fixture
def scenes(tmp_path):
    """DATA/Image/s{0,1}.png (scattered water) + their GT masks, and the double knowing that water."""
    root = tmp_path / "floods"
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    water = {}
    for i in range(2):
        image, gt = make_flood_scene(72, 96, seed=10 + i, kind="scattered")
        Image.fromarray(image).save(root / "Image" / f"s{i}.png")
        Image.fromarray(gt.astype(np.uint8) * 255).save(root / "Mask" / f"s{i}.png")
        water[image_key(read_image(root / "Image" / f"s{i}.png"))] = gt
    return root, TextSegmenterDouble(water, scores=(0.9, 0.6, 0.3), delay=0.2)


def components(double, path):
    inst = double.segment_text(_emb(double, path), "water")
    double.calls -= 1
    return inst


def _emb(double, path):
    return double.embed(read_image(path))


def test_run_threshold_pick_undo_and_accept(qtbot, window, scenes):
    folder, double = scenes
    w = window(folder, session=SegmentationSession(double))
    c, panel = w.controller, w.text_panel
    qtbot.waitUntil(lambda: c.embedding is not None and panel.run_button.isEnabled(), timeout=20000)
    assert panel.phrase == "water" and panel.toolTip() == ""
    inst = components(double, c.dataset.pairs[c.row].image)
    panel.set_phrase("flood water")
    panel.run_button.click()
    assert panel.busy.isVisible() or c.text.running  # the UI thread did not wait for the model
    qtbot.waitUntil(lambda: c.text_steps.instances() is not None and c.native_mask is not None, timeout=10000)
    assert double.calls == 1
    expected = inst.union(0.5)
    qtbot.waitUntil(lambda: np.array_equal(c.native_mask, expected), timeout=5000)
    assert "kept" in panel.info_label.text()

    assert panel.threshold_slider.minimum() == 5  # MIN_TEXT_THRESHOLD: no instance scores lower
    panel.threshold_slider.setValue(20)  # all three sizes of puddle now
    qtbot.waitUntil(lambda: np.array_equal(c.native_mask, inst.union(0.2)), timeout=5000)
    assert double.calls == 1  # re-filtered, not run again

    ys, xs = np.nonzero(inst.masks[0])
    panel.pick_button.setChecked(True)
    w.canvas_input.on_point(float(xs[0]), float(ys[0]), True)  # what a canvas click does
    assert c.annotation.dropped == {0} and c.annotation.prompt_points_count == 0
    qtbot.waitUntil(lambda: not c.native_mask[ys[0], xs[0]], timeout=5000)
    c.undo()
    qtbot.waitUntil(lambda: np.array_equal(c.native_mask, inst.union(0.2)), timeout=5000)
    c.undo()
    qtbot.waitUntil(lambda: np.array_equal(c.native_mask, inst.union(0.5)), timeout=5000)
    assert panel.threshold_slider.value() == 50  # the panel follows undo

    panel.pick_button.setChecked(False)
    w.canvas_input.on_point(3.0, 3.0, True)  # a positive point: its decode is added to the text base
    qtbot.waitUntil(lambda: c.shown is not None and c.native_mask is not None and c.native_ready(), timeout=10000)
    qtbot.waitUntil(lambda: (c.native_mask >= inst.union(0.5)).all(), timeout=5000)
    w.accept_mask()
    assert w.store.wait_idle()
    with ProjectStore(folder, read_only=True) as store:
        record = store.record(c.dataset.pairs[0].image)
        assert record.accepted
        assert record.accepted_state["prompt"]["text"] == {"phrase": "flood water", "threshold": 0.5}
    assert w.settings.value(w.text_prompt._key()) == "flood water"  # remembered for this folder


def test_proposals_sorted_least_confident_first_opened_and_accepted(qtbot, window, scenes):
    from floodlabel.core.cluster.batch_propose import propose_local

    folder, double = scenes
    images = sorted((folder / "Image").glob("*.png"))
    double.scores = (0.9, 0.2, 0.2)
    with ProjectStore(folder) as store:
        propose_local(store, images[:1], SegmentationSession(double), "water", 0.5)
    double.scores = (0.6, 0.6, 0.3)
    with ProjectStore(folder) as store:
        propose_local(store, images[1:], SegmentationSession(double), "water", 0.5)
        confidences = store.proposal_confidences()
        proposed = {p.rel_path: p.load_mask() for p in store.proposals()}
    assert confidences == {"Image/s0.png": pytest.approx(0.9), "Image/s1.png": pytest.approx(0.6)}
    w = window(folder, session=SegmentationSession(double))
    lst = w.image_list
    assert [lst.model.data_at(r, 2, 0) for r in range(2)] == ["◇", "◇"]
    assert "Accepted 0 / 2 · 2 proposed to review" in w.project_label.text()
    lst.sort_by_confidence()
    assert lst.visible_rows() == [1, 0]  # s1 (0.6) before s0 (0.9)
    w.select_image(1)
    c = w.controller
    qtbot.waitUntil(lambda: c.row == 1 and c.native_mask is not None, timeout=20000)
    assert np.array_equal(c.native_mask, proposed["Image/s1.png"])  # the proposal as it stands
    assert c.annotation.text.phrase == "water"
    w.accept_mask()  # Enter
    assert w.store.wait_idle()
    qtbot.waitUntil(lambda: "Accepted 1 / 2 · 1 proposed to review" in w.project_label.text(), timeout=5000)
    with ProjectStore(folder, read_only=True) as store:
        assert store.statuses() == {"Image/s0.png": Status.PROPOSED, "Image/s1.png": Status.ACCEPTED}
        assert np.array_equal(store.record("Image/s1.png").load_mask(), proposed["Image/s1.png"])


def test_the_panel_is_off_for_a_model_without_a_text_prompt(qtbot, window, scenes, tmp_path):
    folder, _ = scenes
    w = window(folder, session=SegmentationSession.open("classic", cache_dir=tmp_path / "cache"))
    qtbot.waitUntil(lambda: w.controller.embedding is not None, timeout=20000)
    assert not w.text_panel.run_button.isEnabled() and "SAM 3" in w.text_panel.toolTip()
    w.text_panel.pick_button.setChecked(True)  # (disabled for the user) without a text step a click adds a point
    w.canvas_input.on_point(5.0, 5.0, True)
    assert w.controller.annotation.prompt_points_count == 1
