"""Simulated clicks (RITM protocol) and NoC, with oracle predictors."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from floodlabel.core.evaluation.click_simulation import Click, ClickResult, clicks_to_reach, next_click, noc_summary
from floodlabel.core.annotation.prompts import Prompt


def _square(shape, y0, x0, size) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0 : y0 + size, x0 : x0 + size] = True
    return m


def _two_blobs() -> np.ndarray:
    """Large 21x21 square (441 px) and small 8x8 square (64 px): one region gives IoU 441/505 = 0.873."""
    return _square((60, 80), 30, 45, 21) | _square((60, 80), 2, 3, 8)


def _region_oracle(gt: np.ndarray):
    """Predicts the gt regions under positive clicks, minus the gt regions under negative ones."""
    _, labels = cv2.connectedComponents(gt.view(np.uint8), connectivity=8)

    def predict(prompt: Prompt) -> np.ndarray:
        out = np.zeros_like(gt)
        for (x, y), lab in zip(prompt.points.astype(int), prompt.labels):
            if labels[y, x]:
                region = labels == labels[y, x]
                out = out | region if lab == 1 else out & ~region
        return out

    return predict


def _disk_predictor(shape, radius: int, history: list):
    """Disks around positive points minus disks around negative points; records every prediction."""

    def predict(prompt: Prompt) -> np.ndarray:
        pos = np.zeros(shape, np.uint8)
        neg = np.zeros(shape, np.uint8)
        for (x, y), lab in zip(prompt.points.astype(int), prompt.labels):
            cv2.circle(pos if lab == 1 else neg, (int(x), int(y)), radius, 1, -1)
        out = (pos > 0) & ~(neg > 0)
        history.append(out)
        return out

    return predict


def test_positive_click_at_centre_of_missed_water():
    gt = _square((40, 50), 10, 20, 11)
    assert next_click(np.zeros_like(gt), gt) == Click(x=25, y=15, positive=True)


def test_negative_click_at_centre_of_spurious_water():
    gt = _square((40, 50), 2, 2, 5)
    pred = gt | _square((40, 50), 20, 30, 9)
    assert next_click(pred, gt) == Click(x=34, y=24, positive=False)


def test_thickest_error_region_wins():
    gt = _square((60, 60), 5, 5, 15)  # fully missed: 15x15 FN, depth 8
    pred = _square((60, 60), 40, 40, 7)  # spurious 7x7 FP, depth 4
    assert next_click(pred, gt) == Click(x=12, y=12, positive=True)
    # a wide but thin FN strip loses to a thick FP square, though its area is larger
    gt2 = np.zeros((60, 60), bool)
    gt2[2:4, 0:60] = True  # 120 px, depth 1
    pred2 = gt2 | _square((60, 60), 30, 30, 9)  # 81 px FP, depth 5
    assert next_click(pred2, gt2) == Click(x=34, y=34, positive=False)


def test_tie_goes_to_negative_as_in_ritm():
    gt = _square((30, 30), 2, 2, 5)
    pred = _square((30, 30), 20, 20, 5)
    assert next_click(pred, gt) == Click(x=22, y=22, positive=False)


def test_image_edge_counts_as_boundary():
    gt = np.zeros((21, 40), bool)
    gt[:, :21] = True
    assert next_click(np.zeros_like(gt), gt) == Click(10, 10, True)


def test_no_error_no_click():
    gt = _two_blobs()
    assert next_click(gt.copy(), gt) is None
    assert next_click(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) is None


def test_excluded_pixels_are_not_clicked_again():
    gt = _square((40, 40), 10, 10, 11)
    first = next_click(np.zeros_like(gt), gt)
    second = next_click(np.zeros_like(gt), gt, exclude=np.array([[first.x, first.y]], np.float32))
    assert (second.x, second.y) != (first.x, first.y)
    assert gt[second.y, second.x] and second.positive
    assert abs(second.x - first.x) <= 1 and abs(second.y - first.y) <= 1
    # only excluded pixels left in error: nothing to click
    one = np.zeros((5, 5), bool)
    one[2, 2] = True
    assert next_click(np.zeros_like(one), one, exclude=np.array([[2, 2]])) is None


def _ritm_next_click(pred: np.ndarray, gt: np.ndarray):
    """RITM's Clicker._get_next_click (padding=True, nothing clicked yet), written out independently."""
    fn = np.pad(gt & ~pred, 1).astype(np.uint8)
    fp = np.pad(pred & ~gt, 1).astype(np.uint8)
    fn_dt = cv2.distanceTransform(fn, cv2.DIST_L2, 0)[1:-1, 1:-1]
    fp_dt = cv2.distanceTransform(fp, cv2.DIST_L2, 0)[1:-1, 1:-1]
    positive = fn_dt.max() > fp_dt.max()
    ys, xs = np.where(fn_dt == fn_dt.max()) if positive else np.where(fp_dt == fp_dt.max())
    return Click(int(xs[0]), int(ys[0]), bool(positive))


@settings(max_examples=200, deadline=None)
@given(arrays(np.bool_, (10, 13)), arrays(np.bool_, (10, 13)))
def test_matches_ritm_reference(pred, gt):
    expected = _ritm_next_click(pred, gt) if (pred != gt).any() else None
    assert next_click(pred, gt) == expected


def test_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(5, 5\)"):
        next_click(np.zeros((4, 4), bool), np.zeros((5, 5), bool))


