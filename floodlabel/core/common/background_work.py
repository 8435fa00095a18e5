"""Which low-priority child processes hold a core right now (fine-tuning, for one): process-wide, thread-safe.

The window's decode asks `busy()` per click and then decodes with 1 torch thread: with the process's 2, every OpenMP
barrier of the decode waited for the core the niced child was on (issue 16; compute_config.threads_here).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holding: Counter[str] = Counter()


@contextmanager
def holding(what: str) -> Iterator[None]:
    """While the block runs, a child doing `what` (e.g. "fine-tuning") holds a core."""
    with _lock:
        _holding[what] += 1
    try:
        yield
    finally:
        with _lock:
            _holding[what] -= 1
            if _holding[what] <= 0:
                del _holding[what]


def busy() -> bool:
    """Whether any child holds a core now."""
    with _lock:
        return bool(_holding)
