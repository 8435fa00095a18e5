"""Issue 18's end-to-end check: `floodlabel propose` with the random tiny SAM 3 (tests/tiny_sam3, an official-layout
checkpoint file) on 4 photos in the Kaggle layout (Image/, Mask/, metadata.csv; generated here) writes 4 proposals,
and a second run adds none. Random weights: the masks mean nothing, the counts and the store's contents do."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from synthetic_scenes import make_flood_scene

from floodlabel.cli import main
from floodlabel.core.store.project_store import ProjectStore, Status


@pytest.fixture(scope="module")
def sam3_file(tmp_path_factory):
    from tiny_sam3 import tiny_sam3_checkpoint

    return tiny_sam3_checkpoint(tmp_path_factory.mktemp("sam3") / "tiny_sam3.pt", seed=0)


def kaggle_layout(root):
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    rows = ["Image,Mask"]
    for i, kind in enumerate(("lake", "river", "scattered", "lake")):
        image, gt = make_flood_scene(120, 160, seed=i, kind=kind)
        Image.fromarray(image).save(root / "Image" / f"{i}.jpg", "JPEG", quality=90)
        Image.fromarray(gt.astype(np.uint8) * 255).save(root / "Mask" / f"{i}.png")
        rows.append(f"{i}.jpg,{i}.png")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.slow
def test_propose_with_tiny_sam3_writes_4_proposals_and_a_second_run_adds_none(tmp_path, sam3_file, capsys):
    data = kaggle_layout(tmp_path / "flood-area-segmentation")
    assert main(["propose", str(data), "--model", str(sam3_file), "--text", "water", "--threshold", "0.0",
                 "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["proposed"], first["skipped"], first["failed"]) == (4, 0, [])
    with ProjectStore(data, read_only=True) as store:
        proposals = store.proposals()
        assert len(proposals) == 4 and set(store.statuses().values()) == {Status.PROPOSED}
        for p in proposals:
            assert p.load_mask().shape == (120, 160) and 0.0 <= p.confidence <= 1.0
            assert p.annotation_state["prompt"]["text"] == {"phrase": "water", "threshold": 0.0}
            assert p.model_id.startswith("sam3")
        assert store.records(Status.ACCEPTED) == []
    assert main(["propose", str(data), "--model", str(sam3_file), "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["proposed"], second["skipped"]) == (0, 4)
