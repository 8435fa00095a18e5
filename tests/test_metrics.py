"""Mask metrics: known values, empty-mask conventions, properties, aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from floodlabel.core.evaluation.metrics import MaskMetrics, aggregate, mask_metrics, metrics_from_counts


def _pair(shape=(6, 7)):
    return st.tuples(arrays(np.bool_, shape), arrays(np.bool_, shape))


def test_known_values():
    pred = np.zeros((4, 4), bool)
    gt = np.zeros((4, 4), bool)
    pred[0, :3] = True  # 3 predicted
    gt[0, 1:] = True  # 3 true, 2 overlap
    m = mask_metrics(pred, gt)
    assert m.iou == pytest.approx(2 / 4)
    assert m.dice == pytest.approx(4 / 6)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)


def test_non_bool_masks_count_nonzero_as_water():
    pred = np.array([[0, 255], [255, 0]], np.uint8)
    gt = np.array([[0, 1], [0, 0]], np.uint8)
    assert mask_metrics(pred, gt) == mask_metrics(pred > 0, gt > 0)
    assert mask_metrics(pred, gt).precision == pytest.approx(0.5)


def test_both_empty_is_perfect():
    e = np.zeros((3, 5), bool)
    assert mask_metrics(e, e) == MaskMetrics(1.0, 1.0, 1.0, 1.0)


def test_empty_prediction_with_water():
    gt = np.zeros((3, 5), bool)
    gt[1, 2] = True
    assert mask_metrics(np.zeros_like(gt), gt) == MaskMetrics(iou=0.0, dice=0.0, precision=1.0, recall=0.0)


def test_prediction_without_water_in_gt():
    pred = np.zeros((3, 5), bool)
    pred[0, 0] = True
    assert mask_metrics(pred, np.zeros_like(pred)) == MaskMetrics(iou=0.0, dice=0.0, precision=0.0, recall=1.0)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(4, 3\)"):
        mask_metrics(np.zeros((3, 4), bool), np.zeros((4, 3), bool))


def test_rejects_non_2d():
    with pytest.raises(ValueError):
        mask_metrics(np.zeros((2, 3, 4), bool), np.zeros((2, 3, 4), bool))


def test_inconsistent_counts_rejected():
    with pytest.raises(ValueError):
        metrics_from_counts(5, 3, 10)


@settings(max_examples=200, deadline=None)
@given(_pair())
def test_properties(pair):
    p, g = pair
    m = mask_metrics(p, g)
    swapped = mask_metrics(g, p)
    for v in m.as_dict().values():
        assert 0.0 <= v <= 1.0
    assert m.iou == pytest.approx(swapped.iou)
    assert m.dice == pytest.approx(swapped.dice)
    assert m.precision == pytest.approx(swapped.recall)
    assert m.recall == pytest.approx(swapped.precision)
    assert m.dice == pytest.approx(2 * m.iou / (1 + m.iou))
    assert m.iou <= min(m.precision, m.recall) + 1e-12
    assert m.iou <= m.dice + 1e-12
    # IoU by an independent formula (float sums), where defined.
    union = np.logical_or(p, g).sum()
    if union:
        assert m.iou == pytest.approx(np.logical_and(p, g).sum() / union)


@settings(max_examples=100, deadline=None)
@given(arrays(np.bool_, (5, 8)))
def test_identical_masks_score_one(mask):
    assert mask_metrics(mask, mask.copy()) == MaskMetrics(1.0, 1.0, 1.0, 1.0)


@st.composite
def _disjoint_nonempty(draw, shape=(6, 7)):
    """(pred, gt): disjoint and both non-empty by construction (labels 1 and 2, each forced at one pixel)."""
    labels = draw(arrays(np.int8, shape, elements=st.integers(0, 2)))
    size = shape[0] * shape[1]
    i = draw(st.integers(0, size - 1))
    j = draw(st.integers(0, size - 2))
    j += j >= i  # a pixel other than i
    labels.flat[i], labels.flat[j] = 1, 2
    return labels == 1, labels == 2


@settings(max_examples=100, deadline=None)
@given(_disjoint_nonempty())
def test_disjoint_nonempty_masks_score_zero(pair):
    p, g = pair
    assert p.any() and g.any() and not (p & g).any()
    m = mask_metrics(p, g)
    assert (m.iou, m.dice, m.precision, m.recall) == (0.0, 0.0, 0.0, 0.0)


def test_aggregate_mean_and_population_std():
    ms = [MaskMetrics(0.5, 0.6, 0.7, 0.8), MaskMetrics(1.0, 1.0, 0.9, 0.6)]
    s = aggregate(ms)
    assert s.count == 2
    assert s.iou.mean == pytest.approx(0.75)
    assert s.iou.std == pytest.approx(0.25)  # ddof=0: sqrt(((0.25)^2 + (0.25)^2) / 2)
    assert s.recall.mean == pytest.approx(0.7) and s.recall.std == pytest.approx(0.1)
    assert s.as_dict()["dice"] == pytest.approx((0.8, 0.2))
    assert str(s.iou) == "0.750 ± 0.250"


def test_aggregate_single_and_empty():
    one = aggregate([MaskMetrics(0.3, 0.4, 0.5, 0.6)])
    assert one.count == 1 and one.precision.mean == 0.5 and one.precision.std == 0.0
    empty = aggregate([])
    assert empty.count == 0
    assert all(math.isnan(mu) and math.isnan(sd) for mu, sd in empty.as_dict().values())


def test_12_megapixels_match_the_pixel_counts():
    rng = np.random.default_rng(0)
    pred = rng.random((3000, 4000)) < 0.5
    gt = rng.random((3000, 4000)) < 0.5
    tp, p, g = int((pred & gt).sum()), int(pred.sum()), int(gt.sum())
    assert mask_metrics(pred, gt) == metrics_from_counts(tp, p, g)
