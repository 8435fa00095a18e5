"""A damaged, emptied, truncated or moved-away project database never costs a user's accepted masks.

The rule under test: a mask PNG is deleted only when a readable database row says it is superseded. Masks no row
points to are kept, listed (`ProjectStore.orphans`) and restored by `recover_orphans` / `floodlabel recover`.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from image_factories import save

from floodlabel.cli import main
from floodlabel.core.common.errors import DamagedProjectError, StoreError
from floodlabel.core.store.mask_sidecar import sidecar_path
from floodlabel.core.store.orphan_masks import OrphanKind
from floodlabel.core.store.recovery import recover_project
from floodlabel.core.store.project_store import DB_NAME, PROJECT_DIR_NAME, ProjectStore, Status

IMAGES = [f"Image/{i}.png" for i in range(10)]


@pytest.fixture
def data(tmp_path):
    """DATA/Image/0..9.png, 40x30 each, all different."""
    root = tmp_path / "DATA"
    for i, rel in enumerate(IMAGES):
        save(root / rel, np.full((30, 40, 3), 20 * i, np.uint8), "PNG")
    return root


def mask_for(i: int, version: int = 0) -> np.ndarray:
    rng = np.random.default_rng(100 * i + version)
    return rng.random((30, 40)) < 0.4


def crash_image(data, tmp_path, accepted=(0, 1, 2)):
    """Accept `accepted` and copy the project while the store is still open: what a kill -9 leaves on disk (the
    rows live in the -wal file; project.sqlite holds little). Returns (DATA copy, project copy)."""
    with ProjectStore(data) as store:
        for i in accepted:
            store.accept(IMAGES[i], mask_for(i), {"points": [[i, i]]}, model_id="test", metrics={"iou": i / 10})
        crashed = tmp_path / "crashed"
        shutil.copytree(data, crashed)
    shutil.rmtree(crashed / PROJECT_DIR_NAME / "project.lock", ignore_errors=True)
    return crashed, crashed / PROJECT_DIR_NAME


def pngs(project):
    return sorted(p.name for p in (project / "masks").glob("*.png"))


def assert_restored(data, accepted=(0, 1, 2)):
    with ProjectStore(data) as store:
        assert store.counts()[Status.ACCEPTED] == len(accepted)
        for i in accepted:
            record = store.record(IMAGES[i])
            assert record.accepted and not record.changed
            assert np.array_equal(record.load_mask(), mask_for(i))
            assert record.accepted_state == {"points": [[i, i]]}
            assert record.model_id == "test" and record.metrics == {"iou": i / 10}
        assert store.orphans == []


def damage_wal(project, offset=20000, length=4096):
    wal = project / f"{DB_NAME}-wal"
    size = wal.stat().st_size
    assert size > 32, "the crash image should have its rows in the WAL"
    offset = min(offset, size // 2)
    with open(wal, "r+b") as f:
        f.seek(offset)
        f.write(np.random.default_rng(1).integers(0, 256, length, dtype=np.uint8).tobytes())


# ---------------------------------------------------------------------------------------------------------------
# the reproduction: accept 3 images, kill -9, damage the WAL, reopen

CHILD = """
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
from test_store_recovery import IMAGES, mask_for
from floodlabel.core.store.project_store import ProjectStore
store = ProjectStore(sys.argv[1])
for i in range(3):
    store.accept(IMAGES[i], mask_for(i), {"points": [[i, i]]}, model_id="test", metrics={"iou": i / 10})
