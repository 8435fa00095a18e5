"""A mask's water area on the ground: m² and hectares for georeferenced rasters, pixels for plain photos.

- Projected CRS: every pixel has the same area, |det(transform)| in the CRS's linear units squared, converted to m²
  with the CRS's unit factor (metres, US survey feet, ...). Exact for the raster's pixel grid; this is the area on
  the projection's plane, which for UTM differs from the area on the ellipsoid by the squared scale factor (0.9996²
  on the central meridian, about 1.001² at a zone's edge: under 0.2%).
- Geographic CRS (degrees, such as EPSG:4326): a pixel's area depends on its latitude. North-up rasters: each row's
  pixel area is computed exactly through the cylindrical equal-area projection on the CRS's ellipsoid (a latitude /
  longitude cell maps to a rectangle there), and multiplied by the row's water pixel count. Rotated rasters: the
  water polygons are projected to that equal-area projection and measured (vertices projected, edges straight: the
  error is below a pixel's curvature, negligible at map resolutions).
- No CRS: `Area.m2` and `Area.ha` are None and `unit_note` says "pixels (no CRS)".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from floodlabel.core.geo.georef import GeoInfo

M2_PER_HA = 10_000.0


@dataclass(frozen=True)
class Area:
    """pixels: water pixels; m2 / ha: ground area, None without a CRS; crs: GeoInfo.crs_label; method: how it was
    measured ("pixel size", "equal-area projection (cea)", "pixels (no CRS)")."""

    pixels: int
    m2: float | None
    crs: str
    method: str

    @property
    def ha(self) -> float | None:
        return None if self.m2 is None else self.m2 / M2_PER_HA

    def describe(self) -> str:
        """"12.3456 ha (123456.0 m², EPSG:32633)" or "52,100 px (no CRS: area in pixels)"."""
        if self.m2 is None:
            return f"{self.pixels:,} px (no CRS: area in pixels)"
        return f"{self.ha:.4f} ha ({self.m2:,.1f} m², {self.crs})"

    def to_json(self) -> dict:
        return {"pixels": self.pixels, "m2": self.m2, "ha": self.ha, "crs": self.crs, "method": self.method}


def mask_area(mask: np.ndarray, info: GeoInfo | None) -> Area:
    """The water area of `mask` ((H, W) bool, the full-resolution raster's pixels; True = water) under `info`
    (None or no CRS: pixels only). Raises ValueError when the mask's shape is not the raster's."""
    mask = np.asarray(mask, dtype=bool)
    pixels = int(np.count_nonzero(mask))
    if info is None or info.crs is None:
        return Area(pixels, None, "no CRS", "pixels (no CRS)")
    if mask.shape != (info.height, info.width):
        raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the raster is {info.width}x{info.height}")
    if not info.crs.is_geographic:
        return Area(pixels, pixels * pixel_area_m2(info), info.crs_label, "pixel size")
    if info.north_up:
        per_row = row_areas_m2(info)
        return Area(pixels, float(np.count_nonzero(mask, axis=1) @ per_row), info.crs_label,
                    "equal-area projection (cea)")
    from floodlabel.core.geo.polygons import mask_to_polygons

    return Area(pixels, polygons_area_m2(mask_to_polygons(mask, info.transform), info), info.crs_label,
                "equal-area projection (cea, polygons)")


def pixel_area_m2(info: GeoInfo) -> float:
    """One pixel's area in m² for a projected CRS."""
    t = info.transform
    units = abs(t.a * t.e - t.b * t.d)
    factor = info.crs.linear_units_factor[1] if info.crs is not None else 1.0
    return units * factor * factor


def row_areas_m2(info: GeoInfo) -> np.ndarray:
    """(H,) float64: the area in m² of one pixel in each row of a north-up geographic raster."""
    from rasterio.warp import transform as warp

    t = info.transform
    rows = np.arange(info.height + 1, dtype=np.float64)
    lat_edges = t.f + t.e * rows  # row r spans lat_edges[r]..lat_edges[r+1] (degrees)
    lon = np.full(rows.shape, t.c)
    _, y = warp(info.crs, _equal_area_crs(info.crs), lon.tolist(), np.clip(lat_edges, -90, 90).tolist())
    heights = np.abs(np.diff(np.asarray(y)))
    x0, _ = warp(info.crs, _equal_area_crs(info.crs), [0.0, abs(t.a)], [0.0, 0.0])
    width = abs(x0[1] - x0[0])  # cea: x is linear in longitude, the same at every latitude
    return heights * width


def polygons_area_m2(polygons: list, info: GeoInfo) -> float:
    """The summed area in m² of shapely polygons in `info`'s geographic CRS, through the equal-area projection."""
    import shapely
    from rasterio.warp import transform_geom

    crs = _equal_area_crs(info.crs)
    total = 0.0
    for poly in polygons:
        projected = shapely.geometry.shape(transform_geom(info.crs, crs, shapely.geometry.mapping(poly)))
        total += projected.area
    return total


def _equal_area_crs(crs) -> str:
    """Lambert cylindrical equal-area (proj 'cea', standard parallel 0) on the ellipsoid of `crs`."""
    params = crs.to_dict() if crs is not None else {}
    if "ellps" in params:
        datum = f"+ellps={params['ellps']}"
    elif "datum" in params:
        datum = f"+datum={params['datum']}"
    elif "a" in params:
        datum = f"+a={params['a']} +b={params.get('b', params['a'])}"
    else:
        datum = "+ellps=WGS84"
    return f"+proj=cea +lat_ts=0 +lon_0=0 {datum} +units=m +no_defs"
