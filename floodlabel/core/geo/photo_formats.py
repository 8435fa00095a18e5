"""Polygon files for plain photos, for users who train other tools (pixel coordinates, x = column, y = row, pixel
corners):

- labelme JSON (`labelme_json`): per region, one "polygon" shape labelled "water" (its exterior), followed by one
  shape labelled "_background_" per hole; regions in decreasing order of the area their exterior encloses, so water
  inside a hole (a pond on an island) comes after that hole. labelme itself has no holes; its converters
  (labelme2voc, labelme_json_to_dataset) draw shapes in order with "_background_" as class 0, so the holes come back
  as not-water there. Tools that read only the "water" shapes lose the holes.
- YOLO segmentation text (`yolo_seg_text`): one line per region, `0 x1 y1 x2 y2 ...`, coordinates normalised to
  0..1 by the width and height. A YOLO polygon has one ring, so each hole is joined to its region's ring by a
  zero-width cut (to the nearest vertex), as ultralytics' COCO converter does; filling the ring (cv2.fillPoly,
  even-odd or non-zero) leaves the holes empty. Tools that triangulate or buffer the ring may not.
"""

from __future__ import annotations

import json

import numpy as np

LABELME_VERSION = "5.4.1"
WATER_LABEL = "water"
HOLE_LABEL = "_background_"
YOLO_WATER_CLASS = 0


def labelme_json(polygons: list, image_path: str, size: tuple[int, int]) -> str:
    """labelme JSON text for polygons in pixel coordinates of an image of `size` (width, height); image_path: as
    labelme stores it (relative to the JSON file). imageData is null (labelme reads the image from imagePath)."""
    width, height = size
    from shapely.geometry import Polygon

    shapes = []
    for poly in sorted(polygons, key=lambda p: Polygon(p.exterior).area, reverse=True):
        shapes.append(_shape(WATER_LABEL, poly.exterior.coords))
        shapes += [_shape(HOLE_LABEL, ring.coords) for ring in poly.interiors]
    doc = {"version": LABELME_VERSION, "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": None,
           "imageHeight": int(height), "imageWidth": int(width)}
    return json.dumps(doc, indent=1)


def yolo_seg_text(polygons: list, size: tuple[int, int]) -> str:
    """YOLO-seg label text (one line per polygon, holes cut in; see the module docstring). size: (width, height)."""
    width, height = size
    lines = []
    for poly in polygons:
        ring = bridged_ring(poly)
        coords = (ring / np.array([width, height], dtype=np.float64)).clip(0.0, 1.0)
        lines.append(f"{YOLO_WATER_CLASS} " + " ".join(f"{v:.6f}" for v in coords.ravel()))
    return "\n".join(lines) + ("\n" if lines else "")


def bridged_ring(poly) -> np.ndarray:
    """(N, 2) float64: the polygon's exterior with every hole spliced in through a zero-width cut from the nearest
    vertex of the ring built so far; the closing vertex is left out (YOLO rings are implicitly closed)."""
    ring = np.asarray(poly.exterior.coords, dtype=np.float64)[:-1]
    for interior in sorted(poly.interiors, key=lambda r: r.coords[0]):
        hole = np.asarray(interior.coords, dtype=np.float64)[:-1]
        i, j = _nearest_pair(ring, hole)
        hole_loop = np.concatenate([hole[j:], hole[:j + 1]])
        ring = np.concatenate([ring[:i + 1], hole_loop, ring[i:]])
    return ring


def _nearest_pair(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Indices (i, j) of the closest vertices a[i], b[j] (in chunks, so long rings stay within memory)."""
    best, best_i, best_j = np.inf, 0, 0
    step = max(1, 2_000_000 // max(1, len(b)))
    for start in range(0, len(a), step):
        d = ((a[start:start + step, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        k = int(np.argmin(d))
        i, j = divmod(k, d.shape[1])
        if d[i, j] < best:
            best, best_i, best_j = float(d[i, j]), start + i, j
    return best_i, best_j


def _shape(label: str, coords) -> dict:
    points = [[float(x), float(y)] for x, y in list(coords)[:-1]]
    return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": "polygon",
            "flags": {}, "mask": None}
