"""A GeoTIFF (any raster rasterio reads) as a display image: (H, W, 3) uint8 RGB plus a validity mask.

- Bands: `bands` (1-based, one or three) when given; else the bands whose colour interpretation is red, green,
  blue; else bands 1, 2, 3; a one- or two-band raster is shown grey from band 1.
- Nodata: GDAL's dataset mask (the nodata value, an alpha band or an internal mask) and NaN give `valid` = False;
  those pixels are 0 (black) in `rgb`, and the caller shows them as no-data.
- Stretch: uint8 bands are shown as they are; any other type (16-bit, float) is stretched per band from its 2nd to
  98th percentile of the valid pixels to 0..255 (`Stretch`). The percentiles come from a decimated read (long side
  at most STRETCH_SAMPLE_SIDE), so every window of one map is stretched alike.
- Size: `max_side` decimates the read (rasterio then reads the nearest overview level the file has); the transform
  of the returned image is the map's scaled accordingly. Without it the full raster is read: about 4 bytes a pixel
  (RGB + valid), plus the source bands while converting (2 bytes a band-pixel for 16-bit), plus GDAL's block
  cache, held at GDAL_CACHE_MB.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
from affine import Affine

from floodlabel.core.geo.georef import GeoInfo, read_geo_info

STRETCH_SAMPLE_SIDE = 1024
"""The long side (px) of the decimated read the 16-bit stretch percentiles are taken from."""
STRETCH_PERCENTILES = (2.0, 98.0)
GDAL_CACHE_MB = 128
"""GDAL's block cache while reading maps (its default, 5% of RAM, kept 1.2 GB of decoded blocks after one
decimated read of a 20,000² map without overviews). rasterio passes GDAL_CACHEMAX as bytes: an int 128 is 128
bytes, and a 2048² overview read then took 12 s instead of 0.06 s."""


class MapReadError(Exception):
    """A raster could not be read (message: why)."""


@dataclass(frozen=True)
class Stretch:
    """Per displayed band (lo, hi): values lo..hi map to 0..255 (clipped). None for uint8 (shown as is)."""

    bands: tuple[int, ...]
    limits: tuple[tuple[float, float], ...] | None


@dataclass(frozen=True)
class MapImage:
    """rgb: (h, w, 3) uint8; valid: (h, w) bool (False = no-data); info: the full raster's GeoInfo;
    transform: the pixel -> map transform of *this* image (the map's, scaled when decimated);
    bands: the 1-based bands shown as R, G, B (one band repeated for grey)."""

    rgb: np.ndarray
    valid: np.ndarray
    info: GeoInfo
    transform: Affine
    bands: tuple[int, ...]

    @property
    def scale(self) -> tuple[float, float]:
        """(full-resolution columns, rows) per pixel of this image: (1, 1) when read at full size (a window too)."""
        t, full = self.transform, self.info.transform
        return (math.hypot(t.a, t.d) / math.hypot(full.a, full.d), math.hypot(t.b, t.e) / math.hypot(full.b, full.e))


def read_map(path: str | os.PathLike[str], *, bands: tuple[int, ...] | None = None, max_side: int | None = None,
             window: tuple[int, int, int, int] | None = None, stretch: Stretch | None = None) -> MapImage:
    """Read a raster for display (rules in the module docstring).

    window: (col_off, row_off, width, height) in full-resolution pixels, to read one tile; max_side then bounds the
    tile's long side. stretch: from `compute_stretch` (computed here when None). Raises MapReadError.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    from rasterio.windows import Window

    info = read_geo_info(path)
    if info is None:
        raise MapReadError(f"{path}: not a raster rasterio can read")
    chosen = stretch.bands if stretch is not None else _choose_bands(path, bands, info)
    if stretch is None:
        stretch = compute_stretch(path, chosen)
    col_off, row_off, width, height = window or (0, 0, info.width, info.height)
    out_h, out_w = _out_shape(width, height, max_side)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024), rasterio.open(path) as ds:
                win = Window(col_off, row_off, width, height)
                data = ds.read(list(chosen), window=win, out_shape=(len(chosen), out_h, out_w),
                               resampling=Resampling.nearest)
                valid = valid_mask(ds, data, win, (out_h, out_w))
    except (RasterioError, OSError, ValueError, MemoryError) as exc:
        raise MapReadError(f"{path}: {exc}") from exc
    if data.dtype.kind == "f":
        valid &= ~np.isnan(data).any(axis=0)
    rgb = np.empty((out_h, out_w, 3), np.uint8)
    for i in range(3):
        band = data[min(i, len(chosen) - 1)]
        rgb[:, :, i] = band if stretch.limits is None else _to_uint8(band, *stretch.limits[min(i, len(chosen) - 1)])
    rgb[~valid] = 0
    transform = info.transform @ Affine.translation(col_off, row_off) @ Affine.scale(width / out_w, height / out_h)
    return MapImage(rgb=rgb, valid=valid, info=info, transform=transform, bands=tuple(chosen))


