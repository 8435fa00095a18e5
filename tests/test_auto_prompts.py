"""Automatic prompts from ground-truth masks: interior points, half-open boxes, per-component prompts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from floodlabel.core.evaluation.auto_prompts import (
    border_distance,
    bounding_box,
    deepest_point,
    box_prompt,
    component_prompts,
    interior_point,
    multi_point_prompt,
    point_and_box_prompt,
    point_prompt,
)


def _two_blobs() -> np.ndarray:
    """60x80 mask: a small 5x5 square top-left, a large 21x21 square bottom-right (odd sizes: unique centres)."""
    gt = np.zeros((60, 80), bool)
    gt[2:7, 3:8] = True  # 25 px, centre (x=5, y=4)
    gt[30:51, 45:66] = True  # 441 px, centre (x=55, y=40)
    return gt


def test_point_prompt_at_centre_in_xy_order():
    gt = np.zeros((40, 100), bool)
    gt[10:21, 70:81] = True  # 11 x 11 square: centre row 15, col 75
    p = point_prompt(gt)
    assert p.points.tolist() == [[75.0, 15.0]]
    assert p.labels.tolist() == [1]
    assert p.box is None


def test_flat_ridge_takes_first_pixel_in_row_major_order():
    gt = np.zeros((40, 100), bool)
    gt[10:21, 60:91] = True  # 11 x 31: every pixel of row 15 from x=65 to 85 is 6 px from the edge
    assert interior_point(gt) == (65, 15)


def test_image_border_counts_as_boundary():
    gt = np.zeros((21, 40), bool)
    gt[:, :21] = True  # 21 x 21, touching the top, bottom and left edges
    x, y = interior_point(gt)
    assert (x, y) == (10, 10)  # centre of the square, not at the left edge
    d = border_distance(gt)
    assert d[10, 0] == 1.0 and d[0, 10] == 1.0 and d[10, 30] == 0.0


def test_box_is_half_open():
    gt = np.zeros((10, 12), bool)
    gt[5, 3] = True
    assert bounding_box(gt) == (3, 5, 4, 6)
    gt[2:8, 4:11] = True
    x0, y0, x1, y1 = bounding_box(gt)
    assert (x0, y0, x1, y1) == (3, 2, 11, 8)
    assert gt[y0:y1, x0:x1].sum() == gt.sum()
    assert box_prompt(gt).box.tolist() == [3.0, 2.0, 11.0, 8.0]
    assert len(box_prompt(gt).points) == 0


def test_point_and_box():
    gt = np.zeros((30, 30), bool)
    gt[5:16, 10:21] = True
    p = point_and_box_prompt(gt)
    assert p.points.tolist() == [[15.0, 10.0]]
    assert p.labels.tolist() == [1]
    assert p.box.tolist() == [10.0, 5.0, 21.0, 16.0]


@pytest.mark.parametrize(
    "make",
    [
        point_prompt,
        box_prompt,
        point_and_box_prompt,
        multi_point_prompt,
        lambda g: component_prompts(g, "both"),
    ],
)
def test_empty_gt_raises(make):
    with pytest.raises(ValueError, match="empty"):
        make(np.zeros((8, 8), bool))


def test_component_points_largest_first():
    gt = _two_blobs()
    prompts = component_prompts(gt, "point", min_area=1)
    assert [p.points.tolist() for p in prompts] == [[[55.0, 40.0]], [[5.0, 4.0]]]
    assert all(p.box is None and p.labels.tolist() == [1] for p in prompts)


def test_component_boxes_and_both():
    gt = _two_blobs()
    boxes = component_prompts(gt, "box", min_area=1)
    assert [p.box.tolist() for p in boxes] == [[45, 30, 66, 51], [3, 2, 8, 7]]
    assert all(len(p.points) == 0 for p in boxes)
    both = component_prompts(gt, "both", min_area=1)
    assert [(p.points.tolist(), p.box.tolist()) for p in both] == [
        ([[55.0, 40.0]], [45, 30, 66, 51]),
        ([[5.0, 4.0]], [3, 2, 8, 7]),
    ]


def test_component_filters():
    gt = _two_blobs()
    assert len(component_prompts(gt, min_area=26)) == 1  # the 25 px square is dropped
    assert len(component_prompts(gt, min_area=1, max_components=1)) == 1
    # the largest region is kept even when it is below min_area
    tiny = np.zeros((20, 20), bool)
    tiny[3, 3] = tiny[10, 10:12] = True
    only = component_prompts(tiny, "point", min_area=100)
    assert [p.points.tolist() for p in only] == [[[10.0, 10.0]]]
    with pytest.raises(ValueError):
        component_prompts(gt, kind="circle")
    with pytest.raises(ValueError):
        component_prompts(gt, max_components=0)


def test_diagonal_pixels_are_one_component():
    gt = np.eye(6, dtype=bool)  # 8-connected: one region
    assert len(component_prompts(gt, min_area=1, max_components=None)) == 1


def test_multi_point_prompt():
    gt = _two_blobs()
    p = multi_point_prompt(gt, max_points=5, min_area=1)
    assert p.points.tolist() == [[55.0, 40.0], [5.0, 4.0]]
    assert p.labels.tolist() == [1, 1]
    assert p.box is None
    assert len(multi_point_prompt(gt, max_points=1, min_area=1).points) == 1


@settings(max_examples=150, deadline=None)
@given(arrays(np.bool_, (12, 15)))
def test_points_and_boxes_land_on_water(gt):
    if not gt.any():
        return
    x, y = interior_point(gt)
    assert gt[y, x]
    d = border_distance(gt)
    assert d[y, x] == d.max()
    x0, y0, x1, y1 = bounding_box(gt)
    assert gt[y0:y1, x0:x1].sum() == gt.sum()
    assert gt[y0, x0:x1].any() and gt[y1 - 1, x0:x1].any() and gt[y0:y1, x0].any() and gt[y0:y1, x1 - 1].any()


@settings(max_examples=150, deadline=None)
@given(arrays(np.bool_, (12, 15)))
def test_component_point_is_that_components_own_interior_point(gt):
    """The per-component crop gives exactly the interior point of the component taken alone."""
    if not gt.any():
        return
    _, labels = cv2.connectedComponents(gt.view(np.uint8), connectivity=8)
    prompts = component_prompts(gt, "both", min_area=0, max_components=None)
    assert len(prompts) == labels.max()
    areas = []
    for p in prompts:
        x, y = (int(v) for v in p.points[0])
        comp = labels == labels[y, x]
        assert (x, y) == interior_point(comp)
        assert tuple(p.box.tolist()) == bounding_box(comp)
        areas.append(comp.sum())
    assert areas == sorted(areas, reverse=True)


@settings(max_examples=150, deadline=None)
@given(
    arrays(np.bool_, (12, 15)),
    st.lists(st.tuples(st.integers(0, 14), st.integers(0, 11)), max_size=6),
)
def test_cropped_deepest_point_equals_full_image_transform(mask, exclude):
    full = border_distance(mask).copy()
    for x, y in exclude:
        full[y, x] = 0.0
    got = deepest_point(mask, np.array(exclude, np.float32).reshape(-1, 2))
    if full.max() == 0:
        assert got is None
    else:
        y, x = np.unravel_index(np.argmax(full), full.shape)
        assert got == (x, y, float(full.max()))
