"""A lower OS scheduling priority for the calling thread only, where threads have their own (Linux).

On Linux every thread has its own nice value, so a background thread of the window (decoding the next image) can
yield the cores to the UI thread and the click's decode without touching the rest of the process. Elsewhere a nice
value belongs to the whole process, so nothing is done.

Only for threads that hold the GIL little (an image decode releases it): a niced thread that holds it makes the UI
thread wait for a thread the OS hardly runs. Tried on the Dataset panel's statistics threads (Python between the
decodes): in one `bench_window --data` run each, the real photos' open-folder and embedding stalls were 66 and 71 ms
against 65 and 45 ms, and their click p95 98 ms against 43, so they stay at normal priority.
"""

from __future__ import annotations

import os
import sys
import threading

BACKGROUND_THREAD_NICE = 10
"""How much lower than its own the priority of a background thread becomes."""


def lower_this_thread(by: int = BACKGROUND_THREAD_NICE) -> bool:
    """Lower the calling thread's priority by `by` nice steps (at most to 19); True when it was done (Linux)."""
    if sys.platform != "linux":
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
        return True
    except OSError:
        return False
