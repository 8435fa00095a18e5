"""Fine-tuned decoder checkpoints: round trip, weights_only, base found by SHA-256 or refused, shared embeddings,
and the fast decoder agreeing with segment_anything's on fine-tuned weights."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from tiny_sam import tiny_sam_checkpoint

from floodlabel.core.segment.compute_config import ComputeConfig
from floodlabel.core.common.hashing import sha256_file
from floodlabel.core.segment.embedding_cache import EmbeddingCache
from floodlabel.core.models.session import SegmentationSession, load_segmenter
from floodlabel.core.common.errors import ModelError
from floodlabel.core.models.registry import checkpoint_architecture
from floodlabel.core.common.paths import models_dir
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.sam.backend import SamSegmenter
from floodlabel.core.sam.loading import load_sam
from floodlabel.core.segment.segmenter import Embedding
from floodlabel.core.sam import decoder_checkpoint as dc
from floodlabel.core.sam.decoder_checkpoint import (BaseModelInfo, DecoderCheckpoint, is_decoder_checkpoint_file,
                                                         load_finetuned, read_decoder_checkpoint,
                                                         save_decoder_checkpoint)

FP32 = ComputeConfig("cpu", torch.float32, torch.float32)


@pytest.fixture(scope="module")
def base_file(tmp_path_factory):
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("base") / "tiny.pth", seed=3)


def perturbed_checkpoint(base_path, out, train_pe=False) -> tuple:
    """A decoder checkpoint whose weights differ clearly from the base's (as training would leave them)."""
    loaded = load_sam(base_path)
    gen = torch.Generator().manual_seed(1)
    dec = {k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
           for k, v in loaded.model.mask_decoder.state_dict().items()}
    pe = None
    if train_pe:
        pe = {k: v + 0.1 if k.startswith("point_embeddings") else v
              for k, v in loaded.model.prompt_encoder.state_dict().items()}
    ckpt = DecoderCheckpoint(mask_decoder=dec, prompt_encoder=pe, base=BaseModelInfo.of(loaded),
                             settings={"lr": 1e-4, "epochs": 2}, data={"train": 3, "val": 1, "hash": "abc"},
                             metrics=[{"epoch": 1, "val_iou": 0.5}, {"epoch": 2, "val_iou": float("nan")}],
                             best_epoch=1, best_val_iou=0.5)
    return save_decoder_checkpoint(ckpt, out), dec, pe


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    img = np.full((180, 300, 3), (90, 120, 60), np.uint8)
    img[80:160, 40:260] = (70, 90, 140)
    return np.clip(img + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8)


