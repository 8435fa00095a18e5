"""Auto with SAM 2.1: sam2's SAM2AutomaticMaskGenerator run on the session's embedding (no second encoder run for
the full image), with progress per batch and cancel between batches, through the same auto_water_mask as SAM v1."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_scenes import make_flood_scene
from tiny_sam2 import tiny_loaded_sam2

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.common.cancel import Cancelled
from floodlabel.core.models.auto_water import auto_water_mask
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.sam2.backend import Sam2Segmenter

FAST = {"points_per_side": 4, "points_per_batch": 8, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
        "box_nms_thresh": 1.0}  # 16 points in 2 batches, nothing filtered out: the plumbing, not the quality


@pytest.fixture(scope="module")
def setup():
    image, _ = make_flood_scene(160, 240, seed=0)
    seg = Sam2Segmenter(tiny_loaded_sam2(seed=0))
    return seg, image, seg.embed(image)


def test_auto_runs_on_the_sessions_embedding(setup, monkeypatch):
    seg, image, emb = setup
    assert seg.capabilities.auto_masks
    monkeypatch.setattr(seg, "embed", lambda *a, **k: pytest.fail("the full-image embedding was computed again"))
    progress = []
    mask = auto_water_mask(SegmentationSession(seg), image, emb, Prompt.point(120, 80), progress=progress.append,
                           **FAST)
    assert mask.shape == (160, 240) and mask.dtype == bool
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(progress) and len(progress) >= 5


def test_auto_cancels_between_batches(setup):
    seg, image, emb = setup
    calls = []

    def checkpoint():
        calls.append(1)
        if len(calls) == 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        auto_water_mask(SegmentationSession(seg), image, emb, Prompt.point(120, 80), checkpoint=checkpoint, **FAST)
    assert len(calls) == 2


def test_a_segment_holding_the_click_becomes_water(setup):
    """With every segment kept (thresholds 0), the click's pixel is water unless a negative point vetoes it."""
    seg, image, emb = setup
    session = SegmentationSession(seg)
    kept = auto_water_mask(session, image, emb, Prompt.point(120, 80), **{**FAST, "points_per_side": 2})
    vetoed = auto_water_mask(session, image, emb, Prompt(np.array([[120, 80], [120, 80]], np.float32),
                                                          np.array([1, 0])), **{**FAST, "points_per_side": 2})
    assert kept[80, 120] and kept.mean() > 0.5  # random weights: big speckled segments, 12 of them here
    assert not vetoed.any()


def test_evals_auto_rows_run_sam21s_generator(setup, monkeypatch):
    """`eval --prompt auto` (core.evaluation.auto) takes the same family dispatch (a small grid here: speed)."""
    from floodlabel.core.evaluation import auto

    seg, image, emb = setup
    monkeypatch.setattr(auto, "AMG_KWARGS", {**FAST, "points_per_side": 2})
    gt = np.zeros(image.shape[:2], bool)
    gt[40:120, 60:200] = True
    mask, score = auto.auto_water_prediction(SegmentationSession(seg), image, emb, gt)
    assert mask.shape == gt.shape and mask.dtype == bool and 0.0 <= score <= 1.0
