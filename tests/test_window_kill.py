"""Window-level kill test: the real annotation window, clicked, painted, accepted and exported by
tests/kill_app_driver.py, is SIGKILLed at a random moment, 20 times (KILLS), on the same project.

The first app is a plain `python tests/kill_app_driver.py DATA PROJECT CHECKPOINT SEED` process; the others are
forked by the driver's fork server (the imports, about 3 s, are made once; the QApplication, the window, the tiny
SAM session and the store are made in each app process), so that the kills fit in about a minute (30 kills took 84 s
on a loaded 2-core VM on 2026-12-03; 20 keep the suite's time). Each app is SIGKILLed between READY and
READY + 1.5 s (seeded). After each kill:
- `PRAGMA integrity_check` on project.sqlite is ok;
- every image the app reported ACCEPTED is accepted in the store (opened read-only, as an export would) and its mask
  reloads intact (the PNG's SHA-256 is the one in the database) at the image's size, and equals the last mask
  reported ACCEPTED for it or one the window handed to the store after that report (SUBMIT: an accept in flight at
  the kill, written or not). Images only ever SUBMITted are either not accepted or hold one of those masks.
- no accepted row points to a missing mask file;
- every PNG in the export folder decodes (0/255, one channel), coco.json and the manifest parse: a killed export
  leaves whole files only (its temporary files are counted, not decoded).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from floodlabel.core.common.atomic_files import TEMP_PREFIX
from floodlabel.core.store.project_store import DB_NAME, ProjectStore
from synthetic_scenes import KINDS, make_flood_scene
from tiny_sam import tiny_sam_checkpoint

KILLS = 20
IMAGES = 7
MAX_DELAY = 1.5
"""Each app is killed uniformly between READY and READY + MAX_DELAY seconds."""
DRIVER = Path(__file__).with_name("kill_app_driver.py")


def make_dataset(root: Path, rng: random.Random) -> None:
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    for i in range(IMAGES):
        h, w = rng.randint(160, 240), rng.randint(160, 240)
        image, mask = make_flood_scene(h, w, seed=100 + i, kind=KINDS[i % len(KINDS)])
        Image.fromarray(image).save(root / "Image" / f"img{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "Mask" / f"img{i}.png")


def packed_sha(mask: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(np.asarray(mask, bool))).hexdigest()


class ForkServer:
    """The driver's fork server, with its stdout read by a thread (so a wait can time out)."""

    def __init__(self, args: list[str], env: dict, stderr: Path) -> None:
        self.stderr = stderr
        with open(stderr, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(DRIVER), "--serve", *args], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the fork server sent no {prefix} line in {timeout} s") from None
        if line is None or not line.startswith(prefix):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the fork server sent {line!r}, not {prefix}: {self.stderr.read_text()}")
        return line

    def poll_line(self) -> str | None:
        try:
            return self.lines.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def read_report(path: Path) -> list[list[str]]:
    """Whole lines of an app's report (a line without its newline was cut by the kill and does not count)."""
    text = path.read_text() if path.exists() else ""
    lines = text.split("\n")[:-1]
    return [line.split(" ", 2) for line in lines if line]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL") or not hasattr(os, "fork"), reason="needs POSIX fork and SIGKILL")
