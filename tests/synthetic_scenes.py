"""Synthetic "flood" scenes for tests: an RGB photo-like image and its water mask, seeded.

    from synthetic_scenes import make_flood_scene, interior_point
    image, mask = make_flood_scene(240, 320, seed=0, kind="river")

image: (H, W, 3) uint8 RGB. mask: (H, W) bool, True = water. Same arguments give the same arrays.

The water is smooth muddy blue-brown with fine noise, a soft brightness gradient and a few light ripple
lines; the land around it is grass and soil noise with buildings (roofs with edges and shading) and
trees (dark, high-frequency blobs). A few buildings and trees stand in the water (islands, not water).
Kinds:
- "lake":      one large irregular blob.
- "river":     a meandering band of varying width across the whole image.
- "scattered": several separate puddles of different sizes.
"""

from __future__ import annotations

import cv2
import numpy as np

from floodlabel.core.evaluation.auto_prompts import bounding_box as core_bounding_box
from floodlabel.core.evaluation.metrics import mask_metrics

KINDS = ("lake", "river", "scattered")

WATER_RGB = (112, 118, 112)  # muddy grey-brown-blue
GRASS_RGB = (86, 122, 58)
SOIL_RGB = (150, 120, 84)
TREE_RGB = (38, 72, 34)
ROOF_RGBS = ((160, 62, 48), (190, 188, 180), (96, 92, 98), (176, 128, 80))


