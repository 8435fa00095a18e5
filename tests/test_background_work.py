"""core.common.background_work: the children that hold a core, stopped for the length of a click's decode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from floodlabel.core.common import background_work
from tests.test_segmentation_controller import W, H, controller  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(not background_work.CAN_STOP or not Path("/proc/self/stat").is_file(),
                                reason="stops processes with SIGSTOP and reads their state in /proc")


def _state(pid: int) -> str:
    """The process's state letter in /proc (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def child():
    proc = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _wait_state(pid: int, stopped: bool, timeout: float = 5.0) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (_state(pid) in "Tt") == stopped:
            return True
        time.sleep(0.005)
    return False


def test_overlapping_blocks_keep_a_child_stopped_until_the_last_one_ends(child):
    with background_work.stopped([child]) as outer:
        assert outer == [child] and _wait_state(child, stopped=True)
        with background_work.stopped([child, child]) as inner:
            assert inner == [child]
        assert _wait_state(child, stopped=True, timeout=0.2)  # the outer block still holds it
    assert _wait_state(child, stopped=False)


def test_a_process_that_has_gone_is_skipped():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with background_work.stopped([proc.pid]) as held:
        assert held == []


def test_holding_names_the_childs_pid_while_it_runs(child):
    assert child not in background_work.pids() and not background_work.busy()
    with background_work.holding("fine-tuning", child):
        assert background_work.pids() == [child] and background_work.busy()
    assert background_work.pids() == [] and not background_work.busy()


def test_a_click_decodes_while_a_busy_child_is_stopped_and_it_goes_on_after(qtbot, controller, child,  # noqa: F811
                                                                             monkeypatch):
    """The fine-tuning child is stopped while the click's decode (its view part and its native part) runs, with the
    process's torch threads, and continues as soon as the decode is done."""
    from floodlabel.core.segment.compute_config import PROCESS_THREADS

    c, seen = controller, []
    real_predict = c.session.predict

    def predict(*args, **kwargs):
        import torch

        seen.append((_wait_state(child, stopped=True), torch.get_num_threads()))  # SIGSTOP lands in microseconds
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(c.session, "predict", predict)
    with background_work.holding("fine-tuning", child):
        c.add_point(W / 2, H / 4, True)
        qtbot.waitUntil(lambda: c.native_mask is not None and c.native_ready() and not c.decoder.pending,
                        timeout=60_000)
        assert _wait_state(child, stopped=False)
    assert len(seen) == 2 and all(stopped and n == PROCESS_THREADS for stopped, n in seen), seen
