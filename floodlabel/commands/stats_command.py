"""`floodlabel stats DIR [--json] [--quick]`: pairing problems, unreadable files, image sizes and water ratios of a
dataset folder."""

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
    if args.json:
        print(json.dumps(stats.to_json(), indent=2))
    else:
        print(format_stats(stats))
    return 0


def _progress_bar(items: Iterable[T], total: int, description: str) -> Iterable[T]:
    """A tqdm bar on stderr, shown only when stderr is a terminal."""
    return tqdm(items, total=total, desc=description, unit="file", file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty())
