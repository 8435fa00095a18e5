"""SAM 3 checkpoint files: the official layout's round trip, sizes read from tensor shapes, and every bad file refused
with one line (ModelError) by the loader and by load_segmenter: truncated, random bytes, another family's file,
wrongly shaped or missing tensors; the tokenizer vocabulary checked against Meta's hash."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sam3")

from floodlabel.core.common.errors import ModelError  # noqa: E402
from floodlabel.core.models import registry as reg  # noqa: E402
from floodlabel.core.models.session import load_segmenter  # noqa: E402
from floodlabel.core.sam3 import vocabulary  # noqa: E402
from floodlabel.core.sam3.architecture import OFFICIAL, infer_architecture  # noqa: E402
from floodlabel.core.sam3.checkpoint import file_state, load_sam3, model_state  # noqa: E402
from tiny_sam3 import TINY3, tiny_sam3, tiny_sam3_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return tiny_sam3_checkpoint(tmp_path_factory.mktemp("s3") / "tiny.pt", seed=0)


@pytest.fixture(scope="module")
def tiny_file_state(tiny_file):
    return torch.load(tiny_file, map_location="cpu", weights_only=True)["model"]


def test_official_layout_round_trip(tiny_file, tiny_file_state):
    assert all(k.startswith(("detector.", "tracker.")) for k in tiny_file_state)
    assert any(k.startswith("tracker.sam_mask_decoder.") for k in tiny_file_state)
    loaded = load_sam3(tiny_file)
    assert loaded.architecture == TINY3 and loaded.architecture.name == "sam3-custom"
    assert loaded.missing == []
    same = tiny_sam3(0).state_dict()
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, same[k]), k
    assert reg.checkpoint_family(tiny_file) == reg.SAM3
    assert reg.checkpoint_architecture(tiny_file) == TINY3


def test_sizes_are_read_from_shapes(tiny_file_state):
    assert infer_architecture(model_state(tiny_file_state)) == TINY3
    assert OFFICIAL.name == "sam3" and OFFICIAL.vit_dim == 1024 and OFFICIAL.num_queries == 200


def test_file_state_inverts_model_state(tiny_file_state):
    model = tiny_sam3(0)
    assert set(file_state(model)) == set(tiny_file_state)
    assert set(model_state(file_state(model))) == set(model.state_dict())


@pytest.mark.parametrize("damage", ["truncated", "random", "empty"])
def test_damaged_files_are_refused_in_one_line(tmp_path, tiny_file, damage):
    bad = tmp_path / "sam3.pt"
    data = tiny_file.read_bytes()
    bad.write_bytes({"truncated": data[: len(data) // 2], "random": bytes(range(256)) * 4000, "empty": b""}[damage])
    for load in (load_sam3, load_segmenter):
        with pytest.raises(ModelError) as info:
            load(bad)
        assert "\n" not in str(info.value) and str(bad) in str(info.value)


def test_wrong_shapes_missing_tensors_and_other_families(tmp_path, tiny_file_state):
    state = dict(tiny_file_state)
    key = "detector.transformer.decoder.layers.0.linear1.weight"
    state[key] = torch.zeros(7, 7)
    torch.save({"model": state}, tmp_path / "shape.pt")
    with pytest.raises(ModelError, match=r"does not match a sam3-custom model \(0 missing, 0 unexpected, 1 wrongly"):
        load_sam3(tmp_path / "shape.pt")
    state = {k: v for k, v in tiny_file_state.items() if not k.startswith("detector.segmentation_head.")}
    torch.save(state, tmp_path / "missing.pt")  # also without the {"model": ...} wrapper
    with pytest.raises(ModelError, match="missing"):
        load_sam3(tmp_path / "missing.pt")
    torch.save({"model": {"image_encoder.patch_embed.proj.weight": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a SAM 3 checkpoint"):
        load_sam3(tmp_path / "other.pt")


def test_vocabulary_is_the_packaged_one_and_checked(monkeypatch):
    vocabulary.bpe_path.cache_clear()
    path = vocabulary.bpe_path()
    assert path.endswith("open_clip/bpe_simple_vocab_16e6.txt.gz")
    import os

    assert os.path.getsize(path) == vocabulary.SIZE_BYTES
    monkeypatch.setattr(vocabulary, "SHA256", "0" * 64)
    vocabulary.bpe_path.cache_clear()
    try:
        with pytest.raises(ModelError, match="not the one sam3 was trained with"):
            vocabulary.bpe_path()
    finally:
        monkeypatch.undo()
        vocabulary.bpe_path.cache_clear()
    assert vocabulary.bpe_path() == path
