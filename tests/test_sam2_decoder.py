"""FloodLabel's SAM 2.1 decoder (Sam2Segmenter.predict over FastSam2Decoder) against SAM2ImagePredictor.predict on
the same clicks: landscape, portrait and square images; points, boxes, both; multimask and single-mask (SAM 2.1's
stability fall-back); refinement chains (the previous click's low-res logits as mask_input). Decoder only: both get
the same random features, no encoder runs (the encoder is compared in test_sam2_backend)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sam2.sam2_image_predictor import SAM2ImagePredictor
from tiny_sam2 import tiny_loaded_sam2

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.sam2.backend import Sam2Segmenter
from floodlabel.core.segment.compute_config import ComputeConfig
from floodlabel.core.segment.segmenter import Embedding

SHAPES = {"landscape": (551, 893), "portrait": (900, 500), "square": (640, 640)}
FP32 = ComputeConfig("cpu", torch.float32, torch.float32)
BF16 = ComputeConfig("cpu", torch.float32, torch.bfloat16)


@pytest.fixture(scope="module")
def loaded():
    return tiny_loaded_sam2(seed=3)


@pytest.fixture(scope="module")
def features():
    g = torch.Generator().manual_seed(7)
    return {"image_embed": torch.randn(1, 256, 64, 64, generator=g) * 0.5,
            "high_res_feats_0": torch.randn(1, 32, 256, 256, generator=g) * 0.5,
            "high_res_feats_1": torch.randn(1, 64, 128, 128, generator=g) * 0.5}


def reference(loaded, features, size) -> SAM2ImagePredictor:
    predictor = SAM2ImagePredictor(loaded.model)
    predictor._features = {"image_embed": features["image_embed"],
                           "high_res_feats": [features["high_res_feats_0"], features["high_res_feats_1"]]}
    predictor._orig_hw = [size]
    predictor._is_image_set = True
    return predictor


def prompts(size, n=6, seed=0):
    """Points, negative points, boxes and box + point, inside an (H, W) image."""
    h, w = size
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x, y = float(rng.uniform(0, w - 1)), float(rng.uniform(0, h - 1))
        if i % 3 == 0:
            out.append(Prompt.point(x, y))
        elif i % 3 == 1:
            out.append(Prompt(np.array([[x, y], [w - 1 - x, h - 1 - y]], np.float32), np.array([1, 0])))
        else:
            x0, y0 = min(x, w - 60), min(y, h - 60)
            box = np.array([x0, y0, x0 + 50 + 0.3 * x, y0 + 40 + 0.2 * y], np.float32).clip(0, [w, h, w, h])
            points = np.array([[x0 + 20, y0 + 15]], np.float32) if i % 2 else np.zeros((0, 2), np.float32)
            out.append(Prompt(points, np.ones(len(points), int), box))
    return out


def ref_predict(predictor, prompt: Prompt, multimask: bool, mask_input=None):
    points = prompt.points if len(prompt.points) else None
    return predictor.predict(points, prompt.labels if points is not None else None, box=prompt.box,
                             mask_input=None if mask_input is None else mask_input[None],
                             multimask_output=multimask)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("multimask", [True, False])
def test_fp32_agrees_with_sam2_image_predictor(loaded, features, shape, multimask):
    size = SHAPES[shape]
    seg = Sam2Segmenter(loaded, FP32)
    predictor = reference(loaded, features, size)
    emb = Embedding(features, size, (1024, 1024), seg.model_id)
    agree = []
    for prompt in prompts(size):
        ref_masks, ref_scores, ref_low = ref_predict(predictor, prompt, multimask)
        pred = seg.predict(emb, prompt, multimask=multimask)
        assert pred.masks.shape == ref_masks.shape == (3 if multimask else 1, *size)
        np.testing.assert_allclose(pred.scores, ref_scores, atol=1e-4)
        np.testing.assert_allclose(pred.low_res_logits, ref_low, atol=2e-3)
        agree.append((pred.masks == ref_masks.astype(bool)).mean())
    assert min(agree) >= 0.9999, agree


@pytest.mark.parametrize("shape", SHAPES)
def test_bf16_agrees_on_99_5_percent(loaded, features, shape):
    size = SHAPES[shape]
    seg = Sam2Segmenter(loaded, BF16)
    predictor = reference(loaded, features, size)
    emb = Embedding(features, size, (1024, 1024), seg.model_id)
    agree = []
    for prompt in prompts(size, seed=1):
        ref_masks, ref_scores, _ = ref_predict(predictor, prompt, True)
        pred = seg.predict(emb, prompt)
        np.testing.assert_allclose(pred.scores, ref_scores, atol=0.02)
        agree.append((pred.masks == ref_masks.astype(bool)).mean())
    assert np.mean(agree) >= 0.995 and min(agree) >= 0.99, agree


@pytest.mark.parametrize("shape", SHAPES)
def test_refinement_chains_match(loaded, features, shape):
    """Click after click, each fed the previous best candidate's low-res logits, as the window does."""
    size = SHAPES[shape]
    h, w = size
    seg = Sam2Segmenter(loaded, FP32)
    predictor = reference(loaded, features, size)
    emb = Embedding(features, size, (1024, 1024), seg.model_id)
    rng = np.random.default_rng(5)
    points = np.zeros((0, 2), np.float32)
    labels = np.zeros(0, int)
    ours_prev = ref_prev = None
    for click in range(4):
        points = np.vstack([points, [[rng.uniform(0, w - 1), rng.uniform(0, h - 1)]]]).astype(np.float32)
        labels = np.append(labels, 1 if click % 2 == 0 else 0)
        prompt = Prompt(points, labels)
        multimask = click == 0
        ref_masks, ref_scores, ref_low = ref_predict(predictor, prompt, multimask, ref_prev)
        pred = seg.predict(emb, prompt, multimask=multimask, mask_input=ours_prev)
        assert (pred.masks == ref_masks.astype(bool)).mean() >= 0.9999
        np.testing.assert_allclose(pred.scores, ref_scores, atol=1e-4)
        ours_prev = pred.low_res_logits[pred.best]
        ref_prev = ref_low[int(np.argmax(ref_scores))]
        np.testing.assert_allclose(ours_prev, ref_prev, atol=2e-3)
        assert np.abs(ours_prev).max() <= 32.0  # clamped as SAM2ImagePredictor returns them