print("accepted", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
@pytest.mark.parametrize("offset", [20000, 32])
def test_killed_app_with_damaged_wal_keeps_every_mask_and_recovers(data, offset):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(data), os.path.dirname(__file__)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline() == "accepted\n", child.stderr.read()
    finally:
        child.kill()
        child.wait()
    project = data / PROJECT_DIR_NAME
    before = pngs(project)
    assert len(before) == 3
    damage_wal(project, offset)

    with ProjectStore(data) as store:  # what the window does at launch
        assert not store.read_only
        assert pngs(project) == before  # nothing deleted
        lost = {o.rel_path for o in store.orphans}
        rows = {r.rel_path for r in store.records(Status.ACCEPTED)}
        assert lost | rows == set(IMAGES[:3]) and lost, "the damage should have cost rows"
        assert all(o.kind is OrphanKind.RECOVERABLE for o in store.orphans)
        restored = store.recover_orphans()
        assert sorted(restored) == sorted(lost)
    assert pngs(project) == before
    assert_restored(data)


@pytest.mark.parametrize("damage", ["zero bytes", "moved away", "truncated", "garbage", "wal only garbage"])
def test_every_kind_of_damage_keeps_masks_and_recovery_restores_them(data, tmp_path, damage, capsys):
    crashed, project = crash_image(data, tmp_path)
    db = project / DB_NAME
    before = pngs(project)
    if damage == "zero bytes":
        db.write_bytes(b"")
        (project / f"{DB_NAME}-wal").unlink()
    elif damage == "moved away":
        for suffix in ("", "-wal", "-shm"):
            if (project / f"{DB_NAME}{suffix}").exists():
                os.replace(project / f"{DB_NAME}{suffix}", tmp_path / f"moved{suffix}")
    elif damage == "truncated":
        conn = sqlite3.connect(db)  # put the rows into the main file first, then cut it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        size = db.stat().st_size
        with open(db, "r+b") as f:
            f.truncate(size // 2)
    elif damage == "garbage":
        db.write_bytes(b"not a database at all" * 300)
        (project / f"{DB_NAME}-wal").unlink()
    else:
        damage_wal(project, 0, 1 << 16)

    if damage in ("truncated", "garbage"):
        with pytest.raises(DamagedProjectError, match="floodlabel recover"):
            ProjectStore(crashed)  # nothing is opened writable on a database that cannot be read
        assert pngs(project) == before
        assert main(["export", str(crashed), "--out", str(tmp_path / "out")]) == 2
        report = recover_project(crashed)
        assert report.moved_aside and all(p.exists() for p in report.moved_aside)
    else:
        with ProjectStore(crashed) as store:
            assert pngs(project) == before
            assert {o.rel_path for o in store.orphans} <= set(IMAGES[:3])
            lost = len(store.orphans)
        if lost and damage != "moved away":  # export says what it leaves out, and how to get it back
            main(["export", str(crashed), "--out", str(tmp_path / "out")])
            assert "floodlabel recover" in capsys.readouterr().err
        report = recover_project(crashed)
        assert report.moved_aside == []
    assert report.accepted == 3 and report.kept == []
    assert pngs(project) == before
    assert_restored(crashed)


def test_cli_recover_prints_what_it_did(data, tmp_path, capsys):
    crashed, project = crash_image(data, tmp_path)
    (project / DB_NAME).write_bytes(b"\0" * 5000)
    (project / f"{DB_NAME}-wal").unlink()
    assert main(["stats", str(crashed)]) in (0, 2)  # stats does not need the project
    capsys.readouterr()
    assert main(["export", str(crashed), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "floodlabel recover" in err and "Traceback" not in err
    assert main(["recover", str(crashed)]) == 0
    out = capsys.readouterr().out
    assert "moved the damaged database aside" in out and "restored 3 accepted mask(s)" in out
    assert_restored(crashed)
    assert main(["export", str(crashed), "--out", str(tmp_path / "out")]) == 0


# ---------------------------------------------------------------------------------------------------------------
# what may and may not be deleted


def test_superseded_mask_left_by_a_crash_is_removed(data):
    with ProjectStore(data) as store:
        first = store.accept(IMAGES[0], mask_for(0, 1))
        old_png, old_json = first.mask_path.read_bytes(), sidecar_path(first.mask_path).read_bytes()
        second = store.accept(IMAGES[0], mask_for(0, 2))
        # the process died after the commit, before the old files were deleted
        first.mask_path.write_bytes(old_png)
        sidecar_path(first.mask_path).write_bytes(old_json)
    with ProjectStore(data) as store:
        assert not first.mask_path.exists() and not sidecar_path(first.mask_path).exists()
        assert second.mask_path.exists() and store.orphans == []


def test_mask_written_before_a_lost_commit_is_recovered_as_the_newer_accept(data):
    with ProjectStore(data) as store:
        store.accept(IMAGES[0], mask_for(0, 1), {"v": 1})
        conn = sqlite3.connect(store.db_path)
        saved = conn.execute("SELECT * FROM images").fetchall()
        conn.close()
        newer = store.accept(IMAGES[0], mask_for(0, 2), {"v": 2})
    with ProjectStore(data) as store:  # the row of the second accept is lost, the first row's file is gone
        store._execute("DELETE FROM images")
        store._execute(f"INSERT INTO images VALUES ({', '.join('?' * len(saved[0]))})", saved[0])
    with ProjectStore(data) as store:
        assert [o.png for o in store.orphans] == [newer.mask_path]
        assert store.record(IMAGES[0]).mask_missing
        assert store.recover_orphans() == [IMAGES[0]]
        record = store.record(IMAGES[0])
        assert record.accepted_state == {"v": 2} and np.array_equal(record.load_mask(), mask_for(0, 2))


def test_newer_work_in_progress_is_kept_beside_the_recovered_mask(data, tmp_path):
    crashed, project = crash_image(data, tmp_path, accepted=(0,))
    for suffix in ("", "-wal"):
        (project / f"{DB_NAME}{suffix}").unlink()
    with ProjectStore(crashed) as store:  # the user kept working before noticing
        store.save_progress(IMAGES[0], {"points": [[9, 9]]})
        assert store.recover_orphans() == [IMAGES[0]]
        record = store.record(IMAGES[0])
        assert record.accepted and record.edited_since_accept
        assert record.annotation_state == {"points": [[9, 9]]}
        assert record.accepted_state == {"points": [[0, 0]]}


def test_masks_without_sidecars_are_matched_by_name_and_size(data, tmp_path):
    crashed, project = crash_image(data, tmp_path)
    for png in (project / "masks").glob("*.png"):
        sidecar_path(png).unlink()  # a project made before sidecars
    (project / "masks" / "9-0123456789ab.png").write_bytes((project / "masks" / pngs(project)[0]).read_bytes())
    for suffix in ("", "-wal"):
        (project / f"{DB_NAME}{suffix}").unlink()
    with ProjectStore(crashed) as store:
        assert len(store.orphans) == 4 and all(o.kind is OrphanKind.NO_SIDECAR for o in store.orphans)
        assert store.recover_orphans() == []  # no image list: nothing to match them to, and nothing deleted
        restored = store.recover_orphans(IMAGES)
        assert sorted(restored) == [IMAGES[0], IMAGES[1], IMAGES[2], IMAGES[9]]
        for i in range(3):
            assert np.array_equal(store.record(IMAGES[i]).load_mask(), mask_for(i))
        assert store.record(IMAGES[0]).model_id == "recovered"
    assert len(pngs(project)) == 4


def test_damaged_orphan_is_kept_and_not_restored(data, tmp_path):
    crashed, project = crash_image(data, tmp_path, accepted=(0,))
    png = project / "masks" / pngs(project)[0]
    png.write_bytes(png.read_bytes()[:-10])
    for suffix in ("", "-wal"):
        (project / f"{DB_NAME}{suffix}").unlink()
    report = recover_project(crashed)
    assert report.restored == [] and [o.kind for o in report.kept] == [OrphanKind.DAMAGED]
    assert png.exists()


# ---------------------------------------------------------------------------------------------------------------
# closing and the writer lock


def test_close_checkpoints_the_wal(data):
    store = ProjectStore(data)
    store.accept(IMAGES[0], mask_for(0))
    wal = store.db_path.with_name(f"{DB_NAME}-wal")
    store.close()
    assert not wal.exists() or wal.stat().st_size == 0
    conn = sqlite3.connect(f"{store.db_path.as_uri()}?immutable=1", uri=True)  # no WAL needed to read it
    assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 1
    conn.close()


def test_read_only_store_takes_over_when_the_writer_closes(data):
    first = ProjectStore(data)
    second = ProjectStore(data)
    assert second.read_only and not second.try_take_writer_lock()
    with pytest.raises(StoreError, match="read-only"):
        second.save_progress(IMAGES[0], {"v": 1})
    first.close()
    assert second.try_take_writer_lock() and not second.read_only
    second.accept(IMAGES[1], mask_for(1))
    second.close()
    with ProjectStore(data, read_only=True) as store:
        assert store.record(IMAGES[1]).accepted


def test_the_recover_command_export_gives_works_for_a_project_elsewhere(data, tmp_path, capsys):
    """After a crash and a damaged WAL, `export --project P` (read-only: it cannot rebuild the empty database) exits
    2 saying the masks are kept, with the command that restores them, --project included; that command works."""
    import re
    import shlex

    project = tmp_path / "elsewhere"
    with ProjectStore(data, project) as store:
        for i in range(3):
            store.accept(IMAGES[i], mask_for(i), {"points": [[i, i]]})
        shutil.copytree(project, tmp_path / "crashed-project")  # what kill -9 leaves
    crashed = tmp_path / "crashed-project"
    (crashed / "project.lock").unlink(missing_ok=True)
    damage_wal(crashed, 0, 1 << 16)
    before = pngs(crashed)
    assert main(["export", str(data), "--project", str(crashed), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 accepted mask(s) are kept" in err
    command = re.search(r"run `floodlabel (recover [^`]+)`", err).group(1)
    assert "--project" in command and pngs(crashed) == before
    assert main(shlex.split(command)) == 0
    with ProjectStore(data, crashed) as store:
        assert store.counts()[Status.ACCEPTED] == 3
    assert main(["export", str(data), "--project", str(crashed), "--out", str(tmp_path / "out")]) == 0


# ---------------------------------------------------------------------------------------------------------------
# proposals live only in the database: recover says how many were lost and how to make them again


def test_recover_says_how_many_proposals_were_lost_and_how_to_make_them_again(data, tmp_path, capsys):
    with ProjectStore(data) as store:
        store.accept(IMAGES[0], mask_for(0), {"points": [[0, 0]]}, model_id="test")
        for i in (1, 2):
            assert store.propose(IMAGES[i], mask_for(i), 0.5, {"prompt": {"text": {"phrase": "water"}}},
                                 model_id="sam3-test")
    project = data / PROJECT_DIR_NAME
    assert len(list((project / "proposals").glob("*.png"))) == 2

    healthy = recover_project(data)  # nothing lost: no line about proposals
    assert healthy.proposals_lost == 0 and not any("proposal" in line for line in healthy.lines())

    (project / DB_NAME).write_bytes(b"not a database at all" * 300)
    for suffix in ("-wal", "-shm"):
        (project / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    assert main(["recover", str(data)]) == 0
    out = capsys.readouterr().out
    assert "restored 1 accepted mask(s)" in out
    assert "2 proposal(s) were not recovered" in out and f"`floodlabel propose {data}` makes them again" in out
    assert list((project / "proposals").glob("*.png")) == []
    with ProjectStore(data) as store:
        assert store.statuses() == {IMAGES[0]: Status.ACCEPTED}

    elsewhere = tmp_path / "elsewhere"  # a project outside DATA: the command names it
    with ProjectStore(data, elsewhere) as store:
        store.propose(IMAGES[3], mask_for(3), 0.5, None)
    (elsewhere / DB_NAME).write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        (elsewhere / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    report = recover_project(data, elsewhere)
    assert report.proposals_lost == 1 and report.propose_command.endswith(f"--project {elsewhere}")
