"""One dataset image made ready for annotation: the photo, its ground truth (when usable) and its cache key.

Qt-free; the window loads items in a worker thread with `load_image_item`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from floodlabel.core.data.datasets import ImagePair
from floodlabel.core.common.hashing import image_key
from floodlabel.core.common.errors import ImageReadError
from floodlabel.core.data.images import read_geotiff, read_image, read_mask
from floodlabel.core.geo.georef import GeoInfo, geotiff_info


@dataclass(frozen=True)
class ImageItem:
    """image: (H, W, 3) uint8 RGB, original frame. gt: (H, W) bool (True = water) or None.

    key: the image's content hash (`hashing.image_key`), the embedding cache key.
    gt_problem: why there is no usable GT ("no GT mask", "mask is 700x389 but the image is 660x440", ...),
    None when gt is set.
    """

    path: Path
    image: np.ndarray
    gt: np.ndarray | None
    key: str
    gt_problem: str | None
    geo: GeoInfo | None = None
    """The GeoTIFF's georeferencing (CRS, transform: `core.geo.area.mask_area(mask, geo)` gives m² / ha), None for
    plain photos."""
    valid: np.ndarray | None = None
    """(H, W) bool, False where a GeoTIFF has no data (nodata / alpha / internal mask); None for plain photos."""

    @property
    def original_size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return int(self.image.shape[0]), int(self.image.shape[1])


def load_image_item(pair: ImagePair) -> ImageItem:
    """Decode the photo (ImageReadError when it cannot be read) and its mask (a GT problem is not an error)."""
    geo = geotiff_info(pair.image)
    valid = None
    if geo is not None:
        map_image = read_geotiff(pair.image, geo)
        image, valid = map_image.rgb, map_image.valid
    else:
        image = read_image(pair.image)
    gt: np.ndarray | None = None
    problem: str | None = "no ground-truth mask"
    if pair.mask is not None:
        try:
            gt = read_mask(pair.mask, size=(image.shape[1], image.shape[0]))
            problem = None
        except ImageReadError as exc:
            problem = exc.reason
    return ImageItem(Path(pair.image), image, gt, image_key(image), problem, geo, valid)
