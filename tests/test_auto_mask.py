"""AMG segments -> water mask: selection rules on hand-made segments, and a tiny random SAM end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything.utils.amg import mask_to_rle_pytorch

from floodlabel.core.sam.auto_mask import generate_segments, water_mask_from_segments
from synthetic_scenes import make_flood_scene
from tiny_sam import tiny_sam

H, W = 40, 60


def _segment(y0: int, y1: int, x0: int, x1: int) -> dict:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return {"segmentation": m, "area": int(m.sum()), "bbox": [x0, y0, x1 - x0, y1 - y0], "predicted_iou": 0.9}


@pytest.fixture
def segments() -> list[dict]:
    # A: left block, B: right block, C: a small piece inside A (overlapping segments, as AMG gives)
    return [_segment(0, 40, 0, 30), _segment(0, 40, 30, 60), _segment(10, 20, 5, 15)]


def test_positive_point_selects_every_segment_containing_it(segments):
    out = water_mask_from_segments(segments, (H, W), positive_points=np.array([[10.5, 15.2]]))
    np.testing.assert_array_equal(out, segments[0]["segmentation"])  # A (C lies inside A)


def test_negative_point_vetoes_segments_containing_it(segments):
    pos = np.array([[10, 15], [45, 5]])
    both = water_mask_from_segments(segments, (H, W), positive_points=pos)
    assert both.all()
    vetoed = water_mask_from_segments(segments, (H, W), positive_points=pos, negative_points=np.array([[2, 2]]))
    # A contains the negative point and is dropped; C (positive, no negative) and B stay
    np.testing.assert_array_equal(vetoed, segments[1]["segmentation"] | segments[2]["segmentation"])


def test_points_outside_the_image_select_nothing(segments):
    out = water_mask_from_segments(segments, (H, W), positive_points=np.array([[-1, 5], [60, 5], [5, 40]]))
    assert not out.any()
    assert not water_mask_from_segments(segments, (H, W), positive_points=np.zeros((0, 2))).any()


def test_oracle_uses_overlap_with_gt(segments):
    gt = np.zeros((H, W), bool)
    gt[:, 20:] = True  # covers 1/3 of A, all of B, none of C
    out = water_mask_from_segments(segments, (H, W), gt=gt)
    np.testing.assert_array_equal(out, segments[1]["segmentation"])
    loose = water_mask_from_segments(segments, (H, W), gt=gt, min_overlap=0.3)
    np.testing.assert_array_equal(loose, segments[0]["segmentation"] | segments[1]["segmentation"])


def test_accepts_uncompressed_rle(segments):
    rle = mask_to_rle_pytorch(torch.from_numpy(segments[1]["segmentation"][None]))[0]
    out = water_mask_from_segments([{"segmentation": rle}], (H, W), positive_points=np.array([[40, 20]]))
    np.testing.assert_array_equal(out, segments[1]["segmentation"])


def test_bad_arguments_raise(segments):
    with pytest.raises(ValueError):
        water_mask_from_segments(segments, (H, W))
    with pytest.raises(ValueError):
        water_mask_from_segments(segments, (H, W), positive_points=np.array([[1, 1]]), gt=np.ones((H, W), bool))
    with pytest.raises(ValueError):
        water_mask_from_segments(segments, (H + 1, W), positive_points=np.array([[1, 1]]))


def test_generate_segments_with_a_tiny_random_sam():
    # 2 x 2 prompts: the mask decoder costs ~0.1-0.3 s per prompt on a busy 2-core CPU
    image, gt = make_flood_scene(48, 64, seed=0)
    segments = generate_segments(
        tiny_sam(seed=0).eval(), image, points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0
    )
    assert len(segments) > 0
    for s in segments:
        assert s["segmentation"].shape == (48, 64) and s["segmentation"].dtype == bool
        assert s["area"] == int(s["segmentation"].sum())
        assert {"bbox", "predicted_iou", "point_coords", "stability_score"} <= s.keys()
    oracle = water_mask_from_segments(segments, (48, 64), gt=gt, min_overlap=0.0)
    assert oracle.dtype == bool and oracle.shape == (48, 64)
    assert oracle.sum() == np.logical_or.reduce([s["segmentation"] for s in segments]).sum()


def test_generate_segments_rejects_non_rgb():
    with pytest.raises(ValueError):
        generate_segments(None, np.zeros((8, 8), np.uint8))
