"""What the store does about mask PNGs no row points to (`orphan_masks` says what each one is).

At every open (`scan_masks`): list the orphans; when writable, first delete what a killed process left (temporary
files, sidecars without a mask) and the masks a readable row says are superseded. Nothing else is deleted.

At `ProjectStore.recover_orphans`: the row values that bring a recoverable mask back as it was at accept
(`restored_row`), and for masks made before sidecars, the image each one belongs to (`legacy_matches`, by the stem
in its name) and the sidecar it should have had (`legacy_sidecar`). Reading and writing the database is the
store's; these functions take its rows and return values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from floodlabel.core.common.atomic_files import remove_stale_temp_files
from floodlabel.core.common.errors import FloodLabelError
from floodlabel.core.common.hashing import sha256_bytes
from floodlabel.core.data.images import image_size
from floodlabel.core.store.location import MASKS_DIR_NAME
from floodlabel.core.store.mask_files import decode_mask_png, remove_mask_files, remove_quietly
from floodlabel.core.store.mask_sidecar import MaskSidecar
from floodlabel.core.store.orphan_masks import (MASK_NAME, OrphanKind, OrphanMask, RowInfo, find_orphans, safe_stem,
                                                stem_of_mask_name)
from floodlabel.core.store.records import Status, to_json

ROW_INFO_QUERY = "SELECT rel_path, status, mask_file, accepted_at FROM images"
"""The columns `row_infos` takes."""

CURRENT_ROW_QUERY = "SELECT state_json, updated_at, created_at FROM images WHERE rel_path = ?"
"""The columns of an image's row that `restored_row` keeps."""


def scan_masks(masks_dir: Path, rows: dict[str, RowInfo], *, read_only: bool) -> list[OrphanMask]:
    """The orphans to keep listing (every one but the superseded). When writable, first delete temporary files,
    sidecars without a mask, and then the superseded masks with their sidecars."""
    if not read_only:
        remove_stale_temp_files(masks_dir)
        _remove_lone_sidecars(masks_dir)
    orphans = find_orphans(masks_dir, rows)
    if not read_only:
        for orphan in orphans:
            if orphan.kind is OrphanKind.SUPERSEDED:
                remove_mask_files(orphan.png)
    return [o for o in orphans if o.kind is not OrphanKind.SUPERSEDED]


def row_infos(rows: Iterable[tuple], project_dir: Path) -> dict[str, RowInfo]:
    """{relative image path: RowInfo} from the rows of ROW_INFO_QUERY."""
    return {rel: RowInfo(accepted=status == str(Status.ACCEPTED), mask_file=Path(f).name if f else None,
                         accepted_at=at, mask_exists=bool(f) and (project_dir / f).is_file())
            for rel, status, f, at in rows}


def restored_row(sidecar: MaskSidecar, mask_name: str, current: tuple | None) -> tuple:
    """The values of `schema.INSERT_ROW` that make an image's row what it was when `sidecar` was written.
    current: the image's row now (CURRENT_ROW_QUERY), None without one; its newer in-progress state is kept."""
    state = to_json(sidecar.state, "annotation state")
    newer = current is not None and current[1] > sidecar.accepted_at and current[0] is not None
    state_json, updated_at = (current[0], current[1]) if newer else (state, sidecar.accepted_at)
    created_at = min(current[2], sidecar.accepted_at) if current is not None else sidecar.accepted_at
    return (sidecar.rel_path, str(Status.ACCEPTED), sidecar.image_hash, sidecar.image_bytes, sidecar.image_mtime_ns,
            state_json, created_at, updated_at, int(newer), state, sidecar.image_hash,
            f"{MASKS_DIR_NAME}/{mask_name}", sidecar.mask_sha256, sidecar.mask_width, sidecar.mask_height,
            sidecar.model_id, sidecar.checkpoint_hash, to_json(sidecar.metrics, "metrics"),
            int(sidecar.strokes_used), sidecar.accepted_at)


def legacy_matches(orphans: Iterable[OrphanMask], image_rels: Iterable[str], rows: dict[str, RowInfo],
                   restored: Iterable[str]) -> dict[str, Path]:
    """{relative image path: its newest mask without a sidecar}: a mask matches when the stem in its name is that
    of exactly one of `image_rels` (the dataset's images), that image is not in `restored` and has no accepted mask
    whose file exists."""
    by_stem: dict[str, list[str]] = {}
    for rel in image_rels:
        by_stem.setdefault(safe_stem(rel), []).append(rel)
    done = set(restored)
    newest: dict[str, Path] = {}
    for orphan in orphans:
        if orphan.kind is not OrphanKind.NO_SIDECAR:
            continue
        matches = by_stem.get(stem_of_mask_name(orphan.png.name), [])
        if len(matches) != 1 or matches[0] in done:
            continue
        row = rows.get(matches[0])
        if row is not None and row.accepted and row.mask_exists:
            continue
        current = newest.get(matches[0])
        if current is None or orphan.png.stat().st_mtime > current.stat().st_mtime:
            newest[matches[0]] = orphan.png
    return newest


def legacy_sidecar(rel: str, png: Path, image_path: Path,
                   hash_and_stat: Callable[[str], tuple[str, os.stat_result]]) -> MaskSidecar | None:
    """A sidecar for a mask made before sidecars: the image as it is now (`hash_and_stat(rel)`), the mask's size
    checked against it. None when the mask or the image cannot be read, or the sizes differ."""
    try:
        data = png.read_bytes()
        mask = decode_mask_png(data, png, rel)
        width, height = image_size(image_path)
        image_hash, st = hash_and_stat(rel)
    except (OSError, FloodLabelError):
        return None
    if mask.shape != (height, width):
        return None
    return MaskSidecar(rel_path=rel, image_hash=image_hash, image_bytes=st.st_size,
                       image_mtime_ns=st.st_mtime_ns, mask_sha256=sha256_bytes(data),
                       mask_width=width, mask_height=height, accepted_at=png.stat().st_mtime,
                       state=None, model_id="recovered")


def _remove_lone_sidecars(masks_dir: Path) -> None:
    """Delete the sidecars whose mask PNG is not there (the process died before its mask was written)."""
    try:
        names = set(os.listdir(masks_dir))
    except OSError:
        return
    for name in names:
        if name.endswith(".json") and MASK_NAME.fullmatch(name[:-5] + ".png") and name[:-5] + ".png" not in names:
            remove_quietly(masks_dir / name)
