"""Torch work on a thread that ends with it, so that the click's decode thread keeps the process's only live
OpenMP team.

Why (issue 16, item 4: a decode in the window took about 1.5x the same decode alone): torch's OpenMP runtime on
Linux (libgomp) lets the threads of a team spin for about 3 ms between two parallel regions, so the hundreds of
small regions of one mask decode run back to back. It does so only while it manages no more threads than the
machine has CPUs; past that it spins 100 times and sleeps, and every region wakes its threads with a futex. A
thread that has run torch with 2 threads keeps its team (one more managed thread) until the thread ends. On 2 cores,
a second live thread with a team is enough. Measured there (vit_b decode of an 893x551 click, random features):

| decode thread | decode median |
|---|---|
| the only thread with a team | 16.1 ms |
| another live thread has run torch with 2 threads (the window's encoder thread did) | 24.7 ms |
| 1 torch thread | 24.9 ms |

(`x + x` on 262,144 floats: 14 us against 105 us.) So in the window only the decode thread is a long-lived thread
that runs torch with more than one thread. The encoder, the text prompt, the compare model and the map detail run
each job through `in_passing_thread`: the job's team ends with its thread. Starting a thread costs about 0.1 ms.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")

__all__ = ["in_passing_thread"]


def in_passing_thread(fn: Callable[[], T], name: str | None = None) -> T:
    """`fn()` run on a new thread that ends when it returns; its result is returned and its exception raised here.
    The calling thread waits (call it from a worker thread, never from the UI thread)."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name=name or f"{threading.current_thread().name}-job", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value
