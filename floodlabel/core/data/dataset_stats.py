"""Dataset statistics: pairing problems, image sizes and water ratios, as a table or as JSON.

Water ratios are computed over *every readable mask*, whether or not its photo is present or has the same size:
a mask's water fraction describes the annotation alone (the data's SOURCE.md computes them the same way).
A pixel is water when mask > 127, or 1 in a 0/1 label mask (see images.read_mask); 0/1 masks are counted apart, and
masks whose values do not say which is water (e.g. {0, 1, 2}) are listed as ambiguous. Two averages are given:
- mean of per-mask fractions (each mask weighs the same);
- pooled over all pixels (total water pixels / total mask pixels; large masks weigh more).
Image sizes (unique sizes, width and height ranges) are over the photos present, after EXIF orientation.

By default every image and mask is fully decoded (as the window and `eval` will decode them), so truncated or
corrupt files are listed as unreadable with their reason, and the decoded masks give the water ratios.
`decode=False` (`stats --quick`) reads file headers only: sizes and pairing problems, no water ratio; a truncated
file can pass. Images over the pixel limit (images.MAX_IMAGE_PIXELS) are never decoded: they are unreadable with the
reason in both modes (their header size still counts in --quick's size ranges). Maps are the exception: a
georeferenced TIFF over the limit is checked by a decimated read (MAP_CHECK_SIDE, as the window opens it through its
view), and its paired mask may be as large as the map (`images.mask_pixel_limit`; a 12,000 x 9,000 mask decodes in
about 0.2 GB, at most MASK_READ_THREADS at once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from floodlabel.core.data.datasets import FloodDataset, SizeMismatch
from floodlabel.core.common.errors import AmbiguousMaskError, ImageReadError
from floodlabel.core.data.images import (MASK_LABELS_01, file_pixel_limit_problem, mask_pixel_limit,
                                         pixel_limit_problem, read_image, read_mask_reading)
from floodlabel.core.geo.georef import geotiff_info

T = TypeVar("T")
Progress = Callable[[Iterable[T], int, str], Iterable[T]]
"""progress(items, total, description) -> the same items, e.g. wrapped in a tqdm bar."""

WATER_SCOPE = "all readable masks"
MAP_CHECK_SIDE = 512
MASK_READ_THREADS = 2  # Pillow releases the GIL while decoding PNGs and JPEGs


@dataclass
class DatasetStats:
    """What `floodlabel stats` reports. Sizes are (width, height); ratios are fractions in [0, 1]."""

    root: str
    image_dir: str
    mask_dir: str | None
    images: int
    masks: int
    pairs: int
    images_without_masks: list[str]
    masks_without_images: list[str]
    size_mismatches: list[SizeMismatch]
    unreadable: list[tuple[str, str]]
    ambiguous_masks: list[tuple[str, str]] = field(default_factory=list)
    masks_0_1: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    not_images: list[str] = field(default_factory=list)
    metadata_rows: int | None = None
    metadata_problems: list[str] = field(default_factory=list)
    unique_image_sizes: int = 0
    width_range: tuple[int, int] | None = None
    height_range: tuple[int, int] | None = None
    decoded: bool = True
    """False for a header-only (--quick) run: files were not decoded, no water ratio."""
    water_scope: str = WATER_SCOPE
    masks_measured: int = 0
    water_ratio_mean: float | None = None
    water_ratio_pooled: float | None = None
    water_ratio_min: float | None = None
    water_ratio_median: float | None = None
    water_ratio_max: float | None = None
    image_sizes: list[tuple[int, int]] = field(default_factory=list, repr=False)
    """(width, height) of every readable photo, in dataset order (for plots; left out of to_json)."""
    water_ratios: list[float] = field(default_factory=list, repr=False)
    """Water fraction of every readable mask, in `dataset.masks` order (for plots; left out of to_json)."""

    @property
    def problem_count(self) -> int:
        return (len(self.images_without_masks) + len(self.masks_without_images) + len(self.size_mismatches)
                + len(self.unreadable) + len(self.ambiguous_masks) + len(self.duplicates) + len(self.not_images)
                + len(self.metadata_problems))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (size mismatches as {"stem", "image_size", "mask_size"})."""
        out = asdict(self)
        del out["image_sizes"], out["water_ratios"]
        out["problem_count"] = self.problem_count
        out["unreadable"] = [{"path": p, "reason": r} for p, r in self.unreadable]
        out["ambiguous_masks"] = [{"path": p, "reason": r} for p, r in self.ambiguous_masks]
        return out


