"""No-data pixels of a map drawn as no-data: a grey checkerboard where `ImageItem.valid` is False.

The model sees those pixels black (`core.geo.raster`); the canvas shows this copy instead, so an edge of nodata is
not mistaken for dark water. Photos (valid None) and maps without no-data are shown as they are (no copy).
"""

from __future__ import annotations

import numpy as np

CHECK_PX = 8
"""Side of one checkerboard square in displayed image pixels."""
NODATA_RGB = ((70, 70, 70), (110, 110, 110))


def display_image(image: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """(h, w, 3) uint8 `image` with the pixels where `valid` ((h, w) bool) is False drawn as a checkerboard;
    `image` itself when every pixel is valid (or `valid` is None or of another size)."""
    if valid is None or valid.shape != image.shape[:2] or valid.all():
        return image
    h, w = valid.shape
    rows = (np.arange(h) // CHECK_PX)[:, None]
    cols = (np.arange(w) // CHECK_PX)[None, :]
    dark = ((rows + cols) % 2 == 0)
    shown = image.copy()
    nodata = ~valid
    shown[nodata & dark] = NODATA_RGB[0]
    shown[nodata & ~dark] = NODATA_RGB[1]
    return shown
