"""Write a huge, mostly flat RGB PNG without holding it in memory (rows are streamed through zlib)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def write_flat_png(path: Path, width: int, height: int, bands: int = 8) -> Path:
    """A width x height RGB PNG: `bands` horizontal bands of flat colour (a few MB on disk even at 30000 x 30000)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colours = [bytes(((40 + 29 * i) % 256, (90 + 53 * i) % 256, (160 + 71 * i) % 256)) for i in range(bands)]
    rows = [b"\x00" + colour * width for colour in colours]  # filter type 0 (None) + the row's pixels
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        _chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        z = zlib.compressobj(6)
        pending = bytearray()
        for y in range(height):
            pending += z.compress(rows[min(bands - 1, y * bands // height)])
            if len(pending) > 1 << 20:
                _chunk(f, b"IDAT", bytes(pending))
                pending.clear()
        pending += z.flush()
        _chunk(f, b"IDAT", bytes(pending))
        _chunk(f, b"IEND", b"")
    return path


def _chunk(f, kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
