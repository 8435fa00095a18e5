"""The project store: round trips, native size, changed images, crash-safe writes and every refusal."""

from __future__ import annotations

import errno
import os
import sqlite3

import numpy as np
import pytest
from image_factories import jpeg_with_orientation, save
from PIL import Image

from floodlabel.core.common import atomic_files
from floodlabel.core.store import image_files
from floodlabel.core.store import location as project_location
from floodlabel.core.common.errors import FloodLabelError, StoreError
from floodlabel.core.store.project_store import (DB_NAME, PROJECT_DIR_NAME, SCHEMA_VERSION, ProjectStore, Status,
                                           default_project_dir)


@pytest.fixture
def data(tmp_path):
    """DATA/Image/{a,b,c}.jpg, 40x30 each."""
    root = tmp_path / "DATA"
    for stem in "abc":
        save(root / "Image" / f"{stem}.jpg", np.full((30, 40, 3), 90, np.uint8), "JPEG")
    return root


def holey_mask(shape=(30, 40), seed=0) -> np.ndarray:
    """A blob with a hole plus scattered single pixels."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    mask[5:25, 5:30] = True
    mask[10:15, 10:15] = False
    mask |= rng.random(shape) < 0.05
    return mask


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# round trips


def test_accept_round_trip_after_reopen(data):
    mask = holey_mask()
    state = {"points": [[3.5, 4.0, 1], [10, 12, 0]], "box": [1, 2, 30, 20], "candidate": 2, "strokes": []}
    with ProjectStore(data) as store:
        assert store.project_dir == data / PROJECT_DIR_NAME and not store.read_only
        record = store.accept("Image/a.jpg", mask, state, model_id="vit_b", checkpoint_hash="abc123",
                              metrics={"iou": 0.91, "dice": 0.95})
        assert record.status is Status.ACCEPTED and record.mask_size == (40, 30)
    with ProjectStore(data) as store:
        record = store.record("Image/a.jpg")
        assert record is not None and record.accepted and not record.changed
        assert np.array_equal(record.load_mask(), mask)
        assert record.annotation_state == state and record.accepted_state == state
        assert (record.model_id, record.checkpoint_hash) == ("vit_b", "abc123")
        assert record.metrics == {"iou": 0.91, "dice": 0.95}
        assert record.strokes_used is False and record.accepted_at and record.created_at
        assert store.record("Image/b.jpg") is None
        with Image.open(record.mask_path) as png:
            assert png.mode == "L" and png.size == (40, 30)
            assert set(np.unique(np.asarray(png))) <= {0, 255}


def test_statuses_counts_and_autosave(data):
    with ProjectStore(data) as store:
        store.save_progress("Image/a.jpg", {"points": [[1, 1, 1]]})
        store.accept("Image/b.jpg", holey_mask(), {"points": []}, strokes_used=True)
        assert store.statuses() == {"Image/a.jpg": Status.IN_PROGRESS, "Image/b.jpg": Status.ACCEPTED}
        everything = ["Image/a.jpg", "Image/b.jpg", "Image/c.jpg"]
        assert store.counts(everything) == {Status.NEW: 1, Status.PROPOSED: 0, Status.IN_PROGRESS: 1,
                                            Status.ACCEPTED: 1}
        assert store.counts()[Status.NEW] == 0
        assert store.record("Image/a.jpg").annotation_state == {"points": [[1, 1, 1]]}
        assert store.record("Image/a.jpg").mask_path is None
        with pytest.raises(StoreError, match="no accepted mask"):
            store.record("Image/a.jpg").load_mask()
        # autosave after accept: still accepted, mask kept, newer state visible
        store.save_progress("Image/b.jpg", {"points": [[2, 2, 1]]})
        rec = store.record("Image/b.jpg")
        assert rec.accepted and rec.edited_since_accept and rec.strokes_used
        assert rec.annotation_state == {"points": [[2, 2, 1]]} and rec.accepted_state == {"points": []}
        assert np.array_equal(rec.load_mask(), holey_mask())
        # absolute paths inside DATA are accepted too
        assert store.record(data / "Image" / "b.jpg").rel_path == "Image/b.jpg"
        with pytest.raises(StoreError, match="not inside the dataset"):
            store.record(data.parent / "elsewhere.jpg")


def test_reaccept_replaces_mask_file(data):
    with ProjectStore(data) as store:
        first = store.accept("Image/a.jpg", holey_mask(seed=1))
        second = store.accept("Image/a.jpg", holey_mask(seed=2), {"strokes": [{"r": 3}]})
        assert not first.mask_path.exists() and second.mask_path.exists()
        assert files_in(store.masks_dir) == sorted([second.mask_path.name, second.mask_path.with_suffix(".json").name])
        assert second.strokes_used  # inferred from the state's strokes
        assert np.array_equal(store.record("Image/a.jpg").load_mask(), holey_mask(seed=2))


def test_native_size_with_exif_rotation(tmp_path):
    root = tmp_path / "DATA"
    jpeg_with_orientation(root / "rot.jpg", np.zeros((30, 40, 3), np.uint8), orientation=6)  # shown as 30x40
    with ProjectStore(root) as store:
        with pytest.raises(StoreError, match="40x30 but the image is 30x40"):
            store.accept("rot.jpg", np.zeros((30, 40), bool))
        mask = holey_mask((40, 30))
        store.accept("rot.jpg", mask)
        record = store.record("rot.jpg")
        assert record.mask_size == (30, 40) and np.array_equal(record.load_mask(), mask)


def test_changed_image_is_flagged_not_matched(data):
    with ProjectStore(data) as store:
        store.accept("Image/a.jpg", holey_mask())
        store.save_progress("Image/b.jpg", {"points": []})
    save(data / "Image" / "a.jpg", np.full((30, 40, 3), 200, np.uint8), "JPEG")
    save(data / "Image" / "b.jpg", np.full((30, 40, 3), 10, np.uint8), "JPEG")
    with ProjectStore(data) as store:
        a, b = store.record("Image/a.jpg"), store.record("Image/b.jpg")
        assert a.changed and b.changed and a.current_hash != a.accepted_image_hash
        problems = store.problems()
        assert any("a.jpg: the image changed since it was accepted" in p for p in problems)
        # accepting again on the new content clears the flag
        assert not store.accept("Image/a.jpg", holey_mask()).changed
    (data / "Image" / "c.jpg").unlink()
    with ProjectStore(data) as store:
        store.save_progress("Image/b.jpg", None)
        assert not store.record("Image/b.jpg").changed
        with pytest.raises(StoreError, match="cannot read the image"):
            store.save_progress("Image/c.jpg", {})


def test_hash_is_cached_per_file_version(data, monkeypatch):
    calls = []
    real = image_files.sha256_file
    monkeypatch.setattr(image_files, "sha256_file", lambda p: calls.append(p) or real(p))
    with ProjectStore(data) as store:
        store.accept("Image/a.jpg", holey_mask())
        for _ in range(3):
            store.record("Image/a.jpg")
        assert len(calls) == 1
    with ProjectStore(data) as store:  # a new session trusts the stored hash while size and mtime are unchanged
        store.record("Image/a.jpg")
        assert len(calls) == 1


def test_bad_input_to_accept(data):
    with ProjectStore(data) as store:
        with pytest.raises(StoreError, match="2-D"):
            store.accept("Image/a.jpg", np.zeros((30, 40, 3), bool))
        with pytest.raises(StoreError, match="JSON"):
            store.accept("Image/a.jpg", holey_mask(), {"x": object()})
        with pytest.raises(StoreError, match="bad image path"):
            store.save_progress("../x.jpg", {})
        with pytest.raises(StoreError, match="cannot accept Image/zzz.jpg"):
            store.accept("Image/zzz.jpg", holey_mask())
        store.accept("Image/a.jpg", holey_mask().astype(np.uint8) * 255)  # 0/255 arrays are fine
        assert np.array_equal(store.record("Image/a.jpg").load_mask(), holey_mask())
        assert store.statuses() == {"Image/a.jpg": Status.ACCEPTED}


# ---------------------------------------------------------------------------------------------------------------
# location


def test_default_location_falls_back_to_user_data_dir(data, monkeypatch, tmp_path):
    assert default_project_dir(data) == data / PROJECT_DIR_NAME
    monkeypatch.setattr(project_location, "_dir_is_writable", lambda folder: False)  # root can write anywhere
    fallback = default_project_dir(data)
    assert fallback.is_relative_to(os.environ["FLOODLABEL_DATA_DIR"]) and fallback.name.startswith("DATA-")
    with ProjectStore(data) as store:
        assert store.project_dir == fallback
        store.accept("Image/a.jpg", holey_mask())
    with ProjectStore(project_dir=fallback) as store:  # a project folder knows its dataset folder
        assert store.data_root == data and store.statuses() == {"Image/a.jpg": Status.ACCEPTED}
    explicit = tmp_path / "elsewhere"
    with ProjectStore(data, explicit) as store:
        assert store.project_dir == explicit and (explicit / DB_NAME).is_file()


def test_project_inside_data_moves_with_it(data, tmp_path):
    with ProjectStore(data) as store:
        store.accept("Image/a.jpg", holey_mask())
    moved = tmp_path / "moved"
    data.rename(moved)
    with ProjectStore(project_dir=moved / PROJECT_DIR_NAME) as store:
        assert store.data_root == moved and not store.record("Image/a.jpg").changed


# ---------------------------------------------------------------------------------------------------------------
# refusals


def test_same_project_opened_twice_is_read_only(data):
    with ProjectStore(data) as writer:
        writer.accept("Image/a.jpg", holey_mask())
        with ProjectStore(data) as second:
            assert second.read_only and "another FloodLabel" in second.read_only_reason
            assert np.array_equal(second.record("Image/a.jpg").load_mask(), holey_mask())
            with pytest.raises(StoreError, match="read-only: another FloodLabel"):
                second.accept("Image/b.jpg", holey_mask())
            with pytest.raises(StoreError, match="read-only"):
                second.save_progress("Image/b.jpg", {})
            writer.accept("Image/b.jpg", holey_mask(seed=3))  # the reader sees the writer's commits
            assert second.statuses()["Image/b.jpg"] is Status.ACCEPTED
    with ProjectStore(data) as again:  # the lock goes with the writer
        assert not again.read_only


def test_read_only_folder_opens_read_only(data, monkeypatch):
    with ProjectStore(data) as store:
        store.accept("Image/a.jpg", holey_mask())
    project = data / PROJECT_DIR_NAME
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):  # root ignores permission bits: refuse writes here instead
        if str(path).startswith(str(project)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    with ProjectStore(data, project) as store:
        assert store.read_only and "not writable (permission denied)" in store.read_only_reason
        assert np.array_equal(store.record("Image/a.jpg").load_mask(), holey_mask())
        with pytest.raises(StoreError, match="is read-only: the project folder is not writable"):
            store.accept("Image/b.jpg", holey_mask())
    project = data / "Image"  # no project there, and none can be made
    with pytest.raises(StoreError, match="cannot create a FloodLabel project at .*: the project folder is not wri"):
        ProjectStore(data, project / PROJECT_DIR_NAME)


def test_permission_lost_while_open(data, monkeypatch):
    with ProjectStore(data) as store:
        store.accept("Image/a.jpg", holey_mask(seed=1))

        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(atomic_files.os, "open", refuse)
        with pytest.raises(StoreError, match="permission denied; the previously accepted mask is unchanged"):
            store.accept("Image/a.jpg", holey_mask(seed=2))
    monkeypatch.undo()
    with ProjectStore(data) as store:
        assert np.array_equal(store.record("Image/a.jpg").load_mask(), holey_mask(seed=1))


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_disk_full_keeps_previous_mask(data, monkeypatch, failing):
    with ProjectStore(data) as store:
        store.accept("Image/a.jpg", holey_mask(seed=1), {"v": 1})
        before = files_in(store.masks_dir)

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(atomic_files.os, failing, full)
        with pytest.raises(StoreError, match="the disk is full; the previously accepted mask is unchanged"):
            store.accept("Image/a.jpg", holey_mask(seed=2), {"v": 2})
        monkeypatch.undo()
        assert files_in(store.masks_dir) == before  # no temporary file left behind
        record = store.record("Image/a.jpg")
        assert record.accepted_state == {"v": 1} and np.array_equal(record.load_mask(), holey_mask(seed=1))


def test_database_full_removes_new_mask_file(data, monkeypatch):
    with ProjectStore(data) as store:
        store.accept("Image/a.jpg", holey_mask(seed=1))
        before = files_in(store.masks_dir)

        class FullConnection:
            def __init__(self, conn):
                self.conn = conn

            def execute(self, sql, params=()):
                if sql.startswith("INSERT"):
                    raise sqlite3.OperationalError("database or disk is full")
                return self.conn.execute(sql, params)

            def close(self):
                self.conn.close()

        store._conn = FullConnection(store._conn)
        with pytest.raises(StoreError, match="cannot write the project database .*: the disk is full"):
            store.accept("Image/a.jpg", holey_mask(seed=2))
        assert files_in(store.masks_dir) == before
        assert np.array_equal(store.record("Image/a.jpg").load_mask(), holey_mask(seed=1))


def test_newer_schema_is_refused_untouched(data):
    with ProjectStore(data) as store:
        store.accept("Image/a.jpg", holey_mask())
        db = store.db_path
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = db.read_bytes()
    for read_only in (False, True):
        with pytest.raises(StoreError, match="made by a newer FloodLabel"):
            ProjectStore(data, read_only=read_only)
    assert db.read_bytes() == before


@pytest.mark.parametrize("content", [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_corrupt_database_is_refused_untouched(data, content):
    project = data / PROJECT_DIR_NAME
    project.mkdir()
    (project / DB_NAME).write_bytes(content)
    with pytest.raises(StoreError, match="damaged or is not a FloodLabel project database; it was left as it is"):
        ProjectStore(data)
    assert (project / DB_NAME).read_bytes() == content
    assert isinstance(StoreError("x"), FloodLabelError)


def test_foreign_sqlite_database_is_refused(data):
    project = data / PROJECT_DIR_NAME
    project.mkdir()
    with sqlite3.connect(project / DB_NAME) as conn:
        conn.execute("CREATE TABLE other (x)")
    conn.close()
    with pytest.raises(StoreError, match="not a FloodLabel project database"):
        ProjectStore(data)


def test_deleted_mask_png_is_reported(data):
    with ProjectStore(data) as store:
        record = store.accept("Image/a.jpg", holey_mask())
        store.accept("Image/b.jpg", holey_mask())
    record.mask_path.unlink()
    with ProjectStore(data) as store:
        rec = store.record("Image/a.jpg")
        assert rec.mask_missing and rec.accepted
        with pytest.raises(StoreError, match="accepted mask of Image/a.jpg .* is missing: it was deleted outside"):
            rec.load_mask()
        assert any("Image/a.jpg: the accepted mask" in p and "deleted" in p for p in store.problems())
        assert np.array_equal(store.record("Image/b.jpg").load_mask(), holey_mask())  # the others are fine


def test_damaged_mask_png_is_reported(data):
    with ProjectStore(data) as store:
        record = store.accept("Image/a.jpg", holey_mask())
    record.mask_path.write_bytes(record.mask_path.read_bytes()[:50])
    with ProjectStore(data) as store, pytest.raises(StoreError, match="changed or damaged outside FloodLabel"):
        store.record("Image/a.jpg").load_mask()


def test_missing_project_read_only(tmp_path):
    with pytest.raises(StoreError, match="no FloodLabel project"):
        ProjectStore(tmp_path, read_only=True)
    with pytest.raises(StoreError, match="no FloodLabel project"):
        ProjectStore(project_dir=tmp_path / "nothing", create=False)


def test_leftovers_of_a_killed_accept_are_removed_but_masks_are_kept(data):
    with ProjectStore(data) as store:
        store.accept("Image/a.jpg", holey_mask())
        kept = files_in(store.masks_dir)
        (store.masks_dir / ".tmp-0123456789ab-a-0123456789ab.png").write_bytes(b"half")
        (store.masks_dir / "a-0123456789ab.png").write_bytes(b"renamed, row never committed")
        (store.masks_dir / "b-0123456789ab.json").write_text("{}")  # a sidecar whose mask was never written
        (store.masks_dir / "notes.txt").write_text("not ours")
    with ProjectStore(data) as store:
        # a mask PNG no row points to is kept and listed, never deleted
        assert files_in(store.masks_dir) == sorted(kept + ["a-0123456789ab.png", "notes.txt"])
        assert [o.png.name for o in store.orphans] == ["a-0123456789ab.png"]
