"""SAM 3's segmenter on a reduced, seeded, random model (tests/tiny_sam3.py): the text prompt against Meta's own
Sam3Processor, points and boxes against SAM 3's interactive predictor, all in the original frame of a non-square
image; Instances thresholding on real output; the embedding cache's key and round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sam3")

from floodlabel.core.annotation.prompts import Prompt  # noqa: E402
from floodlabel.core.models.session import SegmentationSession  # noqa: E402
from floodlabel.core.sam3.backend import SCORE_FLOOR, Sam3Segmenter  # noqa: E402
from floodlabel.core.sam3.cpu_compat import no_pin_memory  # noqa: E402
from floodlabel.core.segment.compute_config import ComputeConfig  # noqa: E402
from floodlabel.core.segment.segmenter import Segmenter, TextSegmenter  # noqa: E402
from tiny_sam3 import tiny_sam3_checkpoint, tiny_sam3_segmenter  # noqa: E402

H, W = 300, 500  # non-square: a wrong frame (transposed, padded, cropped) shows


@pytest.fixture(scope="module")
def seg() -> Sam3Segmenter:
    return tiny_sam3_segmenter(0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
    img[120:260, 40:330] = (40, 90, 160)  # a blue region, off-centre
    return img


@pytest.fixture(scope="module")
def emb(seg, image):
    return seg.embed(image)


@pytest.fixture(scope="module")
def water(seg, emb):
    return seg.segment_text(emb, "water")


@pytest.fixture(scope="module")
def reference(seg, image):
    """Meta's Sam3Processor on the same model and image (threshold = our floor): its state and text output."""
    from sam3.model.sam3_image_processor import Sam3Processor

    processor = Sam3Processor(seg.model, device="cpu", confidence_threshold=SCORE_FLOOR)
    with no_pin_memory():
        state = processor.set_image(torch.from_numpy(image).permute(2, 0, 1))  # (3, H, W): its own size rule
        out = processor.set_text_prompt("water", state)
    return {k: out[k].clone() if isinstance(out[k], torch.Tensor) else out[k] for k in ("masks", "boxes", "scores")}, \
        state


def test_protocols_and_capabilities(seg):
    assert isinstance(seg, Segmenter) and isinstance(seg, TextSegmenter)
    caps = seg.capabilities
    assert caps.text_prompt and caps.cache_embeddings
    assert not caps.auto_masks and not caps.finetune_decoder


def test_embedding_is_the_trunk_in_the_original_frame(seg, emb):
    assert emb.original_size == (H, W) and emb.input_size == (1008, 1008)
    assert set(emb.features) == {"trunk"}
    assert tuple(emb.features["trunk"].shape) == (1, 64, 72, 72)
    assert emb.features["trunk"].dtype == torch.float32


def test_text_prompt_matches_sam3_processor_in_the_original_frame(water, reference):
    ref, _ = reference
    inst = water
    assert inst.phrase == "water" and inst.shape == (H, W)
    assert inst.masks.dtype == bool and inst.masks.shape[1:] == (H, W)
    assert len(inst) == len(ref["scores"]) > 0
    order = torch.argsort(ref["scores"], descending=True, stable=True)
    np.testing.assert_allclose(inst.scores, ref["scores"][order].numpy(), atol=1e-5)
    assert np.all(np.diff(inst.scores) <= 0) and inst.scores.min() >= SCORE_FLOOR
    np.testing.assert_allclose(inst.boxes, ref["boxes"][order].numpy().clip([0, 0, 0, 0], [W, H, W, H]), atol=0.05)
    ref_masks = ref["masks"][order, 0].numpy()
    agree = (inst.masks == ref_masks).mean(axis=(1, 2))
    assert agree.min() > 0.995, agree  # cv2's fixed-point resize against torch's bilinear one


