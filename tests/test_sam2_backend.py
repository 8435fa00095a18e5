"""Sam2Segmenter end to end with a real (random-weight, seeded) hiera_tiny encoder: its embedding is exactly
SAM2ImagePredictor.set_image's, checkpoints run between trunk blocks and can cancel, the masks agree with the
official predictor, it implements the whole Segmenter protocol, and the embedding cache stores its three feature maps
(same key rules as SAM v1, sizes counted honestly)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sam2.sam2_image_predictor import SAM2ImagePredictor
from synthetic_scenes import make_flood_scene
from tiny_sam2 import tiny_loaded_sam2

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.common.cancel import Cancelled
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.sam2.backend import FEATURE_SHAPES, SAM2_CAPABILITIES, Sam2Segmenter
from floodlabel.core.segment.compute_config import ComputeConfig
from floodlabel.core.segment.embedding_cache import EmbeddingCache, entry_bytes
from floodlabel.core.segment.segmenter import Segmenter

FP32 = ComputeConfig("cpu", torch.float32, torch.float32)
MiB = 2**20


@pytest.fixture(scope="module")
def loaded():
    return tiny_loaded_sam2(seed=1)


@pytest.fixture(scope="module")
def image():
    scene, _ = make_flood_scene(300, 480, seed=3, kind="lake")
    return scene


@pytest.fixture(scope="module")
def embedded(loaded, image):
    """(segmenter, embedding, number of checkpoint calls, official predictor with the image set)."""
    seg = Sam2Segmenter(loaded, FP32)
    calls = []
    emb = seg.embed(image, checkpoint=lambda: calls.append(1))
    predictor = SAM2ImagePredictor(loaded.model)
    predictor.set_image(image)
    return seg, emb, len(calls), predictor


def test_the_embedding_is_the_official_predictors(embedded):
    seg, emb, calls, predictor = embedded
    assert emb.original_size == (300, 480) and emb.input_size == (1024, 1024) and emb.model_id == seg.model_id
    assert {k: tuple(v.shape) for k, v in emb.features.items()} == FEATURE_SHAPES
    ref = predictor._features
    assert torch.equal(emb.features["image_embed"], ref["image_embed"])
    assert torch.equal(emb.features["high_res_feats_0"], ref["high_res_feats"][0])
    assert torch.equal(emb.features["high_res_feats_1"], ref["high_res_feats"][1])
    assert calls == 12 + 2  # before the encoder, before each of hiera_tiny's 12 trunk blocks, after the trunk


def test_masks_agree_with_the_official_predictor(embedded):
    seg, emb, _, predictor = embedded
    for prompt in (Prompt.point(240, 150), Prompt.from_box((50, 40, 400, 260)),
                   Prompt(np.array([[100, 100], [300, 200]], np.float32), np.array([1, 0]))):
        points = prompt.points if len(prompt.points) else None
        ref_masks, ref_scores, _ = predictor.predict(points, prompt.labels if points is not None else None,
                                                     box=prompt.box, multimask_output=True)
        pred = seg.predict(emb, prompt)
        assert (pred.masks == ref_masks.astype(bool)).mean() >= 0.9999
        np.testing.assert_allclose(pred.scores, ref_scores, atol=1e-4)


def test_a_checkpoint_can_cancel_between_trunk_blocks(loaded, image):
    seg = Sam2Segmenter(loaded, FP32)
    calls = []

    def checkpoint():
        calls.append(1)
        if len(calls) == 4:
            raise Cancelled()

    with pytest.raises(Cancelled):
        seg.embed(image, checkpoint=checkpoint)
    assert len(calls) == 4
    assert all(not b._forward_pre_hooks for b in seg.model.image_encoder.trunk.blocks)  # hooks removed


def test_it_implements_the_whole_protocol(embedded):
    seg = embedded[0]
    assert isinstance(seg, Segmenter)
    assert seg.capabilities == SAM2_CAPABILITIES and seg.capabilities.cache_embeddings
    assert seg.capabilities.fast_decode and seg.capabilities.finetune_decoder  # core.training.sam2_family
    assert seg.cache_model_id == f"{seg.model_id}@enc-fp32-cpu" and seg.weights_id == seg.model_id
    bf16 = Sam2Segmenter(seg.loaded, ComputeConfig("cpu", torch.bfloat16, torch.bfloat16))
    assert bf16.cache_model_id == f"{seg.model_id}@enc-bf16-cpu"  # never served fp32 features, nor the reverse
    assert "fp32" in seg.compute_label


def test_the_cache_stores_the_three_maps(embedded, tmp_path):
    seg, emb, _, _ = embedded
    size = entry_bytes(emb, seg.cache_model_id, "k")
    assert 8 * MiB <= size < 8 * MiB + 4096  # float16: (256*64*64 + 32*256*256 + 64*128*128) * 2 bytes + header
    cache = EmbeddingCache(tmp_path / "c", max_disk_bytes=20 * MiB)
    cache.put(seg.cache_model_id, "k", emb)
    entry = cache.path_for(seg.cache_model_id, "k")
    assert entry.stat().st_size == size
    back = EmbeddingCache(tmp_path / "c").get(seg.cache_model_id, "k")  # a fresh process: from disk
    assert back is not None and back.original_size == emb.original_size and back.input_size == (1024, 1024)
    for name, tensor in emb.features.items():
        got = back.features[name]
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and got.shape == tensor.shape
        assert (got - tensor).abs().max() <= 2e-3 * max(1.0, float(tensor.abs().max()))  # float16 on disk
    # the disk bound counts the entry's real size: 20 MiB holds two SAM 2.1 entries, not five SAM v1-sized ones
    for key in ("k2", "k3"):
        cache.put(seg.cache_model_id, key, emb)
    kept = [k for k in ("k", "k2", "k3") if cache.path_for(seg.cache_model_id, k).is_file()]
    assert len(kept) == 2


def test_the_memory_bound_counts_the_three_maps_and_the_decoder_state(embedded, tmp_path):
    from floodlabel.core.segment.held_bytes import held_bytes
    from floodlabel.core.segment.segmenter import Embedding

    seg, emb, _, _ = embedded
    fresh = Embedding(emb.features, emb.original_size, emb.input_size, emb.model_id)
    assert held_bytes(fresh) == 16 * MiB  # float32 in memory: (256*64*64 + 32*256*256 + 64*128*128) * 4 bytes
    seg.predict(fresh, Prompt.point(240, 150))  # adds the fp32 decoder state: tokens, layer-1 cache, high-res maps
    assert 36 * MiB <= held_bytes(fresh) <= 40 * MiB
    cache = EmbeddingCache(tmp_path / "c", max_disk_bytes=0, memory_bytes=100 * MiB)
    copies = [Embedding(emb.features, emb.original_size, emb.input_size, emb.model_id, dict(fresh.extra))
              for _ in range(4)]
    for i, e in enumerate(copies):
        cache.put(seg.cache_model_id, f"k{i}", e)
    kept = [i for i in range(4) if cache.get(seg.cache_model_id, f"k{i}") is not None]
    assert kept == [2, 3] and cache.memory_held_bytes <= 100 * MiB  # a count bound of 8 would have kept 152 MiB


def test_a_damaged_entry_is_a_miss(embedded, tmp_path):
    seg, emb, _, _ = embedded
    cache = EmbeddingCache(tmp_path / "c")
    cache.put(seg.cache_model_id, "k", emb)
    path = cache.path_for(seg.cache_model_id, "k")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert EmbeddingCache(tmp_path / "c").get(seg.cache_model_id, "k") is None and not path.exists()


def test_the_session_serves_cached_embeddings_that_decode_the_same(embedded, image, tmp_path):
    seg, emb, _, _ = embedded
    cache = EmbeddingCache(tmp_path / "c")
    session = SegmentationSession(seg, cache)
    assert session.cache is cache
    cache.put(seg.cache_model_id, "img", emb)
    disk = SegmentationSession(seg, EmbeddingCache(tmp_path / "c", memory_items=0)).embedding(image, key="img")
    assert disk is not emb and disk.model_id == seg.model_id  # from disk, no encoder run
    a = session.predict(emb, Prompt.point(240, 150))
    b = session.predict(disk, Prompt.point(240, 150))
    assert (a.mask(a.best) == b.mask(b.best)).mean() >= 0.99  # float16 features on disk
