"""The GIS files of one mask, as bytes (the export writes them atomically and records their SHA-256):

- `geotiff_mask_bytes`: the mask as a one-band uint8 GeoTIFF, 1 = water, 0 = not water, DEFLATE-compressed and
  tiled (512 px), with the map's CRS and transform; small when the mask is mostly one value.
- `gpkg_bytes` / `geojson_bytes`: one Polygon feature per connected water region, holes kept as interior rings, in
  the map's CRS (GeoJSON then carries a "crs" member, as GDAL writes it; RFC 7946 readers assume WGS84 degrees).
  Fields: id (1 = the largest region), holes (interior rings), area_m2 (None without a CRS), area_px (pixels of the
  region's polygon, from the transform; exact when not simplified).
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from floodlabel.core.geo.georef import GeoInfo

GEOTIFF_BLOCK = 512
LAYER_NAME = "water"


def geotiff_mask_bytes(mask: np.ndarray, info: GeoInfo) -> bytes:
    """(H, W) bool mask of the raster `info` describes -> GeoTIFF bytes (uint8 0/1, DEFLATE, tiled)."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    height, width = mask.shape
    if (height, width) != (info.height, info.width):
        raise ValueError(f"mask is {width}x{height} but the raster is {info.width}x{info.height}")
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint8", crs=info.crs,
                   transform=info.transform, compress="deflate", predictor=2, zlevel=6)
    if width >= GEOTIFF_BLOCK and height >= GEOTIFF_BLOCK:
        profile.update(tiled=True, blockxsize=GEOTIFF_BLOCK, blockysize=GEOTIFF_BLOCK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as memfile:
            with memfile.open(**profile) as ds:
                ds.write(mask.astype(np.uint8), 1)
                ds.set_band_description(1, "water (1) / not water (0)")
            return memfile.read()


def gpkg_bytes(polygons: list, info: GeoInfo) -> bytes:
    """A GeoPackage (layer "water") of the polygons (map coordinates of `info`'s CRS)."""
    return _vector_bytes(polygons, info, "GPKG")


def geojson_bytes(polygons: list, info: GeoInfo) -> bytes:
    """A GeoJSON FeatureCollection of the polygons in `info`'s CRS."""
    return _vector_bytes(polygons, info, "GeoJSON")


def feature_fields(polygons: list, info: GeoInfo) -> dict[str, np.ndarray]:
    """{field: values} for each polygon: id, holes, area_m2 (NaN without a CRS), area_px."""
    t = info.transform
    px_units = abs(t.a * t.e - t.b * t.d) or 1.0
    area_px = np.array([p.area / px_units for p in polygons], dtype=np.float64)
    if info.crs is None:
        area_m2 = np.full(len(polygons), np.nan)
    elif info.crs.is_geographic:
        from floodlabel.core.geo.area import polygons_area_m2

        area_m2 = np.array([polygons_area_m2([p], info) for p in polygons], dtype=np.float64)
    else:
        factor = info.crs.linear_units_factor[1]
        area_m2 = np.array([p.area * factor * factor for p in polygons], dtype=np.float64)
    return {"id": np.arange(1, len(polygons) + 1, dtype=np.int64),
            "holes": np.array([len(p.interiors) for p in polygons], dtype=np.int64),
            "area_m2": area_m2, "area_px": np.rint(area_px).astype(np.int64)}


def _vector_bytes(polygons: list, info: GeoInfo, driver: str) -> bytes:
    import pyogrio.raw
    import shapely

    fields = feature_fields(polygons, info)
    from shapely.geometry.polygon import orient

    # exterior rings counter-clockwise, holes clockwise (RFC 7946, OGC): a north-up transform flips pixel rings
    geometry = np.array([shapely.to_wkb(orient(p, sign=1.0)) for p in polygons], dtype=object)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "non conformant file extension" (in-memory file), "crs was not provided"
        pyogrio.raw.write(buffer, geometry, list(fields.values()), list(fields), driver=driver, layer=LAYER_NAME,
                          geometry_type="Polygon", crs=info.crs.to_wkt() if info.crs is not None else None,
                          nan_as_null=True)
    return buffer.getvalue()