def make_flood_scene(
    height: int = 240, width: int = 320, seed: int = 0, kind: str = "lake"
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded synthetic flood photo and its ground truth.

    Returns (image (H, W, 3) uint8 RGB, mask (H, W) bool with True = water). The water covers roughly
    15-45 % of the image depending on the kind; islands (buildings, trees) inside it are not water.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; expected one of {KINDS}")
    if height < 16 or width < 16:
        raise ValueError(f"scene must be at least 16x16, got {height}x{width}")
    rng = np.random.default_rng(seed)
    water = _WATER_SHAPES[kind](height, width, rng)
    image = _land(height, width, rng)
    _draw_buildings_and_trees(image, water, rng)
    image = np.where(water[..., None], _water(height, width, rng), image)
    islands = _draw_islands(image, water, rng)
    mask = water & ~islands
    noise = rng.normal(0.0, 3.0, image.shape)  # sensor noise over everything
    image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return image, mask


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the mask pixel farthest from the mask's border (deep inside the largest region).

    Kept apart from core.auto_prompts.interior_point on purpose: the classic-backend tests were calibrated on this
    (5x5-mask approximate distance) point, and the core's precise transform breaks ties on other pixels.
    """
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around the mask's True pixels (core.auto_prompts.bounding_box), grown by margin and
    clipped to the image."""
    x0, y0, x1, y1 = core_bounding_box(mask)
    h, w = mask.shape
    return (float(max(x0 - margin, 0)), float(max(y0 - margin, 0)),
            float(min(x1 + margin, w)), float(min(y1 + margin, h)))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (1.0 when both are empty; core.metrics)."""
    return mask_metrics(a, b).iou


# --- helpers -------------------------------------------------------------------------------------


def _smooth_noise(h: int, w: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    """(h, w) float32 low-frequency noise in about [-1, 1]: a cells x cells grid upsampled bicubically."""
    grid = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _lake(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    ry, rx = h * rng.uniform(0.25, 0.33), w * rng.uniform(0.25, 0.33)
    return _blob(h, w, rng, cx, cy, rx, ry)


def _river(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    xs = np.arange(w, dtype=np.float32)
    phase, freq = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 2.0) * 2 * np.pi / w
    centre = h * (0.5 + 0.2 * np.sin(freq * xs + phase))
    half = h * (0.09 + 0.04 * _smooth_noise(1, w, rng, 5)[0])
    ys = np.arange(h, dtype=np.float32)[:, None]
    return np.abs(ys - centre[None, :]) < half[None, :]


def _scattered(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    n = int(rng.integers(4, 7))
    # centres on a jittered grid so puddles rarely merge
    cols = 3
    cells = rng.permutation(cols * 2)[:n]
    for c in cells:
        gx, gy = c % cols, c // cols
        cx = w * (gx + rng.uniform(0.35, 0.65)) / cols
        cy = h * (gy + rng.uniform(0.35, 0.65)) / 2
        r = min(h / 2, w / cols) * rng.uniform(0.2, 0.38)
        mask |= _blob(h, w, rng, cx, cy, r * rng.uniform(0.8, 1.2), r * rng.uniform(0.8, 1.2))
    return mask


_WATER_SHAPES = {"lake": _lake, "river": _river, "scattered": _scattered}


def _blob(h: int, w: int, rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """An ellipse whose radius wobbles with a few random harmonics (an irregular shoreline)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = np.arctan2((ys - cy) / ry, (xs - cx) / rx)
    wobble = np.ones_like(theta)
    for k in range(2, 6):
        wobble += rng.uniform(0.0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.hypot((xs - cx) / rx, (ys - cy) / ry)
    return r < wobble


def _land(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Grass and soil patches with texture, (h, w, 3) float32."""
    soil_weight = np.clip(0.5 + _smooth_noise(h, w, rng, 6), 0, 1)[..., None]
    base = (1 - soil_weight) * np.float32(GRASS_RGB) + soil_weight * np.float32(SOIL_RGB)
    texture = rng.normal(0.0, 14.0, (h, w, 1)).astype(np.float32)
    texture = cv2.GaussianBlur(texture, (0, 0), 0.8)[..., None]
    return base + texture + 10.0 * _smooth_noise(h, w, rng, 12)[..., None]


def _water(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth water: a brightness gradient, faint noise and a few light ripple lines, (h, w, 3) float32."""
    tint = np.float32(WATER_RGB) + rng.uniform(-8, 8, 3).astype(np.float32)
    img = np.broadcast_to(tint, (h, w, 3)).copy()
    img += 12.0 * _smooth_noise(h, w, rng, 3)[..., None]
    img += rng.normal(0.0, 3.0, (h, w, 1)).astype(np.float32)
    ripples = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(3, 7))):
        y = int(rng.integers(0, h))
        x0 = int(rng.integers(0, w))
        length = int(rng.integers(w // 10, w // 4))
        cv2.line(ripples, (x0, y), (x0 + length, y + int(rng.integers(-3, 4))), 1.0, 1, cv2.LINE_AA)
    img += 25.0 * cv2.GaussianBlur(ripples, (0, 0), 0.7)[..., None]
    return img


def _draw_buildings_and_trees(image: np.ndarray, water: np.ndarray, rng: np.random.Generator) -> None:
    """Buildings and trees on the land (later covered by water where the water lies)."""
    h, w = water.shape
    for _ in range(int(rng.integers(5, 10))):
        _draw_building(image, rng, int(rng.integers(0, w)), int(rng.integers(0, h)), max(4, min(h, w) // 8))
    for _ in range(int(rng.integers(6, 12))):
        _draw_tree(image, rng, int(rng.integers(0, w)), int(rng.integers(0, h)), max(3, min(h, w) // 16))


def _draw_islands(image: np.ndarray, water: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One or two buildings/trees standing in the water; returns the (h, w) bool footprint drawn."""
    h, w = water.shape
    before = image.copy()
    ys, xs = np.nonzero(cv2.erode(water.astype(np.uint8), np.ones((9, 9), np.uint8)))
    for i in range(min(2, len(xs))):
        j = int(rng.integers(0, len(xs)))
        size = max(3, min(h, w) // 14)
        if i == 0:
            _draw_building(image, rng, int(xs[j]), int(ys[j]), size)
        else:
            _draw_tree(image, rng, int(xs[j]), int(ys[j]), size // 2 + 1)
    return np.any(np.abs(image - before) > 1e-3, axis=2)


def _draw_building(image: np.ndarray, rng: np.random.Generator, cx: int, cy: int, size: int) -> None:
    bw, bh = int(size * rng.uniform(0.7, 1.4)), int(size * rng.uniform(0.6, 1.1))
    roof = np.float32(ROOF_RGBS[int(rng.integers(0, len(ROOF_RGBS)))])
    x0, y0 = cx - bw // 2, cy - bh // 2
    cv2.rectangle(image, (x0, y0), (x0 + bw, y0 + bh), (roof * 0.75).tolist(), -1)  # shaded side
    cv2.rectangle(image, (x0, y0), (x0 + bw, y0 + bh // 2), roof.tolist(), -1)  # sunlit roof half
    cv2.rectangle(image, (x0, y0), (x0 + bw, y0 + bh), (roof * 0.45).tolist(), 1)  # eaves outline


def _draw_tree(image: np.ndarray, rng: np.random.Generator, cx: int, cy: int, radius: int) -> None:
    shade = np.float32(TREE_RGB) * rng.uniform(0.8, 1.25)
    cv2.circle(image, (cx, cy), radius, shade.tolist(), -1)
    for _ in range(4):  # leafy clumps
        dx, dy = rng.integers(-radius // 2 - 1, radius // 2 + 2, 2)
        cv2.circle(image, (cx + int(dx), cy + int(dy)), max(1, radius // 2), (shade * 1.35).tolist(), -1)


def make_flooded_town(
    height: int = 120, width: int = 160, seed: int = 0, density: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded aerial view of a flooded town: water everywhere between densely packed buildings and trees
    (`density` of them per 100 pixels), so the water is one fragmented region with roofs in it.

    Returns (image (H, W, 3) uint8 RGB, mask (H, W) bool with True = water, about a third of the image).
    """
    rng = np.random.default_rng(seed)
    image = _water(height, width, rng)
    before = image.copy()
    for _ in range(int(density * height * width / 100)):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.uniform() < 0.6:
            _draw_building(image, rng, cx, cy, max(4, min(height, width) // 14))
        else:
            _draw_tree(image, rng, cx, cy, max(3, min(height, width) // 24))
    mask = ~np.any(np.abs(image - before) > 1e-3, axis=2)
    image = np.clip(image + rng.normal(0.0, 3.0, image.shape), 0, 255).astype(np.uint8)
    return image, mask
