"""Pre-encoding in a child process at low priority (core.models.background_encoder, the window's EncoderJobs): the
child fills the same embedding cache the window reads, runs niced, restarts after it is killed, dies with its
parent, and a window whose child dies says so and goes on. (How much it helps a click is benchmarks/bench_window.py's
job, not a test's.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from floodlabel.core.data.datasets import ImagePair
from floodlabel.core.data.image_item import load_image_item
from floodlabel.core.models.background_encoder import BackgroundEncoder
from floodlabel.core.models.session import SegmentationSession
from tiny_sam import tiny_sam_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("sam") / "tiny.pth", seed=0)


@pytest.fixture
def photos(tmp_path):
    paths = []
    for i in range(4):
        path = tmp_path / "Image" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, object]] = []
        self.changed = threading.Condition()

    def __call__(self, kind: str, path: str, detail: object) -> None:
        with self.changed:
            self.items.append((kind, path, detail))
            self.changed.notify_all()

    def wait(self, predicate, timeout: float = 90.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.items), timeout)


def done(items, n):
    return sum(1 for kind, _, _ in items if kind == "done") >= n


def test_the_child_fills_the_cache_the_window_reads_at_low_priority(checkpoint, photos, tmp_path):
    events = Events()
    bg = BackgroundEncoder(str(checkpoint), tmp_path / "cache", events)
    try:
        for path in photos[:2]:
            bg.submit(path)
        assert events.wait(lambda items: done(items, 2)), events.items
        assert os.getpriority(os.PRIO_PROCESS, bg.pid) >= min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
        bg.submit(photos[0])  # already there: answered from the cache
        assert events.wait(lambda items: done(items, 3))
        assert events.items[-1] == ("done", str(photos[0]), 0.0) and bg.starts == 1
    finally:
        bg.close()
    session = SegmentationSession.open(str(checkpoint), cache_dir=tmp_path / "cache")
    for path in photos[:2]:
        item = load_image_item(ImagePair(path.stem, path, None))
        assert session.cached_embedding(item.image, item.key) is not None  # the window's next image: a cache hit
    assert events.items[0][0] == "ready" and events.items[0][2] == session.cache_model_id


def test_a_killed_child_is_reported_and_the_next_request_starts_another(checkpoint, photos, tmp_path):
    events = Events()
    bg = BackgroundEncoder(str(checkpoint), tmp_path / "cache", events)
    try:
        bg.submit(photos[0])
        assert events.wait(lambda items: done(items, 1))
        os.kill(bg.pid, signal.SIGKILL)
        assert events.wait(lambda items: any(k == "exited" for k, _, _ in items))
        exited = [d for k, _, d in events.items if k == "exited"][0]
        assert "killed by signal 9" in exited
        bg.submit(photos[1])
        assert events.wait(lambda items: done(items, 2)) and bg.starts == 2
    finally:
        bg.close()
    assert bg.pid is None


def test_a_bad_image_fails_alone_and_an_idle_child_exits(checkpoint, photos, tmp_path):
    events = Events()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    bg = BackgroundEncoder(str(checkpoint), tmp_path / "cache", events, idle_exit_s=1.0)
    try:
        bg.submit(bad)
        bg.submit(photos[0])
        assert events.wait(lambda items: done(items, 1))
        assert any(k == "failed" and p == str(bad) for k, p, _ in events.items)
        assert events.wait(lambda items: ("exited", "", None) in items, 30)  # idle: gone, memory back
    finally:
        bg.close()


def test_a_model_that_cannot_load_says_why(photos, tmp_path):
    events = Events()
    bg = BackgroundEncoder(str(tmp_path / "missing.pth"), None, events)
    try:
        bg.submit(photos[0])
        assert events.wait(lambda items: any(k == "exited" for k, _, _ in items))
        assert "cannot load" in str([d for k, _, d in events.items if k == "exited"][0])
    finally:
        bg.close()


def test_the_child_dies_with_its_parent(checkpoint, photos, tmp_path):
    """A window killed while its child loads the model leaves no child behind (PR_SET_PDEATHSIG)."""
    pid_file = tmp_path / "child.pid"
    code = (f"import sys, time; from floodlabel.core.models.background_encoder import BackgroundEncoder\n"
            f"bg = BackgroundEncoder({str(checkpoint)!r}, None, lambda *a: None)\n"
            f"bg.submit({str(photos[0])!r})\n"
            f"open({str(pid_file)!r}, 'w').write(str(bg.pid)); time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.05)
        child = int(pid_file.read_text())
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 20
        while _alive(child):
            assert time.monotonic() < deadline, "the child outlived its parent"
            time.sleep(0.1)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ------------------------------------------------------------------------------------------------------------ window


def test_the_window_prefetches_in_a_child_and_survives_its_death(qtbot, window, checkpoint, photos, tmp_path,
                                                                  monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    monkeypatch.setenv("FLOODLABEL_PREFETCH", "process")
    session = SegmentationSession.open(str(checkpoint), cache_dir=tmp_path / "cache")
    w = window(photos[0].parent.parent, session=session)
    c = w.controller
    prefetched = []
    c.encoder.prefetched.connect(prefetched.append)
    qtbot.waitUntil(lambda: c.embedding is not None and c.row == 0, timeout=30000)
    qtbot.waitUntil(lambda: str(photos[1]) in prefetched, timeout=90000)  # row 1, pre-encoded by the child
    assert c.encoder.background_pid is not None and c.encoder.background_pid != os.getpid()
    assert c.encoder.worker._prefetch == {}  # nothing went to the window's own encoder thread
    qtbot.waitUntil(lambda: 1 in c.encoder._prefetched_items, timeout=20000)  # decoded here meanwhile
    decoded = c.encoder._prefetched_items[1]
    cache = session.cache
    qtbot.waitUntil(lambda: (session.cache_model_id, decoded.key) in cache._memory, timeout=20000)  # read ahead
    disk_hits = cache.stats.disk_hits
    ready = []
    c.embedding_ready.connect(ready.append)
    QTest.keyClick(w, Qt.Key.Key_PageDown)
    qtbot.waitUntil(lambda: c.row == 1 and c.embedding is not None and bool(ready), timeout=20000)
    assert ready[-1] == 0.0  # a cache hit: the child's embedding
    assert cache.stats.disk_hits == disk_hits  # from memory: no file read on the UI thread
    assert c.item is decoded  # PageDown did not decode the image again

    os.kill(c.encoder.background_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: w.message_label.isVisible() and "Pre-encoding" in w.message_label.text(),
                    timeout=20000)
    assert "killed by signal 9" in w.message_label.text()
    QTest.keyClick(w, Qt.Key.Key_PageDown)  # the window goes on; the next prefetch starts a new child
    qtbot.waitUntil(lambda: c.row == 2 and c.embedding is not None, timeout=60000)
    qtbot.waitUntil(lambda: str(photos[3]) in prefetched, timeout=90000)
    w.close()
    assert c.encoder.background_pid is None


def test_a_small_machine_keeps_the_prefetch_in_the_window(monkeypatch):
    from floodlabel.core.models import background_encoder

    assert background_encoder.worth_a_process(16 << 30) and not background_encoder.worth_a_process(4 << 30)
    from floodlabel.gui.window.encoder_jobs import EncoderJobs

    monkeypatch.setenv("FLOODLABEL_PREFETCH", "process")
    session = type("S", (), {"source": "some.pth", "cache": None})()
    jobs = EncoderJobs(lambda: (None, None))
    try:
        monkeypatch.setattr(background_encoder, "worth_a_process", lambda total=None: False)
        assert jobs._background_for(session) is None
        monkeypatch.setattr(background_encoder, "worth_a_process", lambda total=None: True)
        assert jobs._background_for(session) is not None  # made, not started
        assert jobs.background_pid is None
    finally:
        jobs.close()
        jobs.worker.stop()


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is a Linux feature")
def test_the_next_image_is_decoded_on_a_thread_at_a_low_priority(monkeypatch, photos):
    from floodlabel.gui.window import image_loading

    seen = []
    monkeypatch.setattr(image_loading, "load_item", lambda pair: seen.append(
        os.getpriority(os.PRIO_PROCESS, threading.get_native_id())) or pair)
    before = os.getpriority(os.PRIO_PROCESS, 0)
    out = []
    thread = threading.Thread(target=lambda: out.append(image_loading.decode_ahead(ImagePair("p0", photos[0], None))))
    thread.start()
    thread.join()
    assert out and seen == [min(19, before + image_loading.DECODE_AHEAD_NICE)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the window's own threads keep theirs


def test_the_child_uses_every_core_where_a_click_stops_it(monkeypatch):
    from floodlabel.core.models import background_encoder

    assert background_encoder.background_threads() == len(os.sched_getaffinity(0))  # POSIX: stopped while decoding
    monkeypatch.setattr(background_encoder, "CAN_STOP", False)
    assert background_encoder.background_threads() == 1  # else it runs beside the decode: one core stays free
