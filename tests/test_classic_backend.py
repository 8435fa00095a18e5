"""ClassicSegmenter (GrabCut) on synthetic flood scenes: quality, prompt handling, shapes, determinism."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from floodlabel.core.classic.backend import LOGIT_CLIP, WORK_LONG_SIDE, ClassicSegmenter
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.segment.segmenter import Segmenter
from synthetic_scenes import bounding_box, interior_point, iou, make_flood_scene, make_flooded_town


@pytest.fixture(scope="module")
def seg() -> ClassicSegmenter:
    return ClassicSegmenter()


def _best(pred) -> np.ndarray:
    return pred.masks[pred.best]


def test_implements_segmenter_protocol(seg):
    assert isinstance(seg, Segmenter)
    assert seg.model_id == "classic-grabcut-v3"


SEEDS = range(20)

# Best-candidate IoU over seeds 0-19 of 120x160 scenes (small, so the 60 scenes take ~1.5 s), measured with
# `classic-grabcut-v2` (OpenCV 4, this repository's synthetic_scenes):
#   scene / prompt    mean    10% quantile   min (seed)
#   lake / point      0.9722  0.9216         0.856 (19)
#   river / point     0.9045  0.8294         0.700 (8)
#   lake / box        0.9985  0.9967         0.989 (7)
#   (classic-grabcut-v3, issue 14's box colour prior: lake / box 0.9887, 10% quantile 0.970, min 0.934 (4);
#   points unchanged)
# (240x320 scenes score the same way: lake point 0.951 / 0.900, river point 0.901 / 0.848, lake box 0.994 / 0.980,
# at 3x the time.) The thresholds below are these figures less 0.02 (mean) and 0.03 (quantile).
SWEEPS = {
    ("lake", "point"): (0.95, 0.89),
    ("river", "point"): (0.88, 0.80),
    ("lake", "box"): (0.978, 0.966),
}


def _sweep(seg, kind: str, mode: str) -> np.ndarray:
    scores = []
    for seed in SEEDS:
        image, gt = make_flood_scene(120, 160, seed=seed, kind=kind)
        if mode == "point":
            prompt = Prompt.point(*interior_point(gt))
        else:
            prompt = Prompt.from_box(bounding_box(gt, margin=5))
        pred = seg.predict(seg.embed(image), prompt)
        if mode == "box":
            outside = np.ones_like(gt)
            x0, y0, x1, y1 = (int(v) for v in bounding_box(gt, margin=5))
            outside[y0:y1, x0:x1] = False
            assert not pred.masks[:, outside].any(), f"seed {seed}: mask outside the box"
        scores.append(iou(_best(pred), gt))
    return np.array(scores)


@pytest.mark.parametrize("kind,mode", list(SWEEPS))
def test_quality_over_seeds(seg, kind, mode):
    """A point in the water or a box around it segments the water: mean and 10% quantile over 20 seeds."""
    scores = _sweep(seg, kind, mode)
    mean_min, low_min = SWEEPS[kind, mode]
    detail = f"{kind} {mode}: " + " ".join(f"{v:.3f}" for v in scores)
    assert scores.mean() >= mean_min, detail
    assert np.quantile(scores, 0.1) >= low_min, detail


def _box_iou(seg, image, gt, box) -> tuple[float, np.ndarray]:
    """IoU of the box prompt's mask with the water inside the box (nothing outside a box can be water)."""
    inside = np.zeros_like(gt)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    inside[y0:y1, x0:x1] = True
    mask = seg.predict(seg.embed(image), Prompt.from_box(box), multimask=False).masks[0]
    assert not (mask & ~inside).any(), "mask outside the box"
    return iou(mask, gt & inside), mask


