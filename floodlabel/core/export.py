"""Export a project's accepted masks as PNG files and a COCO JSON, into one chosen folder and nowhere else.

Layout of an export folder OUT (it reads as a Kaggle-style dataset: `floodlabel stats OUT`, `floodlabel eval OUT`):
    OUT/Mask/<image stem>.png   one per accepted image: 8-bit greyscale, 0 / 255, the image's native size after EXIF
                                orientation, every hole and scattered patch kept (a copy of the stored PNG)
    OUT/Image                   a symbolic link to the folder holding the accepted images (when they share one
                                folder and the system allows links; otherwise pass `--images IMAGE_DIR` to stats)
    OUT/coco.json               COCO instances: the images, one category "water", one annotation per accepted image
                                with an RLE `segmentation` made by pycocotools (counts as a string), its `area` and
                                `bbox` from pycocotools
    OUT/.floodlabel-export.json the manifest: every file and link this export wrote, with the SHA-256 of each file

Safety: every target is resolved and must lie inside OUT (a `Mask` link to elsewhere is refused). An existing file
is replaced only when the manifest says an earlier export wrote it and it is unchanged since, or with
overwrite=True. Each file is written atomically (temporary file, fsync, rename). Masks of a previous export whose
image is no longer accepted are removed when unchanged since that export. Accepted images whose file changed or
disappeared since accept, or whose stored mask is missing or damaged, are skipped and reported, never exported
against the wrong image.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from floodlabel.core.atomic_files import describe_os_error, fsync_dir, remove_stale_temp_files, write_atomic
from floodlabel.core.errors import ExportError, StoreError
from floodlabel.core.project_store import ImageRecord, ProjectStore, Status, decode_mask_png, read_mask_bytes

FORMATS = ("png", "coco")
MASK_DIR_NAME = "Mask"
IMAGE_LINK_NAME = "Image"
COCO_NAME = "coco.json"
MANIFEST_NAME = ".floodlabel-export.json"
WATER_CATEGORY = {"id": 1, "name": "water", "supercategory": "water"}

Progress = Callable[[int, int], None]
"""progress(done, total): called before the first image and after each one."""


class ExportCancelled(ExportError):
    """The export stopped because its `cancel` event was set. Files written so far are complete and listed in the
    manifest (they count as the export's own, so a later export replaces them without --overwrite)."""


@dataclass
class ExportResult:
    """What an export wrote. Paths are absolute. skipped: (relative image path, reason) of accepted images left out.
    removed: masks of an earlier export whose image is no longer exported. notes: things the user should know."""

    out_dir: Path
    exported: int = 0
    masks: list[Path] = field(default_factory=list)
    coco_path: Path | None = None
    image_link: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def export_project(store: ProjectStore, out_dir: str | os.PathLike[str], *, formats: Iterable[str] = FORMATS,
                   overwrite: bool = False, progress: Progress | None = None,
                   link_images: bool = True, cancel: threading.Event | None = None) -> ExportResult:
    """Export every accepted image of `store` into `out_dir` (layout and safety rules in the module docstring).

    The store may be read-only (the export only reads it). Raises ExportError before writing any mask when a target
    lies outside out_dir, would replace a file the export did not write (unless overwrite), or two accepted images
    share a stem; ExportError when a write fails (disk full, permission), with the manifest of what was written.
    cancel: checked before each file; once set, the export stops and raises ExportCancelled (a subclass of
    ExportError). Every file written before is complete and in the manifest.
    """
    formats = _check_formats(formats)
    out = _prepare_out_dir(out_dir)
    result = ExportResult(out_dir=out)
    records = store.records(Status.ACCEPTED)
    if not records:
        raise ExportError(f"nothing to export: no image of {store.data_root} is accepted in the project "
                          f"{store.project_dir}")
    exportable = []
    for rec in records:
        reason = _skip_reason(rec)
        if reason:
            result.skipped.append((rec.rel_path, reason))
        else:
            exportable.append(rec)
    if "png" in formats:
        _check_stem_clashes(exportable)

    manifest = _Manifest.load(out)
    targets = [f"{MASK_DIR_NAME}/{_stem(rec)}.png" for rec in exportable] if "png" in formats else []
    targets += [COCO_NAME] if "coco" in formats else []
    _check_targets(out, targets, manifest, overwrite)

    manifest.files.update(dict.fromkeys(targets))  # ours, pending until written (a killed export leaves them so)
    manifest.save(out)
    coco = _CocoBuilder() if "coco" in formats else None
    image_root = os.path.commonpath([str(rec.image_path.parent) for rec in exportable]) if exportable else ""
    written: set[str] = set()
    total = len(exportable)
    if progress:
        progress(0, total)
    try:
        if "png" in formats:
            (out / MASK_DIR_NAME).mkdir(exist_ok=True)
        for done, rec in enumerate(exportable, 1):
            _check_cancel(cancel, out, manifest, written, result.exported, total)
            assert rec.mask_path is not None
            try:
                data = read_mask_bytes(rec.mask_path, rec.rel_path, rec.mask_sha256)
                mask = decode_mask_png(data, rec.mask_path, rec.rel_path) if coco is not None else None
            except StoreError as exc:
                result.skipped.append((rec.rel_path, str(exc)))
                continue
            if "png" in formats:
                name = f"{MASK_DIR_NAME}/{_stem(rec)}.png"
                _write(out, name, data, manifest)
                written.add(name)
                result.masks.append(out / name)
            if coco is not None:
                assert mask is not None
                coco.add(rec, mask, Path(os.path.relpath(rec.image_path, image_root)).as_posix())
            result.exported += 1
            if progress:
                progress(done, total)
        if coco is not None:
            _check_cancel(cancel, out, manifest, written, result.exported, total)
            _write(out, COCO_NAME, coco.to_json().encode(), manifest)
            written.add(COCO_NAME)
            result.coco_path = out / COCO_NAME
        result.removed = _remove_stale(out, manifest, written, formats)
        if "png" in formats and link_images:
            result.image_link = _link_images(out, exportable, manifest, result.notes)
        for folder in (out / MASK_DIR_NAME, out):
            if folder.is_dir():
                fsync_dir(folder)
    except BaseException:
        try:
            manifest.save(out)  # what was written so far stays the export's own
        except ExportError:
            pass  # the disk is still full: the first error is the one to report
        raise
    manifest.save(out)
    return result


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _check_cancel(cancel: threading.Event | None, out: Path, manifest: _Manifest, written: set[str],
                  exported: int, total: int) -> None:
    """Raise ExportCancelled when `cancel` is set; pending manifest entries of files not written (and absent) go."""
    if cancel is None or not cancel.is_set():
        return
    for name, digest in list(manifest.files.items()):
        if digest is None and name not in written and not (out / name).exists():
            del manifest.files[name]
    raise ExportCancelled(f"export cancelled after {exported} of {total} mask(s); the files written so far are "
                          f"complete and listed in {out / MANIFEST_NAME}")


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ExportError(f"unknown export format {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)}")
    return chosen


def _prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the export folder {out}: {describe_os_error(exc)}") from exc
    if not out.is_dir():
        raise ExportError(f"the export folder {out} is not a folder")
    for folder in (out, out / "Mask"):  # temporary files of an export that was killed mid-write
        remove_stale_temp_files(folder)
    return out.resolve()


def _skip_reason(rec: ImageRecord) -> str | None:
    if rec.image_missing:
        return f"the image {rec.image_path} is missing"
    if rec.changed:
        return "the image changed since it was accepted; accept it again"
    if rec.mask_missing:
        return (f"its accepted mask {rec.mask_path} was deleted outside FloodLabel; accept the image again to "
                "restore it")
    return None


def _stem(rec: ImageRecord) -> str:
    return Path(rec.rel_path).stem


def _check_stem_clashes(records: list[ImageRecord]) -> None:
    by_stem: dict[str, list[str]] = {}
    for rec in records:
        by_stem.setdefault(_stem(rec), []).append(rec.rel_path)
    clashes = [paths for paths in by_stem.values() if len(paths) > 1]
    if clashes:
        listed = "; ".join(" and ".join(paths) for paths in clashes[:3])
        raise ExportError(f"masks are named by image stem, and {len(clashes)} stem(s) are shared by accepted images "
                          f"({listed}); rename the images so that stems are unique")


def _check_targets(out: Path, targets: Iterable[str], manifest: _Manifest, overwrite: bool) -> None:
    foreign = []
    for name in targets:
        path = out / name
        try:
            resolved = path.resolve()
        except OSError as exc:  # e.g. a link loop
            raise ExportError(f"cannot use {path}: {describe_os_error(exc)}") from exc
        if not resolved.is_relative_to(out):
            raise ExportError(f"refusing to write {path}: it leads outside the export folder {out}")
        if resolved != path:
            raise ExportError(f"refusing to write {path}: it is reached through a link")
        if path.exists():
            if not path.is_file():
                raise ExportError(f"refusing to replace {path}: it is not a file")
            if not overwrite and not manifest.wrote(out, name):
                foreign.append(path)
    if foreign:
        shown = ", ".join(str(p) for p in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ExportError(f"refusing to overwrite {len(foreign)} file(s) that FloodLabel's export did not write "
                          f"({shown}); choose an empty folder or pass --overwrite")


def _write(out: Path, name: str, data: bytes, manifest: _Manifest) -> None:
    try:
        write_atomic(out / name, data, sync_dir=False)  # the folders are fsynced once, before the manifest
    except OSError as exc:
        raise ExportError(f"cannot write {out / name}: {describe_os_error(exc)}; files written so far are listed "
                          f"in {out / MANIFEST_NAME}") from exc
    manifest.files[name] = hashlib.sha256(data).hexdigest()


def _remove_stale(out: Path, manifest: _Manifest, written: set[str], formats: tuple[str, ...]) -> list[Path]:
    """Masks an earlier export wrote that this (PNG) export did not: removed when unchanged since. Entries of files
    that are gone or were changed by someone else are dropped from the manifest (those files are no longer ours)."""
    removed = []
    for name in list(manifest.files):
        if name in written:
            continue
        path = out / name
        if not path.is_file() or not manifest.wrote(out, name):
            del manifest.files[name]
        elif name.startswith(f"{MASK_DIR_NAME}/") and "png" in formats:
            path.unlink()
            del manifest.files[name]
            removed.append(path)
    if removed:
        fsync_dir(out / MASK_DIR_NAME)
    return removed


def _link_images(out: Path, records: list[ImageRecord], manifest: _Manifest, notes: list[str]) -> Path | None:
    """OUT/Image -> the folder of the accepted images, so OUT reads as Image/ + Mask/. None (and a note) when not."""
    folders = {rec.image_path.parent for rec in records}
    link = out / IMAGE_LINK_NAME
    if len(folders) != 1:
        notes.append("the accepted images are in several folders, so no Image link was made; pass the image "
                     "folder to `floodlabel stats --images`")
        return None
    target = folders.pop()
    if link.is_symlink():
        current = os.readlink(link)
        if Path(current) == target:
            manifest.links[IMAGE_LINK_NAME] = str(target)
            return link
        if manifest.links.get(IMAGE_LINK_NAME) != current:
            notes.append(f"{link} links to {current} and was not made by FloodLabel, so it was left alone; the "
                         f"images are in {target}")
            return None
    elif link.exists():
        notes.append(f"{link} already exists and was not made by FloodLabel, so it was left alone; the images are "
                     f"in {target}")
        return None
    temp = out / f".tmp-{secrets.token_hex(6)}-{IMAGE_LINK_NAME}"
    try:
        os.symlink(target, temp, target_is_directory=True)
        os.replace(temp, link)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        notes.append(f"cannot link {link} to the images ({describe_os_error(exc)}); pass "
                     f"`--images {target}` to `floodlabel stats`")
        return None
    manifest.links[IMAGE_LINK_NAME] = str(target)
    return link


class _CocoBuilder:
    def __init__(self) -> None:
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, rec: ImageRecord, mask: np.ndarray, file_name: str) -> None:
        from pycocotools import mask as mask_utils

        height, width = mask.shape
        rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "width": width, "height": height,
                            "floodlabel_path": rec.rel_path})
        self.annotations.append({
            "id": image_id, "image_id": image_id, "category_id": WATER_CATEGORY["id"],
            "segmentation": {"size": [int(rle["size"][0]), int(rle["size"][1])],
                             "counts": rle["counts"].decode("ascii")},
            "area": int(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0})

    def to_json(self) -> str:
        info = {"description": "FloodLabel export", "date_created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        return json.dumps({"info": info, "licenses": [], "images": self.images, "annotations": self.annotations,
                           "categories": [WATER_CATEGORY]})


@dataclass
class _Manifest:
    """The files (name -> SHA-256, None while pending) and links (name -> target) exports wrote into OUT."""

    files: dict[str, str | None] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path) -> _Manifest:
        try:
            data = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
            return cls(files=dict(data.get("files", {})), links=dict(data.get("links", {})))
        except (OSError, ValueError, AttributeError, TypeError):
            return cls()  # no manifest (or an unreadable one): nothing in OUT counts as ours

    def wrote(self, out: Path, name: str) -> bool:
        """True when an export wrote `name` and it is unchanged since (pending entries: written by a killed export)."""
        if name not in self.files:
            return False
        expected = self.files[name]
        if expected is None:
            return True
        try:
            return hashlib.sha256((out / name).read_bytes()).hexdigest() == expected
        except OSError:
            return False

    def save(self, out: Path) -> None:
        data = json.dumps({"format": 1, "files": dict(sorted(self.files.items())), "links": self.links}, indent=1)
        try:
            write_atomic(out / MANIFEST_NAME, data.encode())
        except OSError as exc:
            raise ExportError(f"cannot write {out / MANIFEST_NAME}: {describe_os_error(exc)}") from exc
