"""Read photos and masks from disk into numpy arrays, robustly.

Everything here works in the *original image frame after EXIF orientation*: (H, W) arrays whose rows and columns
are the pixels a viewer shows, and (width, height) sizes in the same frame.

- The file format is detected from the content, not the extension (real data has WEBP and PNG files named .jpg).
- Any file that cannot be fully decoded (missing, directory, zero bytes, corrupt, truncated, too large) raises
  `ImageReadError(path, reason)`. Truncated files are errors, never partially grey images: this module leaves
  Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` at False.
- Images larger than `MAX_IMAGE_PIXELS` (100 MP by default) are refused before anything is decoded, with a reason
  like "image too large: 30000x30000 = 900 MP, the limit is 100 MP": a 2.6 MB PNG can hold 900 MP, which would take
  6 GB to decode and 13 GB to show. Their size can still be read from the header (`image_size`);
  `pixel_limit_problem(size)` says whether a size is over the limit.
- Georeferenced TIFFs (GeoTIFFs with a CRS) are read with rasterio (`floodlabel.core.geo.raster`): RGB from the
  red/green/blue bands (else bands 1-3, else band 1 as grey), nodata pixels black, 16-bit and float bands stretched
  per band from their 2nd to 98th percentile; no EXIF orientation. The same pixel limit applies. Every other file
  (JPEG, PNG, plain TIFF, ...) is read with Pillow as described here; only TIFF files are opened with rasterio.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, ImageOps

from floodlabel.core.common.errors import AmbiguousMaskError, ImageReadError
from floodlabel.core.geo.georef import GeoInfo, geotiff_info

if TYPE_CHECKING:
    from floodlabel.core.geo.raster import MapImage

DEFAULT_MAX_MEGAPIXELS = 100
"""The pixel limit in megapixels when FLOODLABEL_MAX_MEGAPIXELS is not set (or not a positive number)."""


def _max_pixels_from_env() -> int:
    try:
        megapixels = float(os.environ.get("FLOODLABEL_MAX_MEGAPIXELS", ""))
    except ValueError:
        megapixels = DEFAULT_MAX_MEGAPIXELS
    if not (math.isfinite(megapixels) and megapixels > 0):
        megapixels = DEFAULT_MAX_MEGAPIXELS
    return int(megapixels * 1_000_000)


MAX_IMAGE_PIXELS = _max_pixels_from_env()
"""Largest image (width * height) read_image / read_mask decode: 100 MP (1e8 px), or FLOODLABEL_MAX_MEGAPIXELS.

