"""Accepted masks on disk: PNG, 8-bit greyscale, 0 = background, 255 = water, at the image's native size;
encoding, reading and deleting them (a mask with its sidecar)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from floodlabel.core.common.atomic_files import describe_os_error
from floodlabel.core.common.errors import StoreError
from floodlabel.core.common.hashing import sha256_bytes
from floodlabel.core.store.mask_sidecar import sidecar_path


def encode_mask_png(mask: np.ndarray) -> bytes:
    """An (H, W) bool mask as PNG bytes: 8-bit greyscale, 0 = background, 255 = water."""
    import cv2

    pixels = np.ascontiguousarray(mask, dtype=bool).view(np.uint8) * np.uint8(255)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # no per-row filter search: 3.5x faster on masks, and smaller (OpenCV 4.11+)
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    ok, data = cv2.imencode(".png", pixels, params)
    if not ok:  # pragma: no cover - cv2 fails only on absurd sizes
        raise StoreError(f"cannot encode a {mask.shape[1]}x{mask.shape[0]} mask as PNG")
    return data.tobytes()


def read_mask_png(path: Path, rel_path: str, sha256: str | None = None) -> np.ndarray:
    """Read a stored mask PNG as (H, W) bool; StoreError when it is missing, damaged or not the one stored."""
    return decode_mask_png(read_mask_bytes(path, rel_path, sha256), path, rel_path)


def read_mask_bytes(path: Path, rel_path: str, sha256: str | None = None) -> bytes:
    """A stored mask PNG's bytes, checked against its SHA-256; StoreError when missing, unreadable or changed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StoreError(f"the accepted mask of {rel_path} ({path}) is missing: it was deleted outside FloodLabel; "
                         "accept the image again to restore it") from None
    except OSError as exc:
        raise StoreError(f"cannot read the accepted mask of {rel_path} ({path}): {describe_os_error(exc)}") from exc
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise StoreError(f"the accepted mask of {rel_path} ({path}) was changed or damaged outside FloodLabel; "
                         "accept the image again to restore it")
    return data


def decode_mask_png(data: bytes, path: Path, rel_path: str) -> np.ndarray:
    """PNG bytes of a stored mask -> (H, W) bool (pixels > 127). StoreError when not a single-channel PNG."""
    import cv2

    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.ndim != 2:
        raise StoreError(f"the accepted mask of {rel_path} ({path}) is not a single-channel PNG")
    return pixels > 127


def remove_mask_files(png: Path) -> None:
    """Delete a stored mask PNG and its sidecar; a file already gone (or that cannot be deleted) is left as is."""
    remove_quietly(png)
    remove_quietly(sidecar_path(png))


def remove_quietly(path: Path) -> None:
    """Delete a file, ignoring every OSError (it is gone, or a later open removes it)."""
    try:
        path.unlink()
    except OSError:
        pass
