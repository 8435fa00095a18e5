"""Kill test: a process accepting masks in a loop is SIGKILLed at random moments, 30 times.

After every kill, each mask the child reported accepted (it prints the path after `accept` returns) reloads intact,
with the annotation state that was stored beside it, and the database passes `PRAGMA integrity_check`.
After every other kill the WAL is also damaged (random bytes where the rows are) before the project is reopened for
writing: no mask PNG that is the newest of its image is deleted, and recovery from the sidecars brings every
reported accept back.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from image_factories import save

from floodlabel.core.store.project_store import DB_NAME, PROJECT_DIR_NAME, ProjectStore

KILLS = 30
IMAGES = 5
SIZE = (48, 64)  # (height, width): small, so each accept is mostly file and database work

PATTERN = """
import numpy as np
def pattern(seed):
    rng = np.random.default_rng(seed)
    return rng.random((48, 64)) < rng.uniform(0.05, 0.95)
"""

CHILD = PATTERN + """
import sys
import cv2  # the app has it loaded already: the first accept should not pay for the import
from floodlabel.core.store.project_store import ProjectStore
data, images, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = ProjectStore(data)
assert not store.read_only, store.read_only_reason
print("ready", flush=True)
while True:
    rel = f"{seed % images}.png"
    if seed % 3 == 0:
        store.save_progress(rel, {"seed": seed, "autosave": True})
    store.accept(rel, pattern(seed), {"seed": seed}, model_id="kill-test", metrics={"iou": seed / 1e6})
    print(rel, seed, flush=True)
    seed += 1
"""

namespace: dict = {}
exec(PATTERN, namespace)
pattern = namespace["pattern"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_accepted_masks_survive_sigkill(tmp_path, monkeypatch):
    data = tmp_path / "DATA"
    for i in range(IMAGES):
        save(data / f"{i}.png", np.full((*SIZE, 3), 40 * i, np.uint8), "PNG")
    monkeypatch.setenv("FLOODLABEL_DATA_DIR", str(tmp_path / "userdata"))
    rng = random.Random(7)
    reported: dict[str, int] = {}
    next_seed, accepted_total = 0, 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}

    for run in range(KILLS):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(IMAGES), str(next_seed)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        first = child.stdout.readline()
        if first != "ready\n":
            child.kill()
            pytest.fail(f"child did not start: {first!r} {child.communicate()[1]}")
        time.sleep(rng.uniform(0.0, 0.1))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        lines = [line.split() for line in out.splitlines() if line.strip()]
        lines = [parts for parts in lines if len(parts) == 2]  # a line cut by the kill is not a report
        for rel, seed in lines:
            reported[rel] = max(reported.get(rel, -1), int(seed))
        accepted_total += len(lines)
        next_seed = max([next_seed - 1, *(int(s) for _, s in lines)]) + 1

        db = data / PROJECT_DIR_NAME / DB_NAME
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
        if run % 2 == 1:
            newest = _damage_wal(data / PROJECT_DIR_NAME, rng)
            with ProjectStore(data) as store:
                left = {p.name for p in store.masks_dir.glob("*.png")}
                assert newest <= left, (run, newest - left)  # the newest mask of every image is kept
                store.recover_orphans()
        # read-only most of the time (as an export would); every fifth run as the next writer, which cleans up
        with ProjectStore(data, read_only=run % 5 not in (3, 4)) as store:
            for rel, seed in reported.items():
                record = store.record(rel)
                assert record is not None and record.accepted, (run, rel)
                stored_seed = record.accepted_state["seed"]
                assert stored_seed >= seed, (run, rel, stored_seed, seed)  # a later accept may not have printed
                assert record.metrics == {"iou": stored_seed / 1e6}
                assert np.array_equal(record.load_mask(), pattern(stored_seed)), (run, rel)
            if not store.read_only:
                # every PNG is referenced, or it is the mask of an accept killed before its commit (kept, offered)
                referenced = {r.mask_path.name for r in store.records() if r.mask_path}
                offered = {o.png.name for o in store.orphans}
                assert all(o.kind == "recoverable" for o in store.orphans), store.orphans
                assert {p.name for p in store.masks_dir.glob("*.png")} == referenced | offered
                assert {p.name for p in store.masks_dir.glob("*.json")} == {
                    n[:-4] + ".json" for n in referenced | offered}

    print(f"{KILLS} kills, {accepted_total} accepts reported")
    assert accepted_total >= KILLS  # the kills landed while accepts were running, not only before the first one


def _damage_wal(project, rng: random.Random) -> set[str]:
    """Overwrite 4 KiB of the WAL with random bytes (as `dd ... conv=notrunc` would); returns the names of the newest
    mask PNG of each image (by their sidecars), which must survive the next open."""
    import json

    newest: dict[str, tuple[float, str]] = {}
    for sidecar in project.joinpath("masks").glob("*.json"):
        if sidecar.with_suffix(".png").exists():
            data = json.loads(sidecar.read_text())
            if data["accepted_at"] > newest.get(data["rel_path"], (-1.0, ""))[0]:
                newest[data["rel_path"]] = (data["accepted_at"], sidecar.with_suffix(".png").name)
    wal = project / f"{DB_NAME}-wal"
    if wal.exists() and wal.stat().st_size > 32:
        size = wal.stat().st_size
        with open(wal, "r+b") as f:
            f.seek(rng.randrange(32, size))
            f.write(bytes(rng.randrange(256) for _ in range(4096)))
    return {name for _, name in newest.values()}