def test_box_over_the_middle_of_a_river(seg):
    """Issue 14: a box over the middle of a river (half the image wide, the river's width high, so it holds
    river and fields and the river goes on past both ends) gave empty masks for every seed: the old box rule made
    the smoothest 60 % probable water, the rest probable background and the river outside sure background, so
    both colour models learnt the water and GrabCut dropped it. Measured (seeds 0-19, 120x160, classic-grabcut-v3):
    mean 0.907, 10 % quantile 0.838, min 0.253 (seed 8: its box is 71 % fields); thresholds 0.02 / 0.03 lower."""
    scores = []
    for seed in SEEDS:
        image, gt = make_flood_scene(120, 160, seed=seed, kind="river")
        x, y = interior_point(gt)
        half = cv2.distanceTransform(np.pad(gt, 1).astype(np.uint8), cv2.DIST_L2, 5).max()
        box = (max(0, round(x - 40)), max(0, round(y - half)), min(160, round(x + 40)), min(120, round(y + half)))
        score, mask = _box_iou(seg, image, gt, box)
        assert mask.any(), f"seed {seed}: empty mask"
        assert score > 0.2, f"seed {seed}: IoU {score:.3f}"
        scores.append(score)
    detail = " ".join(f"{v:.3f}" for v in scores)
    assert np.mean(scores) >= 0.887, detail
    assert np.quantile(scores, 0.1) >= 0.808, detail


def test_box_over_a_flooded_town_does_not_collapse(seg):
    """Issue 14: water between densely packed roofs (an aerial photo of a flooded town) is so fragmented that
    GrabCut's iterations shrank the foreground to nothing for a box over the middle of the town, even with the
    right colour prior; the collapse guard keeps its last sound labelling. Measured (seeds 0-9): IoU 0.354 and up
    (without the guard: 0.000 for every seed)."""
    for seed in range(10):
        image, gt = make_flooded_town(120, 160, seed=seed)
        score, mask = _box_iou(seg, image, gt, (40.0, 30.0, 120.0, 90.0))
        assert mask.any(), f"seed {seed}: empty mask"
        assert score > 0.3, f"seed {seed}: IoU {score:.3f}"


def test_negative_point_removes_a_region(seg):
    image, gt = make_flood_scene(240, 320, seed=1, kind="scattered")
    emb = seg.embed(image)
    n, comp = cv2.connectedComponents(gt.astype(np.uint8))
    puddles = sorted(range(1, n), key=lambda i: -(comp == i).sum())
    keep, drop = comp == puddles[0], comp == puddles[1]
    prompt = Prompt.point(*interior_point(keep)).with_box(bounding_box(gt, margin=5))
    before = _best(seg.predict(emb, prompt))
    assert (before & drop).sum() / drop.sum() > 0.8
    after = _best(seg.predict(emb, prompt.with_point(*interior_point(drop), positive=False)))
    assert (after & drop).sum() / drop.sum() < 0.2
    assert (after & keep).sum() / keep.sum() > 0.9


def test_shapes_dtypes_and_three_candidates(seg):
    image, gt = make_flood_scene(120, 200, seed=0)
    pred = seg.predict(seg.embed(image), Prompt.point(*interior_point(gt)))
    assert pred.masks.shape == (3, 120, 200) and pred.masks.dtype == bool
    assert pred.scores.shape == (3,) and pred.scores.dtype == np.float32
    assert np.all((pred.scores > 0) & (pred.scores < 1))
    assert pred.low_res_logits.shape == (3, 256, 256) and pred.low_res_logits.dtype == np.float32
    assert np.abs(pred.low_res_logits).max() <= LOGIT_CLIP
    single = seg.predict(seg.embed(image), Prompt.point(*interior_point(gt)), multimask=False)
    assert single.masks.shape == (1, 120, 200) and single.scores.shape == (1,)
    np.testing.assert_array_equal(single.masks[0], pred.masks[pred.best])


