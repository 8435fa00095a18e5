"""The image encoder's jobs behind the window: the embedding of the image on screen (foreground) and the
pre-encoding of the next image (prefetch, into the embedding cache only).

The foreground embedding runs on one `EmbedWorker` thread. The prefetch runs in a child process at a low OS priority
(`core.models.background_encoder`) when the session says how it was opened (`SegmentationSession.source`), so it
never competes with a click for the GIL or the torch thread pool; otherwise (a session made in code, or
FLOODLABEL_PREFETCH=thread) on the same thread, paused after each interaction. A child that dies is reported
(`background_stopped`) and a new one starts on the next prefetch.

The SegmentationController owns one `EncoderJobs` (`controller.encoder`): `embed(session, item)` gives the image on
screen's embedding (from the cache at once, else from the worker), reported on the UI thread by `started`, `ready`
and `stopped` / `failed` only while that image is still the one `current()` returns. Prefetch waits
`PREFETCH_PAUSE_S` after each click, hover or stroke (`pause`): on 2 cores the clicks come first. A prefetch also
decodes the image once (in the child's case, a thread of the window does: `decode_ahead`); `select()` takes it back
with `take_item` (a 12 MP JPEG costs ~100 ms to decode). The child's embedding is read into memory as soon as it is
written (`_load_ahead`), so that showing that image reads no file on the UI thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from floodlabel.core.data.datasets import FloodDataset
from floodlabel.core.data.image_item import ImageItem
from floodlabel.gui.window.image_loading import decode_ahead, prefetch_job
from floodlabel.gui.workers.daemon_thread import DaemonThread
from floodlabel.gui.workers.latest_request import EmbedWorker

PREFETCH_PAUSE_S = 1.5
"""After a click, hover or stroke, the prefetch encoder waits this long before it resumes (2 cores: clicks first)."""


class EncoderJobs(QObject):
    """The embed worker, which rows were prefetched, and the images the prefetch decoded (at most 2).

    current(): (session, item) of the image on screen (item None while none is), read when the worker reports.
    """

    background_stopped = Signal(str)  # the prefetch child process died: why (a new one starts when needed)
    prefetched = Signal(str)  # a prefetch in the child process finished: the image's path
    started = Signal()  # the encoder runs for the image on screen (no cache hit)
    ready = Signal(object, float)  # its embedding, seconds (0 for a cache hit)
    stopped = Signal(str)  # "cancelled" or the failure message
    failed = Signal(str)  # the failure message (after `stopped`)

    def __init__(self, current: Callable[[], tuple[object, ImageItem | None]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._current = current
        self.worker = EmbedWorker()
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self._prefetched_rows: set[int] = set()
        self._prefetched_items: dict[int, ImageItem] = {}  # row -> image decoded by the prefetch (at most 2)
        self._background = None  # BackgroundEncoder of `_background_source`, started on the first prefetch
        self._background_source: tuple | None = None
        self._in_flight: dict[str, int] = {}  # image path -> row, prefetches sent to the child
        self._relay = _BackgroundRelay()  # the child's events, from its reader thread to the UI thread
        self._relay.event.connect(self._on_background_event)

    @property
    def prefetched_rows(self) -> frozenset[int]:
        """Rows whose prefetch was asked for since the last `reset` (each is asked for once)."""
        return frozenset(self._prefetched_rows)

    @staticmethod
    def key(session, image_key: str) -> str:
        """The worker's key of a foreground embedding: the model and the image."""
        return f"{session.model_id if session else ''}:{image_key}"

    def embed(self, session, item: ImageItem) -> None:
        """The embedding of the image on screen: `ready` at once on a cache hit, else `started` and a foreground job
        (it pre-empts a prefetch and replaces an earlier request)."""
        cached = session.cached_embedding(item.image, item.key)
        if cached is not None:
            self.ready.emit(cached, 0.0)
            return
        self.started.emit()
        self.worker.request(self.key(session, item.key),
                            lambda checkpoint: session.embedding(item.image, item.key, checkpoint=checkpoint))

    def prefetch(self, dataset: FloodDataset | None, session, row: int | None) -> None:
        """Pre-encode dataset row `row` (cache only) unless it was already asked for; nothing for the classic
        backend (its embedding is a resize) or without a dataset, session or row."""
        if (dataset is None or session is None or row is None or not 0 <= row < len(dataset.pairs)
                or row in self._prefetched_rows):
            return
        if not session.segmenter.capabilities.cache_embeddings:
            return  # classic: embedding is a resize, nothing to gain
        self._prefetched_rows.add(row)
        pair = dataset.pairs[row]
        background = self._background_for(session)
        if background is not None:
            self._in_flight[str(pair.image)] = row
            background.submit(pair.image)
            self._decode_ahead(row, pair)
            return
        self.worker.prefetch(f"prefetch:{session.model_id}:{pair.image}",
                             prefetch_job(row, pair, session, self._prefetched_items))

    @property
    def prefetch_running(self) -> bool:
        """Whether a prefetch is being encoded now: one sent to the child and not back yet, or the thread's running
        prefetch job while not paused."""
        if self._in_flight:
            return True
        state = self.worker.state()
        return state["running"] is not None and not state["running"][1] and state["paused_s"] == 0.0

    @property
    def background_busy(self) -> bool:
        """Whether the pre-encoding child has work (loading its model or encoding): it holds a core."""
        return bool(self._in_flight)

    @property
    def idle(self) -> bool:
        """No embedding runs or waits: no foreground job, no prefetch queued, running or sent to the child."""
        state = self.worker.state()
        return (not self._in_flight and state["running"] is None and state["foreground"] is None
                and not state["queued"])

    @property
    def background_pid(self) -> int | None:
        """The prefetch child's process id while one runs (tests, benchmarks)."""
        return self._background.pid if self._background is not None else None

    def close(self) -> None:
        """End the prefetch child (the window closes)."""
        if self._background is not None:
            self._background.close()
            self._background = None

    def _background_for(self, session):
        """The child process prefetching for `session` (made, not started, on first need), or None: the thread."""
        source = getattr(session, "source", None)
        if source is None or os.environ.get("FLOODLABEL_PREFETCH", "process") == "thread":
            return None
        from floodlabel.core.models.background_encoder import BackgroundEncoder, worth_a_process

        if not worth_a_process():  # little RAM: no second copy of the model
            return None
        cache = session.cache
        key = (source, str(cache.directory) if cache is not None else None)
        if self._background_source != key:

            self.close()
            relay = self._relay  # the lambda keeps the relay, not this QObject, for the reader thread
            self._background = BackgroundEncoder(source, Path(key[1]) if key[1] else None,
                                                 lambda kind, path, detail: relay.event.emit(kind, path, detail))
            self._background_source = key
        return self._background

    def _on_background_event(self, kind: str, path: str, detail: object) -> None:
        if kind == "done":
            self._load_ahead(self._in_flight.pop(path, None))
            self.prefetched.emit(path)
        elif kind == "failed":
            self._in_flight.pop(path, None)  # the foreground embedding of that image will say why
        elif kind == "exited" and detail is not None:
            for row in self._in_flight.values():  # asked again on the next need, from a new child
                self._prefetched_rows.discard(row)
            self._in_flight.clear()
            self.background_stopped.emit(str(detail))

    def forget(self, row: int) -> None:
        """Let `row` be prefetched again (benchmarks re-run a prefetch that completed)."""
        self._prefetched_rows.discard(row)

    def take_item(self, row: int) -> ImageItem | None:
        """The image the prefetch decoded for `row`, once (None when it did not)."""
        return self._prefetched_items.pop(row, None)

    def reset(self, *, images: bool = False) -> None:
        """Forget which rows were prefetched (a new model); `images`: also the decoded images (a new dataset)."""
        self._prefetched_rows.clear()
        if images:
            self._prefetched_items.clear()

    def _decode_ahead(self, row: int, pair) -> None:
        """While the child pre-encodes row `row`, decode its image here too, on a thread at a low OS priority (Linux
        threads have their own), so that PageDown finds it decoded as with the thread's prefetch (`take_item`; a
        4000x3000 JPEG with its mask: about 150 ms of PageDown -> image shown before). Like the thread's prefetch
        job, the thread puts the item in place itself: no Qt object is involved, so a window closed meanwhile is no
        concern."""
        items, rows = self._prefetched_items, self._prefetched_rows

        def run() -> None:
            try:
                item = decode_ahead(pair)
            except Exception:  # noqa: BLE001 - the loader will say what is wrong when the image is opened
                return
            if row not in rows:  # no longer wanted (reset for another dataset or model)
                return
            while len(items) >= 2:
                try:
                    items.pop(next(iter(items)), None)
                except (RuntimeError, StopIteration):  # the UI thread took one meanwhile
                    break
            items[row] = item

        DaemonThread(run, "floodlabel-decode-ahead").start()

    def _load_ahead(self, row: int | None) -> None:
        """The child wrote row `row`'s embedding to the disk cache: read it into the session's memory cache on a
        thread, so that PageDown takes it from memory. Read on the UI thread when the image is shown, its disk read
        and cast stalled the event loop 64-129 ms (bench_window, "next image from the cache")."""
        session, _ = self._current()
        item = self._prefetched_items.get(row) if row is not None else None
        cache = getattr(session, "cache", None)
        if cache is None or item is None:
            return
        # the thread holds the cache and two strings, not the session: a thread that outlives the window must not
        # drop the last reference to the model (its TorchScript decoder) or to a Qt object off the UI thread
        model_id, key = session.cache_model_id, item.key
        DaemonThread(cache.get, "floodlabel-load-ahead", args=(model_id, key)).start()

    def pause(self, seconds: float = PREFETCH_PAUSE_S) -> None:
        """Hold prefetch for `seconds` from now (the user is interacting)."""
        self.worker.pause_prefetch(seconds)

    def cancel(self) -> None:
        """Cancel the foreground embedding (pending or running)."""
        self.worker.cancel()

    def _is_current(self, key: str) -> bool:
        session, item = self._current()
        return item is not None and key == self.key(session, item.key)

    def _on_finished(self, key: str, embedding, seconds: float) -> None:
        if self._is_current(key):
            self.ready.emit(embedding, seconds)

    def _on_failed(self, key: str, message: str) -> None:
        if self._is_current(key):
            self.stopped.emit(message)
            self.failed.emit(message)

    def _on_cancelled(self, key: str) -> None:
        if self._is_current(key):
            self.stopped.emit("cancelled")


class _BackgroundRelay(QObject):
    """Parentless: emitted from the child's reader thread, received queued on the UI thread."""

    event = Signal(str, str, object)  # kind, image path, detail (see core.models.background_encoder.Event)
