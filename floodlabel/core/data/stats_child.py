"""`compute_stats` in a child process at a low OS priority: the window's Dataset panel, which decodes every photo and
mask of a folder when it opens.

Why (issue 16): in the window's process its two decoding threads share the GIL and both cores with the UI thread, the
image loader and the click's decode. On the 290 real photos of flood-area-segmentation the event loop went 65-88 ms
without a turn while the folder opened (`benchmarks/bench_window.py --data --why`). A thread of the window cannot
simply be niced: it holds the GIL between decodes, and the UI thread then waits on a thread the OS hardly runs
(`core.common.thread_priority`). A spawned child (a fresh interpreter, no fork of a process with Qt and threads)
at nice STATS_NICE shares neither.

Only small messages cross the pipe: progress (what, done, total) about every 5 %, then the `DatasetStats` or one line
of error. The child dies with its parent (`background_work.die_with_parent`) and is killed when the caller cancels.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from floodlabel.core.common.background_work import child_message, die_with_parent
from floodlabel.core.common.cancel import Cancelled
from floodlabel.core.common.errors import FloodLabelError
from floodlabel.core.data.dataset_stats import DatasetStats, compute_stats
from floodlabel.core.data.datasets import FloodDataset

T = TypeVar("T")

STATS_NICE = 10
"""How much lower than the window's the child's scheduling priority is."""

Progress = Callable[[str, int, int], None]
"""progress(what, done, total), e.g. ("images", 40, 290)."""


class StatsProcessError(FloodLabelError):
    """The statistics process failed or stopped; the message is one line."""


def compute_stats_in_child(dataset: FloodDataset, progress: Progress | None = None,
                           cancel: threading.Event | None = None) -> DatasetStats:
    """`compute_stats(dataset)` (every file decoded) in a spawned child at nice STATS_NICE. `progress` is called in
    this thread; `cancel` set: the child is killed and Cancelled is raised. Raises StatsProcessError when the child
    fails or dies."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(theirs, dataset, os.getpid()), name="floodlabel-stats", daemon=True)
    proc.start()
    theirs.close()
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("dataset statistics")
            try:
                message = child_message(ours, proc)
            except EOFError:
                break
            if message is None:
                continue
            kind, payload = message
            if kind == "progress":
                if progress is not None:
                    progress(*payload)
            elif kind == "result":
                return payload
            else:
                raise StatsProcessError(payload)
    finally:
        ours.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    raise StatsProcessError(f"the statistics process stopped (exit status {proc.exitcode})")


def _child_main(conn, dataset: FloodDataset, parent: int) -> None:
    die_with_parent(parent)
    try:
        os.nice(STATS_NICE)
    except (AttributeError, OSError):
        pass
    try:
        stats = compute_stats(dataset, progress=lambda items, total, what: _reported(conn, items, total, what))
    except Exception as exc:  # noqa: BLE001 - one line goes back to the window
        conn.send(("error", f"{type(exc).__name__}: {exc}" if not isinstance(exc, FloodLabelError) else str(exc)))
    else:
        conn.send(("result", stats))
    finally:
        conn.close()


def _reported(conn, items: Iterable[T], total: int, what: str) -> Iterator[T]:
    step = max(1, total // 20)
    for i, item in enumerate(items):
        if i % step == 0:
            conn.send(("progress", (what, i, total)))
        yield item
