"""The native-size mask (the one an Accept saves) of an image larger than the view is composed and scored off the UI
thread (gui/window/native/native_compose): the UI call returns before the compose ran, the result is the composed
mask of the current version, a stale one is dropped, an Accept waits for it (and one that outlives its image saves
that compose's mask, a fixed mask's too). Controller tests with a fake session (no model); window tests on the
4200 x 4100 map of test_geo_accept_refine with the classic backend (its tiled refine off)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

import floodlabel.gui.window.native.native_compose as native_compose
from floodlabel.core.annotation.annotation import Annotation, Stroke, view_size
from floodlabel.core.evaluation.metrics import mask_metrics
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.segment.segmenter import Prediction
from floodlabel.core.tiles.map_item import MapItem
from floodlabel.gui.window.decode_jobs import Decoded
from floodlabel.gui.window.mask_composition import with_strokes
from floodlabel.gui.window.segmentation_controller import SegmentationController
from test_geo_accept_refine import two_images  # noqa: F401 (fixture)
from test_window_life_cycle import saved_mask

BIG = (5000, 4000)  # (H, W): 20 MP, view 2048 x 1638


@pytest.fixture
def gate(monkeypatch):
    """compose_native waits for `gate` (set it to let the compose go on); `calls` counts the composes started."""
    gate, calls = threading.Event(), []
    real = native_compose.compose_native

    def gated(*args, **kwargs):
        calls.append(1)
        if not gate.wait(60):
            raise TimeoutError("test gate never opened")
        return real(*args, **kwargs)

    monkeypatch.setattr(native_compose, "compose_native", gated)
    gate.calls = calls
    yield gate
    gate.set()


@pytest.fixture
def controller(qtbot):
    """A controller on a 5000 x 4000 map whose prompt was decoded (the shown decode is native, its mask a disk)."""
    c = SegmentationController()
    view = view_size(BIG)
    gt = _disk(BIG, 0.3)
    c.item = MapItem(Path("map.tif"), np.zeros((*view, 3), np.uint8), gt, "map", None, full_size=BIG)
    c.row = 0
    c.annotation = Annotation(BIG)
    c.annotation.add_listener(c._on_annotation_changed)
    c.add_point(BIG[1] / 2, BIG[0] / 2, True)
    qtbot.waitUntil(c.native_ready, timeout=10000)  # no decode yet: nothing to compose (no model mask, no stroke)
    native = _disk(BIG, 0.25)
    pred = Prediction.lazy(np.array([0.9, 0.8, 0.7], np.float32), np.zeros((3, 256, 256), np.float32),
                           lambda i: _disk(view, 0.25))
    c.shown = Decoded("native", c.prompt_key(c.annotation.prompt), pred, 0, view, [], native,
                      native, mask_metrics(native, gt), c.annotation.version)
    c._show_mask()
    assert c.native_ready() and c.native_mask is native
    yield c
    c.shutdown()


def test_a_stroke_on_a_large_image_is_composed_after_the_ui_call_returns(qtbot, controller, gate):
    c = controller
    before = c.native_mask
    metrics, areas = [], []
    c.metrics_changed.connect(lambda m, has_gt: metrics.append(m))
    c.area_changed.connect(areas.append)
    c.add_stroke(Stroke("erase", 300.0, np.array([[2000.0, 2500.0], [2600.0, 2500.0]], np.float32)))
    assert not c.native_ready() and c.native_mask is before and metrics == []  # the UI thread did not compose it
    expected = with_strokes(c.annotation, c.shown.native_mask, BIG)
    gate.set()
    qtbot.waitUntil(c.native_ready, timeout=20000)
    np.testing.assert_array_equal(c.native_mask, expected)
    assert metrics == [mask_metrics(expected, c.item.gt)] and c.metrics == metrics[0]
    assert len(areas) == 1 and areas[0].pixels == int(expected.sum())


def test_the_newest_compose_wins_and_a_stale_one_is_dropped(qtbot, controller, gate):
    c = controller
    metrics = []
    c.metrics_changed.connect(lambda m, has_gt: metrics.append(m))
    c.add_stroke(Stroke("erase", 300.0, np.array([[2000.0, 2500.0]], np.float32)))
    qtbot.waitUntil(lambda: len(gate.calls) == 1, timeout=10000)  # the first compose runs, held at the gate
    c.add_stroke(Stroke("paint", 200.0, np.array([[300.0, 300.0]], np.float32)))  # the second waits behind it
    expected = with_strokes(c.annotation, c.shown.native_mask, BIG)
    gate.set()
    qtbot.waitUntil(lambda: len(gate.calls) == 2 and c.native_ready(), timeout=20000)
    qtbot.wait(100)
    assert len(metrics) == 1  # the first (stale) result was never used
    np.testing.assert_array_equal(c.native_mask, expected)

    gate.clear()
    c.add_stroke(Stroke("paint", 200.0, np.array([[3500.0, 300.0]], np.float32)))
    qtbot.waitUntil(lambda: len(gate.calls) == 3, timeout=10000)
    c._request += 1  # a decode was submitted meanwhile (a new prompt's): its native part makes the mask
    gate.set()
    qtbot.wait(300)
    assert not c.native_ready() and len(metrics) == 1


def test_a_refine_meets_the_view_level_mask_off_the_ui_thread_unless_a_candidate_was_picked(qtbot, controller,
                                                                                             monkeypatch):
    import floodlabel.gui.window.fixed_mask as fixed_mask

    c = controller
    merging, real = threading.Event(), fixed_mask.merge_levels
    monkeypatch.setattr(fixed_mask, "merge_levels", lambda *a: (merging.wait(30), real(*a))[1])
    key = (c.row, c.prompt_key(c.annotation.prompt))
    coarse = c.shown.native_mask
    refined, owned = np.zeros(BIG, bool), np.zeros(BIG, bool)
    owned[:, :2000] = True
    refined[1000:3000, 500:1500] = True
    c.fixed._on_refined(key, refined.copy(), owned)
    assert c.fixed_mask is None  # the merge runs in a worker
    merging.set()
    qtbot.waitUntil(lambda: c.fixed_mask is not None, timeout=10000)
    np.testing.assert_array_equal(c.fixed_mask, refined | (coarse & ~owned))
    assert c.fixed.refined and c.shown_fixed_mask() is c.fixed_mask

    c.fixed.drop_refined()
    merging.clear()
    c.fixed._on_refined(key, refined.copy(), owned)
    c.fixed.drop_refined()  # a candidate picked meanwhile: it wins over the late refine
    merging.set()
    qtbot.wait(300)
    assert c.fixed_mask is None


def test_an_image_no_larger_than_the_view_is_composed_at_once(qtbot, gate):
    c = SegmentationController()
    size = (600, 800)
    c.item = MapItem(Path("small.tif"), np.zeros((*size, 3), np.uint8), None, "small", None, full_size=size)
    c.row = 0
    c.annotation = Annotation(size)
    c.annotation.add_listener(c._on_annotation_changed)
    c.add_stroke(Stroke("paint", 20.0, np.array([[100.0, 100.0]], np.float32)))
    assert c.native_ready() and c.native_mask is not None and c.native_mask[100, 100] and gate.calls == []
    c.shutdown()


def test_the_worker_s_compose_is_the_annotation_s(qtbot):
    rng = np.random.default_rng(3)
    size = (3000, 4000)
    model = _disk(size, 0.3)
    for case in range(6):
        ann = Annotation(size)
        if case != 5:
            ann.add_point(2000.0, 1500.0, True)  # case 5: no prompt, so no model mask (strokes alone)
        for _ in range(4):
            points = rng.uniform((-50, -50), (4050, 3050), (int(rng.integers(1, 6)), 2)).astype(np.float32)
            ann.add_stroke(Stroke("paint" if rng.random() < 0.5 else "erase", float(rng.uniform(0.5, 150)), points))
        copy = Annotation.from_dict(ann.to_dict())
        got = native_compose.compose_native(copy, model if case != 4 else None, False, None, size, model, None)
        expected = with_strokes(ann, model if case != 4 else None, size)
        np.testing.assert_array_equal(got.mask, expected)
        assert got.metrics == mask_metrics(expected, model) and got.area.pixels == int(expected.sum())


def test_an_accept_during_the_compose_saves_the_composed_mask_of_that_version(qtbot, window, two_images, gate):
    w = window(two_images, SegmentationSession.open("classic"))
    c = _decoded_map(qtbot, w)
    c.add_stroke(Stroke("erase", 250.0, np.array([[1800.0, 2050.0], [2400.0, 2050.0]], np.float32)))
    assert not c.native_ready()
    expected = with_strokes(c.annotation, c.shown.native_mask, c.item.original_size)
    QTest.keyClick(w, Qt.Key.Key_Return)  # the compose is held at the gate: the accept waits for it
    assert w.project.waiting is not None and c.row == 0 and saved_mask(two_images) is None
    gate.set()
    qtbot.waitUntil(lambda: "Accepted 1 / 2" in w.project_label.text(), timeout=30000)
    w.store.wait_idle()
    np.testing.assert_array_equal(saved_mask(two_images), expected)


def test_an_accept_that_outlives_its_image_saves_the_compose_of_its_fixed_mask(qtbot, window, two_images, gate):
    w = window(two_images, SegmentationSession.open("classic"))
    c = _decoded_map(qtbot, w)
    H, W = c.item.original_size
    fixed = np.zeros((H, W), bool)
    fixed[1000:3000, 500:2500] = True  # as Auto's mask would be: not what the prompt decodes to
    c.fixed.key = key = (c.row, c.prompt_key(c.annotation.prompt))  # as run_auto keeps it
    c.fixed._on_auto(key, fixed)
    assert not c.native_ready()
    QTest.keyClick(w, Qt.Key.Key_Return)
    assert w.project.waiting is not None
    w.next_image()  # the user moves on before the compose came
    gate.set()
    qtbot.waitUntil(lambda: "Accepted 1 / 2" in w.project_label.text(), timeout=30000)
    w.store.wait_idle()
    np.testing.assert_array_equal(saved_mask(two_images), fixed)
    assert c.row == 1 and saved_mask(two_images, "Image/b_photo.png") is None


def test_the_text_step_on_a_large_photo_is_composed_in_the_worker_and_accepted(qtbot, window, tmp_path, gate):
    from PIL import Image
    from text_segmenter_double import TextSegmenterDouble

    from floodlabel.core.common.hashing import image_key
    from floodlabel.core.data.images import read_image
    from floodlabel.gui.window.text_prompt.text_prompt_jobs import native_model_mask_with_text

    root = tmp_path / "photos"
    (root / "Image").mkdir(parents=True)
    H, W = 2100, 2700  # larger than the view (2048 x 1593)
    image = np.full((H, W, 3), 90, np.uint8)
    water = np.zeros((H, W), bool)
    for r0, c0, side in ((100, 100, 300), (900, 1200, 500), (1600, 2200, 200)):
        water[r0:r0 + side, c0:c0 + side] = True
    image[water] = (40, 60, 120)
    Image.fromarray(image).save(root / "Image" / "wide.png")
    double = TextSegmenterDouble({image_key(read_image(root / "Image" / "wide.png")): water}, scores=(0.9, 0.6, 0.3))
    w = window(root, session=SegmentationSession(double))
    c = w.controller
    qtbot.waitUntil(lambda: c.embedding is not None, timeout=30000)
    gate.set()
    qtbot.waitUntil(c.native_ready, timeout=10000)
    gate.clear()
    c.text_steps.run("water", 0.5)  # two instances kept (0.9, 0.6)
    qtbot.waitUntil(lambda: c.text_steps.instances() is not None and len(gate.calls) >= 2, timeout=20000)
    assert not c.native_ready()  # the text base at 2700 x 2100 is composed in the worker
    c.add_stroke(Stroke("erase", 40.0, np.array([[1450.0, 1150.0]], np.float32)))
    ann, instances = c.annotation, c.text_steps.instances()
    expected = with_strokes(ann, native_model_mask_with_text(ann, instances, None, (H, W)), (H, W))
    assert expected[1000:1100, 1300:1400].all() and not expected[1150, 1450] and not expected[1700, 2300]
    QTest.keyClick(w, Qt.Key.Key_Return)
    assert w.project.waiting is not None
    gate.set()
    qtbot.waitUntil(lambda: w.project.waiting is None and "Accepted 1 / 1" in w.project_label.text(), timeout=30000)
    w.store.wait_idle()
    np.testing.assert_array_equal(saved_mask(root, "Image/wide.png"), expected)


def _decoded_map(qtbot, w) -> SegmentationController:
    c = w.controller
    c.refiner.wanted = lambda item: False  # no tiled refine: the mask is the view-level decode's
    qtbot.waitUntil(lambda: c.embedding is not None and c.row == 0, timeout=60000)
    c.add_point(2100.0, 2050.0, True)
    qtbot.waitUntil(lambda: c.native_mask is not None and c.native_ready() and not c.decoder.pending, timeout=60000)
    QTest.qWait(50)
    return c


def _disk(size: tuple[int, int], radius: float) -> np.ndarray:
    import cv2

    H, W = size
    mask = np.zeros(size, np.uint8)
    cv2.circle(mask, (W // 2, H // 2), int(radius * min(H, W)), 1, -1)
    return mask.view(bool)
