"""gui/workers.py (latest-request-wins, cancellable embedding with prefetch), the block-wise SAM encoder and Auto."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PySide6.QtCore import QObject, Slot

from floodlabel.core.models.auto_water import auto_water_mask
from floodlabel.core.classic.backend import ClassicSegmenter
from floodlabel.core.segment.compute_config import ComputeConfig
from floodlabel.core.segment.embedding_cache import EmbeddingCache
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.common.errors import FloodLabelError
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.sam.backend import SamSegmenter
from floodlabel.core.sam.loading import load_sam
from floodlabel.gui.workers.latest_request import Cancelled, EmbedWorker, LatestRequestWorker
from tiny_sam import TINY, tiny_sam_checkpoint

WAIT_MS = 10_000  # a deadline for events that must come, not a timing assertion
# AMG decodes every grid point over the full 64x64 embedding (the decoder is full size even in the tiny SAM):
# 4 points instead of the default 256 keep the test fast
SMALL_AMG = {"points_per_side": 2, "points_per_batch": 2}


class Recorder(QObject):
    """Receives worker signals on the UI thread (queued), as a widget would."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple] = []

    @Slot("qlonglong", object)
    def done(self, request_id, result):
        self.events.append(("done", request_id, result))

    @Slot("qlonglong", str)
    def failed_id(self, request_id, message):
        self.events.append(("failed", request_id, message))

    @Slot(str)
    def started(self, key):
        self.events.append(("started", key))

    @Slot(str, object, float)
    def finished(self, key, result, seconds):
        self.events.append(("finished", key, result))

    @Slot(str, str)
    def failed(self, key, message):
        self.events.append(("failed", key, message))

    @Slot(str)
    def cancelled(self, key):
        self.events.append(("cancelled", key))

    @Slot(str, float)
    def prefetched(self, key, seconds):
        self.events.append(("prefetched", key))


@pytest.fixture
def latest():
    worker = LatestRequestWorker("test")
    recorder = Recorder()
    worker.done.connect(recorder.done)
    worker.failed.connect(recorder.failed_id)
    yield worker, recorder
    worker.stop()


@pytest.fixture
def embed():
    worker = EmbedWorker()
    recorder = Recorder()
    for name in ("started", "finished", "failed", "cancelled", "prefetched"):
        getattr(worker, name).connect(getattr(recorder, name))
    yield worker, recorder
    worker.stop()


def _looping(entered: threading.Event, runs: list | None = None, result=None):
    """fn(checkpoint) that calls checkpoint() until cancelled (first run) or returns at once (later runs)."""

    def fn(checkpoint):
        if runs is not None:
            runs.append(1)
            if len(runs) > 1:
                checkpoint()
                return result
        entered.set()
        while True:
            checkpoint()
            threading.Event().wait(0.002)

    return fn


# ------------------------------------------------------------------------------------- LatestRequestWorker


def test_latest_request_wins(qtbot, latest):
    worker, rec = latest
    gate, entered, ran = threading.Event(), threading.Event(), []

    def blocking():
        ran.append(0)
        entered.set()
        gate.wait(WAIT_MS / 1000)
        return "first"

    assert worker.idle
    worker.submit(0, blocking)
    assert entered.wait(WAIT_MS / 1000)
    assert not worker.idle and not worker.pending  # running
    for i in range(1, 10):
        worker.submit(i, lambda i=i: ran.append(i) or i * 10)
    assert worker.pending
    gate.set()
    qtbot.waitUntil(lambda: len(rec.events) == 2, timeout=WAIT_MS)
    assert ran == [0, 9]
    assert rec.events == [("done", 0, "first"), ("done", 9, 90)]
    assert not worker.pending
    qtbot.waitUntil(lambda: worker.idle, timeout=WAIT_MS)


