"""`eval --jobs N`: one model's image pairs evaluated in N worker processes, with results identical to a serial run.

Each worker opens its own session for the model once (classic: nothing to load; SAM: the checkpoint, the disk
embedding cache shared between processes; `worker.init_worker`) and evaluates whole pairs with
`worker.evaluate_pair`, the very function the serial loop calls. Workers run with one torch / OpenCV thread each,
so N workers use N cores. Results are taken back in pair order, so rows, skipped entries and progress come out
exactly as in the serial loop.

Default job counts (`default_jobs`): the available cores for the classic backend (its work per image is
single-threaded; at most one worker per two pairs), 1 for SAM (its encoder already uses every core; more processes
would only compete for them).
Workers are started with "spawn" (a fork after torch's or OpenCV's thread pools have started can hang).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from floodlabel.core.common.errors import FloodLabelError
from floodlabel.core.common.progress import Progress
from floodlabel.core.data.datasets import ImagePair
from floodlabel.core.evaluation.results import EvaluationResult
from floodlabel.core.evaluation.worker import EvalContext, evaluate_in_worker, init_worker
from floodlabel.core.models.registry import CLASSIC

POLL_S = 0.2  # how often the parent checks the cancel event while waiting for a worker
MIN_PAIRS_PER_JOB = 2


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_jobs(model: str, pairs: int | None = None) -> int:
    """Worker processes for `model` when --jobs is not given: all cores for classic, 1 for SAM. With `pairs`, at
    most one worker per MIN_PAIRS_PER_JOB pairs (starting a worker costs about as much as one classic image)."""
    if str(model) != CLASSIC:
        return 1
    cores = available_cores()
    return cores if pairs is None else max(1, min(cores, pairs // MIN_PAIRS_PER_JOB))


def evaluate_model_parallel(
    ctx: EvalContext,
    pairs: list[ImagePair],
    jobs: int,
    result: EvaluationResult,
    bad_stems: set[str],
    done: int,
    total: int,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> int:
    """Evaluate `pairs` for ctx.model in `jobs` processes, appending to result (rows, skipped, model_ids) and
    bad_stems exactly as the serial loop does. Returns the updated count of processed pairs."""
    todo = [p for p in pairs if p.stem not in bad_stems]
    if not todo:
        for _ in pairs:
            done += 1
            if progress:
                progress(done, total)
        return done
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(min(jobs, len(todo)), mp_context=context, initializer=init_worker,
                               initargs=(ctx,))
    try:
        futures = {p.stem: pool.submit(evaluate_in_worker, p) for p in todo}
        for pair in pairs:
            if cancel is not None and cancel.is_set():
                break
            future = futures.get(pair.stem)
            if future is not None:
                outcome = _wait(future, cancel)
                if outcome is None:  # cancelled while waiting
                    break
                result.add_outcome(ctx.model, pair.stem, outcome, bad_stems)
            done += 1
            if progress:
                progress(done, total)
    except BrokenProcessPool as exc:
        raise FloodLabelError(f"an evaluation worker process for {ctx.model} stopped unexpectedly ({exc}); "
                              "run with --jobs 1 to see the error") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return done


def _wait(future: Future, cancel: threading.Event | None):
    """future.result(), or None as soon as `cancel` is set."""
    while True:
        try:
            return future.result(timeout=POLL_S if cancel is not None else None)
        except FutureTimeout:
            if cancel is not None and cancel.is_set():
                return None

