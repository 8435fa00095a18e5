"""The dataset's image files as the store sees them: an image's key (its path inside DATA, `relative_image_path`),
the SHA-256 of its bytes (cached per file version), whether it changed since a row was written, and a mask's check
against the image's size. Reads the files only; never writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from floodlabel.core.common.atomic_files import describe_os_error
from floodlabel.core.common.errors import ImageReadError, StoreError
from floodlabel.core.common.hashing import sha256_file
from floodlabel.core.data.images import image_size


class ImageFiles:
    """The images of one dataset folder (data_root: DATA, resolved). Keys are POSIX paths relative to DATA."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root
        self._hashes: dict[tuple, str] = {}

    def rel(self, rel_path: str | os.PathLike[str]) -> str:
        """The store's key of an image given by its path relative to DATA (or absolute, inside DATA); StoreError."""
        path = Path(rel_path)
        if path.is_absolute():
            path = Path(relative_image_path(path, self.data_root))
        if ".." in path.parts or not path.parts:
            raise StoreError(f"bad image path {str(rel_path)!r}: give a path inside the dataset folder")
        return path.as_posix()

    def path(self, rel_path: str | os.PathLike[str]) -> Path:
        return self.data_root / self.rel(rel_path)

    def hash(self, rel_path: str | os.PathLike[str]) -> str | None:
        """SHA-256 (hex) of the image file's bytes; None when it is missing. Cached per (size, mtime, inode)."""
        path = self.path(rel_path)
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in self._hashes:
            try:
                self._hashes[key] = sha256_file(path)
            except OSError:
                return None
        return self._hashes[key]

    def hash_and_stat(self, rel: str) -> tuple[str, os.stat_result]:
        """(SHA-256, stat) of an image about to be written to a row; StoreError when it cannot be read."""
        path = self.path(rel)
        try:
            st = path.stat()
        except OSError as exc:
            raise StoreError(f"cannot read the image {path}: {describe_os_error(exc)}") from exc
        image_hash = self.hash(rel)
        if image_hash is None:
            raise StoreError(f"cannot read the image {path}")
        return image_hash, st

    def current_hash(self, rel: str, stored_hash: str, size: int | None, mtime_ns: int | None,
                     recorded_at: float | None = None) -> str | None:
        """The image's hash now; trusts the stored hash while the file's size and mtime are those recorded and its
        inode did not change after `recorded_at` (the row's updated_at): a photo replaced by another of the same
        size with its mtime kept (cp -p, rsync -t, os.utime) gets a new ctime and is hashed again."""
        path = self.path(rel)
        try:
            st = path.stat()
        except OSError:
            return None
        unchanged_since = recorded_at is None or st.st_ctime_ns <= int(recorded_at * 1e9)
        if size == st.st_size and mtime_ns == st.st_mtime_ns and unchanged_since:
            return stored_hash
        return self.hash(rel)

    def checked_mask(self, rel: str, mask: np.ndarray, what: str) -> tuple[np.ndarray, int, int]:
        """(mask as (H, W) bool, W, H) when it is 2-D and of the image's size after EXIF orientation; StoreError
        naming `what` (the write: "accept", "propose") otherwise."""
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise StoreError(f"a mask must be a 2-D (height, width) array, got shape {mask.shape}")
        mask = mask if mask.dtype == bool else mask != 0
        try:
            width, height = image_size(self.path(rel))
        except ImageReadError as exc:
            raise StoreError(f"cannot {what} {rel}: {exc.reason}") from exc
        if mask.shape != (height, width):
            raise StoreError(f"cannot {what} {rel}: the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                             f"{width}x{height} (after EXIF orientation)")
        return mask, width, height


def relative_image_path(image_path: str | os.PathLike[str], data_root: str | os.PathLike[str]) -> str:
    """An image's key in the store: its path inside DATA, POSIX style. The file itself may be a link to a photo
    elsewhere (its name inside DATA counts, the link is not followed); folders on the way are resolved.
    StoreError when the path is not inside DATA."""
    path, root = os.path.abspath(image_path), os.path.abspath(data_root)
    prefix = root.rstrip(os.sep) + os.sep
    if path.startswith(prefix):  # the common case, without touching the disk (10,000 images: milliseconds)
        return Path(path[len(prefix):]).as_posix()
    linked = Path(path)
    try:
        return (linked.parent.resolve() / linked.name).relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        raise StoreError(f"{image_path} is not inside the dataset folder {data_root}") from None
