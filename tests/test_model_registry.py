"""Model registry: names, cache paths, base URL, and how names / file paths resolve to checkpoints."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from floodlabel.core.models import registry as reg
from floodlabel.core.common.errors import ModelError
from floodlabel.core.common.paths import models_dir
from floodlabel.core.sam.loading import load_sam
from tests.tiny_sam import TINY, tiny_sam_checkpoint


# MD5 of Meta's published checkpoint files (their names carry the first 6 hex digits), written out here so a typo
# in the registry fails this test instead of every download.
PUBLISHED_MD5 = {
    "vit_b": "01ec64d29a2fca3f0661936605ae66f8",
    "vit_l": "0b3195507c641ddb6910d2bb5adee89c",
    "vit_h": "4b8939a88964f0f4ff5f5b2642c598a6",
}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.pth")


SAM2_NAMES = ["sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large"]


def test_official_specs():
    assert list(reg.MODELS) == ["vit_b", "vit_l", "vit_h", *SAM2_NAMES, "sam3"]
    for name, spec in reg.MODELS.items():
        assert spec.architecture == name
        if spec.family == reg.SAM3:  # the gated Hugging Face repository (test_sam3_download)
            assert spec.hf_repo == "facebook/sam3" and spec.filename == "sam3.pt" and spec.md5 is None
        elif spec.family == reg.SAM:
            assert spec.url == reg.OFFICIAL_BASE_URL + spec.filename
            assert spec.filename.endswith(spec.md5[:6] + ".pth")
            assert spec.md5 == PUBLISHED_MD5[name]  # what the download is verified against
        else:  # SAM 2.1: Meta publishes no checksum, so none is written here (see test_sam2_download)
            assert spec.family == reg.SAM2 and spec.md5 is None
            assert spec.url == f"https://dl.fbaipublicfiles.com/segment_anything_2/092824/{name}.pt"
    assert reg.model_names() == ["classic", "vit_b", "vit_l", "vit_h", *SAM2_NAMES, "sam3"]


def test_base_url_and_download_url_honour_env(monkeypatch):
    monkeypatch.delenv(reg.BASE_URL_ENV, raising=False)
    assert reg.base_url() == reg.OFFICIAL_BASE_URL
    assert reg.download_url("vit_b") == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
    monkeypatch.setenv(reg.BASE_URL_ENV, "http://mirror.local/sam")
    assert reg.base_url() == "http://mirror.local/sam/"
    assert reg.download_url("vit_l") == "http://mirror.local/sam/sam_vit_l_0b3195.pth"
    assert reg.download_url("vit_l", "http://other/x/") == "http://other/x/sam_vit_l_0b3195.pth"


def test_local_path_is_in_models_dir_and_download_state(isolated_cache):
    path = reg.local_path("vit_b")
    assert path == models_dir() / "sam_vit_b_01ec64.pth"
    assert str(path).startswith(str(isolated_cache))
    assert not reg.is_downloaded("vit_b")
    assert reg.is_downloaded("classic")
    path.write_bytes(b"x")
    assert reg.is_downloaded("vit_b")


def test_resolve_registered_name_not_downloaded_is_actionable():
    with pytest.raises(ModelError) as err:
        reg.resolve_checkpoint("vit_b")
    msg = str(err.value)
    assert "vit_b is not downloaded" in msg
    assert "floodlabel models download vit_b" in msg
    assert ".pth" in msg and reg.BASE_URL_ENV in msg
    assert "\n" not in msg


def test_resolve_registered_name_downloaded(tiny_ckpt):
    target = reg.local_path("vit_h")
    target.write_bytes(tiny_ckpt.read_bytes())
    assert reg.resolve_checkpoint("vit_h") == target
    # the cached file's architecture comes from its tensors, not from the model name
    assert reg.checkpoint_architecture("vit_h").name == "custom"


def test_resolve_file_path(tmp_path, tiny_ckpt, monkeypatch):
    assert reg.resolve_checkpoint(tiny_ckpt) == tiny_ckpt.resolve()
    assert reg.resolve_checkpoint(str(tiny_ckpt)) == tiny_ckpt.resolve()
    monkeypatch.chdir(tiny_ckpt.parent)
    assert reg.resolve_checkpoint("tiny.pth") == tiny_ckpt.resolve()


@pytest.mark.parametrize("bad", ["nope", "vit_x", "sam"])
def test_resolve_unknown_name_lists_known_names(bad):
    with pytest.raises(ModelError, match="unknown model") as err:
        reg.resolve_checkpoint(bad)
    for name in reg.model_names():
        assert name in str(err.value)


def test_resolve_missing_path_folder_and_classic(tmp_path):
    with pytest.raises(ModelError, match="checkpoint not found"):
        reg.resolve_checkpoint(tmp_path / "missing.pth")
    with pytest.raises(ModelError, match="checkpoint not found"):
        reg.resolve_checkpoint("some/dir/weights")
    with pytest.raises(ModelError, match="is a folder"):
        reg.resolve_checkpoint(tmp_path)
    with pytest.raises(ModelError, match="no checkpoint"):
        reg.resolve_checkpoint("classic")
    with pytest.raises(ModelError, match="no checkpoint"):
        reg.local_path("classic")


def test_misleading_file_name_is_detected_by_shapes(tmp_path, tiny_ckpt):
    fake = tmp_path / "sam_vit_h_4b8939.pth"
    fake.write_bytes(tiny_ckpt.read_bytes())
    arch = reg.checkpoint_architecture(fake)
    assert arch == TINY and arch.name == "custom"
    loaded = load_sam(reg.resolve_checkpoint(fake))
    assert loaded.architecture == TINY
    assert loaded.model_id.startswith("sam-custom-")


class _NotAllowed:
    """Pickled as a class instance: weights_only loading must refuse it."""


def _bad_files(tmp_path, tiny_ckpt):
    data = tiny_ckpt.read_bytes()
    files = {}
    files["truncated"] = tmp_path / "truncated.pth"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["random"] = tmp_path / "random.pth"
    files["random"].write_bytes(os.urandom(4096))
    files["empty"] = tmp_path / "empty.pth"
    files["empty"].write_bytes(b"")
    files["plain_pickle"] = tmp_path / "plain_pickle.pth"
    files["plain_pickle"].write_bytes(pickle.dumps({"weights": [1, 2, 3], "epoch": 3}, protocol=2))
    files["code_pickle"] = tmp_path / "code_pickle.pth"
    torch.save({"obj": _NotAllowed()}, files["code_pickle"])
    files["tensor_dict_not_sam"] = tmp_path / "not_sam.pth"
    torch.save({"a": torch.zeros(3), "b": torch.ones(2, 2)}, files["tensor_dict_not_sam"])
    files["other_network"] = tmp_path / "other_network.pth"
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.save(other.state_dict(), files["other_network"])
    files["sam_name_other_net"] = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(other.state_dict(), files["sam_name_other_net"])
    return files


def test_bad_local_checkpoints_give_one_clear_model_error(tmp_path, tiny_ckpt):
    for kind, path in _bad_files(tmp_path, tiny_ckpt).items():
        assert reg.resolve_checkpoint(path) == path.resolve()  # resolving never loads
        for check in (reg.checkpoint_architecture, load_sam):
            with pytest.raises(ModelError) as err:
                check(path)
            msg = str(err.value)
            assert "\n" not in msg, kind
            assert path.name in msg, kind
            assert len(msg) < 400, kind


def test_list_models_rows(tiny_ckpt):
    rows = reg.list_models()
    assert [r.name for r in rows] == reg.model_names()
    classic = rows[0]
    assert classic.downloaded and classic.path is None
    assert all(not r.downloaded for r in rows[1:])
    assert rows[1].path == reg.local_path("vit_b") and rows[1].size_bytes == reg.MODELS["vit_b"].size_bytes
    reg.local_path("vit_l").write_bytes(tiny_ckpt.read_bytes())
    rows = {r.name: r for r in reg.list_models()}
    assert rows["vit_l"].downloaded and rows["vit_l"].size_bytes == tiny_ckpt.stat().st_size
    assert not rows["vit_b"].downloaded


def test_checkpoint_read_errors_are_one_clear_line(tmp_path):
    import pickle

    from floodlabel.core.common.errors import ModelError
    from floodlabel.core.sam.checkpoint import read_state_dict

    csv = tmp_path / "results.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(ModelError, match="not a PyTorch checkpoint file"):
        read_state_dict(csv)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"a": print}, protocol=4))
    with pytest.raises(ModelError, match="refusing to run its code"):
        read_state_dict(evil)
