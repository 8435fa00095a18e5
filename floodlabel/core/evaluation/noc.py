"""NoC (number of clicks): the one threshold constant and the one rule, for the simulated sessions of `eval`
(`click_simulation.clicks_to_reach`) and the live count while a person annotates (`live_metrics.NocTracker`).

NoC@t of an interaction history [(clicks, iou), ...] is the click count of the first entry whose IoU reached t
(iou >= t); a later drop (undo, a bad click) does not change it. None when no entry reached t (the simulated protocol
then counts max_clicks).
"""

from __future__ import annotations

from collections.abc import Iterable

NOC_THRESHOLDS: tuple[float, ...] = (0.85, 0.90)
"""The IoU thresholds NoC is reported at (NoC@85, NoC@90), everywhere."""


def clicks_to_threshold(history: Iterable[tuple[int, float]], threshold: float) -> int | None:
    """The click count of the first (clicks, iou) in `history` with iou >= threshold, or None if none reached it."""
    return next((clicks for clicks, iou in history if iou >= threshold), None)