def test_text_prompt_at_another_output_size(seg, emb, water):
    full = water
    half = seg.segment_text(emb, "water", output_size=(H // 2, W // 2))
    assert half.shape == (H // 2, W // 2)
    np.testing.assert_array_equal(half.scores, full.scores)
    np.testing.assert_allclose(half.boxes * 2, full.boxes, atol=1e-3)


def test_instances_threshold_on_real_output(seg, emb):
    inst = seg.segment_text(emb, "  flood   water ")
    assert inst.phrase == "flood water"
    t = float(np.median(inst.scores))
    kept = inst.above(t)
    assert 0 < len(kept) < len(inst) or len(inst) == 1
    np.testing.assert_array_equal(inst.union(t), np.any(inst.masks[inst.scores >= t], axis=0))
    dropped = {int(kept[0])}
    expect = np.any(inst.masks[[i for i in kept if i not in dropped]], axis=0) if len(kept) > 1 else \
        np.zeros((H, W), bool)
    np.testing.assert_array_equal(inst.union(t, dropped), expect)
    assert not inst.union(1.01).any()


def test_empty_phrase_and_wrong_embedding_are_refused(seg, emb):
    with pytest.raises(ValueError, match="empty phrase"):
        seg.segment_text(emb, "   ")
    other = type(emb)(emb.features, emb.original_size, emb.input_size, "sam3-other")
    with pytest.raises(ValueError, match="embedding of sam3-other"):
        seg.segment_text(other, "water")


def _reference_inst(seg, state, **kwargs):
    with torch.inference_mode():
        return seg.model.predict_inst(state, **kwargs)


def test_point_matches_sam3_interactive_predictor(seg, emb, reference):
    _, state = reference
    pred = seg.predict(emb, Prompt.point(180, 200).with_point(420, 40, positive=False))
    masks, scores, low = _reference_inst(seg, state, point_coords=np.array([[180, 200], [420, 40]], np.float32),
                                         point_labels=np.array([1, 0]), multimask_output=True,
                                         return_logits=True)
    np.testing.assert_allclose(pred.scores, scores, atol=1e-4)
    low288, _ = seg.predict_low_res(emb, Prompt.point(180, 200).with_point(420, 40, positive=False))
    np.testing.assert_allclose(low288, np.clip(low, -32, 32), atol=1e-3)
    assert pred.low_res_logits.shape == (3, 256, 256) and pred.stretched_from == (H, W)
    best = pred.mask(pred.best)
    assert best.shape == (H, W)
    assert (best == (masks[pred.best] > 0)).mean() > 0.995


def test_box_and_single_mask_match_the_interactive_predictor(seg, emb, reference):
    _, state = reference
    box = np.array([40, 120, 330, 260], np.float32)
    pred = seg.predict(emb, Prompt.from_box(box), multimask=False)
    _, scores, low = _reference_inst(seg, state, box=box, multimask_output=False, return_logits=True)
    assert len(pred) == 1
    np.testing.assert_allclose(pred.scores, scores, atol=1e-4)
    low288, _ = seg.predict_low_res(emb, Prompt.from_box(box), multimask=False)
    np.testing.assert_allclose(low288, np.clip(low, -32, 32), atol=1e-3)


def test_mask_input_refines_and_empty_prompt_is_refused(seg, emb):
    first = seg.predict(emb, Prompt.point(180, 200))
    again = seg.predict(emb, Prompt.point(180, 200), mask_input=first.low_res_logits[first.best])
    assert again.masks.shape == (3, H, W)
    assert not np.allclose(again.low_res_logits, first.low_res_logits)  # the mask prompt is used
    with pytest.raises(ValueError, match="empty prompt"):
        seg.predict(emb, Prompt())


def test_cache_key_follows_the_encoder_precision(seg):
    assert seg.cache_model_id == "sam3-custom-seed0@enc-fp32-cpu"
    bf16 = tiny_sam3_segmenter(0, ComputeConfig(encoder_dtype=torch.bfloat16))
    assert bf16.cache_model_id == "sam3-custom-seed0@enc-bf16-cpu"
    assert bf16.model_id == seg.model_id  # same weights; only the cache key tells the features apart


@pytest.mark.slow
def test_session_from_a_checkpoint_file_caches_the_trunk(tmp_path, image):
    path = tiny_sam3_checkpoint(tmp_path / "tiny-sam3.pt", seed=1)
    session = SegmentationSession.open(path, cache_dir=tmp_path / "cache", config=ComputeConfig())
    assert isinstance(session.segmenter, Sam3Segmenter)
    assert session.model_id.startswith("sam3-custom-")
    computed = session.embedding(image)
    from floodlabel.core.common.hashing import image_key

    entry = session.cache.path_for(session.cache_model_id, image_key(image))
    assert entry.is_file() and entry.stat().st_size < 64 * 72 * 72 * 2 + 4096  # the trunk in float16, no necks
    fresh = SegmentationSession.open(path, cache_dir=tmp_path / "cache", config=ComputeConfig())
    loaded = fresh.cached_embedding(image)
    assert loaded is not None and loaded.original_size == (H, W)
    np.testing.assert_allclose(loaded.features["trunk"], computed.features["trunk"], atol=2e-2, rtol=1e-2)
    a = session.segmenter.segment_text(computed, "water")
    b = fresh.segmenter.segment_text(loaded, "water")  # from float16 features: the same instances, nearly
    np.testing.assert_allclose(b.scores[:3], a.scores[:3], atol=2e-2)


def test_instances_are_bounded_by_the_floor_and_the_count(seg, emb, water, monkeypatch):
    """At most MAX_INSTANCES masks of H x W bytes each, the most confident; a smaller cap keeps a prefix of the same
    instances, so the threshold filter and the instance indices agree for every threshold the cap leaves alone."""
    from floodlabel.core.sam3 import backend

    assert 0 < len(water) <= backend.MAX_INSTANCES and water.scores.min() >= SCORE_FLOOR
    assert water.masks.dtype == bool and water.masks.nbytes == len(water) * H * W
    assert backend.MAX_INSTANCES * 4000 * 3000 == 384_000_000  # the bound the docstring states
    assert len(water) > 3, "the tiny model should return more than the cap below"
    monkeypatch.setattr(backend, "MAX_INSTANCES", 3)
    capped = seg.segment_text(emb, "water")
    assert len(capped) == 3 and capped.masks.nbytes == 3 * H * W
    np.testing.assert_array_equal(capped.scores, water.scores[:3])
    np.testing.assert_array_equal(capped.masks, water.masks[:3])
    np.testing.assert_array_equal(capped.boxes, water.boxes[:3])
    t = float(water.scores[2])
    np.testing.assert_array_equal(capped.union(t), water.union(t))
    np.testing.assert_array_equal(capped.union(t, {1}), water.union(t, {1}))
