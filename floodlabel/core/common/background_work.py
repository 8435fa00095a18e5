"""Which low-priority child processes hold a core right now (fine-tuning, for one), and stopping them for the length
of a click's decode: process-wide, thread-safe.

Why: on 2 cores a decode with 2 torch threads beside a niced child had a bad tail (an OpenMP barrier waits for the
core the child is on: p90 55-118 ms against a 21 ms median, issue 16), and with 1 thread it takes 30 ms against 21.
So the window stops the children (SIGSTOP) while it decodes a click, with all its threads, and lets them go on
(SIGCONT) as soon as the decode is done: a child loses about 20 ms per click. Where signals cannot stop a process
(Windows), `CAN_STOP` is False and the decode uses 1 torch thread instead (`busy()`).

A child killed while stopped dies (SIGKILL works on a stopped process), and one whose window dies gets SIGKILL too
(`die_with_parent`), so no child is left stopped.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

CAN_STOP = hasattr(signal, "SIGSTOP") and hasattr(signal, "SIGCONT")
"""Whether child processes can be stopped and continued here (POSIX)."""

_lock = threading.Lock()
_holding: Counter[str] = Counter()
_pids: Counter[int] = Counter()  # pid -> how many `holding` blocks name it
_stops: Counter[int] = Counter()  # pid -> how many `stopped` blocks hold it stopped


@contextmanager
def holding(what: str, pid: int | None = None) -> Iterator[None]:
    """While the block runs, a child doing `what` (e.g. "fine-tuning"), process `pid` when known, holds a core."""
    with _lock:
        _holding[what] += 1
        if pid is not None:
            _pids[pid] += 1
    try:
        yield
    finally:
        with _lock:
            _holding[what] -= 1
            if _holding[what] <= 0:
                del _holding[what]
            if pid is not None:
                _pids[pid] -= 1
                if _pids[pid] <= 0:
                    del _pids[pid]


def busy() -> bool:
    """Whether any child holds a core now."""
    with _lock:
        return bool(_holding)


def pids() -> list[int]:
    """The process ids of the children that hold a core now (those `holding` was given)."""
    with _lock:
        return list(_pids)


@contextmanager
def stopped(targets: Iterable[int]) -> Iterator[list[int]]:
    """The processes `targets` stopped (SIGSTOP) while the block runs and continued (SIGCONT) after it. Blocks that
    overlap are counted: a process goes on when the last block that stopped it ends. Yields the pids it stopped
    (none without `CAN_STOP`; a process that has gone is skipped)."""
    held: list[int] = []
    if CAN_STOP:
        with _lock:
            for pid in dict.fromkeys(targets):
                if _stops[pid] == 0 and not _signal(pid, signal.SIGSTOP):
                    continue
                _stops[pid] += 1
                held.append(pid)
    try:
        yield held
    finally:
        if held:
            with _lock:
                for pid in held:
                    _stops[pid] -= 1
                    if _stops[pid] <= 0:
                        del _stops[pid]
                        _signal(pid, signal.SIGCONT)


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def die_with_parent(parent: int) -> None:
    """Called first in a child: it gets SIGKILL when the window's process dies (Linux prctl PR_SET_PDEATHSIG), so a
    window killed while its child works leaves nothing behind; elsewhere the child ends when its pipe closes.
    `parent`: the window's pid, to catch a parent that died before the prctl."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before the line above
        os._exit(0)


def child_message(conn, proc, timeout: float = 0.1):
    """The next message from the child process `proc` on its pipe end `conn`, or None when none came within `timeout`
    seconds. Raises EOFError once the child has gone and nothing is left to read."""
    try:
        if conn.poll(timeout):
            return conn.recv()
        if not proc.is_alive() and not conn.poll(0):
            raise EOFError
    except OSError as exc:
        raise EOFError from exc
    return None