def test_a_result_in_parts_reports_each_part_unless_a_newer_request_came(qtbot, latest):
    """decode_jobs.decode_prompt yields the view mask, then the native one: the first is painted without waiting
    for the second, and a newer request (another click) ends the old one after the part in hand."""
    worker, rec = latest
    worker.submit(0, lambda: iter_parts(["view", "native"]))
    qtbot.waitUntil(lambda: len(rec.events) == 2, timeout=WAIT_MS)
    assert rec.events == [("done", 0, "view"), ("done", 0, "native")]

    rec.events.clear()
    gate, later = threading.Event(), []

    def parts():
        yield "view"
        later.append("native made")
        yield "native"

    def slow_view():
        gate.wait(WAIT_MS / 1000)
        return parts()

    worker.submit(1, slow_view)
    qtbot.waitUntil(lambda: not worker.pending, timeout=WAIT_MS)  # request 1 is running
    worker.submit(2, lambda: "newer")
    gate.set()
    qtbot.waitUntil(lambda: len(rec.events) == 2, timeout=WAIT_MS)
    assert rec.events == [("done", 1, "view"), ("done", 2, "newer")] and later == []


def iter_parts(parts):
    yield from parts


def test_the_decoder_keeps_its_thread_and_passing_workers_run_each_request_on_a_thread_that_ends(qtbot):
    """The click's decoder keeps one long-lived thread (its OpenMP team stays warm); the other torch workers run
    each request on a thread of its own that has ended by the time the next one runs (core.segment.passing_thread)."""
    for passing in (False, True):
        worker = LatestRequestWorker("threads", passing=passing)
        rec = Recorder()
        worker.done.connect(rec.done)
        threads = []
        for i in range(3):
            worker.submit(i, lambda: threads.append(threading.current_thread()))
            qtbot.waitUntil(lambda i=i: len(rec.events) == i + 1, timeout=WAIT_MS)
        worker.stop()
        assert worker.join(WAIT_MS / 1000)
        if passing:
            assert len(set(threads)) == 3 and worker._thread not in threads
            assert not any(t.is_alive() for t in threads)
        else:
            assert set(threads) == {worker._thread}


def test_embed_jobs_run_on_threads_that_end_with_them(qtbot, embed):
    worker, rec = embed
    threads = []

    def job(checkpoint):
        checkpoint()
        threads.append(threading.current_thread())
        return len(threads)

    worker.request("a", job)
    qtbot.waitUntil(lambda: ("finished", "a", 1) in rec.events, timeout=WAIT_MS)
    worker.prefetch("b", job)
    qtbot.waitUntil(lambda: ("prefetched", "b") in rec.events, timeout=WAIT_MS)
    assert len(set(threads)) == 2 and worker._thread not in threads
    assert not any(t.is_alive() for t in threads)


def test_latest_failures_are_messages_and_the_worker_goes_on(qtbot, latest):
    worker, rec = latest

    def bad():
        raise ValueError("bad prompt\nsecond line")

    def expected():
        raise FloodLabelError("no model loaded")

    worker.submit(1, bad)
    qtbot.waitUntil(lambda: len(rec.events) == 1, timeout=WAIT_MS)
    worker.submit(2, expected)
    qtbot.waitUntil(lambda: len(rec.events) == 2, timeout=WAIT_MS)
    worker.submit(3, lambda: "ok")
    qtbot.waitUntil(lambda: len(rec.events) == 3, timeout=WAIT_MS)
    assert rec.events == [("failed", 1, "ValueError: bad prompt"), ("failed", 2, "no model loaded"), ("done", 3, "ok")]


# ---------------------------------------------------------------------------------------------- EmbedWorker


def test_foreground_supersedes_and_cancels_the_previous_one(qtbot, embed):
    worker, rec = embed
    entered, gate = threading.Event(), threading.Event()

    def first(checkpoint):
        entered.set()
        gate.wait(WAIT_MS / 1000)
        while True:
            checkpoint()

    worker.request("a", first)
    assert entered.wait(WAIT_MS / 1000)
    worker.request("b", lambda checkpoint: "B")
    worker.request("c", lambda checkpoint: (checkpoint(), "C")[1])  # replaces b before it starts
    gate.set()
    qtbot.waitUntil(lambda: ("finished", "c", "C") in rec.events, timeout=WAIT_MS)
    assert ("cancelled", "a") in rec.events and ("cancelled", "b") in rec.events
    assert rec.events.index(("cancelled", "a")) < rec.events.index(("started", "c"))
    assert ("finished", "a", None) not in rec.events and ("started", "b") not in rec.events