def test_round_trip_weights_only_and_small(base_file, tmp_path):
    path, dec, pe = perturbed_checkpoint(base_file, tmp_path / "ft.pth", train_pe=True)
    assert is_decoder_checkpoint_file(path) and not is_decoder_checkpoint_file(base_file)
    raw = torch.load(path, weights_only=True)  # plain values and tensors only
    assert raw["format"] == dc.FORMAT and "image_encoder.patch_embed.proj.weight" not in str(list(raw))
    trained_bytes = sum(t.numel() * t.element_size() for part in (dec, pe) for t in part.values())
    assert path.stat().st_size < trained_bytes + 2**20  # the trained parts only: no encoder copy
    ckpt = read_decoder_checkpoint(path)
    assert all(torch.equal(ckpt.mask_decoder[k], dec[k]) for k in dec)
    assert all(torch.equal(ckpt.prompt_encoder[k], pe[k]) for k in pe)
    assert ckpt.base.sha256 == sha256_file(base_file) and ckpt.base.file_name == "tiny.pth"
    assert ckpt.settings == {"lr": 1e-4, "epochs": 2} and ckpt.data["hash"] == "abc"
    assert ckpt.best_epoch == 1 and ckpt.metrics[0] == {"epoch": 1, "val_iou": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["ft.pth"]  # atomic save left no temporary file behind


def test_code_carrying_file_is_refused(tmp_path):
    bad = tmp_path / "evil.pth"
    torch.save({"format": dc.FORMAT, "payload": ModelError("x")}, bad)
    with pytest.raises(ModelError, match="cannot read fine-tuned checkpoint"):
        read_decoder_checkpoint(bad)


def test_loads_onto_its_base_and_shares_embeddings(base_file, tmp_path, image):
    path, dec, _ = perturbed_checkpoint(base_file, tmp_path / "ft.pth")
    base_session = SegmentationSession(SamSegmenter.from_checkpoint(base_file, FP32), EmbeddingCache())
    ft_session = SegmentationSession(load_segmenter(path, FP32), EmbeddingCache())  # same folder, another process
    ft = ft_session.segmenter
    assert ft.model_id == base_session.model_id  # the embedding-cache key: the base's
    assert ft.loaded.weights_id != base_session.segmenter.loaded.weights_id
    assert ft.loaded.weights_id.startswith(ft.model_id + "+ft-")
    assert torch.equal(ft.model.mask_decoder.state_dict()["iou_token.weight"], dec["iou_token.weight"])
    emb = base_session.embedding(image)
    assert ft_session.cached_embedding(image) is not None  # switching models never re-encodes
    a, b = base_session.predict(emb, Prompt.point(150, 120)), ft_session.predict(emb, Prompt.point(150, 120))
    assert not np.allclose(a.low_res_logits, b.low_res_logits)  # each decoder keeps its own per-image state
    assert checkpoint_architecture(path) == load_sam(base_file).architecture


PROMPTS = [Prompt.point(150, 120), Prompt.from_box((40, 80, 260, 160)),
           Prompt(np.array([[150, 120], [20, 20]]), np.array([1, 0]), (40, 80, 260, 160))]


def test_fast_decoder_matches_segment_anything_on_finetuned_weights(base_file, tmp_path, image):
    path, _, _ = perturbed_checkpoint(base_file, tmp_path / "ft.pth", train_pe=True)
    loaded = load_finetuned(path)
    seg = SamSegmenter(loaded, FP32)  # FastSamDecoder over the fine-tuned weights
    reference = SamPredictor(loaded.model)  # segment_anything's own prompt encoder + mask decoder, same weights
    reference.set_image(image)
    emb = Embedding(reference.features, (180, 300), (614, 1024), seg.model_id)
    rows = -(-614 // 4)  # low-res rows the image covers
    for prompt in PROMPTS:
        pred = seg.predict(emb, prompt)
        with torch.inference_mode():
            _, ref_scores, ref_logits = reference.predict(
                point_coords=prompt.points if len(prompt.points) else None,
                point_labels=prompt.labels if len(prompt.points) else None, box=prompt.box, multimask_output=True)
        np.testing.assert_allclose(pred.low_res_logits[:, :rows], ref_logits[:, :rows], atol=1e-4)
        np.testing.assert_allclose(pred.scores, ref_scores, atol=1e-5)


def test_base_found_in_model_folder_or_given(base_file, tmp_path):
    moved = tmp_path / "elsewhere.pth"
    shutil.copy(base_file, moved)
    path, _, _ = perturbed_checkpoint(moved, tmp_path / "ft.pth")
    moved.unlink()  # the recorded path is gone
    with pytest.raises(ModelError, match="--base PATH"):
        load_finetuned(path)
    assert load_finetuned(path, bases=[base_file]).path == base_file.resolve()  # same bytes, another name
    shutil.copy(base_file, models_dir() / "sam_custom.pth")
    assert load_finetuned(path).path == (models_dir() / "sam_custom.pth").resolve()


def test_another_base_is_refused_naming_both(base_file, tmp_path):
    path, _, _ = perturbed_checkpoint(base_file, tmp_path / "ft.pth")
    other = tiny_sam_checkpoint(tmp_path / "other.pth", seed=4)
    with pytest.raises(ModelError) as exc:
        load_finetuned(path, bases=[other])
    assert "tiny.pth" in str(exc.value) and "other.pth" in str(exc.value) and "refusing" in str(exc.value)
    with pytest.raises(ModelError, match="refusing to load it onto other.pth"):
        dc.apply_checkpoint(load_sam(other), read_decoder_checkpoint(path), path)
    dc.use_base_checkpoints([other])  # the CLI's --base: binding for loads by path
    try:
        with pytest.raises(ModelError, match="other.pth"):
            load_segmenter(path, FP32)
    finally:
        dc.use_base_checkpoints([])
