"""Synthetic GeoTIFF maps for the core.geo tests: written strip by strip (memory stays at one strip), tiled and
DEFLATE-compressed, so a 12,000 x 12,000 map that is mostly one colour is a few MB on disk."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

LAND = (90, 110, 70)
WATER = (40, 60, 120)
STRIP = 512


def write_map(path, crs, transform: Affine, size: tuple[int, int], water: Callable[[int, int, int], np.ndarray],
              *, overviews: tuple[int, ...] = (), blank: Callable[[int, int, int], np.ndarray] | None = None) -> None:
    """An RGB uint8 map of size (width, height): WATER where water(row0, row1, width) is True, LAND elsewhere.
    blank(row0, row1, width): pixels with no data (all bands 0, the file's nodata value then 0)."""
    width, height = size
    profile = dict(driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs=crs, transform=transform,
                   compress="deflate", tiled=True, blockxsize=STRIP, blockysize=STRIP, photometric="RGB")
    if blank is not None:
        profile["nodata"] = 0
    with rasterio.open(path, "w", **profile) as ds:
        for top in range(0, height, STRIP):
            bottom = min(height, top + STRIP)
            wet = water(top, bottom, width)
            empty = blank(top, bottom, width) if blank is not None else None
            for band, (land, sea) in enumerate(zip(LAND, WATER), 1):
                values = np.where(wet, np.uint8(sea), np.uint8(land))
                if empty is not None:
                    values[empty] = 0
                ds.write(values, band, window=rasterio.windows.Window(0, top, width, bottom - top))
        if overviews:
            ds.build_overviews(list(overviews), rasterio.enums.Resampling.nearest)


def left_columns(n: int):
    """blank(row0, row1, width): the first n pixel columns have no data."""

    def blank(top: int, bottom: int, width: int) -> np.ndarray:
        empty = np.zeros((bottom - top, width), bool)
        empty[:, :n] = True
        return empty

    return blank


def full_mask(water: Callable[[int, int, int], np.ndarray], size: tuple[int, int]) -> np.ndarray:
    width, height = size
    return np.concatenate([water(top, min(height, top + STRIP), width) for top in range(0, height, STRIP)])


def lake_with_islands(center: tuple[float, float], radius: float, islands: list[tuple[int, int, int]]):
    """water(row0, row1, width): a disk (pixel centres within `radius` px of `center` (col, row)) minus square
    islands (col, row, side) in pixels."""

    def water(top: int, bottom: int, width: int) -> np.ndarray:
        rows = np.arange(top, bottom, dtype=np.float64)[:, None] + 0.5
        cols = np.arange(width, dtype=np.float64)[None, :] + 0.5
        wet = (cols - center[0]) ** 2 + (rows - center[1]) ** 2 <= radius ** 2
        for col, row, side in islands:
            r0, r1 = max(row, top), min(row + side, bottom)
            if r0 < r1:
                wet[r0 - top: r1 - top, col: col + side] = False
        return wet

    return water


def rectangle_with_islands(box: tuple[int, int, int, int], islands: list[tuple[int, int, int]]):
    """water(row0, row1, width): pixel columns c0..c1, rows r0..r1 (box = (c0, r0, c1, r1), exclusive ends) minus
    square islands (col, row, side)."""
    c0, r0, c1, r1 = box

    def water(top: int, bottom: int, width: int) -> np.ndarray:
        wet = np.zeros((bottom - top, width), bool)
        a, b = max(r0, top), min(r1, bottom)
        if a < b:
            wet[a - top: b - top, c0:c1] = True
        for col, row, side in islands:
            a, b = max(row, top), min(row + side, bottom)
            if a < b:
                wet[a - top: b - top, col: col + side] = False
        return wet

    return water


def ellipsoid_band_area(lat0: float, lat1: float, dlon_deg: float, a: float = 6378137.0,
                        inv_f: float = 298.257223563) -> float:
    """The exact area in m² of the quadrangle lat0..lat1 (degrees) x dlon_deg on the ellipsoid (WGS84 default):
    (b² Δλ / 2) [q(φ1) - q(φ0)], q(φ) = sinφ / (1 - e² sin²φ) + ln((1 + e sinφ) / (1 - e sinφ)) / (2e)."""
    f = 1 / inv_f
    b = a * (1 - f)
    e = math.sqrt(f * (2 - f))

    def q(lat: float) -> float:
        s = math.sin(math.radians(lat))
        return s / (1 - e * e * s * s) + math.log((1 + e * s) / (1 - e * s)) / (2 * e)

    return abs(b * b * math.radians(dlon_deg) / 2 * (q(lat1) - q(lat0)))


UTM = CRS.from_epsg(32633)
WGS84 = CRS.from_epsg(4326)