def compute_stats(dataset: FloodDataset, progress: Progress | None = None, decode: bool = True) -> DatasetStats:
    """Decode every image and mask of `dataset` (decode=False: read their headers only); unreadable files become
    problems with their reason."""
    unreadable: dict[str, str] = {}
    ambiguous: dict[str, str] = {}
    masks_0_1: list[str] = []
    masks = dataset.masks
    sizes: list[tuple[int, int]] = []
    fractions, water_pixels, total_pixels = [], 0, 0

    if not decode:
        for pair in _wrap(progress, dataset.pairs, "image headers"):
            try:
                sizes.append(dataset.image_size(pair.image))
            except ImageReadError as exc:
                unreadable[exc.path] = exc.reason
        for path in _wrap(progress, dataset.masks_without_images, "mask headers"):
            try:
                dataset.image_size(path)  # paired masks' headers are read by size_mismatches below
            except ImageReadError as exc:
                unreadable[exc.path] = exc.reason
    else:
        images = [p.image for p in dataset.pairs]
        with ThreadPoolExecutor(MASK_READ_THREADS) as pool:
            for path, result in _wrap(progress, zip(images, pool.map(_decode_image, images)), "images",
                                      len(images)):
                if isinstance(result, ImageReadError):
                    unreadable[str(path)] = result.reason
                    continue
                sizes.append(result)
                dataset._sizes[path] = result  # the decoded size: size_mismatches below reads no header again
            limits = {pair.mask: mask_pixel_limit(pair.image) for pair in dataset.complete_pairs}
            counts = pool.map(lambda mask: _count_water(mask, limits.get(mask)), masks)
            for path, result in _wrap(progress, zip(masks, counts), "masks", len(masks)):
                if isinstance(result, AmbiguousMaskError):
                    ambiguous[str(path)] = result.reason
                    continue
                if isinstance(result, ImageReadError):
                    unreadable[str(path)] = result.reason
                    continue
                water, total, encoding, size = result
                dataset._sizes[path] = size
                if encoding == MASK_LABELS_01:
                    masks_0_1.append(path.stem)
                fractions.append(water / total)
                water_pixels += water
                total_pixels += total
    for exc in dataset.unreadable:  # headers that size_mismatches could not read (files not listed above)
        unreadable.setdefault(exc.path, exc.reason)
    if not decode:  # what decoding would refuse, from the headers read above
        for path, size in dataset._sizes.items():
            too_large = file_pixel_limit_problem(path, size)
            if too_large:
                unreadable.setdefault(str(path), too_large)

    stats = DatasetStats(
        root=str(dataset.root),
        image_dir=str(dataset.image_dir),
        mask_dir=str(dataset.mask_dir) if dataset.mask_dir else None,
        images=len(dataset.pairs),
        masks=len(masks),
        pairs=len(dataset.complete_pairs),
        images_without_masks=[p.stem for p in dataset.images_without_masks] if dataset.mask_dir else [],
        masks_without_images=[p.stem for p in dataset.masks_without_images],
        size_mismatches=list(dataset.size_mismatches),
        unreadable=sorted(unreadable.items()),
        ambiguous_masks=sorted(ambiguous.items()),
        masks_0_1=masks_0_1,
        duplicates=[str(p) for p in dataset.duplicates],
        not_images=[str(p) for p in dataset.not_images],
        metadata_rows=len(dataset.metadata) if dataset.metadata is not None else None,
        metadata_problems=dataset.metadata_problems(),
        unique_image_sizes=len(set(sizes)),
        decoded=decode,
        masks_measured=len(fractions),
        image_sizes=sizes,
        water_ratios=fractions,
    )
    if sizes:
        stats.width_range = (min(w for w, _ in sizes), max(w for w, _ in sizes))
        stats.height_range = (min(h for _, h in sizes), max(h for _, h in sizes))
    if fractions:
        stats.water_ratio_mean = float(np.mean(fractions))
        stats.water_ratio_pooled = water_pixels / total_pixels
        stats.water_ratio_min = float(np.min(fractions))
        stats.water_ratio_median = float(np.median(fractions))
        stats.water_ratio_max = float(np.max(fractions))
    return stats