Decoding takes about 7 bytes a pixel (Pillow holds RGB as 4, the array 3): 0.76 GB at 100 MP, and the window showing
one 2.2 GB (`python -m benchmarks.bench_huge_image --side 10000 --window`). Checked from the header, so a refused
file costs nothing to read."""

Image.MAX_IMAGE_PIXELS = None  # Pillow's own check would warn or refuse first, without saying the size: ours does.

MASK_THRESHOLD = 127
"""A mask pixel is water when its 8-bit value is > MASK_THRESHOLD (masks are anti-aliased greyscale)."""

MASK_THRESHOLDED = "0/255"
"""How read_mask_reading read a mask: brightness > MASK_THRESHOLD is water (0/255 and anti-aliased masks)."""
MASK_LABELS_01 = "0/1"
"""How read_mask_reading read a mask: a 0/1 label mask (uint8 values or palette indices), 1 is water."""

PathLike = str | os.PathLike[str]

# Orientations 5-8 swap width and height (TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90).
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
_STRIP_BYTES = 16 * 1024 * 1024


def read_image(path: PathLike) -> np.ndarray:
    """Decode a photo into an (H, W, 3) uint8 RGB array (a new, writable, C-contiguous array).

    EXIF orientation is applied. Mode conversions:
    greyscale / bilevel / palette / CMYK / YCbCr -> RGB with Pillow's conversions; alpha (RGBA, LA, PA, palette
    transparency) is *dropped*, keeping the stored colour under it, as cv2.imread does (SAM sees colours, not alpha);
    16-bit (I;16*, 16-bit RGB PNG) -> top 8 bits (v >> 8, i.e. 0..65535 -> 0..255, what Pillow does for 16-bit RGB);
    32-bit int (I) -> as 16-bit when all values fit in 0..65535, else stretched min..max -> 0..255;
    float (F) -> v * 255 when all values are in [0, 1], else stretched min..max -> 0..255 (NaN -> 0).
    A GeoTIFF is read as the module docstring says (`read_geotiff`).
    """
    geo = geotiff_info(path)
    if geo is not None:
        return read_geotiff(path, geo).rgb
    with _open_decoded(path) as im:
        try:
            if im.mode in _SIXTEEN_BIT_MODES or im.mode in ("I", "F"):
                grey = _scale_to_uint8(_pil_to_array(im))
                return np.repeat(grey[:, :, None], 3, axis=2)
            return _pil_to_array(_convert(im, "RGB"))
        except ImageReadError:
            raise
        except Exception as exc:  # a mode Pillow cannot convert (e.g. LAB), or out of memory
            raise ImageReadError(path, f"cannot convert {im.mode} image to RGB ({_describe(exc)})") from exc


def read_geotiff(path: PathLike, geo: GeoInfo | None = None) -> MapImage:
    """A georeferenced TIFF at full resolution as a MapImage (rgb, valid = not nodata, GeoInfo); ImageReadError
    when it is over the pixel limit or cannot be read. geo: its `geotiff_info`, when already known."""
    from floodlabel.core.geo.raster import MapReadError, read_map

    geo = geo or geotiff_info(path)
    if geo is None:
        raise ImageReadError(path, "not a georeferenced TIFF")
    too_large = pixel_limit_problem((geo.width, geo.height))
    if too_large:
        raise ImageReadError(path, too_large)
    try:
        return read_map(path)
    except MapReadError as exc:
        raise ImageReadError(path, str(exc).removeprefix(f"{path}: ")) from exc
    except MemoryError as exc:
        raise ImageReadError(path, "not enough memory to decode it") from exc


@dataclass(frozen=True)
class MaskReading:
    """A decoded mask and how its values were read (MASK_THRESHOLDED or MASK_LABELS_01)."""

    water: np.ndarray
    encoding: str


def read_mask(path: PathLike, size: tuple[int, int] | None = None, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode a mask into an (H, W) bool array: True = water. EXIF orientation is applied.

    A pixel is water when its brightness is > 127 on the 8-bit scale: greyscale as is; colour masks when *any*
    channel is > 127 (so a red or white label both count); 16-bit / int / float masks are scaled as in read_image
    first. With an alpha channel (LA, RGBA, palette transparency) a pixel must also be opaque (alpha > 127):
    "white where water, transparent elsewhere" masks work.

    0/1 label masks (every value 0 or 1, as uint8 values or as palette indices drawn in dark colours) read 1 as
    water. A mask in which nothing is > 127 but which is not blank and not 0/1 (e.g. {0, 1, 2} class indices)
    raises AmbiguousMaskError (an ImageReadError): which value is water is never guessed.

    size: the expected (width, height), e.g. the photo's `image_size`. A mask of another size raises
    ImageReadError; masks are never resized silently. max_pixels: the pixel limit (default MAX_IMAGE_PIXELS; the
    mask of a map over it may be as large as the map: `mask_pixel_limit`).
    """
    return read_mask_reading(path, size, max_pixels=max_pixels).water


def read_mask_reading(path: PathLike, size: tuple[int, int] | None = None, *,
                      max_pixels: int | None = None) -> MaskReading:
    """read_mask, also saying how the values were read (MaskReading.encoding)."""
    with _open_decoded(path, max_pixels) as im:
        if size is not None and tuple(im.size) != tuple(size):
            raise ImageReadError(path, f"mask is {im.width}x{im.height} but the image is {size[0]}x{size[1]}")
        try:
            water, encoding = _mask_array(im)
        except _Ambiguous as exc:
            raise AmbiguousMaskError(path, str(exc)) from None
        except Exception as exc:
            raise ImageReadError(path, f"cannot read {im.mode} image as a mask ({_describe(exc)})") from exc
        return MaskReading(water, encoding)


