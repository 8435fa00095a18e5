"""Simulated clicks and NoC (number of clicks to reach an IoU), the standard interactive-segmentation
protocol of RITM / SimpleClick / SAM's evaluation.

Next click (`next_click`), exactly as RITM's `Clicker._get_next_click`:
1. False negatives FN = gt & ~pred (missed water), false positives FP = pred & ~gt (spurious water).
2. Distance transform of each (Euclidean, precise), with the image border counting as boundary
   (one pixel of background padding), and zero at pixels already clicked.
3. The click goes at the pixel with the largest distance over FN and FP together: the centre of the
   error region with the largest inscribed circle (the "thickest" error, not the one of largest area).
   Positive if it lies in FN, negative if in FP; an exact tie goes to FP (RITM's `fn_max > fp_max`).
   Ties inside one mask go to the first pixel in row-major order.
4. No error left (or only already-clicked pixels) -> None.
Clicks are (x, y) pixel indices in the original image frame, like the points of `Prompt`.

NoC (`clicks_to_reach`; the rule and the thresholds are `noc`'s): the first prompt is interaction 1
(by default one positive click at the gt's interior point, which is also what step 3 gives for an empty
prediction); each further click is added to the accumulated prompt and the predictor is called again.
The IoU is recorded after every prediction. NoC@t = the 1-based number of the first prediction with
IoU >= t, or max_clicks if none reaches it (the standard convention: a failure counts max_clicks;
`reached` tells it apart from a success at exactly max_clicks). By default the loop stops once the
highest threshold is reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np

from floodlabel.core.evaluation.auto_prompts import deepest_point, point_prompt
from floodlabel.core.evaluation.metrics import mask_metrics
from floodlabel.core.evaluation.noc import NOC_THRESHOLDS, clicks_to_threshold
from floodlabel.core.annotation.prompts import Prompt


class Click(NamedTuple):
    """A simulated click at pixel (x, y) of the original image; positive = "this is water"."""

    x: int
    y: int
    positive: bool


@dataclass(frozen=True)
class ClickResult:
    """The outcome of one image's click session.

    ious:    IoU after each prediction; ious[k] followed interaction k + 1. Shorter than max_clicks
             when the loop stopped early (threshold reached, or no error left to click on).
    prompt:  the final accumulated prompt (its points are the clicks, in order).
    noc:     {threshold: NoC}; max_clicks where the threshold was not reached.
    reached: {threshold: whether the IoU reached it within max_clicks}.
    """

    ious: tuple[float, ...]
    prompt: Prompt
    noc: dict[float, int]
    reached: dict[float, bool]
    max_clicks: int


def next_click(pred: np.ndarray, gt: np.ndarray, exclude: np.ndarray | None = None) -> Click | None:
    """The next simulated click for a prediction, or None if pred already equals gt.

    pred, gt: (H, W) masks of the same shape (nonzero = water).
    exclude:  optional (N, 2) (x, y) pixels already clicked; they are never chosen again (as RITM).
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or gt.ndim != 2:
        raise ValueError(f"masks must be 2-D and the same shape: pred {pred.shape}, gt {gt.shape}")
    fn = deepest_point(gt & ~pred, exclude)
    fp = deepest_point(pred & ~gt, exclude)
    if fn is not None and (fp is None or fn[2] > fp[2]):
        return Click(fn[0], fn[1], True)
    if fp is not None:
        return Click(fp[0], fp[1], False)
    return None


def clicks_to_reach(
    predict: Callable[[Prompt], np.ndarray],
    gt: np.ndarray,
    thresholds: Sequence[float] = NOC_THRESHOLDS,
    max_clicks: int = 20,
    first_prompt: Prompt | None = None,
    stop_when_reached: bool = True,
) -> ClickResult:
    """Run the simulated-click protocol on one image.

    predict: maps the accumulated Prompt (original-image pixels) to an (H, W) bool mask of gt's shape.
        It may be stateful (e.g. feed SAM its previous low-res logits); that is the caller's business.
    gt: (H, W) ground truth; must contain water (ValueError otherwise, as `point_prompt`).
    first_prompt: interaction 1; default one positive click at gt's interior point.
    stop_when_reached: stop once max(thresholds) is reached (later IoUs cannot change any NoC).
    """
    gt = np.asarray(gt, dtype=bool)
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds or not all(0.0 < t <= 1.0 for t in thresholds):
        raise ValueError(f"thresholds must be in (0, 1], got {thresholds}")
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be at least 1, got {max_clicks}")
    prompt = first_prompt if first_prompt is not None else point_prompt(gt)
    ious: list[float] = []
    for k in range(1, max_clicks + 1):
        pred = np.asarray(predict(prompt))
        ious.append(mask_metrics(pred, gt).iou)
        if k == max_clicks or (stop_when_reached and ious[-1] >= max(thresholds)):
            break
        click = next_click(pred, gt, exclude=prompt.points)
        if click is None:
            break
        prompt = prompt.with_point(click.x, click.y, click.positive)
    first = {t: clicks_to_threshold(enumerate(ious, start=1), t) for t in thresholds}
    noc = {t: max_clicks if k is None else k for t, k in first.items()}
    reached = {t: k is not None for t, k in first.items()}
    return ClickResult(tuple(ious), prompt, noc, reached, max_clicks)


def noc_summary(results: Sequence[ClickResult], thresholds: Sequence[float] | None = None) -> dict:
    """Dataset summary of click sessions.

    Returns {"count": n, "NoC@85": mean, "NoC@85_std": population std (ddof=0), "failed@85": fraction
    of images that never reached 0.85 within max_clicks, ...} for each threshold, keyed in percent.
    thresholds: default those of the results (which must all hold them), or NOC_THRESHOLDS when
    there are no results; with no results every value but count is NaN.
    """
    if thresholds is None:
        thresholds = tuple(results[0].noc) if results else NOC_THRESHOLDS
    thresholds = tuple(float(t) for t in thresholds)
    if any(t not in r.noc for r in results for t in thresholds):
        raise ValueError(f"every result must have NoC for thresholds {thresholds}")
    summary: dict = {"count": len(results)}
    for t in thresholds:
        key = f"{round(t * 100, 2):g}"
        nocs = np.array([r.noc[t] for r in results], np.float64)
        failed = np.array([not r.reached[t] for r in results], np.float64)
        summary[f"NoC@{key}"] = float(nocs.mean()) if len(nocs) else math.nan
        summary[f"NoC@{key}_std"] = float(nocs.std(ddof=0)) if len(nocs) else math.nan
        summary[f"failed@{key}"] = float(failed.mean()) if len(failed) else math.nan
    return summary

