"""Agreement between a predicted mask and a ground-truth mask: IoU, Dice, precision, recall.

Masks are (H, W) arrays of the same shape in the same frame; any dtype works, nonzero means water
(bool is the norm). Everything is computed from three pixel counts, with no float copies of the masks:
TP = |pred & gt|, P = |pred|, G = |gt|, so FP = P - TP, FN = G - TP and |pred | gt| = P + G - TP.

    iou       = TP / (P + G - TP)
    dice      = 2 TP / (P + G)             (= 2 iou / (1 + iou))
    precision = TP / P
    recall    = TP / G

Empty masks (one rule: a ratio with nothing to count, 0/0, scores 1.0 — nothing was got wrong):
- both empty:          iou = dice = precision = recall = 1.0 (perfect agreement on "no water").
- pred empty, gt not:  iou = dice = recall = 0.0, precision = 1.0 (nothing predicted wrongly).
- gt empty, pred not:  iou = dice = precision = 0.0, recall = 1.0 (no water to miss).
So precision(p, g) == recall(g, p) always, and iou <= min(precision, recall) always. An empty
prediction is never rewarded where it matters: its IoU and Dice are 0 whenever there is water.

`aggregate` gives mean and *population* standard deviation (ddof=0: the spread of exactly these
images, not an estimate for a wider population) of each metric over a set of images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

METRIC_NAMES = ("iou", "dice", "precision", "recall")


@dataclass(frozen=True)
class MaskMetrics:
    """The four scores of one prediction against one ground truth, each in [0, 1]."""

    iou: float
    dice: float
    precision: float
    recall: float

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in METRIC_NAMES}


def mask_metrics(pred: np.ndarray, gt: np.ndarray) -> MaskMetrics:
    """Score pred against gt, both (H, W) masks of the same shape (nonzero = water).

    Raises ValueError if the shapes differ or the masks are not 2-D.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"masks must be 2-D and the same shape: pred {pred.shape}, gt {gt.shape}")
    tp = int(np.count_nonzero(np.logical_and(pred, gt)))
    p = int(np.count_nonzero(pred))
    g = int(np.count_nonzero(gt))
    return metrics_from_counts(tp, p, g)


def metrics_from_counts(tp: int, p: int, g: int) -> MaskMetrics:
    """Scores from pixel counts: tp = |pred & gt|, p = |pred|, g = |gt| (0 <= tp <= min(p, g))."""
    if not 0 <= tp <= min(p, g):
        raise ValueError(f"inconsistent counts: tp={tp}, p={p}, g={g}")
    return MaskMetrics(
        iou=_ratio(tp, p + g - tp),
        dice=_ratio(2 * tp, p + g),
        precision=_ratio(tp, p),
        recall=_ratio(tp, g),
    )


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """IoU between two models' masks of the same image (1.0 = they agree on every pixel; both empty: 1.0).

    When the shapes differ (a mask at the display size against one at the image's size), b is resized to a's
    shape by nearest neighbour first. Both must be 2-D.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"masks must be 2-D: {a.shape}, {b.shape}")
    if a.shape != b.shape:
        import cv2

        b = cv2.resize((b != 0).view(np.uint8), (a.shape[1], a.shape[0]), interpolation=cv2.INTER_NEAREST)
    return mask_metrics(a, b).iou


@dataclass(frozen=True)
class MeanStd:
    """Mean and population standard deviation (ddof=0); NaN for no data."""

    mean: float
    std: float

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f}"


@dataclass(frozen=True)
class MetricsSummary:
    """Per-metric mean ± std over `count` images. With count == 0 every mean and std is NaN."""

    count: int
    iou: MeanStd
    dice: MeanStd
    precision: MeanStd
    recall: MeanStd

    def as_dict(self) -> dict[str, tuple[float, float]]:
        """{"iou": (mean, std), ...} for the four metrics (count is the `count` attribute)."""
        return {name: (getattr(self, name).mean, getattr(self, name).std) for name in METRIC_NAMES}


def aggregate(metrics: Sequence[MaskMetrics]) -> MetricsSummary:
    """Mean and population std (ddof=0) of each metric over images; empty input gives NaNs."""
    if len(metrics) == 0:
        nan = MeanStd(math.nan, math.nan)
        return MetricsSummary(0, nan, nan, nan, nan)
    table = np.array([[getattr(m, f.name) for f in fields(MaskMetrics)] for m in metrics], np.float64)
    means = table.mean(axis=0)
    stds = table.std(axis=0, ddof=0)
    per_metric = {f.name: MeanStd(float(mu), float(sd)) for f, mu, sd in zip(fields(MaskMetrics), means, stds)}
    return MetricsSummary(count=len(metrics), **per_metric)


# --- helpers ---------------------------------------------------------------------------------


def _ratio(num: int, den: int) -> float:
    """num / den, with 0/0 = 1.0 (nothing to count, nothing got wrong)."""
    return 1.0 if den == 0 else num / den