def test_low_res_logits_use_sams_padded_frame(seg):
    image, gt = make_flood_scene(120, 240, seed=0)  # 1:2, so the image fills the top half of the 256 frame
    pred = seg.predict(seg.embed(image), Prompt.point(*interior_point(gt)), multimask=False)
    logits = pred.low_res_logits[0]
    assert np.all(logits[128:] == -LOGIT_CLIP)  # padding
    low = cv2.resize(pred.masks[0].astype(np.uint8), (256, 128), interpolation=cv2.INTER_AREA) > 0
    assert iou(logits[:128] > 0, low) > 0.9


def test_output_size_is_honoured_and_upscaling_is_smooth(seg):
    image, gt = make_flood_scene(120, 160, seed=4)
    emb = seg.embed(image)
    prompt = Prompt.point(*interior_point(gt))
    small = seg.predict(emb, prompt, multimask=False).masks[0]
    big = seg.predict(emb, prompt, multimask=False, output_size=(480, 640)).masks[0]
    assert big.shape == (480, 640)
    blocky = cv2.resize(small.astype(np.uint8), (640, 480), interpolation=cv2.INTER_NEAREST).astype(bool)
    assert iou(big, blocky) > 0.95
    assert not np.array_equal(big, blocky)  # a soft map was interpolated, not the bool mask repeated


def test_large_image_is_worked_on_downscaled(seg):
    image, gt = make_flood_scene(300, 1000, seed=5, kind="river")
    emb = seg.embed(image)
    assert emb.original_size == (300, 1000)
    assert max(emb.input_size) == WORK_LONG_SIDE and emb.features.shape[:2] == emb.input_size
    pred = seg.predict(emb, Prompt.point(*interior_point(gt)))
    assert pred.masks.shape == (3, 300, 1000)
    assert iou(_best(pred), gt) > 0.85


def test_deterministic(seg):
    image, gt = make_flood_scene(160, 200, seed=6, kind="scattered")
    prompt = Prompt.from_box(bounding_box(gt, margin=4)).with_point(*interior_point(gt))
    a = seg.predict(seg.embed(image), prompt)
    cv2.setRNGSeed(999)  # disturbing cv2's global RNG does not matter
    b = ClassicSegmenter().predict(ClassicSegmenter().embed(image), prompt)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.low_res_logits, b.low_res_logits)


def test_mask_input_round_trip_keeps_the_mask(seg):
    image, gt = make_flood_scene(160, 240, seed=7)
    emb = seg.embed(image)
    prompt = Prompt.point(*interior_point(gt))
    first = seg.predict(emb, prompt, multimask=False)
    again = seg.predict(emb, prompt, multimask=False, mask_input=first.low_res_logits[0])
    assert iou(again.masks[0], first.masks[0]) > 0.95


def test_empty_prompt_raises(seg):
    image, _ = make_flood_scene(64, 64, seed=0)
    with pytest.raises(ValueError):
        seg.predict(seg.embed(image), Prompt())


def test_only_negative_points_give_empty_masks(seg):
    image, gt = make_flood_scene(96, 128, seed=0)
    pred = seg.predict(seg.embed(image), Prompt.point(*interior_point(~gt), positive=False))
    assert pred.masks.shape == (3, 96, 128) and not pred.masks.any()
    assert np.all(pred.low_res_logits < 0)


def test_degenerate_prompts_are_handled(seg):
    image, gt = make_flood_scene(120, 160, seed=0)
    emb = seg.embed(image)
    x, y = interior_point(gt)
    zero_box = seg.predict(emb, Prompt.from_box((x, y, x, y)))  # acts as a click at its centre
    assert iou(_best(zero_box), gt) > 0.9
    clipped = seg.predict(emb, Prompt(np.array([[-40.0, 1e6]], np.float32), np.array([1], np.int32)))
    assert clipped.masks.shape == (3, 120, 160) and clipped.masks[:, 119, 0].all()
    whole = seg.predict(emb, Prompt.from_box((0, 0, 160, 120)))
    assert whole.masks.shape == (3, 120, 160)


def test_embed_rejects_non_rgb(seg):
    with pytest.raises(ValueError):
        seg.embed(np.zeros((10, 10), np.uint8))
