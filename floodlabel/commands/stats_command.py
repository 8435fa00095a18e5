"""`floodlabel stats DIR [--json] [--quick]`: pairing problems, unreadable files, image sizes and water ratios of a
dataset folder, and the water area in m² / ha of the masks of GeoTIFF images (JSON: "water_area")."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

from floodlabel.core.data.dataset_stats import compute_stats, format_stats
from floodlabel.core.data.datasets import open_dataset

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats", help="dataset statistics",
        description="Pair images and masks by stem; decode every image and mask and list problems (missing images "
                    "or masks, size mismatches, unreadable files with the reason, ambiguous masks); report image "
                    "sizes and the water ratio (mask > 127, or 1 in 0/1 label masks) over all masks.")
    parser.add_argument("directory", metavar="DIR",
                        help="dataset folder (Kaggle Image/ + Mask/, images/ + masks/, or a folder of images)")
    parser.add_argument("--images", metavar="IMAGE_DIR", help="image folder, if not found inside DIR")
    parser.add_argument("--masks", metavar="MASK_DIR", help="mask folder, if not found inside DIR")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--quick", action="store_true",
                        help="read file headers only (fast; no water ratio, and truncated files can pass)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.directory, image_dir=args.images, mask_dir=args.masks)
    stats = compute_stats(dataset, progress=_progress_bar, decode=not args.quick)
    areas = None if args.quick else water_areas(dataset)
    if args.json:
        out = stats.to_json()
        if areas is not None:
            out["water_area"] = areas
        print(json.dumps(out, indent=2))
    else:
        print(format_stats(stats))
        if areas is not None and (areas["images"] or areas["images_without_crs"]):
            print(format_areas(areas))
    return 0


def water_areas(dataset) -> dict:
    """The ground area of the masks of georeferenced (GeoTIFF) images: {"images": [{"image", "pixels", "m2", "ha",
    "crs", "method"}], "total_m2", "total_ha", "images_without_crs": how many paired images have no CRS (their water
    is in pixels only: the water ratio)}. Masks that cannot be read are left out (stats lists them)."""
    from floodlabel.core.common.errors import ImageReadError
    from floodlabel.core.data.images import read_mask
    from floodlabel.core.geo.area import mask_area
    from floodlabel.core.geo.georef import geotiff_info

    rows, without = [], 0
    for pair in dataset.complete_pairs:
        geo = geotiff_info(pair.image)
        if geo is None:
            without += 1
            continue
        try:
            mask = read_mask(pair.mask, size=(geo.width, geo.height), max_pixels=geo.width * geo.height)
        except ImageReadError:
            continue
        rows.append({"image": pair.image.name, **mask_area(mask, geo).to_json()})
    total = sum(r["m2"] for r in rows)
    return {"images": rows, "total_m2": total, "total_ha": total / 10_000, "images_without_crs": without}


def format_areas(areas: dict) -> str:
    lines = ["Water area (masks of GeoTIFF images):"]
    for row in areas["images"]:
        lines.append(f"  {row['image']}: {row['ha']:.4f} ha ({row['m2']:,.1f} m², {row['crs']}, {row['method']})")
    if areas["images"]:
        lines.append(f"  total: {areas['total_ha']:.4f} ha ({areas['total_m2']:,.1f} m²)")
    if areas["images_without_crs"]:
        lines.append(f"  {areas['images_without_crs']} paired image(s) have no CRS: their water is in pixels only "
                     "(the water ratio above)")
    return "\n".join(lines)


def _progress_bar(items: Iterable[T], total: int, description: str) -> Iterable[T]:
    """A tqdm bar on stderr, shown only when stderr is a terminal."""
    return tqdm(items, total=total, desc=description, unit="file", file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty())
