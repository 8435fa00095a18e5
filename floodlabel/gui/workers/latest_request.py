"""Long-lived workers for the annotation window: latest-request-wins decoding and cancellable embedding.

Both run one daemon thread (`DaemonThread`) and report through the signals of a parentless relay QObject, for the
reasons given in gui/workers/background.py. Connect the signals to bound methods of widgets (queued onto the UI thread).

- LatestRequestWorker: prompt decoding, hover previews. Only the newest not-yet-started request is kept, never a
  queue; every result carries its request_id so the window can drop stale ones.
- EmbedWorker: the image encoder. One foreground job (the image on screen) and a short prefetch queue (the images
  the user will probably open next). The work function receives a `checkpoint` to call often (SAM calls it
  between encoder blocks, see core.sam_backend.SamSegmenter.embed): it raises Cancelled when the job was
  cancelled or superseded, and it blocks while prefetch is paused, so a background encoder stops between blocks
  while the user clicks (on 2 cores that is the only way not to slow the clicks down). Each job runs on a thread
  that ends with it (`core.segment.passing_thread`: the click's decoder keeps the only live OpenMP team).
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from floodlabel.core.common.cancel import Cancelled
from floodlabel.core.segment.passing_thread import in_passing_thread
from floodlabel.gui.workers.background import one_line_error
from floodlabel.gui.workers.daemon_thread import DaemonThread

__all__ = ["Cancelled", "EmbedWorker", "LatestRequestWorker"]

log = logging.getLogger(__name__)

Checkpoint = Callable[[], None]


class LatestRequestWorker:
    """Runs `fn()` of the newest submitted request in a daemon thread; older pending requests are dropped.

    Signals (on `relay`, also attributes): done(request_id, result), failed(request_id, one-line message).
    A dropped request emits nothing. An fn that returns a generator reports each part it yields with done(); a
    newer request arriving meanwhile ends it after the part in hand. The request that is running when a new one
    arrives finishes and reports; then the newest pending one runs. `passing`: see the attribute.
    """

    def __init__(self, name: str, passing: bool = False) -> None:
        self.name = name
        self.passing = passing
        """Whether each request runs on a thread that ends with it (`core.segment.passing_thread`): every worker
        that runs torch but the click's decoder, so that the decoder keeps the only live OpenMP team."""
        self.relay = _LatestRelay()
        self.done = self.relay.done
        self.failed = self.relay.failed
        self._cond = threading.Condition()
        self._pending: tuple[int, Callable[[], Any]] | None = None
        self._running = False
        self._stopped = False
        self._thread = DaemonThread(self._loop, f"floodlabel-{name}")
        self._thread.start()

    def submit(self, request_id: int, fn: Callable[[], Any]) -> None:
        """Queue fn() as the next request, replacing any request that has not started yet."""
        with self._cond:
            self._pending = (request_id, fn)
            self._cond.notify_all()

    @property
    def pending(self) -> bool:
        """Whether a request waits to start (the running one, if any, does not count)."""
        with self._cond:
            return self._pending is not None

    @property
    def idle(self) -> bool:
        """Whether no request runs or waits to start."""
        with self._cond:
            return self._pending is None and not self._running

    def stop(self) -> None:
        """Drop the pending request and end the thread after the running one (it is not interrupted)."""
        with self._cond:
            self._stopped = True
            self._pending = None
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end after `stop()` (True when it did). Torch code still running in a daemon
        thread when the interpreter exits can abort the process ("terminate called without an active exception")."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                request_id, fn = self._pending
                self._pending = None
                self._running = True
            try:
                if self.passing:
                    in_passing_thread(lambda: self._run(request_id, fn), f"floodlabel-{self.name}-job")
                else:
                    self._run(request_id, fn)
            finally:
                with self._cond:
                    self._running = False
            del fn  # do not keep the last request's image alive while idle

    def _run(self, request_id: int, fn: Callable[[], Any]) -> None:
        try:
            result = fn()
            if not inspect.isgenerator(result):
                self.relay.done.emit(request_id, result)
                return
            for part in result:  # a result in parts: each reported as it comes (e.g. the view mask first)
                self.relay.done.emit(request_id, part)
                if self.pending:  # a newer request came: the rest of this one is not wanted
                    result.close()
                    break
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line in the window
            self.relay.failed.emit(request_id, one_line_error(exc))


