"""Open a folder of flood photos and (optionally) their masks, paired by file stem.

Layouts understood (folder and extension names are case-insensitive):
- Kaggle "Flood Area Segmentation": ROOT/Image/*.jpg, ROOT/Mask/*.png, optional ROOT/metadata.csv (Image,Mask).
- ROOT/images/ (or img, imgs) with an optional ROOT/masks/ (or mask, labels, label, gt).
- A flat folder of images, optionally with one of the mask folder names inside it.
- Explicit folders: open_dataset(image_dir=..., mask_dir=...).

Every format Pillow can open is listed (JPEG, PNG, WEBP, TIFF, BMP, GIF, ...; multi-frame files are read as their
first frame); other files in the image and mask folders are listed as `not_images`; hidden files (".name") are
ignored. Opening a dataset only lists folders: nothing is decoded. Image sizes (for size mismatches) are read lazily from
file headers. Pairs whose image and mask sizes differ are listed, never resized.

Symbolic links to files are images like any other, wherever they point (photos are often linked in); paths keep the
link's name (DATA/Image/p.jpg, not its target; the project store keys them so, without following the link). A link
that loops or points to nothing is listed under its image extension like an unreadable file (reading it raises
ImageReadError saying why), and never wins a stem clash against a real file.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from PIL import Image

from floodlabel.core.common.errors import DatasetError, ImageReadError
from floodlabel.core.data.images import image_size, link_problem

PREFERRED_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")
"""The usual photo and mask extensions, in the order that wins a stem clash (5.jpg over 5.png)."""

# Pillow plugins that only identify a format (decoding needs an external handler or program): not listed.
_UNDECODABLE_FORMATS = {"EPS", "BUFR", "GRIB", "HDF5", "WMF", "MPEG"}


def _pillow_extensions() -> tuple[str, ...]:
    formats = Image.registered_extensions()  # imports Pillow's plugins (~0.1 s, once)
    others = sorted(ext for ext, fmt in formats.items()
                    if fmt in Image.OPEN and fmt not in _UNDECODABLE_FORMATS and ext not in PREFERRED_EXTENSIONS)
    return PREFERRED_EXTENSIONS + tuple(others)


IMAGE_EXTENSIONS = _pillow_extensions()
"""File extensions taken as images or masks (lower case; matched case-insensitively): PREFERRED_EXTENSIONS first,
then every other extension of a format Pillow can open. Earlier wins a stem clash."""

IMAGE_DIR_NAMES = ("image", "images", "img", "imgs")
MASK_DIR_NAMES = ("mask", "masks", "label", "labels", "gt")
METADATA_NAME = "metadata.csv"


@dataclass(frozen=True)
class ImagePair:
    """One photo and its ground-truth mask (None when the mask is missing). Paths are absolute."""

    stem: str
    image: Path
    mask: Path | None


@dataclass(frozen=True)
class SizeMismatch:
    """A pair whose image and mask differ in size; sizes are (width, height) after EXIF orientation."""

    stem: str
    image_size: tuple[int, int]
    mask_size: tuple[int, int]


@dataclass
class FloodDataset:
    """Images and masks of one dataset folder. Build it with `open_dataset`.

    pairs: every image, naturally sorted by stem ("2" before "10"), each with its mask or None.
    masks_without_images: mask files whose stem has no image, naturally sorted.
    duplicates: files skipped because another file in the same folder has the same stem (e.g. 5.jpg and 5.png).
    not_images: files in the image or mask folder whose extension is not an image format (e.g. notes.txt).
    metadata: (image file name, mask file name) rows of metadata.csv, or None when there is none.
    """

    root: Path
    image_dir: Path
    mask_dir: Path | None
    pairs: list[ImagePair]
    masks_without_images: list[Path]
    duplicates: list[Path] = field(default_factory=list)
    metadata: list[tuple[str, str]] | None = None
    not_images: list[Path] = field(default_factory=list)
    _sizes: dict[Path, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def complete_pairs(self) -> list[ImagePair]:
        """Pairs that have both an image and a mask."""
        return [p for p in self.pairs if p.mask is not None]

    @property
    def images_without_masks(self) -> list[Path]:
        """Images that have no mask (only meaningful when the dataset has a mask folder)."""
        return [p.image for p in self.pairs if p.mask is None]

    @property
    def masks(self) -> list[Path]:
        """Every mask file, paired or not, naturally sorted by stem."""
        return sorted([p.mask for p in self.pairs if p.mask is not None] + self.masks_without_images,
                      key=lambda path: natural_key(path.stem))

    def image_size(self, path: Path) -> tuple[int, int]:
        """(width, height) of an image or mask after EXIF orientation, from its header; cached. ImageReadError."""
        if path not in self._sizes:
            self._sizes[path] = image_size(path)
        return self._sizes[path]

    def size_known(self, path: Path) -> bool:
        """Whether `image_size(path)` is cached (no disk access)."""
        return path in self._sizes

    def remember_size(self, path: Path, size: tuple[int, int]) -> None:
        """Cache the (width, height) of `path` read elsewhere (the image list's header scan in a child process)."""
        self._sizes[path] = (int(size[0]), int(size[1]))

    @cached_property
    def size_mismatches(self) -> list[SizeMismatch]:
        """Complete pairs whose image and mask sizes differ (header reads on first access, then cached).

        Pairs with an unreadable header are left out here and listed in `unreadable`.
        """
        return self._check_sizes[0]

    @cached_property
    def unreadable(self) -> list[ImageReadError]:
        """Errors for files of complete pairs whose header could not be read while checking sizes."""
        return self._check_sizes[1]

    @cached_property
    def _check_sizes(self) -> tuple[list[SizeMismatch], list[ImageReadError]]:
        mismatches: list[SizeMismatch] = []
        errors: list[ImageReadError] = []
        for pair in self.complete_pairs:
            assert pair.mask is not None
            sizes = []
            for path in (pair.image, pair.mask):
                try:
                    sizes.append(self.image_size(path))
                except ImageReadError as exc:
                    errors.append(exc)
            if len(sizes) == 2 and sizes[0] != sizes[1]:
                mismatches.append(SizeMismatch(pair.stem, sizes[0], sizes[1]))
        return mismatches, errors

    def metadata_problems(self) -> list[str]:
        """Where metadata.csv disagrees with the files: rows pairing different stems, rows naming two absent files,
        files not listed. (A row naming one absent file is already reported as an image or mask without partner.)
        Empty when there is no metadata."""
        if self.metadata is None:
            return []
        image_names = {p.image.name for p in self.pairs}
        mask_names = {m.name for m in self.masks}
        problems, listed = [], set()
        for image_name, mask_name in self.metadata:
            image_name, mask_name = Path(image_name).name, Path(mask_name).name
            listed |= {image_name, mask_name}
            if Path(image_name).stem != Path(mask_name).stem:
                problems.append(f"row {image_name},{mask_name} pairs different stems")
            if image_name not in image_names and mask_name not in mask_names:
                problems.append(f"row {image_name},{mask_name}: neither file exists")
        unlisted = sorted((image_names | mask_names) - listed, key=lambda n: natural_key(Path(n).stem))
        problems += [f"{name} is not listed" for name in unlisted]
        return problems


def open_dataset(root: str | os.PathLike[str] | None = None, *, image_dir: str | os.PathLike[str] | None = None,
                 mask_dir: str | os.PathLike[str] | None = None) -> FloodDataset:
    """List a dataset folder (layouts in the module docstring); decodes nothing. Raises DatasetError.

    With image_dir (and optionally mask_dir) the folders are taken as given and root defaults to image_dir's parent.
    """
    if image_dir is None and root is None:
        raise DatasetError("no dataset folder given")
    if image_dir is not None:
        images_at = _existing_dir(image_dir, "image folder")
        masks_at = _existing_dir(mask_dir, "mask folder") if mask_dir is not None else None
        root_at = _existing_dir(root, "dataset folder") if root is not None else images_at.parent
    else:
        assert root is not None
        root_at = _existing_dir(root, "dataset folder")
        images_at = _find_subdir(root_at, IMAGE_DIR_NAMES) or root_at
        masks_at = (_existing_dir(mask_dir, "mask folder") if mask_dir is not None
                    else _find_subdir(root_at, MASK_DIR_NAMES))

    images, image_dups, image_others = _list_images(images_at)
    if not images:
        raise DatasetError(f"no images found in {images_at} (looked for {', '.join(PREFERRED_EXTENSIONS)} "
                           "and the other formats Pillow reads)")
    masks, mask_dups, mask_others = _list_images(masks_at) if masks_at is not None else ({}, [], [])

    pairs = [ImagePair(stem, images[stem], masks.get(stem)) for stem in _natural_sorted(images)]
    orphans = [masks[stem] for stem in _natural_sorted(masks) if stem not in images]
    metadata_path = _find_file(root_at, METADATA_NAME)
    not_images = [p for p in image_others + mask_others if p != metadata_path]  # a flat folder holds metadata.csv
    return FloodDataset(root=root_at, image_dir=images_at, mask_dir=masks_at, pairs=pairs,
                        masks_without_images=orphans, duplicates=image_dups + mask_dups,
                        metadata=_read_metadata(metadata_path) if metadata_path else None,
                        not_images=sorted(not_images))


def natural_key(stem: str) -> tuple:
    """Sort key: digit runs compare as numbers ("2" < "10" < "1000"), the rest case-insensitively."""
    parts = re.split(r"(\d+)", stem)
    return tuple((int(p) if i % 2 else p.casefold()) for i, p in enumerate(parts)), stem


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _existing_dir(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        if p.is_symlink():
            raise DatasetError(f"{what} {p} is a symbolic link {link_problem(p)}")
        raise DatasetError(f"{what} {p} does not exist")
    if not p.is_dir():
        raise DatasetError(f"{what} {p} is not a folder")
    return p.resolve()


def _children(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return [e for e in entries if not e.name.startswith(".")]
    except OSError as exc:
        raise DatasetError(f"cannot list {folder}: {exc.strerror or exc}") from exc


def _find_subdir(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first child folder whose lower-cased name is in `names` (in the order of `names`)."""
    found = {e.name.casefold(): Path(e.path) for e in _children(root) if _is(e.is_dir)}
    return next((found[n] for n in names if n in found), None)


def _find_file(root: Path, name: str) -> Path | None:
    return next((Path(e.path) for e in _children(root) if e.name.casefold() == name and _is(e.is_file)), None)


def _list_images(folder: Path) -> tuple[dict[str, Path], list[Path], list[Path]]:
    """{stem: path} of the image files directly in `folder`, files skipped as same-stem duplicates, and the other
    (non-hidden) files. Links to files count as files; broken links (looping, or to nothing) with an image
    extension are listed as images (reading them says why they fail) but lose any stem clash."""
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    by_stem: dict[str, list[tuple[bool, Path]]] = {}
    others: list[Path] = []
    for entry in _children(folder):
        path = Path(entry.path)
        broken = False
        if not _is(entry.is_file):
            broken = _is(entry.is_symlink) and not _is(entry.is_dir)
            if not broken:
                continue  # a folder, or a link to one
        if path.suffix.casefold() in rank:
            by_stem.setdefault(path.stem, []).append((broken, path))
        elif not broken:
            others.append(path)
    chosen, skipped = {}, []
    for stem, found in by_stem.items():
        found.sort(key=lambda bp: (bp[0], rank[bp[1].suffix.casefold()], bp[1].name))
        chosen[stem] = found[0][1]
        skipped += [p for _, p in found[1:]]
    return chosen, sorted(skipped), others


def _is(test: Callable[[], bool]) -> bool:
    """A DirEntry test (is_file, is_dir, is_symlink) where an error (a link loop: ELOOP) means False."""
    try:
        return test()
    except OSError:
        return False


def _natural_sorted(stems: dict[str, Path]) -> list[str]:
    return sorted(stems, key=natural_key)


def _read_metadata(path: Path) -> list[tuple[str, str]] | None:
    """(Image, Mask) rows of a metadata.csv; None when it has no Image and Mask columns or cannot be read."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = {name.strip().casefold(): name for name in (reader.fieldnames or [])}
            if "image" not in columns or "mask" not in columns:
                return None
            return [(row[columns["image"]].strip(), (row[columns["mask"]] or "").strip())
                    for row in reader if row.get(columns["image"])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