def test_output_size_and_lazy_candidates(loaded, features):
    seg = Sam2Segmenter(loaded, FP32)
    emb = Embedding(features, (551, 893), (1024, 1024), seg.model_id)
    pred = seg.predict(emb, Prompt.point(400, 300), output_size=(276, 447))
    assert pred.mask(pred.best).shape == (276, 447) and pred.masks.shape == (3, 276, 447)
    with pytest.raises(ValueError, match="empty prompt"):
        seg.predict(emb, Prompt(np.zeros((0, 2), np.float32), np.zeros(0, int)))
    other = Embedding(features, (551, 893), (1024, 1024), "sam-vit_b-0")
    with pytest.raises(ValueError, match="embedding of sam-vit_b-0"):
        seg.predict(other, Prompt.point(1, 1))


def test_single_mask_takes_mask_zero_when_it_is_stable(loaded, features, monkeypatch):
    """With random weights mask 0 is never stable (the fall-back branch runs in the tests above); a threshold of 0
    makes it always stable, in SAM 2.1's decoder and ours alike."""
    monkeypatch.setattr(loaded.model.sam_mask_decoder, "dynamic_multimask_stability_thresh", 0.0)
    size = SHAPES["landscape"]
    seg = Sam2Segmenter(loaded, FP32)
    predictor = reference(loaded, features, size)
    emb = Embedding(features, size, (1024, 1024), seg.model_id)
    for prompt in prompts(size, n=3):
        ref_masks, ref_scores, ref_low = ref_predict(predictor, prompt, False)
        all_ref = ref_predict(predictor, prompt, True)
        pred = seg.predict(emb, prompt, multimask=False)
        assert (pred.masks == ref_masks.astype(bool)).mean() >= 0.9999
        np.testing.assert_allclose(pred.scores, ref_scores, atol=1e-4)
        assert not any(np.allclose(ref_low[0], low) for low in all_ref[2])  # mask 0 is none of the three others


def test_candidate_thumbnails_keep_the_images_aspect(loaded, features):
    from floodlabel.core.segment.candidates import candidate_thumbnails
    from floodlabel.core.segment.segmenter import Prediction

    seg = Sam2Segmenter(loaded, FP32)
    for size, expected in (((551, 893), (59, 96)), ((900, 500), (96, 53)), ((640, 640), (96, 96))):
        emb = Embedding(features, size, (1024, 1024), seg.model_id)
        pred = seg.predict(emb, Prompt.point(size[1] / 2, size[0] / 2))
        assert pred.stretched_from == size
        thumbs = candidate_thumbnails(pred, emb.input_size)
        assert len(thumbs) == 3 and all(t.shape == expected for t in thumbs)
        # smooth logits: water on the left third and in the bottom quarter of the (squared) frame
        logits = np.full((1, 256, 256), -5.0, np.float32)
        logits[:, :, :85] = logits[:, 192:, :] = 5.0
        smooth = Prediction(np.zeros((1, *size), bool), np.ones(1, np.float32), logits)
        smooth.stretched_from = size
        (thumb,) = candidate_thumbnails(smooth, (1024, 1024))
        h, w = expected
        assert thumb[: h // 2, : w // 3 - 2].all() and not thumb[: h // 2, w // 3 + 2:].any()
        assert thumb[3 * h // 4 + 2:].all()
