"""Large maps without decoding them whole: a cached preview pyramid for the zoomed-out view, full-resolution tiles for
the rest.

- `open_map(path)`: the map at view size (long side at most `view_side`, 2048 by default) as a MapImage whose `info`
  is the *full* map's (so `scale` says how many map pixels one view pixel covers). It reads the file's own overviews
  when it has them; otherwise a preview GeoTIFF (long side PREVIEW_SIDE, all bands, the map's dtype, nodata, CRS and
  scaled transform, DEFLATE, with internal overviews 2/4/8) is made once by a decimated read (GDAL streams the
  source block by block: memory is the preview itself, about PREVIEW_SIDE² x bands x bytes per sample) and cached
  under `cache_root/map-previews/<key>.tif`, key = SHA-256 of the resolved path, size and mtime. Later opens read
  the preview: time and memory no longer depend on the map's size.
- `read_map(path, window=...)` (module raster) reads one full-resolution tile; `tile_windows` lays the tiles out.
- The 16-bit stretch of a map is computed once from the preview (or the overviews) and passed to every tile read,
  so tiles and view look alike.

Tiles: core tiles of `tile` px (1024) on a grid from the top-left, each read with a `halo` (128 px) of context on
every side, clipped to the map. Every map pixel belongs to exactly one core tile; a result decoded on a tile is
kept only inside its core, so stitched masks have no overlap to reconcile (the seam rule the GUI's tiled decode is
to follow; see the issue 17 report).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine

from floodlabel.core.geo.georef import GeoInfo, read_geo_info
from floodlabel.core.geo.raster import (GDAL_CACHE_MB, MapImage, MapReadError, Stretch, compute_stretch, read_map,
                                        valid_mask)

PREVIEW_SIDE = 4096
"""Long side (px) of a cached preview; maps up to this size (or with overviews) are read directly."""
PREVIEW_DIR_NAME = "map-previews"
DEFAULT_VIEW_SIDE = 2048
TILE = 1024
HALO = 128


@dataclass(frozen=True)
class TileWindow:
    """core: (col_off, row_off, width, height) of the pixels this tile owns; read: the window read for it (core plus
    the halo, clipped to the map). Full-resolution map pixels."""

    core: tuple[int, int, int, int]
    read: tuple[int, int, int, int]


def open_map(path: str | os.PathLike[str], *, view_side: int = DEFAULT_VIEW_SIDE, bands: tuple[int, ...] | None = None,
             cache_root: str | os.PathLike[str] | None = None) -> tuple[MapImage, Stretch]:
    """The map at view size and the stretch for its tiles (rules in the module docstring). cache_root: the folder
    for previews (None: FloodLabel's cache folder). Raises MapReadError."""
    info = read_geo_info(path)
    if info is None:
        raise MapReadError(f"{path}: not a raster rasterio can read")
    source = preview_source(path, info, cache_root)
    view = read_map(source, bands=bands, max_side=view_side)
    stretch = view_stretch(source, view.bands)
    return MapImage(rgb=view.rgb, valid=view.valid, info=info, transform=view.transform, bands=view.bands), stretch


def view_stretch(source: str | os.PathLike[str], bands: tuple[int, ...]) -> Stretch:
    """The stretch of `bands`, from the (small) preview source."""
    return compute_stretch(source, bands)


def preview_source(path: str | os.PathLike[str], info: GeoInfo, cache_root=None) -> Path:
    """The file to read a zoomed-out view from: the map itself when it is small or has overviews reaching
    PREVIEW_SIDE, else its cached preview (made now when missing)."""
    if max(info.width, info.height) <= PREVIEW_SIDE:
        return Path(path)
    if info.overviews and max(info.width, info.height) / max(info.overviews) <= PREVIEW_SIDE:
        return Path(path)
    target = preview_path(path, cache_root)
    if not target.is_file():
        build_preview(path, target)
    return target


def preview_path(path: str | os.PathLike[str], cache_root=None) -> Path:
    """Where the preview of `path` is cached (changes when the map's size or mtime changes)."""
    if cache_root is None:
        from floodlabel.core.common.paths import cache_dir

        cache_root = cache_dir()
    st = os.stat(path)
    key = hashlib.sha256(f"{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]
    return Path(cache_root) / PREVIEW_DIR_NAME / f"{key}.tif"


def build_preview(path: str | os.PathLike[str], target: Path, side: int = PREVIEW_SIDE) -> Path:
    """Write the preview of `path` to `target` atomically (a temporary file in its folder, then rename)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import NotGeoreferencedWarning

    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".tmp-{secrets.token_hex(6)}-{target.name}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024), rasterio.open(path) as src:
                factor = max(src.width, src.height) / side
                out_w, out_h = max(1, round(src.width / factor)), max(1, round(src.height / factor))
                data = src.read(out_shape=(src.count, out_h, out_w), resampling=Resampling.nearest)
                mask = valid_mask(src, data, None, (out_h, out_w))
                nodata = src.nodata
                profile = dict(driver="GTiff", width=out_w, height=out_h, count=src.count, dtype=src.dtypes[0],
                               crs=src.crs, nodata=nodata, compress="deflate", tiled=True, blockxsize=512,
                               blockysize=512,
                               transform=src.transform @ Affine.scale(src.width / out_w, src.height / out_h))
                interp = src.colorinterp
            with rasterio.open(temp, "w", **profile) as dst:
                dst.write(data)
                dst.colorinterp = interp
                if nodata is None and not mask.all():
                    dst.write_mask(mask.astype(np.uint8) * 255)
                dst.build_overviews([2, 4, 8], Resampling.nearest)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def tile_windows(width: int, height: int, tile: int = TILE, halo: int = HALO) -> list[TileWindow]:
    """The tiles of a width x height map, row by row (rules in the module docstring)."""
    tiles = []
    for row in range(0, height, tile):
        for col in range(0, width, tile):
            w, h = min(tile, width - col), min(tile, height - row)
            c0, r0 = max(0, col - halo), max(0, row - halo)
            c1, r1 = min(width, col + w + halo), min(height, row + h + halo)
            tiles.append(TileWindow(core=(col, row, w, h), read=(c0, r0, c1 - c0, r1 - r0)))
    return tiles
