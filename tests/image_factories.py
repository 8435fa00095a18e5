"""Generators of test images, masks and dataset folders (written into a test's tmp_path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ORIENTATION = 0x0112


def blocks(rows: int = 2, cols: int = 3, block: int = 16) -> np.ndarray:
    """An (rows*block, cols*block, 3) uint8 image of flat, well-separated colour blocks (survives JPEG)."""
    palette = np.array([[230, 20, 20], [20, 230, 20], [20, 20, 230], [230, 230, 20], [20, 230, 230],
                        [230, 20, 230], [128, 128, 128], [250, 250, 250], [10, 10, 10]], np.uint8)
    ids = np.arange(rows * cols).reshape(rows, cols) % len(palette)
    return np.repeat(np.repeat(palette[ids], block, axis=0), block, axis=1)


def block_colours(rgb: np.ndarray, block: int = 16) -> np.ndarray:
    """The colour at the centre of every block of an image made by `blocks` (after any rotation)."""
    return rgb[block // 2::block, block // 2::block].astype(int)


def save(path: Path, array_or_image: np.ndarray | Image.Image, fmt: str, **kwargs) -> Path:
    """Save an array or PIL image to `path` in format `fmt`, whatever the file's extension says."""
    im = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt, **kwargs)
    return path


def jpeg_with_orientation(path: Path, rgb: np.ndarray, orientation: int) -> Path:
    """A JPEG whose stored pixels are `rgb` and whose EXIF Orientation tag is `orientation`."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return save(path, rgb, "JPEG", quality=95, exif=exif)


def truncated_copy(source: Path, target: Path, keep: float = 0.5) -> Path:
    """Write the first `keep` fraction of `source`'s bytes to `target`."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def mask_png(path: Path, values: np.ndarray) -> Path:
    """An 8-bit greyscale PNG mask with exactly these values."""
    return save(path, values.astype(np.uint8), "PNG")


def water_mask(height: int, width: int, water_pixels: int, soft_pixels: int = 0) -> np.ndarray:
    """An anti-aliased mask: `water_pixels` at 255 and 200 (> 127), then `soft_pixels` edge values <= 127, rest 0."""
    flat = np.zeros(height * width, np.uint8)
    flat[:water_pixels] = 255
    flat[: water_pixels // 2] = 200
    flat[water_pixels: water_pixels + soft_pixels] = np.resize(np.array([127, 64, 1], np.uint8), soft_pixels)
    return flat.reshape(height, width)


def make_dataset(root: Path, images: dict[str, tuple[int, int]], masks: dict[str, tuple[int, int]],
                 image_dir: str = "Image", mask_dir: str = "Mask", image_ext: str = ".jpg",
                 metadata: bool = False) -> Path:
    """A dataset folder: images {stem: (width, height)} as JPEG, masks {stem: (width, height)} as PNG (half water)."""
    for stem, (w, h) in images.items():
        save(root / image_dir / f"{stem}{image_ext}", np.full((h, w, 3), 90, np.uint8), "JPEG")
    for stem, (w, h) in masks.items():
        m = np.zeros((h, w), np.uint8)
        m[: h // 2] = 255
        mask_png(root / mask_dir / f"{stem}.png", m)
    if metadata:
        rows = ["Image,Mask"] + [f"{s}.jpg,{s}.png" for s in masks]
        (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root
