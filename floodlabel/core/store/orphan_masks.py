"""Mask PNGs in a project's `masks/` folder that no database row points to, and what each one is.

The rule: a mask PNG is deleted only when a readable database row says it is superseded, that is, the row of the
same image holds a later accepted mask whose file exists. Every other unreferenced PNG is kept and listed:
- recoverable: its sidecar names an image with no accepted row, or one whose accepted row is older or points to a
  missing file (the database was damaged, emptied or moved away, or the process died between writing the mask
  and committing its row);
- no sidecar: made before sidecars existed (or its sidecar is gone); recovery matches it to an image by the stem in
  its name and its size;
- damaged: its bytes do not match the SHA-256 in its sidecar.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from floodlabel.core.common.hashing import sha256_file
from floodlabel.core.store.mask_sidecar import MaskSidecar, read_sidecar

MASK_NAME = re.compile(r"[A-Za-z0-9._-]+-[0-9a-f]{12}\.png")
"""Names the store gives accepted masks: `<safe image stem>-<12 hex>.png`."""


class OrphanKind(StrEnum):
    RECOVERABLE = "recoverable"
    SUPERSEDED = "superseded"
    NO_SIDECAR = "no sidecar"
    DAMAGED = "damaged"


@dataclass(frozen=True)
class RowInfo:
    """The part of an image's database row that decides about its orphans."""

    accepted: bool
    mask_file: str | None
    """File name inside masks/ (no folder), None when not accepted."""
    accepted_at: float | None
    mask_exists: bool


@dataclass(frozen=True)
class OrphanMask:
    """An unreferenced mask PNG. rel_path: the image it belongs to (from its sidecar), None without one."""

    png: Path
    kind: OrphanKind
    sidecar: MaskSidecar | None
    reason: str

    @property
    def rel_path(self) -> str | None:
        return self.sidecar.rel_path if self.sidecar else None


def find_orphans(masks_dir: Path, rows: dict[str, RowInfo]) -> list[OrphanMask]:
    """Every mask PNG in `masks_dir` that no row of `rows` ({relative image path: row}) points to, sorted by name."""
    referenced = {row.mask_file for row in rows.values() if row.mask_file}
    try:
        names = sorted(os.listdir(masks_dir))
    except OSError:
        return []
    orphans = []
    for name in names:
        if name in referenced or not MASK_NAME.fullmatch(name):
            continue
        png = masks_dir / name
        if not png.is_file() or png.is_symlink():
            continue
        orphans.append(classify(png, rows))
    return orphans


def classify(png: Path, rows: dict[str, RowInfo]) -> OrphanMask:
    """What an unreferenced mask PNG is (see the module docstring)."""
    sidecar = read_sidecar(png)
    if sidecar is None:
        return OrphanMask(png, OrphanKind.NO_SIDECAR, None, "no sidecar: matched to an image by name at recovery")
    try:
        digest = sha256_file(png)
    except OSError as exc:
        return OrphanMask(png, OrphanKind.DAMAGED, sidecar, f"cannot be read ({exc.strerror or exc})")
    if digest != sidecar.mask_sha256:
        return OrphanMask(png, OrphanKind.DAMAGED, sidecar, "its bytes differ from those its sidecar records")
    row = rows.get(sidecar.rel_path)
    if row is not None and row.accepted and row.mask_exists and (row.accepted_at or 0.0) >= sidecar.accepted_at:
        return OrphanMask(png, OrphanKind.SUPERSEDED, sidecar, "a later accepted mask of the image is stored")
    if row is None or not row.accepted:
        reason = f"the accepted mask of {sidecar.rel_path} is not in the project database"
    elif not row.mask_exists:
        reason = f"the database's mask of {sidecar.rel_path} is missing; this one can replace it"
    else:
        reason = f"a later accept of {sidecar.rel_path} than the database's"
    return OrphanMask(png, OrphanKind.RECOVERABLE, sidecar, reason)


def newest_per_image(orphans: list[OrphanMask]) -> dict[str, OrphanMask]:
    """{relative image path: its newest recoverable orphan}."""
    best: dict[str, OrphanMask] = {}
    for orphan in orphans:
        if orphan.kind is not OrphanKind.RECOVERABLE or orphan.sidecar is None:
            continue
        current = best.get(orphan.sidecar.rel_path)
        if current is None or current.sidecar is None or orphan.sidecar.accepted_at > current.sidecar.accepted_at:
            best[orphan.sidecar.rel_path] = orphan
    return best


def safe_stem(rel_path: str) -> str:
    """The image part of a mask's name: the image's stem with odd characters replaced, at most 60 characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(rel_path).stem)[:60] or "image"


def stem_of_mask_name(name: str) -> str:
    """`<safe stem>-<12 hex>.png` -> `<safe stem>`."""
    return name[:-len("-0123456789ab.png")]
