"""SAM backend: prompts -> 3 candidates, equivalence with plain SamPredictor, frames, precision modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor

from floodlabel.core.segment.compute_config import ComputeConfig
from floodlabel.core.segment.mask_resize import upscale_logits
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.sam.backend import SamSegmenter
from floodlabel.core.sam.loading import load_sam
from tiny_sam import tiny_sam_checkpoint

FP32 = ComputeConfig("cpu", torch.float32, torch.float32)
BF16 = ComputeConfig("cpu", torch.bfloat16, torch.bfloat16)

PROMPTS = {
    "point": Prompt.point(300, 200),
    "pos+neg": Prompt(np.array([[300, 200], [60, 40]]), np.array([1, 0])),
    "box": Prompt.from_box((100, 80, 500, 300)),
    "point+box": Prompt(np.array([[300, 200]]), np.array([1]), np.array([100, 80, 500, 300])),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth", seed=3)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = np.zeros((360, 600, 3), np.uint8)
    img[:] = (90, 120, 60)
    img[150:330, 80:520] = (70, 90, 140)  # "water"
    return np.clip(img + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def reference(checkpoint, image):
    loaded = load_sam(checkpoint)
    predictor = SamPredictor(loaded.model)
    predictor.set_image(image)
    return predictor


def _reference_predict(predictor, prompt, multimask=True, mask_input=None, return_logits=False):
    with torch.inference_mode():
        return predictor.predict(
            return_logits=return_logits,
            point_coords=prompt.points if len(prompt.points) else None,
            point_labels=prompt.labels if len(prompt.points) else None,
            box=prompt.box,
            mask_input=mask_input,
            multimask_output=multimask,
        )


def test_embedding_matches_predictor(checkpoint, image, reference):
    seg = SamSegmenter.from_checkpoint(checkpoint, FP32)
    emb = seg.embed(image)
    assert emb.features.shape == (1, 256, 64, 64) and emb.features.dtype == torch.float32
    assert emb.original_size == (360, 600) and emb.input_size == (614, 1024)
    assert torch.allclose(emb.features, reference.features, atol=1e-5)


@pytest.mark.parametrize("name", list(PROMPTS))
def test_fast_decoder_matches_sam_predictor(checkpoint, image, reference, name):
    seg = SamSegmenter.from_checkpoint(checkpoint, FP32)
    emb = seg.embed(image)
    prompt = PROMPTS[name]
    pred = seg.predict(emb, prompt)
    ref_masks, ref_scores, ref_logits = _reference_predict(reference, prompt)
    assert pred.masks.shape == (3, 360, 600) and pred.masks.dtype == bool
    assert pred.scores.shape == (3,) and pred.low_res_logits.shape == (3, 256, 256)
    # the image covers low-res rows/cols [0, 154) x [0, 256); the padding below is not computed (see decoder)
    np.testing.assert_allclose(pred.low_res_logits[:, :154], ref_logits[:, :154], atol=1e-4)
    np.testing.assert_allclose(pred.scores, ref_scores, atol=1e-5)
    # one-pass cv2 upscaling vs SAM's two-pass torch upscaling: masks differ only where the logit is near 0
    ref_full, _, _ = _reference_predict(reference, prompt, return_logits=True)
    ours = upscale_logits(pred.low_res_logits, emb.input_size, emb.original_size)
    np.testing.assert_allclose(ours, ref_full, atol=1e-3 * np.abs(ref_full).max())
    assert (pred.masks != ref_masks).mean() < 1e-3


def test_single_mask_and_mask_input(checkpoint, image, reference):
    seg = SamSegmenter.from_checkpoint(checkpoint, FP32)
    emb = seg.embed(image)
    first = seg.predict(emb, PROMPTS["point"])
    refine = first.low_res_logits[first.best][None]
    pred = seg.predict(emb, PROMPTS["pos+neg"], multimask=False, mask_input=refine)
    # SamPredictor refines from its own first prediction (our padding is completed to SAM's values when fed back;
    # tests/test_sam_refinement.py follows longer chains)
    _, ref_first_scores, ref_first = _reference_predict(reference, PROMPTS["point"])
    ref_refine = ref_first[int(np.argmax(ref_first_scores))][None]
    _, ref_scores, ref_logits = _reference_predict(reference, PROMPTS["pos+neg"], False, ref_refine)
    assert pred.masks.shape == (1, 360, 600)
    np.testing.assert_allclose(pred.low_res_logits[:, :154], ref_logits[:, :154], atol=1e-4)
    np.testing.assert_allclose(pred.scores, ref_scores, atol=1e-5)


def test_output_size_is_honoured(checkpoint, image):
    seg = SamSegmenter.from_checkpoint(checkpoint, FP32)
    emb = seg.embed(image)
    small = seg.predict(emb, PROMPTS["box"], output_size=(180, 300))
    assert small.masks.shape == (3, 180, 300)
    # SAM's own post-processing, with the display size in place of the original size
    low = torch.from_numpy(small.low_res_logits)[None]
    big = F.interpolate(low, (1024, 1024), mode="bilinear", align_corners=False)[..., :614, :1024]
    ref = F.interpolate(big, (180, 300), mode="bilinear", align_corners=False)[0].numpy() > 0
    assert (small.masks != ref).mean() < 1e-3


def test_bf16_stays_close_to_fp32(checkpoint, image):
    exact = SamSegmenter.from_checkpoint(checkpoint, FP32)
    fast = SamSegmenter.from_checkpoint(checkpoint, BF16)
    e32, e16 = exact.embed(image), fast.embed(image)
    for prompt in PROMPTS.values():
        a, b = exact.predict(e32, prompt), fast.predict(e16, prompt)
        scale = np.abs(a.low_res_logits).max()
        assert np.abs(a.low_res_logits - b.low_res_logits).max() < 0.1 * scale
        assert (a.masks == b.masks).mean() > 0.97


def test_bad_inputs(checkpoint, image):
    seg = SamSegmenter.from_checkpoint(checkpoint, FP32)
    emb = seg.embed(image)
    with pytest.raises(ValueError, match="empty prompt"):
        seg.predict(emb, Prompt())
    with pytest.raises(ValueError, match="uint8"):
        seg.embed(image.astype(np.float32))
    emb.model_id = "other"
    with pytest.raises(ValueError, match="embedding of other"):
        seg.predict(emb, PROMPTS["point"])


def test_model_id_names_architecture_and_weights(checkpoint, tmp_path):
    a = SamSegmenter.from_checkpoint(checkpoint, FP32)
    other = tiny_sam_checkpoint(tmp_path / "other.pth", seed=4)
    b = SamSegmenter.from_checkpoint(other, FP32)
    assert a.model_id.startswith("sam-custom-") and a.model_id != b.model_id


def test_masks_are_built_lazily_per_candidate(checkpoint, image):
    seg = SamSegmenter.from_checkpoint(checkpoint, FP32)
    pred = seg.predict(seg.embed(image), PROMPTS["point"])
    calls = []
    build = pred._mask_fn
    pred._mask_fn = lambda i: calls.append(i) or build(i)
    shown = pred.mask(pred.best)
    assert calls == [pred.best]
    assert np.array_equal(pred.masks[pred.best], shown) and pred.masks.shape == (3, 360, 600)
    assert sorted(calls) == [0, 1, 2]  # each candidate built once


def test_embedding_cache_is_keyed_by_encoder_precision(checkpoint, image, tmp_path):
    """A bf16 session and an fp32 session on one cache folder never share an embedding; the same precision does."""
    from floodlabel.core.segment.embedding_cache import EmbeddingCache
    from floodlabel.core.models.session import SegmentationSession

    def session(config):
        return SegmentationSession(SamSegmenter.from_checkpoint(checkpoint, config), EmbeddingCache(tmp_path))

    bf16, fp32 = session(BF16), session(FP32)
    assert bf16.model_id == fp32.model_id  # same weights, same predictions' model
    assert bf16.cache_model_id == f"{bf16.model_id}@enc-bf16-cpu"
    assert fp32.cache_model_id == f"{fp32.model_id}@enc-fp32-cpu"

    first = bf16.embedding(image)
    assert fp32.cached_embedding(image) is None  # the bf16 features are not served to fp32
    exact = fp32.embedding(image)
    assert fp32.cache.stats.misses == 2 and fp32.cache.stats.disk_hits == 0  # the encoder ran in fp32
    assert torch.equal(exact.features, fp32.segmenter.embed(image).features)
    assert not torch.equal(exact.features, first.features)

    again = session(BF16)  # same precision, another process's view: a disk hit
    got = again.cached_embedding(image)
    assert got is not None and again.cache.stats.disk_hits == 1
    assert got.model_id == again.model_id  # carries the segmenter's id, so predict accepts it
    assert torch.allclose(got.features, first.features, atol=1e-2)
    again.predict(got, PROMPTS["point"])
    got_fp32 = session(FP32).embedding(image)
    assert torch.allclose(got_fp32.features, exact.features, atol=1e-2)
    assert not torch.allclose(got_fp32.features, got.features, atol=0, rtol=0)
