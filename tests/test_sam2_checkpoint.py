"""SAM 2.1 checkpoints: the size from tensor shapes (never the file name), the official `{"model": state_dict}`
layout, strict loading, and the registry/session telling the two families apart by the file's tensors."""

from __future__ import annotations

import shutil

import pytest
import torch
from tiny_sam import tiny_sam_checkpoint
from tiny_sam2 import TINY2, tiny_sam2, tiny_sam2_checkpoint

from floodlabel.core.common.errors import ModelError
from floodlabel.core.models import registry as reg
from floodlabel.core.models.session import load_segmenter
from floodlabel.core.sam2.backend import Sam2Segmenter
from floodlabel.core.sam2.checkpoint import SIZES, infer_architecture, is_sam2_state
from floodlabel.core.sam2.loading import load_sam2

# (trunk width, trunk blocks) of Meta's four configs (sam2 1.1.0: configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml)
OFFICIAL = {"tiny": (96, 12), "small": (96, 16), "base_plus": (112, 24), "large": (144, 48)}


@pytest.fixture(scope="module")
def tiny2_file(tmp_path_factory):
    return tiny_sam2_checkpoint(tmp_path_factory.mktemp("sam2") / "random name.pt", seed=2)


def fake_state(embed_dim: int, depth: int, sam21: bool = True) -> dict[str, torch.Tensor]:
    """Only the tensors the size is read from (shapes matter, values do not)."""
    state = {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(embed_dim, 3, 7, 7),
             "sam_mask_decoder.iou_token.weight": torch.zeros(1, 256)}
    for i in range(depth):
        state[f"image_encoder.trunk.blocks.{i}.norm1.weight"] = torch.zeros(embed_dim)
    if sam21:
        state["no_obj_embed_spatial"] = torch.zeros(1, 64)
    return state


@pytest.mark.parametrize("size", OFFICIAL)
def test_each_official_size_is_read_from_its_shapes(size):
    arch = infer_architecture(fake_state(*OFFICIAL[size]))
    assert arch == SIZES[size] and arch.name == f"sam2.1_hiera_{size}" and arch.name in reg.MODELS
    assert arch.config.startswith("configs/sam2.1/sam2.1_hiera_")
    older = infer_architecture(fake_state(*OFFICIAL[size], sam21=False))
    assert older.name == f"sam2_hiera_{size}" and older.config.startswith("configs/sam2/sam2_hiera_")


@pytest.mark.parametrize("size", OFFICIAL)
def test_the_size_table_is_metas_configs(size):
    """embed_dim and sum(stages) of each packaged config (a wrong table would throw away real downloads)."""
    from hydra import compose

    import inspect

    import sam2  # noqa: F401 (initialises hydra with the package's configs)
    from sam2.modeling.backbones.hieradet import Hiera

    default_stages = inspect.signature(Hiera).parameters["stages"].default  # base_plus uses Hiera's default
    for version in ("2.1", "2"):
        trunk = compose(config_name=SIZES[size].with_version(version).config).model.image_encoder.trunk
        assert (trunk.embed_dim, sum(trunk.get("stages", default_stages))) == OFFICIAL[size]


def test_the_packaged_configs_build_the_sizes_they_are_named_for():
    model = tiny_sam2()
    assert infer_architecture(model.state_dict()) == TINY2  # and the other sizes' numbers are Meta's configs'
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(38.96e6, rel=0.01)


def test_unknown_size_and_other_files_are_refused():
    with pytest.raises(ModelError, match="no known size"):
        infer_architecture(fake_state(64, 5))
    with pytest.raises(ModelError, match="not a SAM 2.1 checkpoint"):
        infer_architecture({"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)})
    assert not is_sam2_state({"image_encoder.patch_embed.proj.weight": torch.zeros(1)})


def test_official_layout_round_trip(tiny2_file):
    raw = torch.load(tiny2_file, map_location="cpu", weights_only=True)
    assert set(raw) == {"model"} and is_sam2_state(raw["model"])
    loaded = load_sam2(tiny2_file)
    assert loaded.architecture == TINY2 and loaded.model_id.startswith("sam2.1_hiera_tiny-")
    reference = tiny_sam2(seed=2).state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, reference[name]), name


def test_a_damaged_or_mismatching_file_is_one_model_error(tiny2_file, tmp_path):
    state = torch.load(tiny2_file, map_location="cpu", weights_only=True)["model"]
    key = "sam_mask_decoder.output_upscaling.0.weight"
    state[key] = torch.zeros(3, 3)
    torch.save({"model": state}, tmp_path / "wrong.pt")
    with pytest.raises(ModelError, match="1 wrongly shaped"):
        load_sam2(tmp_path / "wrong.pt")
    del state[key]
    torch.save({"model": state}, tmp_path / "missing.pt")
    with pytest.raises(ModelError, match="1 missing"):
        load_sam2(tmp_path / "missing.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(tiny2_file.read_bytes()[: 1 << 20])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        load_sam2(cut)


def test_family_comes_from_the_tensors_not_the_name(tiny2_file, tmp_path):
    v1 = tiny_sam_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt")  # a SAM v1 file with a SAM 2.1 name
    assert reg.checkpoint_family(v1) == reg.SAM and reg.checkpoint_family(tiny2_file) == reg.SAM2
    assert reg.checkpoint_family("classic") == reg.CLASSIC
    assert reg.checkpoint_architecture(tiny2_file).name == "sam2.1_hiera_tiny"
    assert isinstance(load_segmenter(tiny2_file), Sam2Segmenter)
    assert not isinstance(load_segmenter(v1), Sam2Segmenter)
    with pytest.raises(ModelError, match="not a SAM 2.1 checkpoint"):
        load_sam2(v1)


def test_a_registered_name_resolves_to_its_downloaded_file(tiny2_file):
    with pytest.raises(ModelError, match="sam2.1_hiera_small is not downloaded"):
        reg.resolve_checkpoint("sam2.1_hiera_small")
    target = reg.local_path("sam2.1_hiera_small")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tiny2_file, target)
    assert reg.resolve_checkpoint("sam2.1_hiera_small") == target
    # the file's size comes from its tensors: a tiny model under the small model's name is a tiny model
    assert reg.checkpoint_architecture("sam2.1_hiera_small").name == "sam2.1_hiera_tiny"
    rows = {r.name: r for r in reg.list_models()}
    assert rows["sam2.1_hiera_small"].downloaded and rows["sam2.1_hiera_small"].family == reg.SAM2
    assert rows["sam2.1_hiera_small"].size_bytes == target.stat().st_size


def test_the_recommended_download_without_a_gpu_is_sam21_tiny():
    name, why = reg.recommended_download(gpu=False)
    assert name == "sam2.1_hiera_tiny" and "no GPU" in why and "156 MB" in why
    assert reg.recommended_download(gpu=True)[0] == "vit_b"
    assert reg.recommended_download()[0] in reg.MODELS
