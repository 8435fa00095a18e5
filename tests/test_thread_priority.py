"""core.common.thread_priority: a background thread of the window lowers its own priority, not the process's."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from floodlabel.core.common.thread_priority import lower_this_thread

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="threads have their own nice value on Linux only")


def _own() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_only_the_calling_thread_is_lowered():
    before, seen = os.getpriority(os.PRIO_PROCESS, 0), []
    thread = threading.Thread(target=lambda: seen.append((lower_this_thread(3), _own())))
    thread.start()
    thread.join()
    assert seen == [(True, min(19, before + 3))]
    assert os.getpriority(os.PRIO_PROCESS, 0) == before and _own() == before
