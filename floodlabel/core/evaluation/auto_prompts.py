"""Prompts made automatically from a ground-truth mask, for evaluating a segmenter without a person.

All coordinates are in the original image frame, in pixels, x to the right and y down.

- Points are pixel indices: a point (x, y) names the pixel gt[y, x] (integer-valued float32), which is
  what SAM expects (its prompt encoder adds 0.5 to reach the pixel centre itself).
- Boxes are half-open (inclusive-exclusive): (x0, y0, x1, y1) with x1 = last water column + 1 and
  y1 = last water row + 1, so gt[y0:y1, x0:x1] is exactly the bounding box and x1 - x0 is its width
  (the same as COCO's [x, y, w, h] and cv2.boundingRect).
- "Interior point": the water pixel farthest (Euclidean, cv2.DIST_MASK_PRECISE) from any non-water
  pixel, *with the image border counting as boundary* (the mask is padded with one row/column of
  background before the distance transform), as in the RITM / SimpleClick / SAM click protocols.
  Without the padding a mask touching the image edge would get its point on the edge. Ties go to the
  first pixel in row-major order (smallest y, then smallest x), so results are deterministic.
- Connected components use 8-connectivity and are ordered largest area first (ties: top-left first).

An empty ground truth raises ValueError: there is nothing to prompt for, and callers skip the image.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from floodlabel.core.annotation.prompts import POSITIVE, Prompt

PromptKind = Literal["point", "box", "both"]


def point_prompt(gt: np.ndarray) -> Prompt:
    """One positive point at the interior point of gt ((H, W) mask, nonzero = water)."""
    x, y = interior_point(gt)
    return Prompt.point(x, y, positive=True)


def box_prompt(gt: np.ndarray) -> Prompt:
    """gt's bounding box (x0, y0, x1, y1), half-open, in pixels; no points."""
    return Prompt.from_box(bounding_box(gt))


def point_and_box_prompt(gt: np.ndarray) -> Prompt:
    """The interior point (positive) and the bounding box of gt in one prompt."""
    return point_prompt(gt).with_box(bounding_box(gt))


def component_prompts(
    gt: np.ndarray,
    kind: PromptKind = "point",
    min_area: int = 100,
    max_components: int | None = 10,
) -> list[Prompt]:
    """One prompt per connected water region of gt, largest region first.

    kind: "point" (the region's interior point), "box" (its half-open bounding box) or "both".
    min_area: regions with fewer pixels are dropped, except that the largest region is always kept,
        so a non-empty gt always gives at least one prompt.
    max_components: keep at most this many regions (the largest); None keeps all.
    """
    if kind not in ("point", "box", "both"):
        raise ValueError(f"kind must be 'point', 'box' or 'both', not {kind!r}")
    prompts = []
    for comp in _components(gt, min_area, max_components):
        point = comp.interior_point() if kind in ("point", "both") else None
        prompt = Prompt.point(*point) if point is not None else Prompt()
        if kind in ("box", "both"):
            prompt = prompt.with_box(comp.box)
        prompts.append(prompt)
    return prompts


def multi_point_prompt(gt: np.ndarray, max_points: int | None = 10, min_area: int = 100) -> Prompt:
    """One prompt holding one positive point per connected water region (largest first).

    max_points and min_area select the regions as in `component_prompts` (the largest is always kept).
    """
    points = [c.interior_point() for c in _components(gt, min_area, max_points)]
    return Prompt(np.array(points, np.float32), np.full(len(points), POSITIVE, np.int32))


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask pixel farthest from the background and the image border.

    mask: (H, W), nonzero = inside. Raises ValueError if it is empty.
    """
    best = deepest_point(_require_water(mask))
    assert best is not None  # a non-empty mask has a pixel at distance >= 1
    return best[0], best[1]


def deepest_point(mask: np.ndarray, exclude: np.ndarray | None = None) -> tuple[int, int, float] | None:
    """(x, y, distance) of the mask pixel farthest from any zero pixel or the image border.

    mask: (H, W), nonzero = inside. exclude: optional (N, 2) (x, y) pixels that may not be chosen
    (they still count as inside). Returns None if no pixel can be chosen. Equal to taking the argmax
    of `border_distance`, but the transform runs only on the mask's bounding box (exact: every pixel
    just outside a tight box is background), which is much cheaper for small regions in large images.
    """
    u8 = _bool2d(mask).view(np.uint8)
    x0, y0, w, h = cv2.boundingRect(u8)
    if w == 0 or h == 0:
        return None
    dist = border_distance(u8[y0 : y0 + h, x0 : x0 + w].view(np.bool_))
    if exclude is not None and len(exclude):
        pts = np.rint(np.asarray(exclude, np.float64).reshape(-1, 2)).astype(np.intp) - (x0, y0)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        dist[pts[inside, 1], pts[inside, 0]] = 0.0
    iy, ix = np.unravel_index(int(np.argmax(dist)), dist.shape)
    best = float(dist[iy, ix])
    return None if best == 0.0 else (x0 + int(ix), y0 + int(iy), best)


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Half-open bounding box (x0, y0, x1, y1) of the nonzero pixels of an (H, W) mask."""
    x, y, w, h = cv2.boundingRect(_require_water(mask).view(np.uint8))
    return x, y, x + w, y + h


def border_distance(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32: Euclidean distance of each nonzero pixel to the nearest zero pixel or the
    image border (a pixel on the edge gets 1), and 0 outside the mask.
    """
    u8 = _bool2d(mask).view(np.uint8)
    padded = cv2.copyMakeBorder(u8, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


# --- helpers ---------------------------------------------------------------------------------


class _Component:
    """One connected region: its half-open box and its pixels inside that box."""

    def __init__(self, labels: np.ndarray, index: int, stats: np.ndarray) -> None:
        x, y, w, h = (int(v) for v in stats[:4])
        self.box = (x, y, x + w, y + h)
        self.area = int(stats[cv2.CC_STAT_AREA])
        self._crop = labels[y : y + h, x : x + w] == index

    def interior_point(self) -> tuple[int, int]:
        """Interior point of this region alone (other regions count as background)."""
        cx, cy = interior_point(self._crop)  # exact on the tight box: see `deepest_point`
        return self.box[0] + cx, self.box[1] + cy


def _components(gt: np.ndarray, min_area: int, max_components: int | None) -> list[_Component]:
    u8 = _require_water(gt).view(np.uint8)
    if max_components is not None and max_components < 1:
        raise ValueError(f"max_components must be at least 1, got {max_components}")
    _, labels, stats, _ = cv2.connectedComponentsWithStats(u8, connectivity=8, ltype=cv2.CV_32S)
    areas = stats[1:, cv2.CC_STAT_AREA]
    # Largest first; stable sort keeps OpenCV's raster-scan order (top-left first) among equal areas.
    order = np.argsort(-areas, kind="stable") + 1
    keep = [int(i) for k, i in enumerate(order) if k == 0 or stats[i, cv2.CC_STAT_AREA] >= min_area]
    if max_components is not None:
        keep = keep[:max_components]
    return [_Component(labels, i, stats[i]) for i in keep]


def _require_water(mask: np.ndarray) -> np.ndarray:
    """mask as a contiguous 2-D bool array; ValueError if it has no water."""
    m = _bool2d(mask)
    if not m.any():
        raise ValueError("ground-truth mask is empty: no water to place a prompt on (skip this image)")
    return m


def _bool2d(mask: np.ndarray) -> np.ndarray:
    """mask (nonzero = inside) as a contiguous 2-D bool array; ValueError if it is not 2-D."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
    return np.ascontiguousarray(m if m.dtype == np.bool_ else m != 0)