class EmbedWorker:
    """A foreground embedding job plus a small prefetch queue, on one daemon thread.

    fn(checkpoint) does the work and calls checkpoint() often (pass it to SegmentationSession.embedding).

    - request(key, fn): the foreground job. It replaces a foreground job that has not started (that one reports
      cancelled) and cancels a running one (its next checkpoint() raises Cancelled). A running prefetch is
      pre-empted at its next checkpoint (one encoder block) and re-queued; the exception is a prefetch of the same
      key, which is left to finish (unpaused) since the foreground job will then find its result in the cache.
      A request for the key that is already running in the foreground keeps that job.
    - prefetch(key, fn): background; runs only when there is no foreground job and prefetch is not paused.
      Keys are deduplicated (the newest fn wins, at the back of the queue); only the last `max_prefetch` are
      kept; the oldest runs first. Keys pending or running in the foreground are ignored.
    - pause_prefetch(seconds): prefetch waits until `seconds` from now (replacing any earlier deadline, so 0
      resumes at once): none starts, and a running one blocks in its checkpoint().
    - cancel(): cancel the foreground job (pending or running).

    Signals: started(key) when a foreground job starts; finished(key, result, seconds);
    failed(key, one-line message); cancelled(key) (also for a foreground request replaced before it started);
    prefetched(key, seconds) when a prefetch completes. Every foreground request ends in exactly one of
    finished / failed / cancelled; a foreground job cancelled while running reports cancelled even if it got to
    the end. A failed prefetch is only logged (it is not the image on screen; the foreground request of that
    image will report the error).
    """

    def __init__(self, max_prefetch: int = 4) -> None:
        self.max_prefetch = max_prefetch
        self.relay = _EmbedRelay()
        self.started = self.relay.started
        self.finished = self.relay.finished
        self.failed = self.relay.failed
        self.cancelled = self.relay.cancelled
        self.prefetched = self.relay.prefetched
        self._cond = threading.Condition()
        self._foreground: _Job | None = None  # pending, not started
        self._running: _Job | None = None
        self._prefetch: OrderedDict[str, Callable[[Checkpoint], Any]] = OrderedDict()
        self._dropped: list[str] = []  # keys of replaced foreground requests; the thread reports them
        self._pause_until = 0.0  # time.monotonic() deadline
        self._stopped = False
        self._thread = DaemonThread(self._loop, "floodlabel-embed")
        self._thread.start()

    def request(self, key: str, fn: Callable[[Checkpoint], Any]) -> None:
        with self._cond:
            if self._foreground is not None:
                self._dropped.append(self._foreground.key)
                self._foreground = None
            running = self._running
            if running is not None and running.foreground and running.key == key and not running.cancel:
                self._cond.notify_all()  # the job on screen is already running: keep it
                return
            self._foreground = _Job(key, fn, foreground=True)
            self._prefetch.pop(key, None)
            if running is not None and running.foreground:
                running.cancel = True
            self._cond.notify_all()  # wakes the loop and a prefetch paused in its checkpoint

    def prefetch(self, key: str, fn: Callable[[Checkpoint], Any]) -> None:
        with self._cond:
            if (self._foreground is not None and self._foreground.key == key) or (
                self._running is not None and self._running.key == key
            ):
                return
            self._prefetch.pop(key, None)
            self._prefetch[key] = fn
            while len(self._prefetch) > self.max_prefetch:
                self._prefetch.popitem(last=False)
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            if self._foreground is not None:
                self._dropped.append(self._foreground.key)
                self._foreground = None
            if self._running is not None and self._running.foreground:
                self._running.cancel = True
            self._cond.notify_all()

    def pause_prefetch(self, seconds: float) -> None:
        with self._cond:
            self._pause_until = time.monotonic() + max(0.0, seconds)
            self._cond.notify_all()

    @property
    def busy(self) -> bool:
        """Whether a foreground job is pending or running."""
        with self._cond:
            return self._foreground is not None or (self._running is not None and self._running.foreground)

    def state(self) -> dict[str, object]:
        """A snapshot for tests and benchmarks: running (None, or (key, foreground)), foreground (the pending
        foreground key or None), queued (prefetch keys waiting), paused_s (seconds the prefetch still waits)."""
        with self._cond:
            running = self._running
            return {"running": None if running is None else (running.key, running.foreground),
                    "foreground": self._foreground.key if self._foreground is not None else None,
                    "queued": list(self._prefetch), "paused_s": max(0.0, self._pause_until - time.monotonic())}

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end after `stop()` (True when it did)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Cancel everything and end the thread (at the running job's next checkpoint)."""
        with self._cond:
            self._stopped = True
            self._foreground = None
            self._prefetch.clear()
            self._dropped.clear()
            if self._running is not None:
                self._running.cancel = True
            self._cond.notify_all()

    # ------------------------------------------------------------------------------------------- thread

    def _loop(self) -> None:
        while True:
            job, dropped = self._next()
            for key in dropped:
                self.relay.cancelled.emit(key)
            if job is None:
                if self._stopped:
                    return
                continue
            self._run(job)
            del job

    def _next(self) -> tuple["_Job | None", list[str]]:
        """Wait for something to do: dropped requests to report, or the next job (now marked running)."""
        with self._cond:
            while True:
                if self._stopped:
                    return None, []
                if self._dropped:
                    dropped, self._dropped = self._dropped, []
                    return None, dropped
                if self._foreground is not None:
                    job, self._foreground = self._foreground, None
                    self._running = job
                    return job, []
                now = time.monotonic()
                if self._prefetch and now >= self._pause_until:
                    key, fn = self._prefetch.popitem(last=False)
                    self._running = _Job(key, fn, foreground=False)
                    return self._running, []
                self._cond.wait(self._pause_until - now if self._prefetch else None)

    def _run(self, job: "_Job") -> None:
        start = time.perf_counter()
        if job.foreground:
            self.relay.started.emit(job.key)
        try:  # on a thread that ends with the job: see core.segment.passing_thread
            result = in_passing_thread(lambda: job.fn(lambda: self._checkpoint(job)), "floodlabel-embed-job")
        except Cancelled:
            self._finish_cancelled(job)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line in the window
            self._end_running(job)
            if job.foreground:
                self.relay.failed.emit(job.key, one_line_error(exc))
            else:
                log.warning("prefetch of %s failed: %s", job.key, one_line_error(exc))
        else:
            cancelled = self._end_running(job)
            seconds = time.perf_counter() - start
            if not job.foreground:
                self.relay.prefetched.emit(job.key, seconds)
            elif cancelled:
                self.relay.cancelled.emit(job.key)
            else:
                self.relay.finished.emit(job.key, result, seconds)

    def _finish_cancelled(self, job: "_Job") -> None:
        with self._cond:
            self._running = None
            requeue = (
                not job.foreground
                and job.preempted
                and not self._stopped
                and job.key not in self._prefetch
                and (self._foreground is None or self._foreground.key != job.key)
            )
            if requeue:  # back to the front: it was the next image to prefetch
                self._prefetch[job.key] = job.fn
                self._prefetch.move_to_end(job.key, last=False)
        if job.foreground and not self._stopped:
            self.relay.cancelled.emit(job.key)

    def _end_running(self, job: "_Job") -> bool:
        """Mark the thread idle; returns whether `job` was cancelled meanwhile."""
        with self._cond:
            self._running = None
            return job.cancel

    def _checkpoint(self, job: "_Job") -> None:
        """Raises Cancelled when `job` is cancelled or (prefetch) pre-empted; blocks while prefetch is paused."""
        with self._cond:
            while True:
                if job.cancel or self._stopped:
                    raise Cancelled(job.key)
                if job.foreground:
                    return
                if self._foreground is not None:
                    if self._foreground.key == job.key:
                        return  # the foreground job wants this very result: let it finish, unpaused
                    job.preempted = True
                    raise Cancelled(job.key)
                remaining = self._pause_until - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(min(remaining, 0.05))


# ----------------------------------------------------------------------------------------------------- helpers


class _Job:
    __slots__ = ("key", "fn", "foreground", "cancel", "preempted")

    def __init__(self, key: str, fn: Callable[[Checkpoint], Any], foreground: bool) -> None:
        self.key = key
        self.fn = fn
        self.foreground = foreground
        self.cancel = False  # guarded by EmbedWorker._cond
        self.preempted = False


class _LatestRelay(QObject):
    done = Signal("qlonglong", object)
    failed = Signal("qlonglong", str)


class _EmbedRelay(QObject):
    started = Signal(str)
    finished = Signal(str, object, float)
    failed = Signal(str, str)
    cancelled = Signal(str)
    prefetched = Signal(str, float)
