"""Masks to polygons with their holes, and back.

- `mask_to_polygons(mask, transform)`: one shapely Polygon per 4-connected water region (GDAL's polygonize through
  rasterio.features.shapes), its exterior and one interior ring per hole (houses, trees, cars). Vertices lie on pixel
  corners, mapped by `transform` (identity: pixel coordinates, x = column, y = row). Pixels that touch only at a
  corner are separate regions. A ring that touches itself at a corner is repaired with shapely.make_valid (the
  result may then be a MultiPolygon's parts, each returned as its own Polygon).
- `simplify` (map units, 0 = off, the default): Douglas-Peucker with topology preserved; holes smaller than the
  tolerance may vanish, and the round trip is then no longer exact.
- `polygons_to_mask(polygons, shape, transform)`: rasterio.features.rasterize (a pixel is water when its centre is
  inside). Unsimplified polygons rasterise back to exactly the mask's pixels.
"""

from __future__ import annotations

import numpy as np
from affine import Affine


def mask_to_polygons(mask: np.ndarray, transform: Affine | None = None, *, simplify: float = 0.0) -> list:
    """(H, W) bool mask -> list of shapely Polygons (largest first), in the coordinates `transform` gives."""
    import shapely
    from rasterio.features import shapes
    from shapely.geometry import shape

    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    transform = transform if transform is not None else Affine.identity()
    polygons = []
    for geometry, value in shapes(mask, mask=mask.astype(bool), connectivity=4, transform=transform):
        if value != 1:
            continue
        poly = shape(geometry)
        if not poly.is_valid:
            poly = shapely.make_valid(poly)
        if simplify > 0:
            poly = poly.simplify(simplify, preserve_topology=True)
        polygons.extend(_parts(poly))
    polygons.sort(key=lambda p: p.area, reverse=True)
    return polygons


def to_map(polygons: list, transform: Affine) -> list:
    """Pixel-coordinate polygons (from `mask_to_polygons(mask)`) mapped by `transform` to map coordinates: the same
    as polygonising again with that transform (vertices are pixel corners, and an affine map keeps them so)."""
    import shapely

    matrix = np.array([[transform.a, transform.b], [transform.d, transform.e]])
    offset = np.array([transform.c, transform.f])
    return [shapely.transform(p, lambda xy: xy @ matrix.T + offset) for p in polygons]


def simplified(polygons: list, tolerance: float) -> list:
    """Douglas-Peucker with topology preserved (tolerance in the polygons' units); `polygons` when tolerance <= 0."""
    if tolerance <= 0:
        return polygons
    return [q for p in polygons for q in _parts(p.simplify(tolerance, preserve_topology=True))]


def polygons_to_mask(polygons: list, shape: tuple[int, int], transform: Affine | None = None) -> np.ndarray:
    """Rasterise polygons (map coordinates under `transform`) into an (H, W) bool mask of `shape` (H, W)."""
    from rasterio.features import rasterize

    if not polygons:
        return np.zeros(shape, bool)
    transform = transform if transform is not None else Affine.identity()
    return rasterize(((p, 1) for p in polygons), out_shape=shape, transform=transform, fill=0,
                     dtype=np.uint8).astype(bool)


def hole_count(polygons: list) -> int:
    """The number of interior rings over all polygons."""
    return sum(len(p.interiors) for p in polygons)


def _parts(geometry) -> list:
    """The Polygons of a (possibly multi / collection) geometry; lines and points left by make_valid dropped."""
    if geometry.is_empty:
        return []
    if geometry.geom_type == "Polygon":
        return [geometry]
    if hasattr(geometry, "geoms"):
        return [p for g in geometry.geoms for p in _parts(g)]
    return []
