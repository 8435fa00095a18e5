"""Full-resolution detail of a large map where the user zoomed in past the view image's own resolution.

Frames: the *full* frame is the map's (H, W) pixels (where the view range, windows and masks are given); the
*view* image is its overview (long side 2048, `MapItem.image`); the *detail* is one window of the full frame read
from the file (`core.geo.raster.read_map(window=..., max_side=...)`: GDAL picks the nearest overview level of the
file, or the full-resolution blocks) at about the screen's resolution, so its size stays bounded by the viewport
whatever the zoom.

Rules:
- `detail_window`: none while the view image already has at least one pixel per screen pixel (zoomed out, or at
  1:1 of the overview). Else the visible range padded by MARGIN of its size on every side (a pan within the margin
  needs no new read), snapped outwards to a SNAP px grid (small pans give the same window: the caller reads once),
  clipped to the map; the output has the screen's resolution (the window decimated by the map pixels per screen
  pixel, never upscaled): about (1 + 2 MARGIN) x the screen's pixels on each side, plus the snap.
- `detail_mask`: a full-frame (H, W) mask cropped to the window and resized (nearest) to the detail's shape; with a
  view-size mask (the one the canvas shows before the full-size mask is in) the window is taken in that frame.
- `upscaled_detail_mask`: a view-size mask whose full-size mask is its upscale (`view_frame.upscale_mask`: compare
  mode's B mask) inside the window as that upscale has it (bilinear on 0/255, kept where >= 128; the two
  interpolations round differently on a few edge pixels), without making the full-size mask: what the detail draws
  of B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MARGIN = 0.25
SNAP = 256


@dataclass(frozen=True)
class DetailWindow:
    """window: (col_off, row_off, width, height) in full-frame pixels; shape: (rows, cols) of the read (<= window)."""

    window: tuple[int, int, int, int]
    shape: tuple[int, int]


def detail_window(visible: tuple[float, float, float, float], full_size: tuple[int, int],
                  view_shape: tuple[int, int], screen: tuple[int, int]) -> DetailWindow | None:
    """The window to read for a view showing `visible` (x0, y0, x1, y1, full frame) on `screen` (width, height)
    device pixels, for a map of `full_size` (H, W) whose view image is `view_shape` (h, w); None when the view image
    is enough (rules in the module docstring)."""
    H, W = full_size
    x0, y0, x1, y1 = max(0.0, visible[0]), max(0.0, visible[1]), min(float(W), visible[2]), min(float(H), visible[3])
    if x1 <= x0 or y1 <= y0 or screen[0] <= 0 or screen[1] <= 0:
        return None
    view_px_per_screen_px = (x1 - x0) * view_shape[1] / W / screen[0]
    if view_px_per_screen_px >= 1.0:
        return None
    mx, my = (x1 - x0) * MARGIN, (y1 - y0) * MARGIN
    c0 = max(0, int(math.floor((x0 - mx) / SNAP)) * SNAP)
    r0 = max(0, int(math.floor((y0 - my) / SNAP)) * SNAP)
    c1 = min(W, int(math.ceil((x1 + mx) / SNAP)) * SNAP)
    r1 = min(H, int(math.ceil((y1 + my) / SNAP)) * SNAP)
    width, height = c1 - c0, r1 - r0
    factor = max(1.0, (x1 - x0) / screen[0], (y1 - y0) / screen[1])  # map pixels per screen pixel
    shape = max(1, math.ceil(height / factor - 1e-9)), max(1, math.ceil(width / factor - 1e-9))
    return DetailWindow((c0, r0, width, height), shape)


def read_detail(path, stretch, detail: DetailWindow):
    """The detail image: a `core.geo.raster.MapImage` of `detail.window` at `detail.shape` (rgb (rows, cols, 3)
    uint8, valid (rows, cols) bool). Raises MapReadError."""
    from floodlabel.core.geo.raster import read_map

    return read_map(path, window=detail.window, max_side=max(detail.shape), stretch=stretch)


def detail_mask(mask: np.ndarray, full_size: tuple[int, int], detail: DetailWindow) -> np.ndarray:
    """(rows, cols) bool: `mask` ((H, W) full size, or any smaller size stretched over the map) inside the window,
    resized with nearest neighbour to detail.shape."""
    import cv2

    H, W = full_size
    h, w = mask.shape
    c0, r0, width, height = detail.window
    a0, b0 = int(c0 * w // W), int(r0 * h // H)
    a1, b1 = max(a0 + 1, int(math.ceil((c0 + width) * w / W))), max(b0 + 1, int(math.ceil((r0 + height) * h / H)))
    source = mask.view(np.uint8) if mask.dtype == np.bool_ and mask.flags.c_contiguous else (mask != 0).view(np.uint8)
    crop = source[b0:b1, a0:a1]  # a view: no copy of a window that may be most of a 400 MP mask
    if (h, w) != (H, W):  # the crop's pixels overhang the window: map the window into the crop exactly
        sx, sy = w / W, h / H
        m = np.float32([[width * sx / detail.shape[1], 0, c0 * sx - a0], [0, height * sy / detail.shape[0],
                                                                            r0 * sy - b0]])
        out = cv2.warpAffine(crop, m, (detail.shape[1], detail.shape[0]),
                             flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        return out.view(bool)
    out = cv2.resize(crop, (detail.shape[1], detail.shape[0]), interpolation=cv2.INTER_NEAREST)
    return out.view(bool)


def upscaled_detail_mask(mask: np.ndarray, full_size: tuple[int, int], detail: DetailWindow) -> np.ndarray:
    """(rows, cols) bool: `mask` ((h, w), smaller than the full size (H, W)) as `view_frame.upscale_mask(mask,
    full_size)` has it inside the window, sampled at detail.shape (rules in the module docstring)."""
    import cv2

    H, W = full_size
    h, w = mask.shape
    c0, r0, width, height = detail.window
    rows, cols = detail.shape
    sx, sy = w / W, h / H
    a0, b0 = max(0, int(c0 * sx) - 1), max(0, int(r0 * sy) - 1)  # one view pixel more: bilinear neighbours
    a1, b1 = min(w, int(math.ceil((c0 + width) * sx)) + 1), min(h, int(math.ceil((r0 + height) * sy)) + 1)
    source = mask.view(np.uint8) if mask.dtype == np.bool_ and mask.flags.c_contiguous else (mask != 0).view(np.uint8)
    crop = np.ascontiguousarray(source[b0:b1, a0:a1]) * np.uint8(255)
    fx, fy = width / cols * sx, height / rows * sy  # view pixels per detail pixel
    # detail pixel centre j + 0.5 -> full frame c0 + (j + 0.5) width / cols -> view pixel centres (x + 0.5) w / W - 0.5
    m = np.float32([[fx, 0, c0 * sx - 0.5 + 0.5 * fx - a0], [0, fy, r0 * sy - 0.5 + 0.5 * fy - b0]])
    out = cv2.warpAffine(crop, m, (cols, rows), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    return np.greater_equal(out, 128, out=np.empty(out.shape, bool))