def image_size(path: PathLike) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the file header only (nothing is decoded).

    Because nothing is decoded, a truncated file may still report a size here; read_image will refuse it.
    """
    geo = geotiff_info(path)
    if geo is not None:
        return geo.width, geo.height
    try:
        with _open(path) as im:
            width, height = im.size
            # Image.getexif reads only what the header gave. PngImageFile.getexif would decode the whole image to
            # look for an eXIf chunk after the pixel data, which real files do not have.
            orientation = Image.Image.getexif(im).get(ExifTags.Base.Orientation, 1)
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(path, _describe(exc)) from exc
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


def pixel_limit_problem(size: tuple[int, int], limit: int | None = None) -> str | None:
    """Why an image of `size` (width, height) is not decoded ("image too large: ..."), or None when it is within
    `limit` pixels (default MAX_IMAGE_PIXELS)."""
    width, height = size
    limit = MAX_IMAGE_PIXELS if limit is None else max(limit, MAX_IMAGE_PIXELS)
    if width * height <= limit:
        return None
    return (f"image too large: {width}x{height} = {_megapixels(width * height)} MP, the limit is "
            f"{_megapixels(limit)} MP (FLOODLABEL_MAX_MEGAPIXELS=N changes it)")


def mask_pixel_limit(image_path: PathLike) -> int:
    """The pixel limit for the mask of `image_path`: a georeferenced TIFF's own pixel count when it is over
    MAX_IMAGE_PIXELS (a map opens at any size, and its mask has its size: read_mask's `size` check holds it to
    that; decoding takes about 2 bytes a pixel, 0.2 GB at 108 MP), else MAX_IMAGE_PIXELS."""
    geo = geotiff_info(image_path)
    return max(MAX_IMAGE_PIXELS, geo.width * geo.height) if geo is not None else MAX_IMAGE_PIXELS


def file_pixel_limit_problem(path: str | os.PathLike[str], size: tuple[int, int]) -> str | None:
    """`pixel_limit_problem` for the file at `path` of `size`: None for a georeferenced TIFF, which opens at a
    reduced level whatever its size (core.tiles, core.geo.pyramid)."""
    too_large = pixel_limit_problem(size)
    return None if too_large is None or geotiff_info(path) is not None else too_large


def link_problem(path: str | os.PathLike[str]) -> str:
    """Why the symbolic link `path` cannot be followed ("that loops (...)", "to ..., which does not exist")."""
    try:
        target = os.readlink(path)
    except OSError as exc:
        return f"that cannot be read ({exc.strerror or exc})"
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"that loops ({target} never leads to a file)"
        if exc.errno == errno.ENOENT:
            return f"to {target}, which does not exist"
        return f"to {target}, which cannot be reached ({exc.strerror or exc})"
    return f"to {target}"


# ---------------------------------------------------------------------------------------------------------------
# helpers


@contextmanager
def _open_decoded(path: PathLike, max_pixels: int | None = None) -> Iterator[Image.Image]:
    """Open, size-check (`max_pixels`, default MAX_IMAGE_PIXELS), fully decode and EXIF-rotate an image; every
    failure becomes ImageReadError."""
    with _open(path) as im:
        try:
            too_large = pixel_limit_problem(im.size, max_pixels)
            if too_large:
                raise ImageReadError(path, too_large)
            im.load()  # decode here, inside the try: truncated or corrupt data fails now, not later
            ImageOps.exif_transpose(im, in_place=True)  # in place: no copy when there is nothing to rotate
        except ImageReadError:
            raise
        except Exception as exc:  # Pillow raises many types on malformed data (OSError, SyntaxError, ValueError, ...)
            raise ImageReadError(path, _describe(exc)) from exc
        yield im


def _open(path: PathLike) -> Image.Image:
    """Image.open with readable reasons for the usual failures (header only; nothing decoded yet)."""
    p = Path(path)
    try:
        if p.is_dir():
            raise ImageReadError(path, "it is a directory, not a file")
        if p.stat().st_size == 0:
            raise ImageReadError(path, "the file is empty (0 bytes)")
        return Image.open(p)
    except ImageReadError:
        raise
    except Image.UnidentifiedImageError as exc:  # an OSError: caught first
        raise ImageReadError(path, "not an image file, or a format Pillow cannot read") from exc
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image is too large ({exc})") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP) and p.is_symlink():
            raise ImageReadError(path, f"a symbolic link {link_problem(p)}") from exc
        if isinstance(exc, FileNotFoundError):
            raise ImageReadError(path, "no such file") from exc
        if isinstance(exc, PermissionError):
            raise ImageReadError(path, "permission denied") from exc
        raise ImageReadError(path, _describe(exc)) from exc
    except Exception as exc:
        raise ImageReadError(path, _describe(exc)) from exc


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.0f}" if pixels >= 10_000_000 else f"{pixels / 1e6:.3g}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "not enough memory to decode it"
    text = str(exc).strip()
    if "truncated" in text.lower():
        return f"the file is truncated ({text})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _convert(im: Image.Image, mode: str) -> Image.Image:
    """im in `mode` ("RGB" or "RGBA"), converting only when needed. Palette transparency goes through RGBA."""
    if im.mode == mode:
        return im
    if im.mode == "P" and "transparency" in im.info and mode != "RGBA":
        im = im.convert("RGBA")  # Pillow warns when converting byte-transparency palettes straight to RGB
    return im.convert(mode)


def _pil_to_array(im: Image.Image) -> np.ndarray:
    """Copy a decoded PIL image into a new writable numpy array, a strip of rows at a time.

    np.asarray(im) goes through im.tobytes(), which holds the image twice more as bytes (chunks, then their join)
    and gives a read-only array. Strips keep the extra memory to one strip (~16 MiB).
    """
    width, height = im.size
    rows = max(1, _STRIP_BYTES // max(1, width * 4))
    first = np.asarray(im.crop((0, 0, width, min(rows, height))))
    out = np.empty((height, *first.shape[1:]), dtype=first.dtype.newbyteorder("="))
    out[: first.shape[0]] = first
    for top in range(first.shape[0], height, rows):
        out[top: top + rows] = np.asarray(im.crop((0, top, width, min(top + rows, height))))
    return out


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale a 2-D 16-bit, int32 or float array to uint8 (rules in read_image's docstring)."""
    if values.dtype == np.uint16:
        return (values >> 8).astype(np.uint8)
    if values.dtype.kind == "f":
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(values.min(initial=0.0)), float(values.max(initial=0.0))
        if lo >= 0.0 and hi <= 1.0:
            return np.rint(values * 255.0).astype(np.uint8)
    else:
        lo, hi = int(values.min(initial=0)), int(values.max(initial=0))
        if lo >= 0 and hi <= 0xFFFF:
            return (values >> 8).astype(np.uint8)
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


