"""The text (concept) step of an annotation: how the instances a phrase returned become the model mask, and how a
point/box decode and the brush combine with them.

The rule (one place; the window, `propose` and the evaluation all compose through `model_mask`):
1. base: the union of the instances whose score is >= the threshold, leaving out the dropped ones (a click on an
   instance drops it, a second click keeps it again) and every instance under a negative point (a right-click on an
   instance removes it; undoing the point brings it back).
2. a point/box decode adds its region: when the prompt has a positive point or a box, SAM's mask for the points and
   the box (negatives included, as SAM reads them) is OR-ed onto the base. Negative points alone do not decode.
3. brush strokes are applied last, as for every mask (`Annotation.compose`): painted pixels are water, erased are not.

What is saved: the phrase and threshold (in the prompt's "text"), and the dropped instance indices. The instances
themselves are model output, like a point's decode: they are not saved (an autosave stays a few hundred bytes); a
reopened image runs the phrase again on its (cached) embedding, and the model returns the same instances in the same
order, so the dropped indices still name the same ones.

Frames: instance masks are (N, h, w) bool in whatever frame the caller decoded them at (the view size in the window,
the native size in `propose` and evaluation); points are in the original frame (H, W) and are scaled to (h, w).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from floodlabel.core.annotation.prompts import NEGATIVE, POSITIVE, Prompt


def kept_instances(scores: np.ndarray, threshold: float, dropped: Iterable[int] = ()) -> np.ndarray:
    """(K,) int64 indices of the instances that count: score >= threshold and not dropped, most confident first.
    scores: (N,) float32."""
    scores = np.asarray(scores, np.float32).reshape(-1)
    drop = set(int(i) for i in dropped)
    keep = [int(i) for i in np.flatnonzero(scores >= threshold) if int(i) not in drop]
    return np.array(sorted(keep, key=lambda i: (-float(scores[i]), i)), np.int64)


def text_base(masks: np.ndarray, scores: np.ndarray, threshold: float, dropped: Iterable[int] = (),
              prompt: Prompt | None = None, original_size: tuple[int, int] | None = None) -> np.ndarray:
    """Rule 1: (h, w) bool, the union of the kept instances (see `kept_instances`) minus those under a negative
    point of `prompt` (original frame (H, W) = original_size, default (h, w))."""
    masks = np.asarray(masks, bool)
    h, w = masks.shape[1:3]
    keep = list(kept_instances(scores, threshold, dropped))
    if prompt is not None and keep:
        negatives = prompt.points[prompt.labels == NEGATIVE]
        if len(negatives):
            H, W = original_size or (h, w)
            xs = np.clip(((negatives[:, 0] + 0.5) * w / W).astype(int), 0, w - 1)
            ys = np.clip(((negatives[:, 1] + 0.5) * h / H).astype(int), 0, h - 1)
            keep = [i for i in keep if not masks[i, ys, xs].any()]
    out = np.zeros((h, w), bool)
    for i in keep:
        out |= masks[i]
    return out


def decodes_geometry(prompt: Prompt) -> bool:
    """Rule 2: whether the point/box decode takes part (a positive point or a box)."""
    return prompt.box is not None or bool(np.any(prompt.labels == POSITIVE))


def model_mask(base: np.ndarray | None, geometry: np.ndarray | None) -> np.ndarray | None:
    """Rules 1 + 2: base | geometry ((h, w) bool each, either may be None); None when both are."""
    if base is None:
        return geometry
    if geometry is None:
        return base
    if geometry.shape != base.shape:
        raise ValueError(f"the decode is {geometry.shape} but the text base is {base.shape}")
    return base | geometry


def instance_at(masks: np.ndarray, scores: np.ndarray, threshold: float, x: float, y: float,
                original_size: tuple[int, int] | None = None) -> int | None:
    """The instance a click at (x, y) (original frame (H, W) = original_size, default the masks' (h, w)) toggles:
    the most confident one above the threshold (dropped or not) that covers the pixel; None when none does."""
    masks = np.asarray(masks, bool)
    if masks.ndim != 3 or len(masks) == 0:
        return None
    h, w = masks.shape[1:3]
    H, W = original_size or (h, w)
    col, row = int((x + 0.5) * w / W), int((y + 0.5) * h / H)
    if not (0 <= col < w and 0 <= row < h):
        return None
    for i in kept_instances(scores, threshold):
        if masks[i, row, col]:
            return int(i)
    return None


def confidence(scores: np.ndarray, threshold: float, dropped: Iterable[int] = ()) -> float:
    """A proposal's confidence: the mean score of the kept instances (score >= threshold, not dropped); 0.0 when
    none is kept (an empty proposal sorts first in review)."""
    keep = kept_instances(scores, threshold, dropped)
    return float(np.mean(np.asarray(scores, np.float32)[keep])) if len(keep) else 0.0