def test_the_real_window_survives_sigkill_during_accept_autosave_and_export(tmp_path):
    rng = random.Random(2024)
    data, project = tmp_path / "DATA", tmp_path / "work" / "project"
    checkpoint, export = tmp_path / "tiny.pth", project.parent / "export"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "FLOODLABEL_CACHE_DIR": str(tmp_path / "cache"), "FLOODLABEL_DATA_DIR": str(tmp_path / "userdata"),
           "PYTHONPATH": os.pathsep.join([str(DRIVER.parents[1]), str(DRIVER.parent),
                                          os.environ.get("PYTHONPATH", "")])}
    t0 = time.monotonic()
    # the server's imports overlap the set-up below and the first app
    server = ForkServer([str(data), str(project), str(checkpoint)], env, tmp_path / "server.err")
    pid = None
    try:
        make_dataset(data, rng)
        project.parent.mkdir()
        tiny_sam_checkpoint(checkpoint, seed=0)
        sizes = {f"Image/{p.name}": Image.open(p).size[::-1] for p in sorted((data / "Image").iterdir())}
        events: dict[str, list[tuple[str, str]]] = {}  # rel -> [("SUBMIT" | "ACCEPTED", sha), ...] in order
        phases: dict[str, int] = {}
        verified = accepted_total = exports = temp_leftovers = 0
        t1 = time.monotonic()
        for run in range(KILLS):
            report = tmp_path / f"run{run:02d}.txt"
            seed = 1000 + run
            if run == 0:  # the first app is a process of its own (the driver's plain mode), while the server imports
                with open(report, "wb") as out, open(f"{report}.err", "wb") as err:
                    app = subprocess.Popen([sys.executable, str(DRIVER), str(data), str(project), str(checkpoint),
                                            str(seed)], stdout=out, stderr=err, env=env)
                pid = app.pid

                def exited() -> int | None:
                    return app.poll()

                def reap() -> int:
                    return app.wait(30)
            else:
                if run == 1:
                    server.expect("SERVING", 120)
                server.proc.stdin.write(f"{seed} {report}\n")
                server.proc.stdin.flush()
                pid = int(server.expect("PID", 30).split()[1])

                def exited() -> int | None:
                    line = server.poll_line()
                    return None if line is None else os.waitstatus_to_exitcode(int(line.split()[2]))

                def reap() -> int:
                    return os.waitstatus_to_exitcode(int(server.expect(f"EXIT {pid}", 30).split()[2]))

            end = time.monotonic() + 60
            while not any(parts[0] == "READY" for parts in read_report(report)):
                code = exited()
                if code is not None or time.monotonic() > end:
                    if code is None:
                        os.kill(pid, signal.SIGKILL)
                        reap()
                    pid = None
                    err = Path(f"{report}.err")
                    pytest.fail(f"run {run}: the app never got READY (exit code {code}): "
                                f"{err.read_text() if err.exists() else ''}")
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, MAX_DELAY))
            os.kill(pid, signal.SIGKILL)
            code = reap()
            pid = None
            assert code == -signal.SIGKILL, (run, code, Path(f"{report}.err").read_text())

            lines = read_report(report)
            failed = [parts for parts in lines if parts[0] in ("FAILED", "EXPORT-FAILED")]
            assert not failed, (run, failed)
            for parts in lines:
                if parts[0] in ("SUBMIT", "ACCEPTED"):
                    events.setdefault(parts[1], []).append((parts[0], parts[2]))
                    accepted_total += parts[0] == "ACCEPTED"
                exports += parts[0] == "EXPORT"
            last = lines[-1][0] if lines else "none"
            phases[last] = phases.get(last, 0) + 1

            conn = sqlite3.connect(f"{(project / DB_NAME).as_uri()}?mode=ro", uri=True)  # look, do not recover
            try:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", run
            finally:
                conn.close()
            with ProjectStore(data, project, read_only=True) as store:
                for rel, history in events.items():
                    accepts = [i for i, (kind, _) in enumerate(history) if kind == "ACCEPTED"]
                    since = accepts[-1] if accepts else 0
                    allowed = {sha for _, sha in history[since:]}  # the last accepted one, or one in flight
                    record = store.record(rel)
                    if not accepts and (record is None or not record.accepted):
                        continue  # only ever in flight, and not written
                    assert record is not None and record.accepted, (run, rel, history[-3:])
                    mask = record.load_mask()  # checks the PNG against the SHA-256 in the database
                    assert mask.shape == sizes[rel], (run, rel)
                    assert packed_sha(mask) in allowed, (run, rel, history[since:])
                    verified += bool(accepts)
                for record in store.records():
                    assert not record.mask_missing, (run, record.rel_path)

            for png in sorted((export / "Mask").glob("*.png")) if (export / "Mask").is_dir() else []:
                if png.name.startswith(TEMP_PREFIX):
                    temp_leftovers += 1
                    continue
                with Image.open(png) as im:
                    im.load()
                    assert im.mode == "L", (run, png)
                    assert set(np.unique(np.asarray(im)).tolist()) <= {0, 255}, (run, png)
            for name in ("coco.json", ".floodlabel-export.json"):
                if (export / name).exists():
                    json.loads((export / name).read_text())
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)  # a failed check must not leave an app running
        server.close()

    t2 = time.monotonic()
    print(f"\n{KILLS} kills of the real window in {t2 - t1:.1f} s ({t2 - t0:.1f} s with the set-up); "
          f"{accepted_total} accepts reported, "
          f"{verified} accepted masks verified after kills (sum over kills), {exports} exports finished; "
          f"last line before each kill: {dict(sorted(phases.items()))}; "
          f"export temp files left by killed exports: {temp_leftovers} (counted over checks)")
    # the kills landed while the app was accepting (on a busy machine a click takes up to a second or two, so many
    # apps die before their first accept; a bound that cannot flake)
    assert accepted_total >= 5
