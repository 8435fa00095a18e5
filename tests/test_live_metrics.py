"""NocTracker: first click count reaching IoU 0.85 / 0.90."""

from __future__ import annotations

from floodlabel.core.evaluation.live_metrics import NocTracker


def test_noc_first_reach_and_reset():
    t = NocTracker()
    assert t.noc85 is None and t.noc90 is None
    t.update(0, None)
    t.update(1, 0.5)
    t.update(2, None)          # ignored
    assert t.noc85 is None
    t.update(3, 0.85)          # exactly the threshold counts
    assert t.noc85 == 3 and t.noc90 is None
    t.update(4, 0.6)           # a drop does not forget it
    t.update(5, 0.87)
    assert t.noc85 == 3 and t.noc90 is None
    t.update(6, 0.95)
    assert t.noc85 == 3 and t.noc90 == 6
    t.reset()
    assert t.noc85 is None and t.noc90 is None
    t.update(2, 0.91)          # one jump reaches both
    assert t.noc85 == 2 and t.noc90 == 2 and t.noc(0.9) == 2


def test_custom_thresholds():
    t = NocTracker((0.5,))
    t.update(1, 0.49)
    t.update(2, 0.5)
    assert t.noc(0.5) == 2
