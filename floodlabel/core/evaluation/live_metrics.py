"""Live number-of-clicks (NoC) tracking while one image is annotated against its ground truth.

NoC@t is the click count at which the mask's IoU with the ground truth first reached t (the interactive
segmentation benchmark measure; the rule and the thresholds are `noc`'s, as for `eval`'s simulated clicks). The
window feeds `NocTracker.update(click_count, iou)` after every change (click_count from Annotation.click_count, iou
from core.evaluation.metrics.mask_metrics(...).iou) and resets it per image.
"""

from __future__ import annotations

from floodlabel.core.evaluation.noc import NOC_THRESHOLDS, clicks_to_threshold


class NocTracker:
    """Remembers the first click count at which IoU reached each threshold (None until it has)."""

    def __init__(self, thresholds: tuple[float, ...] = NOC_THRESHOLDS) -> None:
        self.thresholds = tuple(float(t) for t in thresholds)
        self._reached: dict[float, int | None] = {}
        self.reset()

    def update(self, click_count: int, iou: float | None) -> None:
        """Record iou (in [0, 1]) reached after click_count clicks; None (no GT or no mask yet) is ignored.

        A threshold, once reached, keeps its click count even if IoU later drops (undo, a bad click).
        """
        if iou is None:
            return
        for t in self.thresholds:
            if self._reached[t] is None:
                self._reached[t] = clicks_to_threshold([(int(click_count), iou)], t)

    def noc(self, threshold: float) -> int | None:
        """Click count at which IoU first reached threshold (one of `thresholds`), or None."""
        return self._reached[float(threshold)]

    @property
    def noc85(self) -> int | None:
        return self.noc(0.85)

    @property
    def noc90(self) -> int | None:
        return self.noc(0.90)

    def reset(self) -> None:
        """Forget everything (new image)."""
        self._reached = {t: None for t in self.thresholds}