def compute_stretch(path: str | os.PathLike[str], bands: tuple[int, ...]) -> Stretch:
    """The display stretch of `bands`: None limits for uint8, else per-band 2nd..98th percentile of valid pixels
    of a decimated read (long side STRETCH_SAMPLE_SIDE)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            if all(ds.dtypes[b - 1] == "uint8" for b in bands):
                return Stretch(tuple(bands), None)
            out_h, out_w = _out_shape(ds.width, ds.height, STRETCH_SAMPLE_SIDE)
            raw = ds.read(list(bands), out_shape=(len(bands), out_h, out_w))
            valid = valid_mask(ds, raw, None, (out_h, out_w))
            data = raw.astype(np.float64)
    limits = []
    for band in data:
        values = band[valid & np.isfinite(band)]
        if values.size == 0:
            limits.append((0.0, 1.0))
            continue
        lo, hi = (float(v) for v in np.percentile(values, STRETCH_PERCENTILES))
        limits.append((lo, hi if hi > lo else lo + 1.0))
    return Stretch(tuple(bands), tuple(limits))


def valid_mask(ds, data: np.ndarray, win, out_shape: tuple[int, int]) -> np.ndarray:
    """(h, w) bool, False where the raster has no data. Without nodata, alpha or mask: all valid (no read: rasterio's
    dataset_mask would read the whole raster at full resolution, 0.6 s and 1.2 GB at 20,000²). With a nodata value
    only: from the bands just read (valid where any band differs from nodata, as GDAL's dataset mask). With an
    alpha band or an internal mask: GDAL's dataset mask."""
    from rasterio.enums import MaskFlags

    flags = [set(ds.mask_flag_enums[i]) for i in range(ds.count)]
    if all(f == {MaskFlags.all_valid} for f in flags):
        return np.ones(out_shape, bool)
    if all(f == {MaskFlags.nodata} for f in flags) and ds.nodata is not None:
        nodata = ds.nodata
        invalid = np.isnan(data) if isinstance(nodata, float) and np.isnan(nodata) else data == nodata
        return ~invalid.all(axis=0)
    return ds.dataset_mask(window=win, out_shape=out_shape) > 0


def _choose_bands(path: str | os.PathLike[str], bands: tuple[int, ...] | None, info: GeoInfo) -> tuple[int, ...]:
    if bands is not None:
        if len(bands) not in (1, 3) or not all(1 <= b <= info.count for b in bands):
            raise MapReadError(f"{path}: bands {bands} must be one or three of 1..{info.count}")
        return tuple(bands)
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            interp = list(ds.colorinterp)
    wanted = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    if all(c in interp for c in wanted):
        return tuple(interp.index(c) + 1 for c in wanted)
    return (1, 2, 3) if info.count >= 3 else (1,)


def _out_shape(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(rows, cols) of a read of width x height pixels with its long side at most max_side (never upscaled)."""
    if max_side is None or max(width, height) <= max_side:
        return height, width
    factor = max(width, height) / max_side
    return max(1, math.ceil(height / factor - 1e-9)), max(1, math.ceil(width / factor - 1e-9))


def _to_uint8(band: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scaled = (band.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0, 255).astype(np.uint8)
