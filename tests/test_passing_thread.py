"""core.segment.passing_thread: torch work on a thread that ends with it, and the OpenMP team that goes with it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import torch

from floodlabel.core.segment.passing_thread import in_passing_thread


def test_the_result_comes_back_and_an_exception_is_raised_in_the_caller():
    caller = threading.current_thread()
    assert in_passing_thread(lambda: threading.current_thread() is not caller)
    with pytest.raises(KeyError, match="lost"):
        in_passing_thread(lambda: {}["lost"])


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _parallel_torch_work() -> None:
    torch.set_num_threads(2)
    x = torch.ones(64, 4096)
    for _ in range(20):
        x = x + x * 0.5  # 262k elements: an OpenMP parallel region per op


def _settles_to(count: int, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _os_threads() == count:
            return True
        time.sleep(0.01)
    return _os_threads() == count


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or (os.cpu_count() or 1) < 2,
                    reason="counts OS threads in /proc; needs 2 CPUs for an OpenMP team of 2")
def test_torchs_openmp_team_ends_with_the_passing_thread_and_lives_on_with_a_long_lived_one():
    """The reason for the module: a thread that ran torch with 2 threads keeps its team's extra OS thread while it
    lives (libgomp then throttles every team's spinning); a passing thread takes it along when it ends."""
    in_passing_thread(_parallel_torch_work)  # the first run also starts a thread that torch keeps for good
    time.sleep(0.1)
    before = _os_threads()
    in_passing_thread(_parallel_torch_work)
    assert _settles_to(before), f"{_os_threads()} OS threads after the passing thread, {before} before"

    stop, ran = threading.Event(), threading.Event()

    def long_lived() -> None:
        _parallel_torch_work()
        ran.set()
        stop.wait(30)

    thread = threading.Thread(target=long_lived, daemon=True)
    thread.start()
    try:
        assert ran.wait(30)
        assert _os_threads() >= before + 2  # the thread itself and its team's worker
    finally:
        stop.set()
        thread.join(30)
    assert _settles_to(before)
