"""SAM automatic mask generation (AMG) and turning its segments into one water mask.

Segments are the dicts `segment_anything.SamAutomaticMaskGenerator.generate` returns, in the original image
frame: 'segmentation' ((H, W) bool with output_mode="binary_mask", or an uncompressed RLE dict with
output_mode="uncompressed_rle"), 'area' (pixels), 'bbox' (x, y, w, h), 'predicted_iou', 'point_coords',
'stability_score', 'crop_box'.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.modeling import Sam
from segment_anything.utils.amg import rle_to_mask

# CPU-friendly defaults: 16 x 16 = 256 point prompts instead of SAM's 32 x 32; the rest as in segment_anything.
DEFAULT_AMG_KWARGS: dict[str, Any] = {"points_per_side": 16, "points_per_batch": 64, "output_mode": "binary_mask"}


def generate_segments(sam_model: Sam, image: np.ndarray, **amg_kwargs: Any) -> list[dict]:
    """Run SamAutomaticMaskGenerator on image ((H, W, 3) uint8 RGB, original frame).

    amg_kwargs go straight to SamAutomaticMaskGenerator (points_per_side, pred_iou_thresh,
    stability_score_thresh, box_nms_thresh, crop_n_layers, min_mask_region_area, output_mode, ...) and
    override DEFAULT_AMG_KWARGS. Returns its list of segment dicts (see the module docstring).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    generator = SamAutomaticMaskGenerator(sam_model, **{**DEFAULT_AMG_KWARGS, **amg_kwargs})
    return generator.generate(image)


def water_mask_from_segments(
    segments: list[dict],
    shape: tuple[int, int],
    positive_points: np.ndarray | None = None,
    negative_points: np.ndarray | None = None,
    gt: np.ndarray | None = None,
    min_overlap: float = 0.5,
) -> np.ndarray:
    """The union of the chosen segments as an (H, W) bool water mask (original frame).

    Two modes (exactly one):
    - points: positive_points / negative_points are (N, 2) (x, y) original-image pixels. A segment is chosen
      when it contains at least one positive point and none of the negative points. Points are rounded down
      to the pixel they fall in; points outside the image lie in no segment. No positive point -> empty mask.
    - oracle (gt given, (H, W) bool): a segment is chosen when |segment & gt| / |segment| >= min_overlap
      (empty segments never). This is the upper bound of what AMG's segments can give for water.
    Raises ValueError when both or neither mode is asked for, or a segment's size is not shape.
    """
    h, w = shape
    use_points = positive_points is not None or negative_points is not None
    if use_points == (gt is not None):
        raise ValueError("give either points (positive/negative) or a gt mask, not both or neither")
    masks = [_segment_mask(s, (h, w)) for s in segments]
    out = np.zeros((h, w), bool)
    if gt is not None:
        gt = np.asarray(gt, bool)
        if gt.shape != (h, w):
            raise ValueError(f"gt has shape {gt.shape}, expected {(h, w)}")
        for m in masks:
            area = np.count_nonzero(m)
            if area and np.count_nonzero(m & gt) / area >= min_overlap:
                out |= m
        return out
    pos, neg = _pixels(positive_points, (h, w)), _pixels(negative_points, (h, w))
    for m in masks:
        if m[pos[:, 1], pos[:, 0]].any() and not m[neg[:, 1], neg[:, 0]].any():
            out |= m
    return out


# --- helpers -------------------------------------------------------------------------------------


def _segment_mask(segment: dict, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool from a segment's 'segmentation' (bool array or uncompressed RLE)."""
    seg = segment["segmentation"]
    mask = rle_to_mask(seg) if isinstance(seg, dict) else np.asarray(seg, bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"segment has shape {mask.shape}, expected {tuple(shape)}")
    return mask


def _pixels(points: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """(N, 2) int (x, y) pixel indices of the points that lie inside the image."""
    if points is None:
        return np.zeros((0, 2), int)
    xy = np.floor(np.asarray(points, np.float64).reshape(-1, 2)).astype(int)
    h, w = shape
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    return xy[inside]
