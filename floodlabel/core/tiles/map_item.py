"""A large GeoTIFF opened for annotation without decoding it whole: `MapItem`, an `ImageItem` at view size.

- `load_item(pair)`: what the window loads for a dataset row: `load_map_item` for a georeferenced TIFF with more
  than MAP_PIXELS pixels, else `core.data.image_item.load_image_item` (photos and small GeoTIFFs, unchanged).
- `MapItem.image` is the map at view size (long side <= VIEW_SIDE, from `core.geo.pyramid.open_map`: the file's
  overviews or a cached preview), `valid` its no-data mask at that size; `original_size`, `geo` and every mask
  (annotation, native mask, accepted mask) are the *full* map's (H, W). The embedding is of the view image, so
  prompts in the full frame are decoded through `view_frame.ViewFrameSession`; `path` + `stretch` read
  full-resolution tiles (`core.geo.raster.read_map(path, window=..., stretch=item.stretch)`).
- Memory: the view image (VIEW_SIDE² x 4 bytes: 16 MB) and whatever full-size masks the caller holds (1 byte a map
  pixel each: 144 MB at 12,000²); never the full RGB (3 bytes a pixel, plus the source bands while reading).
- Ground truth: read at full size when the map is within the pixel limit (`core.data.images.MAX_IMAGE_PIXELS`),
  else none (gt_problem says why).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from floodlabel.core.common.errors import ImageReadError
from floodlabel.core.data.datasets import ImagePair
from floodlabel.core.data.image_item import ImageItem, load_image_item
from floodlabel.core.data.images import pixel_limit_problem, read_mask
from floodlabel.core.geo.georef import GeoInfo, geotiff_info

MAP_PIXELS = 4096 * 4096
"""GeoTIFFs with more pixels (16.8 MP) open as a MapItem (view + tiles); smaller ones are read whole."""
VIEW_SIDE = 2048
"""The long side of a MapItem's image (the window's view cap, `core.annotation.annotation.MAX_VIEW_SIDE`)."""


@dataclass(frozen=True)
class MapItem(ImageItem):
    """An ImageItem whose `image` (and `valid`) is the map at view size; `full_size` (H, W) is the map's, and
    `original_size` returns it. stretch: the `core.geo.raster.Stretch` for full-resolution tile reads."""

    full_size: tuple[int, int] = (0, 0)
    stretch: object | None = None

    @property
    def original_size(self) -> tuple[int, int]:
        """(H, W) of the full map (the frame of prompts and masks), not of `image`."""
        return self.full_size

    @property
    def view_scale(self) -> tuple[float, float]:
        """(view rows per map row, view columns per map column), both <= 1."""
        return self.image.shape[0] / self.full_size[0], self.image.shape[1] / self.full_size[1]


def is_large_map(geo: GeoInfo | None) -> bool:
    """Whether a raster with this GeoInfo opens as a MapItem (georeferenced, over MAP_PIXELS)."""
    return geo is not None and geo.width * geo.height > MAP_PIXELS


def load_item(pair: ImagePair) -> ImageItem:
    """The window's image loader: a MapItem for a large GeoTIFF, else `load_image_item` (rules above)."""
    geo = geotiff_info(pair.image)
    if is_large_map(geo):
        return load_map_item(pair, geo)
    return load_image_item(pair)


def load_map_item(pair: ImagePair, geo: GeoInfo | None = None, *, view_side: int = VIEW_SIDE,
                  cache_root: str | os.PathLike[str] | None = None) -> MapItem:
    """Open `pair.image` (a GeoTIFF) at view size through `open_map` (the first open of a map without overviews
    makes its cached preview: seconds; later ones read it). Raises ImageReadError."""
    from floodlabel.core.geo.raster import MapReadError
    from floodlabel.core.geo.pyramid import open_map

    geo = geo or geotiff_info(pair.image)
    if geo is None:
        raise ImageReadError(pair.image, "not a georeferenced TIFF")
    try:
        view, stretch = open_map(pair.image, view_side=view_side, cache_root=cache_root)
    except MapReadError as exc:
        raise ImageReadError(pair.image, str(exc).removeprefix(f"{pair.image}: ")) from exc
    except MemoryError as exc:
        raise ImageReadError(pair.image, "not enough memory to open it") from exc
    full = (geo.height, geo.width)
    gt, problem = _full_size_gt(pair, full)
    return MapItem(path=Path(pair.image), image=view.rgb, gt=gt, key=map_key(pair.image, full), gt_problem=problem,
                   geo=view.info, valid=view.valid, full_size=full, stretch=stretch)


def map_key(path: str | os.PathLike[str], full_size: tuple[int, int]) -> str:
    """A map's cache key (embeddings, tiles): its resolved path, size, mtime and full size (the content hash of a
    20,000² map would read 1.2 GB). 32 hex characters, like `core.common.hashing.image_key`."""
    st = os.stat(path)
    text = f"map\0{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{full_size}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _full_size_gt(pair: ImagePair, full: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    if pair.mask is None:
        return None, "no ground-truth mask"
    too_large = pixel_limit_problem((full[1], full[0]))
    if too_large:
        return None, f"ground truth not read: {too_large}"
    try:
        return read_mask(pair.mask, size=(full[1], full[0])), None
    except ImageReadError as exc:
        return None, exc.reason
