"""`floodlabel propose --ray local` with the random tiny SAM 3 (an official-layout checkpoint file) stores the same
proposals as the local run: the same images, statuses, masks, confidences and states. One test: starting a
one-machine Ray takes seconds. Each run gets its own embedding cache and project, so both encode."""

from __future__ import annotations

import json

import numpy as np
import pytest
from image_factories import save
from synthetic_scenes import make_flood_scene

from floodlabel.cli import main
from floodlabel.core.store.project_store import ProjectStore, Status

pytest.importorskip("ray", reason="the cluster extra (Ray) is not installed")


def stored(data, project) -> dict[str, tuple]:
    """{relative path: (status, mask, confidence, state, model id)} of every image with a proposal."""
    with ProjectStore(data, project, read_only=True) as store:
        statuses = store.statuses()
        return {p.rel_path: (statuses[p.rel_path], p.load_mask(), p.confidence, p.annotation_state, p.model_id)
                for p in store.proposals(pending_only=False)}


@pytest.mark.slow
def test_propose_ray_local_stores_the_same_proposals_as_the_local_run(tmp_path, monkeypatch, capsys):
    from tiny_sam3 import tiny_sam3_checkpoint

    data = tmp_path / "data"
    for i, kind in enumerate(("lake", "river", "scattered")):
        save(data / "Image" / f"{i}.png", make_flood_scene(96, 128, seed=i, kind=kind)[0], "PNG")
    model = tiny_sam3_checkpoint(tmp_path / "tiny_sam3.pt", seed=0)
    runs = {}
    for name, extra in (("local", []), ("ray", ["--ray", "local"])):
        monkeypatch.setenv("FLOODLABEL_CACHE_DIR", str(tmp_path / f"cache-{name}"))
        args = ["propose", str(data), "--model", str(model), "--threshold", "0.3", "--project",
                str(tmp_path / f"project-{name}"), "--json", *extra]
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["proposed"], out["skipped"], out["failed"]) == (3, 0, [])
        runs[name] = out
        assert main(args) == 0  # resumable: a second run skips every image before any model work
        again = json.loads(capsys.readouterr().out)
        assert (again["proposed"], again["skipped"]) == (0, 3)
    assert runs["ray"]["model_id"] == runs["local"]["model_id"]
    assert runs["ray"]["confidence"] == runs["local"]["confidence"]

    local, ray = (stored(data, tmp_path / f"project-{name}") for name in ("local", "ray"))
    assert sorted(ray) == sorted(local) == [f"Image/{i}.png" for i in range(3)]
    assert any(entry[1].any() for entry in local.values()), "some instance should pass 0.3 (else nothing is compared)"
    for rel, (status, mask, conf, state, model_id) in local.items():
        r_status, r_mask, r_conf, r_state, r_model_id = ray[rel]
        assert status == r_status == Status.PROPOSED
        assert mask.shape == (96, 128) and np.array_equal(mask, r_mask)
        assert conf == pytest.approx(r_conf, abs=1e-6) and state == r_state and model_id == r_model_id