class _Ambiguous(Exception):
    """A mask whose values cannot be told apart as water / not water (message: why)."""


def _mask_array(im: Image.Image) -> tuple[np.ndarray, str]:
    """(H, W) bool water mask and its encoding from a decoded PIL image (rules in read_mask's docstring)."""
    mode = im.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        raw = _pil_to_array(im)
        return _levels_to_water(raw, _scale_to_uint8(raw))
    if mode == "F":
        return _scale_to_uint8(_pil_to_array(im)) > MASK_THRESHOLD, MASK_THRESHOLDED
    if mode == "1":
        return _pil_to_array(im.convert("L")) > MASK_THRESHOLD, MASK_THRESHOLDED
    if mode == "L":
        values = _pil_to_array(im)
        return _levels_to_water(values, values)
    if mode in ("LA", "La"):
        values = _pil_to_array(im)
        water, encoding = _levels_to_water(values[:, :, 0], values[:, :, 0])
        return water & (values[:, :, 1] > MASK_THRESHOLD), encoding
    if mode == "P":
        return _palette_mask(im)
    has_alpha = mode in ("RGBA", "RGBa", "PA")
    values = _pil_to_array(_convert(im, "RGBA" if has_alpha else "RGB"))
    brightest = values[:, :, :3].max(axis=2)
    water, encoding = _levels_to_water(brightest, brightest)
    if has_alpha:
        water &= values[:, :, 3] > MASK_THRESHOLD
    return water, encoding


def _levels_to_water(raw: np.ndarray, scaled: np.ndarray) -> tuple[np.ndarray, str]:
    """raw: the stored integer values; scaled: the same on the 8-bit scale. Threshold, 0/1, or ambiguous."""
    water = scaled > MASK_THRESHOLD
    if water.any():
        return water, MASK_THRESHOLDED
    top = int(raw.max(initial=0))
    if top == 0:
        return water, MASK_THRESHOLDED  # blank: no water either way
    if top == 1 and int(raw.min(initial=0)) >= 0:
        return raw == 1, MASK_LABELS_01
    raise _Ambiguous(f"ambiguous mask: its values {_value_list(raw)} are neither 0/1 nor 0/255 (class indices?), "
                     "so which one is water cannot be told")


def _palette_mask(im: Image.Image) -> tuple[np.ndarray, str]:
    """A palette mask: by its colours (as an RGB mask), or by its indices when they are only 0 and 1."""
    indices = _pil_to_array(im)
    has_alpha = "transparency" in im.info
    values = _pil_to_array(_convert(im, "RGBA" if has_alpha else "RGB"))
    water = values[:, :, :3].max(axis=2) > MASK_THRESHOLD
    if has_alpha:
        water &= values[:, :, 3] > MASK_THRESHOLD
    used = np.flatnonzero(np.bincount(indices.ravel(), minlength=256))
    if set(used.tolist()) <= {0, 1} and 1 in used:
        bright = np.zeros(256, bool)
        bright[indices[water]] = True
        if bright[1] and not bright[0]:
            return water, MASK_THRESHOLDED  # index 1 is drawn as water: both readings agree
        if bright[0] and not bright[1]:
            raise _Ambiguous("ambiguous mask: palette indices 0/1, but index 0 is drawn bright and index 1 dark, "
                             "so which one is water cannot be told")
        return indices == 1, MASK_LABELS_01
    if not water.any() and len(used) > 1:
        raise _Ambiguous(f"ambiguous mask: palette indices {_value_list(indices)} are all drawn dark "
                         "(class indices?), so which one is water cannot be told")
    return water, MASK_THRESHOLDED


def _value_list(values: np.ndarray, shown: int = 6) -> str:
    unique = np.unique(values).tolist()
    text = ", ".join(str(v) for v in unique[:shown])
    return "{" + text + (", ..." if len(unique) > shown else "") + "}"