def test_cancel_emits_cancelled_and_failures_are_messages(qtbot, embed):
    worker, rec = embed
    entered = threading.Event()
    worker.request("a", _looping(entered))
    assert entered.wait(WAIT_MS / 1000)
    assert worker.busy
    worker.cancel()
    qtbot.waitUntil(lambda: ("cancelled", "a") in rec.events, timeout=WAIT_MS)

    def broken(checkpoint):
        raise RuntimeError("encoder exploded")

    worker.request("b", broken)
    qtbot.waitUntil(lambda: ("failed", "b", "RuntimeError: encoder exploded") in rec.events, timeout=WAIT_MS)
    worker.request("c", lambda checkpoint: 3)
    qtbot.waitUntil(lambda: ("finished", "c", 3) in rec.events, timeout=WAIT_MS)
    assert rec.events == [("started", "a"), ("cancelled", "a"), ("started", "b"),
                          ("failed", "b", "RuntimeError: encoder exploded"), ("started", "c"), ("finished", "c", 3)]


def test_prefetch_blocks_while_paused_and_resumes(qtbot, embed):
    worker, rec = embed
    entered, gate, passed = threading.Event(), threading.Event(), threading.Event()

    def fn(checkpoint):
        entered.set()
        gate.wait(WAIT_MS / 1000)
        checkpoint()  # the user is clicking: blocks here
        passed.set()
        return "features"

    worker.prefetch("p", fn)
    assert entered.wait(WAIT_MS / 1000)
    worker.pause_prefetch(60)
    gate.set()
    assert not passed.wait(0.3)  # paused for a minute: not past the checkpoint
    worker.pause_prefetch(0)  # idle again
    qtbot.waitUntil(lambda: ("prefetched", "p") in rec.events, timeout=WAIT_MS)
    assert passed.is_set() and rec.events == [("prefetched", "p")]  # prefetch emits no started/finished

    # a prefetch queued during a (short) pause does not start until the pause is over, then runs by itself
    ran = threading.Event()
    worker.pause_prefetch(60)
    worker.prefetch("q", lambda checkpoint: ran.set())
    assert not ran.wait(0.3)
    worker.pause_prefetch(0.2)
    qtbot.waitUntil(lambda: ("prefetched", "q") in rec.events, timeout=WAIT_MS)


def test_foreground_preempts_prefetch_which_is_requeued(qtbot, embed):
    worker, rec = embed
    entered, runs = threading.Event(), []
    worker.prefetch("p", _looping(entered, runs, result="P"))
    worker.prefetch("p", _looping(entered, runs, result="P"))  # deduplicated
    assert entered.wait(WAIT_MS / 1000)
    worker.request("f", lambda checkpoint: "F")
    qtbot.waitUntil(lambda: ("prefetched", "p") in rec.events, timeout=WAIT_MS)
    assert rec.events == [("started", "f"), ("finished", "f", "F"), ("prefetched", "p")]
    assert len(runs) == 2  # pre-empted once, then run again


def test_prefetch_queue_keeps_the_last_few(qtbot):
    worker = EmbedWorker(max_prefetch=2)
    rec = Recorder()
    worker.prefetched.connect(rec.prefetched)
    worker.finished.connect(rec.finished)
    try:
        worker.pause_prefetch(60)
        for key in "abcb":  # a falls out; b moves behind c
            worker.prefetch(key, lambda checkpoint: None)
        worker.request("c", lambda checkpoint: "C")  # foreground is never paused; c leaves the queue
        qtbot.waitUntil(lambda: ("finished", "c", "C") in rec.events, timeout=WAIT_MS)
        worker.pause_prefetch(0)
        qtbot.waitUntil(lambda: ("prefetched", "b") in rec.events, timeout=WAIT_MS)
        assert rec.events == [("finished", "c", "C"), ("prefetched", "b")]
    finally:
        worker.stop()


