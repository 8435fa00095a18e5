"""NocTracker: first click count reaching IoU 0.85 / 0.90."""

from __future__ import annotations

import numpy as np

from floodlabel.core.evaluation.click_simulation import clicks_to_reach
from floodlabel.core.evaluation.live_metrics import NocTracker
from floodlabel.core.evaluation.noc import NOC_THRESHOLDS, clicks_to_threshold


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



def test_live_and_simulated_noc_share_one_rule_and_one_threshold_constant():
    gt = np.zeros((8, 8), bool)
    gt[2:6, 2:6] = True
    assert NocTracker().thresholds == NOC_THRESHOLDS == (0.85, 0.90)
    history = [(1, 0.5), (2, 0.86), (3, 0.7), (4, 0.9)]
    assert [clicks_to_threshold(history, t) for t in NOC_THRESHOLDS] == [2, 4]
    assert clicks_to_threshold(history, 0.95) is None and clicks_to_threshold([], 0.5) is None
    live = NocTracker()
    for clicks, iou in history:
        live.update(clicks, iou)
    assert (live.noc85, live.noc90) == (2, 4)
    simulated = clicks_to_reach(lambda prompt: gt, gt, max_clicks=3)  # default thresholds: the same constant
    assert simulated.noc == {t: 1 for t in NOC_THRESHOLDS} and all(simulated.reached.values())
