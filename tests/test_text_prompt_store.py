"""The store's "proposed" status: proposals kept apart from accepted work, idempotent, accept from a proposal, the
schema 1 -> 2 migration and the cleanup of a killed proposal write."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from image_factories import save

from floodlabel.core.annotation.annotation import Annotation
from floodlabel.core.common.errors import FloodLabelError, StoreError
from floodlabel.core.export.project_export import export_project
from floodlabel.core.store.project_store import DB_NAME, SCHEMA_VERSION, ProjectStore, Status
from floodlabel.core.store.proposals import PROPOSALS_DIR_NAME


@pytest.fixture
def data(tmp_path):
    """DATA/Image/{a,b,c}.jpg, 40x30 each."""
    root = tmp_path / "DATA"
    for stem in "abc":
        save(root / "Image" / f"{stem}.jpg", np.full((30, 40, 3), 90, np.uint8), "JPEG")
    return root


def _text_state(threshold=0.5, dropped=()):
    ann = Annotation((30, 40))
    ann.run_text("water", threshold)
    for i in dropped:
        ann.toggle_instance(i)
    return ann.to_dict()


def _mask(seed=0):
    return np.random.default_rng(seed).random((30, 40)) < 0.3


def test_proposed_is_its_own_status_and_never_accepted_work(data, tmp_path):
    with ProjectStore(data) as store:
        assert store.propose("Image/a.jpg", _mask(), 0.8, _text_state(), model_id="sam3")
        assert store.propose("Image/b.jpg", _mask(1), 0.3, _text_state(0.4, [1]), model_id="sam3")
        assert store.statuses() == {"Image/a.jpg": Status.PROPOSED, "Image/b.jpg": Status.PROPOSED}
        rels = ["Image/a.jpg", "Image/b.jpg", "Image/c.jpg"]
        assert store.counts(rels) == {Status.NEW: 1, Status.PROPOSED: 2, Status.IN_PROGRESS: 0, Status.ACCEPTED: 0}
        assert store.records() == [] and store.records(Status.ACCEPTED) == []
        assert store.record("Image/a.jpg") is None  # no work yet
        order = store.proposals()
        assert [p.rel_path for p in order] == ["Image/b.jpg", "Image/a.jpg"]  # least confident first
        assert order[0].phrase == "water" and order[0].annotation_state["dropped"] == [1]
        assert np.array_equal(order[0].load_mask(), _mask(1)) and not order[0].changed
        with pytest.raises(FloodLabelError, match="nothing to export"):
            export_project(store, tmp_path / "out")


def test_propose_is_idempotent_and_never_replaces_work(data):
    with ProjectStore(data) as store:
        assert store.propose("Image/a.jpg", _mask(), 0.8, _text_state())
        assert not store.propose("Image/a.jpg", _mask(2), 0.9, _text_state())  # a second run adds none
        store.save_progress("Image/b.jpg", {"prompt": {}})
        store.accept("Image/c.jpg", _mask(3), {"prompt": {}})
        assert not store.propose("Image/b.jpg", _mask(), 0.5)
        assert not store.propose("Image/c.jpg", _mask(), 0.5)
        assert store.statuses() == {"Image/a.jpg": Status.PROPOSED, "Image/b.jpg": Status.IN_PROGRESS,
                                    "Image/c.jpg": Status.ACCEPTED}
        assert np.array_equal(store.record("Image/c.jpg").load_mask(), _mask(3))
        assert np.array_equal(store.proposal("Image/a.jpg").load_mask(), _mask())
        assert len(list((store.project_dir / PROPOSALS_DIR_NAME).glob("*.png"))) == 1
        with pytest.raises(StoreError, match="confidence"):
            store.propose("Image/a.jpg", _mask(), 1.5)
        save(data / "Image" / "d.jpg", np.full((30, 40, 3), 90, np.uint8), "JPEG")
        with pytest.raises(StoreError, match="40x30"):
            store.propose("Image/d.jpg", np.zeros((10, 10), bool), 0.5)
        assert "Image/d.jpg" not in store.statuses()


def test_accept_from_a_proposal_records_the_prompt_and_drops_the_proposal(data):
    with ProjectStore(data) as store:
        store.propose("Image/a.jpg", _mask(), 0.7, _text_state(0.6, [0]), model_id="sam3")
        store.save_progress("Image/a.jpg", _text_state(0.6, [0]))  # fixing it: in progress, proposal kept
        assert store.statuses()["Image/a.jpg"] is Status.IN_PROGRESS
        assert store.proposals() == [] and store.proposal("Image/a.jpg") is not None
        fixed = _mask() | _mask(5)
        record = store.accept("Image/a.jpg", fixed, _text_state(0.6, [0]), model_id="sam3")
        assert record.accepted and record.accepted_state["prompt"]["text"] == {"phrase": "water", "threshold": 0.6}
        assert record.accepted_state["dropped"] == [0]
        assert store.proposal("Image/a.jpg") is None
        assert list((store.project_dir / PROPOSALS_DIR_NAME).glob("*.png")) == []
        assert not store.propose("Image/a.jpg", _mask(), 0.5)
    with ProjectStore(data) as store:
        assert store.statuses() == {"Image/a.jpg": Status.ACCEPTED}
        assert np.array_equal(store.record("Image/a.jpg").load_mask(), fixed)


def test_a_version_1_project_is_migrated_and_read_as_it_is_read_only(data):
    with ProjectStore(data) as store:
        store.accept("Image/a.jpg", _mask(), {"prompt": {}})
        store.save_progress("Image/b.jpg", {"prompt": {}})
        db = store.db_path
    conn = sqlite3.connect(db)  # make it the format FloodLabel wrote before proposals existed
    conn.executescript("DROP TABLE proposals; PRAGMA user_version = 1;")
    conn.close()
    with ProjectStore(data, read_only=True) as store:
        assert store.statuses() == {"Image/a.jpg": Status.ACCEPTED, "Image/b.jpg": Status.IN_PROGRESS}
        assert store.proposals() == [] and store.proposal("Image/a.jpg") is None
    with ProjectStore(data) as store:
        assert store.statuses() == {"Image/a.jpg": Status.ACCEPTED, "Image/b.jpg": Status.IN_PROGRESS}
        assert np.array_equal(store.record("Image/a.jpg").load_mask(), _mask())
        assert store.propose("Image/c.jpg", _mask(), 0.5)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()


def test_a_killed_proposal_write_leaves_nothing_behind(data):
    with ProjectStore(data) as store:
        store.propose("Image/a.jpg", _mask(), 0.5)
        folder = store.project_dir / PROPOSALS_DIR_NAME
    (folder / "b-0123456789ab.png").write_bytes(b"png without a row")  # killed between the file and its row
    (folder / ".tmp-0123456789ab-c.png").write_bytes(b"half")
    with ProjectStore(data, read_only=True):
        assert len(list(folder.iterdir())) == 3  # a reader deletes nothing
    with ProjectStore(data) as store:
        assert [p.name for p in folder.iterdir()] == [store.proposal("Image/a.jpg").mask_path.name]
        assert store.statuses() == {"Image/a.jpg": Status.PROPOSED}
    assert (data / "floodlabel-project" / DB_NAME).is_file()


def test_a_proposal_on_a_changed_image_is_flagged(data):
    with ProjectStore(data) as store:
        store.propose("Image/a.jpg", _mask(), 0.5)
        save(data / "Image" / "a.jpg", np.full((30, 40, 3), 10, np.uint8), "JPEG")
        assert store.proposal("Image/a.jpg").changed
