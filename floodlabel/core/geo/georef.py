"""Where a raster lies on the ground: `GeoInfo` (CRS, affine pixel -> map transform, size, nodata), from a file's
header.

Frames: the transform maps (column, row) pixel-corner coordinates of the full-resolution raster to map coordinates
(x, y) in the CRS's units: `x, y = transform * (col, row)`; pixel (r, c) covers [c, c+1] x [r, r+1].
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from affine import Affine

TIFF_MAGICS = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
"""The first four bytes of a TIFF (classic and BigTIFF, both byte orders)."""


@dataclass(frozen=True)
class GeoInfo:
    """A raster's georeferencing. crs: a rasterio CRS, or None; transform: affine.Affine (identity when the file
    has none); width, height: full-resolution pixels; count: bands; dtype: of band 1; nodata: band 1's nodata
    value or None; overviews: the decimation factors of band 1's overviews (e.g. [2, 4, 8])."""

    crs: object | None
    transform: Affine
    width: int
    height: int
    count: int = 1
    dtype: str = "uint8"
    nodata: float | None = None
    overviews: tuple[int, ...] = ()

    @property
    def georeferenced(self) -> bool:
        """True when the raster has a CRS (a transform alone, without a CRS, gives no ground units)."""
        return self.crs is not None

    @property
    def crs_label(self) -> str:
        """"EPSG:32633", the CRS's name when it has no EPSG code, or "no CRS"."""
        if self.crs is None:
            return "no CRS"
        epsg = self.crs.to_epsg()
        if epsg:
            return f"EPSG:{epsg}"
        name = self.crs.to_wkt().split('"')
        return name[1] if len(name) > 1 else self.crs.to_string()

    @property
    def north_up(self) -> bool:
        """True when rows run along one map axis and columns along the other (no rotation or shear)."""
        return self.transform.b == 0 and self.transform.d == 0


def looks_like_tiff(path: str | os.PathLike[str]) -> bool:
    """True when the file starts with a TIFF signature (False when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in TIFF_MAGICS
    except OSError:
        return False


def read_geo_info(path: str | os.PathLike[str]) -> GeoInfo | None:
    """The GeoInfo of a raster rasterio can open (header only), or None when it cannot open it."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                return GeoInfo(crs=ds.crs, transform=ds.transform, width=ds.width, height=ds.height,
                               count=ds.count, dtype=ds.dtypes[0], nodata=ds.nodata,
                               overviews=tuple(ds.overviews(1)) if ds.count else ())
    except (RasterioError, OSError, ValueError):
        return None


def geotiff_info(path: str | os.PathLike[str]) -> GeoInfo | None:
    """The GeoInfo of a georeferenced TIFF (one with a CRS), or None for anything else (JPEG, PNG, plain TIFF).
    Only TIFF files are opened with rasterio; other files cost one 4-byte read."""
    if not looks_like_tiff(path):
        return None
    info = read_geo_info(path)
    return info if info is not None and info.georeferenced else None


def pixel_transform(width: int, height: int) -> GeoInfo:
    """A GeoInfo for a plain photo: no CRS, identity transform (map x = column, map y = row, both in pixels)."""
    return GeoInfo(crs=None, transform=Affine.identity(), width=width, height=height, count=3)
