"""`floodlabel propose` and core.cluster.batch_propose with the text-prompt TEST DOUBLE (tests/text_segmenter_double):
one proposal per image with its confidence, idempotent, never over work, one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from image_factories import save
from synthetic_scenes import make_flood_scene
from text_segmenter_double import TextSegmenterDouble

from floodlabel.cli import main
from floodlabel.core.cluster.batch_propose import propose_local
from floodlabel.core.common.hashing import image_key
from floodlabel.core.data.images import read_image
from floodlabel.core.models import session as session_module
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.store.project_store import ProjectStore, Status


@pytest.fixture
def scenes(tmp_path):
    """DATA with 4 scattered-water scenes (PNG) and the double that knows their water."""
    data, water = tmp_path / "DATA", {}
    for i in range(4):
        image, mask = make_flood_scene(60, 80, seed=i, kind="scattered")
        save(data / f"{i}.png", image, "PNG")
        water[image_key(read_image(data / f"{i}.png"))] = mask
    return data, TextSegmenterDouble(water, scores=(0.9, 0.6, 0.3))


def test_propose_writes_one_proposal_per_image_and_a_second_run_adds_none(scenes):
    data, double = scenes
    paths = sorted(data.glob("*.png"))
    with ProjectStore(data) as store:
        store.accept(paths[3], np.zeros((60, 80), bool), {"prompt": {}})  # work is never replaced
        summary = propose_local(store, paths, SegmentationSession(double), "water", 0.5)
        assert (summary.proposed, summary.skipped, summary.failed) == (3, 1, [])
        assert store.counts([p.name for p in paths]) == {Status.NEW: 0, Status.PROPOSED: 3,
                                                         Status.IN_PROGRESS: 0, Status.ACCEPTED: 1}
        for p in paths[:3]:
            proposal = store.proposal(p.name)
            water = double.water[image_key(read_image(p))]
            assert proposal.annotation_state["prompt"]["text"] == {"phrase": "water", "threshold": 0.5}
            mask = proposal.load_mask()
            assert mask.shape == (60, 80) and mask.any() and not (mask & ~water).any()
            assert proposal.confidence == pytest.approx(0.75 if (mask != water).any() else 0.9)
        assert not store.record(paths[3]).load_mask().any()
        calls = double.calls
        again = propose_local(store, paths, SegmentationSession(double), "water", 0.5)
        assert (again.proposed, again.skipped) == (0, 4) and double.calls == calls  # no model work either


def test_cli_propose_json_and_refusals(scenes, monkeypatch, capsys):
    data, double = scenes
    monkeypatch.setattr(session_module, "load_segmenter", lambda name, config=None: double)
    assert main(["propose", str(data), "--model", "double", "--text", "flood water", "--threshold", "0.2",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["proposed"] == 4 and out["phrase"] == "flood water" and out["project"]["proposed"] == 4
    assert all(0.0 < c <= 0.9 for c in out["confidence"].values())
    assert main(["propose", str(data), "--model", "double"]) == 0
    assert "0 proposed, 4 skipped" in capsys.readouterr().out

    monkeypatch.undo()
    fresh = data.parent / "FRESH"
    save(fresh / "a.png", np.zeros((20, 20, 3), np.uint8), "PNG")
    assert main(["propose", str(fresh), "--model", "classic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["floodlabel: error: classic has no text prompt; SAM 3 has it: `floodlabel models download "
                   "sam3`, then --model sam3"]
    assert main(["propose", str(fresh), "--text", "   "]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    from floodlabel.core.classic.backend import ClassicSegmenter

    monkeypatch.setattr(session_module, "load_segmenter", lambda name, config=None: ClassicSegmenter())
    assert main(["propose", str(fresh), "--model", "vit_b"]) == 2  # any model whose capabilities lack text_prompt
    assert capsys.readouterr().err.strip().splitlines() == [
        "floodlabel: error: vit_b has no text prompt; SAM 3 has it: `floodlabel models download sam3`, then --model "
        "sam3"]
    assert not (fresh / "floodlabel-project").exists()  # refused before a project was made
