"""Image and mask sizes of a dataset's pairs from their file headers: the row-by-row rule, and a child process that
runs it so that a large folder's scan never competes with a window's UI thread for the GIL.

Why a process: the header read is Python (Pillow's parsers). In a thread beside a Qt window it holds the GIL, and
each of the list view's hundreds of Python `data()` calls per paint waited for it: a 28-row paint took ~90 ms and
the UI thread stalled up to 1.3 s during a 10,000-image scan (benchmarks/bench_open_folder.py).

Protocol of `python -m floodlabel.core.data.header_scan`: stdin one JSON list of [row, image path, mask path or
null]; stdout one JSON list per chunk of rows, each [row, [w, h] or null, [w, h] or null, error or null]; exit 0.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from floodlabel.core.common.errors import ImageReadError
from floodlabel.core.data.images import file_pixel_limit_problem, image_size

Size = tuple[int, int]
Row = tuple[int, "Size | None", "Size | None", "str | None"]

CHUNK = 64
"""Rows per chunk written by the child."""


def header_row(row: int, image: Path, mask: Path | None, size_of=image_size) -> Row:
    """(row, image (width, height) or None, mask size or None, the problem or None) of one pair.

    The problem is "unreadable: <why>" for an image whose header cannot be read or that is over the pixel limit
    (a georeferenced TIFF never is: it opens at a reduced level), else "unreadable mask: <why>". `size_of(path)` reads one header (a dataset's cached `image_size`).
    """
    image_sz = mask_sz = error = None
    try:
        image_sz = size_of(image)
        too_large = file_pixel_limit_problem(image, image_sz)
        error = f"unreadable: {too_large}" if too_large else None
    except ImageReadError as exc:
        error = f"unreadable: {exc.reason}"
    if mask is not None:
        try:
            mask_sz = size_of(mask)
        except ImageReadError as exc:
            error = error or f"unreadable mask: {exc.reason}"
    return row, image_sz, mask_sz, error


def scan(rows: Iterable[tuple[int, Path, Path | None]]) -> Iterator[Row]:
    """`header_row` of each (row, image, mask)."""
    for row, image, mask in rows:
        yield header_row(row, Path(image), None if mask is None else Path(mask))


def parse_chunk(line: str) -> list[Row]:
    """One stdout line of the child back into rows (sizes as tuples)."""
    return [(int(r), tuple(i) if i else None, tuple(m) if m else None, e) for r, i, m, e in json.loads(line)]


BACKGROUND_NICE = 10
"""The child lowers its own scheduling priority by this much: the window's UI thread comes first for the CPU."""


def main() -> int:
    try:
        os.nice(BACKGROUND_NICE)
    except (AttributeError, OSError):  # not on this OS, or not allowed: run at normal priority
        pass
    rows = [(int(r), Path(i), Path(m) if m else None) for r, i, m in json.load(sys.stdin)]
    chunk: list[Row] = []
    out = sys.stdout
    for result in scan(rows):
        chunk.append(result)
        if len(chunk) >= CHUNK:
            out.write(json.dumps(chunk) + "\n")
            out.flush()
            chunk = []
    if chunk:
        out.write(json.dumps(chunk) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