# ----------------------------------------------------------------------------------- block-wise SAM encoder


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory):
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth", seed=3)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = np.zeros((120, 200, 3), np.uint8)
    img[:] = (90, 120, 60)
    img[50:110, 30:170] = (70, 90, 140)  # "water"
    return np.clip(img + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def session(checkpoint_path):
    """fp32 tiny SAM without a cache."""
    fp32 = ComputeConfig("cpu", torch.float32, torch.float32)
    return SegmentationSession(SamSegmenter(load_sam(checkpoint_path), fp32))


@pytest.fixture(scope="module")
def stock_embedding(session, image):
    return session.segmenter.embed(image)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_blockwise_embed_equals_the_stock_encoder(checkpoint_path, session, stock_embedding, image, dtype):
    if dtype == torch.float32:
        segmenter, stock = session.segmenter, stock_embedding
    else:
        segmenter = SamSegmenter(load_sam(checkpoint_path), ComputeConfig("cpu", dtype, dtype))
        stock = segmenter.embed(image)
    calls = []
    stepped = segmenter.embed(image, checkpoint=lambda: calls.append(1))
    assert torch.equal(stock.features, stepped.features)
    assert len(calls) == TINY.depth + 2


def test_cancelled_embedding_is_not_cached(session, image, tmp_path):
    session = SegmentationSession(session.segmenter, EmbeddingCache(tmp_path))
    calls = []

    def cancel_at_second_block():
        calls.append(1)
        if len(calls) == 2:
            raise Cancelled("superseded")

    with pytest.raises(Cancelled):
        session.embedding(image, key="k", checkpoint=cancel_at_second_block)
    assert session.cached_embedding(image, key="k") is None
    emb = session.embedding(image, key="k", checkpoint=lambda: None)
    assert session.cached_embedding(image, key="k") is not None and emb.features.shape == (1, 256, 64, 64)
    classic = SegmentationSession(ClassicSegmenter())
    assert classic.embedding(image, checkpoint=cancel_at_second_block).original_size == image.shape[:2]


# ------------------------------------------------------------------------------------------------------ Auto


def test_auto_water_mask_on_tiny_sam(session, stock_embedding, image):
    embedding = stock_embedding
    prompt = Prompt(np.array([[100, 80], [20, 10]], np.float32), np.array([1, 0]))
    fractions, checkpoints = [], []
    mask = auto_water_mask(session, image, embedding, prompt, progress=fractions.append,
                           checkpoint=lambda: checkpoints.append(1), **SMALL_AMG)
    assert mask.shape == image.shape[:2] and mask.dtype == bool
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert len(fractions) == 3 + 2 + 1  # 0, embedded, 2 batches of 2 of the 2x2 grid, segments, mask
    assert len(checkpoints) == 2  # one per batch: the given embedding was reused, no encoder run
    assert not mask[10, 20]  # the negative point's pixel is never chosen

    # without an embedding it embeds through the segmenter (with the checkpoint between blocks)
    checkpoints.clear()
    again = auto_water_mask(session, image, None, prompt, checkpoint=lambda: checkpoints.append(1), **SMALL_AMG)
    assert np.array_equal(again, mask) and len(checkpoints) == 2 + TINY.depth + 2


def test_auto_water_mask_errors(session, image):
    classic = SegmentationSession(ClassicSegmenter())
    with pytest.raises(FloodLabelError, match="Auto needs a SAM model"):
        auto_water_mask(classic, image, None, Prompt.point(10, 10))
    sam = session
    with pytest.raises(FloodLabelError, match="Click on water first"):
        auto_water_mask(sam, image, None, Prompt.point(10, 10, positive=False))
    with pytest.raises(FloodLabelError, match="Click on water first"):
        auto_water_mask(sam, image, None, Prompt.from_box((0, 0, 50, 50)))