def format_stats(stats: DatasetStats) -> str:
    """A plain-text table of `stats` for people."""
    lines = [
        f"Dataset       {stats.root}",
        f"  images      {stats.images:>6}   in {stats.image_dir}",
        f"  masks       {stats.masks:>6}   in {stats.mask_dir or '(no mask folder)'}",
        f"  pairs       {stats.pairs:>6}   (image + mask)",
    ]
    if stats.metadata_rows is not None:
        lines.append(f"  metadata    {stats.metadata_rows:>6}   rows in metadata.csv")
    lines += ["", f"Problems      {stats.problem_count:>6}"]
    lines += _listed("images without masks", stats.images_without_masks)
    lines += _listed("masks without images", stats.masks_without_images)
    lines.append(f"  size mismatches          {len(stats.size_mismatches):>4}")
    for m in stats.size_mismatches:
        lines.append(f"    {m.stem:<12} image {_size(m.image_size):>11}   mask {_size(m.mask_size):>11}")
    lines.append(f"  unreadable files         {len(stats.unreadable):>4}")
    lines += [f"    {path}: {reason}" for path, reason in stats.unreadable]
    if stats.ambiguous_masks:
        lines.append(f"  ambiguous masks          {len(stats.ambiguous_masks):>4}")
        lines += [f"    {path}: {reason}" for path, reason in stats.ambiguous_masks]
    if stats.duplicates:
        lines += _listed("same-stem files skipped", stats.duplicates)
    if stats.not_images:
        lines += _listed("not an image", [Path(p).name for p in stats.not_images])
    if stats.metadata_problems:
        lines.append(f"  metadata.csv problems    {len(stats.metadata_problems):>4}")
        lines += [f"    {p}" for p in stats.metadata_problems]

    lines += ["", "Image sizes (width x height, after EXIF orientation)",
              f"  unique sizes   {stats.unique_image_sizes}"]
    if stats.width_range and stats.height_range:
        lines += [f"  width          {stats.width_range[0]} - {stats.width_range[1]} px",
                  f"  height         {stats.height_range[0]} - {stats.height_range[1]} px"]

    if not stats.decoded:
        lines += ["", "Water ratio: not measured (--quick reads file headers only; truncated files can pass)"]
        return "\n".join(lines)
    lines += ["", f"Water ratio (mask > 127, over {WATER_SCOPE}: {stats.masks_measured})"]
    if stats.masks_0_1:
        lines += _listed("0/1 masks (1 = water)", stats.masks_0_1)
    if stats.water_ratio_mean is None:
        lines.append("  no masks to measure")
    else:
        lines += [
            f"  mean of per-mask ratios   {_pct(stats.water_ratio_mean)}",
            f"  pooled over all pixels    {_pct(stats.water_ratio_pooled)}",
            f"  per mask min / median / max   {_pct(stats.water_ratio_min)} / {_pct(stats.water_ratio_median)}"
            f" / {_pct(stats.water_ratio_max)}",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _decode_image(path: Path) -> tuple[int, int] | ImageReadError:
    """(width, height) of a fully decoded photo, or the error (returned, so one bad file doesn't stop the pool). A
    map over the pixel limit is read decimated (MAP_CHECK_SIDE) instead."""
    geo = geotiff_info(path)
    if geo is not None and pixel_limit_problem((geo.width, geo.height)):
        from floodlabel.core.geo.raster import MapReadError, read_map

        try:
            read_map(path, max_side=MAP_CHECK_SIDE)
        except (MapReadError, MemoryError) as exc:
            return ImageReadError(path, str(exc).removeprefix(f"{path}: "))
        return geo.width, geo.height
    try:
        rgb = read_image(path)
    except ImageReadError as exc:
        return exc
    return rgb.shape[1], rgb.shape[0]


def _count_water(path: Path, limit: int | None = None) -> tuple[int, int, str, tuple[int, int]] | ImageReadError:
    """(water pixels, all pixels, encoding, (width, height)) of one mask (at most `limit` pixels, default the
    pixel limit), or the error (returned, so one bad file doesn't stop the pool)."""
    try:
        reading = read_mask_reading(path, max_pixels=limit)
    except ImageReadError as exc:
        return exc
    water = reading.water
    return int(np.count_nonzero(water)), int(water.size), reading.encoding, (water.shape[1], water.shape[0])


def _wrap(progress: Progress | None, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if total is None:
        items = list(items)
        total = len(items)
    yield from (progress(items, total, description) if progress else items)


def _listed(label: str, names: list[str], shown: int = 20) -> list[str]:
    line = f"  {label:<24} {len(names):>4}"
    if names:
        line += ":  " + ", ".join(names[:shown]) + (f", ... ({len(names) - shown} more)" if len(names) > shown else "")
    return [line]


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:6.2f}%"
