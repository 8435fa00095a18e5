"""`embed` (local and `--ray local`) and `eval --ray local` on a one-machine Ray (loopback only) with the tiny SAM.

One Ray for the module (`ray.init(num_cpus=2)`, no dashboard, bound to 127.0.0.1): starting it takes seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from image_factories import mask_png, save
from synthetic_scenes import make_flood_scene
from tiny_sam import tiny_sam_checkpoint

import floodlabel.cli as cli
from floodlabel.core.cluster import batch_embed
from floodlabel.core.common.hashing import image_key
from floodlabel.core.segment.embedding_cache import EmbeddingCache
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.data.images import read_image

ray = pytest.importorskip("ray", reason="the cluster extra (Ray) is not installed")

H, W = 96, 128


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three scenes with masks, an empty-GT pair (skipped by eval) and a broken image (no mask)."""
    root = tmp_path_factory.mktemp("cluster") / "data"
    kinds = ("lake", "river", "scattered")
    for i in range(3):
        image, mask = make_flood_scene(H, W, seed=i, kind=kinds[i])
        save(root / "Image" / f"{i}.png", image, "PNG")
        mask_png(root / "Mask" / f"{i}.png", mask * 255)
    save(root / "Image" / "dry.png", np.zeros((H, W, 3), np.uint8), "PNG")
    mask_png(root / "Mask" / "dry.png", np.zeros((H, W), np.uint8))
    (root / "Image" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    model = tiny_sam_checkpoint(root.parent / "tiny.pth", seed=3)
    return root, model


def entries(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.femb"))}


def test_embed_ray_matches_local_resumes_and_reports_broken_images(local_ray, scenes, tmp_path, capsys):
    """Local embed, then `embed --ray local` into a half-filled shared folder, then a re-run."""
    data, model = scenes
    paths = batch_embed.image_paths(data)
    assert [p.name for p in paths] == ["0.png", "1.png", "2.png", "broken.jpg", "dry.png"]

    # local: every readable image encoded, the broken one reported with its reason
    local = batch_embed.embed_local(paths, str(model), tmp_path / "local")
    assert (local.encoded, local.skipped) == (4, 0)
    assert [(Path(o.path).name, o.reason) for o in local.failed] == [
        ("broken.jpg", "the file is truncated (Truncated File Read)")]
    reference = entries(tmp_path / "local")
    assert len(reference) == 4

    # the keys are a session's: the app finds every embedding
    session = SegmentationSession(SegmentationSession.open(model).segmenter, EmbeddingCache(tmp_path / "local"))
    for p in paths:
        if p.name != "broken.jpg":
            assert session.cache.contains(session.cache_model_id, image_key(read_image(p)))

    # `embed --ray local` on a copy of the dataset where every image also has a twin (same content, so the same
    # key): the two actors write the same entries at about the same time (several writers). Two entries are
    # already there: an interrupted run resumes. The entries are bit-identical to the local run's.
    twins = tmp_path / "twins"
    shutil.copytree(data / "Image", twins)
    for p in paths:
        shutil.copy(p, twins / f"{p.stem}-twin{p.suffix}")
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in list(reference)[:2]:
        shutil.copy(tmp_path / "local" / name, shared / name)
    code = cli.main(["embed", str(twins), "--model", str(model), "--cache", str(shared), "--ray", "local",
                     "--workers", "2", "--cpus-per-worker", "1", "--batch", "1", "--json"])
    run = json.loads(capsys.readouterr().out)
    assert code == 0 and run["workers"] == 2 and run["images"] == 10
    assert run["encoded"] + run["skipped"] == 8 and run["skipped"] >= 2 + 2  # pre-filled ones and their twins
    assert run["encoded"] >= 2  # the two missing images, once each (twice when both twins raced)
    assert sorted(Path(f["path"]).name for f in run["failed"]) == ["broken-twin.jpg", "broken.jpg"]
    assert "truncated" in run["failed"][0]["reason"]
    assert run["model_id"] == local.model_id and run["images_per_second"] > 0
    assert entries(shared) == reference
    assert not list(shared.glob(".*.tmp"))  # no temp file left behind

    # a re-run adds nothing (idempotent), whichever path runs it
    again = batch_embed.embed_local(paths, str(model), shared)
    assert (again.encoded, again.skipped, len(again.failed)) == (0, 4, 1)
    assert entries(shared) == reference


def test_embed_command_local_summary_and_errors(scenes, tmp_path, capsys):
    data, model = scenes
    code = cli.main(["embed", str(data), "--model", str(model), "--cache", str(tmp_path / "c"), "--limit", "2"])
    text = capsys.readouterr().out
    assert code == 0
    assert "2 encoded, 0 skipped (already cached), 0 failed" in text and "images/s" in text
    assert cli.main(["embed", str(data), "--model", "classic"]) == 2
    assert "classic backend has no embeddings" in capsys.readouterr().err
    assert cli.main(["embed", str(data), "--model", str(model), "--batch", "8"]) == 2
    assert "--ray runs only" in capsys.readouterr().err


def test_cache_too_small_is_refused_before_any_work(scenes, tmp_path, monkeypatch, capsys):
    data, model = scenes
    monkeypatch.setenv("FLOODLABEL_CACHE_MAX_GB", "0.001")
    assert cli.main(["embed", str(data), "--model", str(model), "--cache", str(tmp_path / "c")]) == 2
    assert "FLOODLABEL_CACHE_MAX_GB" in capsys.readouterr().err
    assert not list((tmp_path / "c").glob("*.femb"))
    assert EmbeddingCache(tmp_path / "d").max_disk_bytes == int(0.001 * 1024**3)
    monkeypatch.setenv("FLOODLABEL_CACHE_MAX_GB", "lots")
    assert cli.main(["embed", str(data), "--model", str(model)]) == 2
    assert "positive number of GiB" in capsys.readouterr().err


def test_eval_ray_equals_local_eval(local_ray, scenes, tmp_path, monkeypatch, capsys):
    """Same rows, same order, same skipped entries, byte-identical CSV: SAM (point with NoC, and box) and classic.
    Each run gets an empty embedding cache, so both encode (cached float16 features would differ from fresh ones)."""
    data, model = scenes
    outputs = {}
    for name, extra in (("local", []), ("ray", ["--ray", "local"])):
        monkeypatch.setenv("FLOODLABEL_CACHE_DIR", str(tmp_path / f"cache-{name}"))
        code = cli.main(["eval", str(data), "--model", str(model), "--model", "classic", "--prompt", "both",
                         "--max-clicks", "3", "--limit", "2", "--csv", str(tmp_path / f"{name}.csv"), "--json", *extra])
        assert code == 0
        out = json.loads(capsys.readouterr().out)
        out.pop("csv")
        outputs[name] = out
    assert outputs["ray"] == outputs["local"]
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    rows = (tmp_path / "local.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 2  # header + 2 models x 2 prompts x 2 scenes
    assert "broken" in {s["stem"] for s in outputs["local"]["skipped"]}


def test_missing_ray_says_how_to_install(monkeypatch):
    import sys

    from floodlabel.core.cluster import connection as cluster
    from floodlabel.core.common.errors import FloodLabelError

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(FloodLabelError, match=r"pip install -e '\.\[cluster\]'"):
        cluster.require_ray()
