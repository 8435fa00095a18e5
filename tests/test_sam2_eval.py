"""`floodlabel eval --model <a SAM 2.1 file>` end to end (a random-weight hiera_tiny in the official layout, on
generated scenes), alone and beside a SAM v1 file: each family gets its own embeddings of the same images."""

from __future__ import annotations

import csv
import importlib.util

import pytest
from image_factories import mask_png, save
from synthetic_scenes import make_flood_scene
from tiny_sam import tiny_sam_checkpoint
from tiny_sam2 import tiny_sam2_checkpoint

import floodlabel.cli as cli


@pytest.fixture(autouse=True)
def eval_only_cli(monkeypatch):
    if importlib.util.find_spec("floodlabel.commands.gui_command") is None:
        monkeypatch.setattr(cli, "COMMAND_MODULES", ("eval",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return tiny_sam2_checkpoint(d / "random_tiny.pt", seed=0), tiny_sam_checkpoint(d / "tiny_v1.pth", seed=0)


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    for i, kind in enumerate(("lake", "river")):
        image, mask = make_flood_scene(200, 300, seed=i, kind=kind)
        save(root / "Image" / f"{i}.png", image, "PNG")
        mask_png(root / "Mask" / f"{i}.png", mask * 255)
    return root


def test_eval_point_with_a_sam2_file(files, data, tmp_path, capsys, isolated_cache):
    sam2_file, _ = files
    out_csv = tmp_path / "r.csv"
    code = cli.main(["eval", str(data), "--model", str(sam2_file), "--prompt", "point", "--max-clicks", "2",
                     "--csv", str(out_csv)])
    out = capsys.readouterr().out
    assert code == 0, out
    row = next(line.split() for line in out.splitlines() if line.startswith(str(sam2_file)))
    assert row[1:3] == ["point", "2"]
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(0.0 <= float(r["iou"]) <= 1.0 for r in rows)


def test_eval_compares_the_two_families_each_with_its_own_embeddings(files, data, tmp_path, capsys, monkeypatch):
    sam2_file, v1_file = files
    cache_dir = tmp_path / "emb"
    monkeypatch.setenv("FLOODLABEL_CACHE_DIR", str(cache_dir))
    code = cli.main(["eval", str(data), "--model", str(v1_file), "--model", str(sam2_file), "--prompt", "point",
                     "--max-clicks", "1", "--csv", str(tmp_path / "r.csv")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert any(line.startswith(str(v1_file)) for line in out.splitlines())
    assert any(line.startswith(str(sam2_file)) for line in out.splitlines())
    entries = sorted(p.stat().st_size for p in cache_dir.rglob("*.femb"))
    assert len(entries) == 4  # 2 images x 2 families
    assert entries[1] < 3 * 2**20 <= 8 * 2**20 <= entries[2]  # SAM v1 entries ~2 MiB, SAM 2.1 ~8 MiB