def test_perfect_predictor_needs_one_click():
    gt = _two_blobs()
    calls = []
    r = clicks_to_reach(lambda p: calls.append(p) or gt.copy(), gt)
    assert r.ious == (1.0,)
    assert r.noc == {0.85: 1, 0.9: 1} and r.reached == {0.85: True, 0.9: True}
    # the first click is at the interior point of the whole gt (the large square's centre)
    assert calls[0].points.tolist() == [[55.0, 40.0]] and calls[0].labels.tolist() == [1]


def test_predictor_that_never_improves_gets_max_clicks():
    gt = _square((40, 40), 5, 5, 20)
    prompts = []
    r = clicks_to_reach(lambda p: prompts.append(p) or np.zeros_like(gt), gt, max_clicks=7)
    assert r.ious == (0.0,) * 7
    assert r.noc == {0.85: 7, 0.9: 7} and r.reached == {0.85: False, 0.9: False}
    assert len(prompts) == 7 and len(r.prompt.points) == 7  # no click is added after the last prediction
    assert r.prompt.labels.tolist() == [1] * 7
    assert len({tuple(p) for p in r.prompt.points.tolist()}) == 7  # every click on a new pixel
    assert all(gt[int(y), int(x)] for x, y in r.prompt.points)


def test_second_click_finds_the_missed_region():
    gt = _two_blobs()
    r = clicks_to_reach(_region_oracle(gt), gt)
    assert r.ious[0] == pytest.approx(441 / 505)
    assert r.ious[1] == 1.0
    assert r.noc == {0.85: 1, 0.9: 2}
    x, y = r.prompt.points[1]
    assert (x, y) == (6.0, 5.0) and r.prompt.labels[1] == 1  # centre of the small square (first of its 4)


def test_stop_when_reached():
    gt = _two_blobs()
    early = clicks_to_reach(_region_oracle(gt), gt, thresholds=(0.85,))
    assert len(early.ious) == 1 and early.noc == {0.85: 1}
    full = clicks_to_reach(_region_oracle(gt), gt, thresholds=(0.85,), stop_when_reached=False)
    assert len(full.ious) == 2 and full.noc == {0.85: 1}  # stops at click 2: no error left


def test_clicks_land_in_the_error_regions_with_the_right_sign():
    gt = np.zeros((80, 80), bool)
    cv2.ellipse(gt.view(np.uint8), (40, 40), (30, 14), 20, 0, 360, 1, -1)
    history: list[np.ndarray] = []
    r = clicks_to_reach(_disk_predictor(gt.shape, 12, history), gt, max_clicks=15, stop_when_reached=False)
    points, labels = r.prompt.points.astype(int), r.prompt.labels
    assert len(points) >= 5 and set(labels[1:].tolist()) == {0, 1}  # both kinds of correction happen
    for k in range(1, len(points)):
        x, y = points[k]
        prev = history[k - 1]
        if labels[k] == 1:
            assert gt[y, x] and not prev[y, x]
        else:
            assert prev[y, x] and not gt[y, x]
    assert r.ious[-1] > r.ious[0]


def test_first_prompt_counts_as_interaction_one():
    gt = _two_blobs()
    box = Prompt.from_box((45, 30, 66, 51))
    seen = []

    def predict(p: Prompt) -> np.ndarray:
        seen.append(p)
        return gt.copy() if p.box is not None else np.zeros_like(gt)

    r = clicks_to_reach(predict, gt, first_prompt=box)
    assert r.noc == {0.85: 1, 0.9: 1}
    assert seen == [box]


def test_threshold_met_exactly_counts():
    gt = _square((10, 10), 0, 0, 4)  # 16 px
    pred = _square((10, 10), 0, 0, 4)
    pred[0, 0] = False  # IoU 15/16 = 0.9375
    r = clicks_to_reach(lambda p: pred, gt, thresholds=(0.9375, 0.95), max_clicks=3)
    assert r.noc == {0.9375: 1, 0.95: 3} and r.reached == {0.9375: True, 0.95: False}


def test_bad_arguments():
    gt = _two_blobs()
    with pytest.raises(ValueError, match="empty"):
        clicks_to_reach(lambda p: gt, np.zeros_like(gt))
    with pytest.raises(ValueError):
        clicks_to_reach(lambda p: gt, gt, thresholds=(1.5,))
    with pytest.raises(ValueError):
        clicks_to_reach(lambda p: gt, gt, max_clicks=0)
    with pytest.raises(ValueError):
        clicks_to_reach(lambda p: np.zeros((3, 3), bool), gt)


def _result(nocs: dict[float, int], reached: dict[float, bool], max_clicks: int = 20) -> ClickResult:
    return ClickResult((0.5,), Prompt(), nocs, reached, max_clicks)


def test_noc_summary():
    results = [
        _result({0.85: 1, 0.9: 2}, {0.85: True, 0.9: True}),
        _result({0.85: 3, 0.9: 20}, {0.85: True, 0.9: False}),
        _result({0.85: 20, 0.9: 20}, {0.85: False, 0.9: False}),
        _result({0.85: 4, 0.9: 6}, {0.85: True, 0.9: True}),
    ]
    s = noc_summary(results)
    assert s["count"] == 4
    assert s["NoC@85"] == pytest.approx(7.0)
    assert s["NoC@90"] == pytest.approx(12.0)
    assert s["NoC@85_std"] == pytest.approx(np.std([1, 3, 20, 4]))
    assert s["failed@85"] == pytest.approx(0.25)
    assert s["failed@90"] == pytest.approx(0.5)


def test_noc_summary_empty_and_mismatched():
    s = noc_summary([])
    assert s["count"] == 0 and math.isnan(s["NoC@85"]) and math.isnan(s["failed@90"])
    with pytest.raises(ValueError):
        noc_summary([_result({0.85: 1}, {0.85: True}), _result({0.9: 1}, {0.9: True})])
