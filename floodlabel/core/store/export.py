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

Where (`check_export_folder`, before anything is created or deleted): OUT is resolved, then refused when it is the
file system root, the home folder itself or the dataset folder DATA, or when it is (or is inside) the project folder
or one of the dataset's image or mask folders: the folders of the project's images other than DATA itself, and
DATA's sub-folders with a name the dataset reader takes as an image or mask folder (Image, images, img, imgs, Mask,
mask, masks, label, labels, gt; any case), existing or not. OUT/Mask is checked the same way. A new dedicated folder
inside DATA (such as DATA/floodlabel-export, the app's default) is allowed: a dataset is read one folder level deep,
so the export never mixes with its photos or masks. OUT/Mask and the manifest must not be links; OUT/Image is never
made to point at OUT or at a folder holding it.

What is replaced or deleted: an existing file is replaced only when the manifest says an earlier export wrote it and
it is unchanged since, or with overwrite=True. Each file is written atomically (a temporary file named
`.fl-export-tmp-<12 hex digits>`, fsync, rename). Leftover temporary files of a killed export are removed only when
their name matches that pattern exactly and OUT holds a manifest of an earlier export (OUT/Mask is then a real folder
inside OUT); any other file (someone's `.tmp-notes`) is never deleted. Masks of a previous export whose image is no
longer accepted are removed when unchanged since that export; manifest entries other than `coco.json` and
`Mask/<plain file name>` are ignored.

Skipped, never exported against the wrong image: accepted images whose file changed or disappeared since accept, or
whose stored mask is missing or damaged. With the png format also images whose mask name would not fit the file
system (over NAME_MAX, 255 bytes on most): they are detected before anything is written and left out of the COCO
file too, so that the masks and coco.json list the same images. A write that fails mid-way (disk full, permission)
raises ExportError saying how many masks were written; those are complete and listed in the manifest, and the next
export carries on over them.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from floodlabel.core.common.atomic_files import describe_os_error, fsync_dir, remove_temp_files, write_atomic
from floodlabel.core.data.datasets import IMAGE_DIR_NAMES, MASK_DIR_NAMES
from floodlabel.core.common.errors import ExportError, StoreError
from floodlabel.core.common.hashing import sha256_bytes, sha256_file
from floodlabel.core.store.project_store import ImageRecord, ProjectStore, Status, decode_mask_png, read_mask_bytes

FORMATS = ("png", "coco")
MASK_DIR_NAME = "Mask"
IMAGE_LINK_NAME = "Image"
COCO_NAME = "coco.json"
MANIFEST_NAME = ".floodlabel-export.json"
WATER_CATEGORY = {"id": 1, "name": "water", "supercategory": "water"}
EXPORT_TEMP_PREFIX = ".fl-export-tmp-"
"""The export's temporary files are named this plus 12 hex digits; only such names are removed as leftovers."""
DEFAULT_NAME_MAX = 255
"""Bytes per file name where the file system does not say (pathconf)."""

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

    The store may be read-only (the export only reads it). Raises ExportError before creating or deleting anything
    when out_dir is refused (`check_export_folder`), and before writing any mask when a target lies outside out_dir,
    would replace a file the export did not write (unless overwrite), or two accepted images share a stem;
    ExportError when a write fails (disk full, permission), saying how many masks were written (they are listed in
    the manifest). cancel: checked before each file; once set, the export stops and raises ExportCancelled (a
    subclass of ExportError). Every file written before is complete and in the manifest.
    """
    formats = _check_formats(formats)
    out = check_export_folder(store, out_dir)
    records = store.records(Status.ACCEPTED)
    if not records:
        raise ExportError(f"nothing to export: no image of {store.data_root} is accepted in the project "
                          f"{store.project_dir}")
    _make_out_dir(out)
    result = ExportResult(out_dir=out)
    manifest = _Manifest.load(out)
    if manifest.found:  # OUT is an earlier export's: the leftovers of a killed one are ours to remove
        for folder in (out, out / MASK_DIR_NAME):
            remove_temp_files(folder, EXPORT_TEMP_PREFIX)
    name_max = _name_max(out)
    exportable = []
    for rec in records:
        reason = _skip_reason(rec) or (_name_reason(rec, out, name_max) if "png" in formats else None)
        if reason:
            result.skipped.append((rec.rel_path, reason))
        else:
            exportable.append(rec)
    if "png" in formats:
        _check_stem_clashes(exportable)

    targets = [_mask_name(rec) for rec in exportable] if "png" in formats else []
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
            _check_cancel(cancel, out, result.exported, total)
            assert rec.mask_path is not None
            try:
                data = read_mask_bytes(rec.mask_path, rec.rel_path, rec.mask_sha256)
                mask = decode_mask_png(data, rec.mask_path, rec.rel_path) if coco is not None else None
            except StoreError as exc:
                result.skipped.append((rec.rel_path, str(exc)))
                continue
            if "png" in formats:
                name = _mask_name(rec)
                _write(out, name, data, manifest, _written_so_far(out, len(result.masks), total, formats))
                written.add(name)
                result.masks.append(out / name)
            if coco is not None:
                assert mask is not None
                coco.add(rec, mask, Path(os.path.relpath(rec.image_path, image_root)).as_posix())
            result.exported += 1
            if progress:
                progress(done, total)
        if coco is not None:
            _check_cancel(cancel, out, result.exported, total)
            _write(out, COCO_NAME, coco.to_json().encode(), manifest,
                   _written_so_far(out, len(result.masks), total, formats))
            written.add(COCO_NAME)
            result.coco_path = out / COCO_NAME
        result.removed = _remove_stale(out, manifest, written, formats)
        if "png" in formats and link_images:
            result.image_link = _link_images(out, exportable, manifest, result.notes)
        for folder in (out / MASK_DIR_NAME, out):
            if folder.is_dir():
                fsync_dir(folder)
    except BaseException:
        _forget_unwritten(out, manifest, written)
        try:
            manifest.save(out)  # what was written so far stays the export's own
        except ExportError:
            pass  # the disk is still full: the first error is the one to report
        raise
    manifest.save(out)
    return result


def check_export_folder(store: ProjectStore, out_dir: str | os.PathLike[str]) -> Path:
    """The resolved export folder for `store`; ExportError when exporting into it is refused (rules in the module
    docstring: the root, the home folder, the dataset's and the project's folders, a linked Mask or manifest).
    Creates and deletes nothing."""
    out = _resolve(Path(out_dir).expanduser())
    if out.exists() and not out.is_dir():
        raise ExportError(f"the export folder {out} is not a folder")
    data = store.data_root
    protected = _protected_folders(store)
    for folder, subject in ((out, "it"), (out / MASK_DIR_NAME, f"its Mask folder {out / MASK_DIR_NAME}")):
        reason = _refusal(folder, data, protected)
        if reason:
            raise ExportError(f"refusing to export into {out}: {subject} {reason}")
    mask_dir = out / MASK_DIR_NAME
    if mask_dir.is_symlink():
        try:
            target = _resolve(mask_dir)
        except ExportError:
            target = Path(os.readlink(mask_dir))
        where = "leads outside the export folder" if not target.is_relative_to(out) else "stays inside"
        raise ExportError(f"refusing to write into {mask_dir}: it is a link to {target}, which {where} {out}; "
                          "the export writes only into a real Mask folder")
    if mask_dir.exists() and not mask_dir.is_dir():
        raise ExportError(f"refusing to write into {mask_dir}: it is not a folder")
    manifest = out / MANIFEST_NAME
    if manifest.is_symlink():
        raise ExportError(f"refusing to use {manifest}: it is a link, not a manifest this export wrote")
    if manifest.exists() and not manifest.is_file():
        raise ExportError(f"refusing to use {manifest}: it is not a file")
    return out


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _check_cancel(cancel: threading.Event | None, out: Path, exported: int, total: int) -> None:
    """Raise ExportCancelled when `cancel` is set (the caller then drops pending entries of files not written)."""
    if cancel is None or not cancel.is_set():
        return
    raise ExportCancelled(f"export cancelled after {exported} of {total} mask(s); the files written so far are "
                          f"complete and listed in {out / MANIFEST_NAME}")


def _forget_unwritten(out: Path, manifest: _Manifest, written: set[str]) -> None:
    """Drop the pending manifest entries of files this export did not write and that do not exist."""
    for name, digest in list(manifest.files.items()):
        if digest is None and name not in written and not os.path.lexists(out / name):
            del manifest.files[name]


def _written_so_far(out: Path, masks: int, total: int, formats: tuple[str, ...]) -> str:
    """The end of a failed write's message: what is complete."""
    if "png" not in formats:
        return "no other file was written"
    return (f"{masks} of {total} mask(s) were written and are listed in {out / MANIFEST_NAME}; export again to "
            "finish")


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ExportError(f"unknown export format {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)}")
    return chosen


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop (Python < 3.13)
        reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        raise ExportError(f"cannot use {path}: {reason}") from exc


def _protected_folders(store: ProjectStore) -> list[tuple[Path, str]]:
    """(resolved folder, what it is) of folders no export may go into: the project folder, the dataset's image
    and mask folders (the folders of the project's images other than DATA, and DATA's image or mask sub-folders)."""
    data = store.data_root
    found: dict[Path, str] = {store.project_dir: "the project folder"}
    try:
        with os.scandir(data) as entries:
            children = [Path(e.path) for e in entries if e.is_dir()]  # follows links: DATA/Image may be one
    except OSError:
        children = []
    for child in children:
        name = child.name.casefold()
        what = ("image folder" if name in IMAGE_DIR_NAMES else "mask folder" if name in MASK_DIR_NAMES else None)
        if what:
            found.setdefault(_resolve(child), f"the dataset's {what}")
    for folder in {(data / rel).parent for rel in store.statuses()} - {data}:
        found.setdefault(_resolve(folder), "the dataset's image folder")
    return list(found.items())


def _refusal(folder: Path, data: Path, protected: list[tuple[Path, str]]) -> str | None:
    """Why no export may write into `folder` (resolved), as a predicate ("is the dataset folder ..."), or None."""
    new_folder = "choose a new folder for the export (one inside it, for example)"
    if folder.parent == folder:
        return "is the file system root"
    try:
        home = Path.home().resolve()
    except (OSError, RuntimeError, KeyError):
        home = None
    if folder == home:
        return f"is your home folder; {new_folder}"
    if folder == data:
        return f"is the dataset folder; {new_folder}"
    for place, what in protected:
        if folder == place:
            return f"is {what}"
        if folder.is_relative_to(place):
            return f"is inside {what} {place}"
    if folder.is_relative_to(data):
        first = folder.relative_to(data).parts[0]
        for names, what in ((IMAGE_DIR_NAMES, "image folder"), (MASK_DIR_NAMES, "mask folder")):
            if first.casefold() in names:
                inside = "" if folder == data / first else "inside "
                return f"is {inside}{data / first}, which the dataset would read as its {what}"
    return None


def _make_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the export folder {out}: {describe_os_error(exc)}") from exc
    if not out.is_dir():
        raise ExportError(f"the export folder {out} is not a folder")


def _name_max(folder: Path) -> int:
    """The longest file name (in bytes) the file system of `folder` allows."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # AttributeError: no pathconf (Windows)
        return DEFAULT_NAME_MAX


def _name_reason(rec: ImageRecord, out: Path, name_max: int) -> str | None:
    """Why the mask of `rec` cannot be written into OUT/Mask (its name is too long), or None."""
    size = len(os.fsencode(Path(_mask_name(rec)).name))
    if size <= name_max:
        return None
    return (f"its mask name would be {size} bytes, over the limit of {name_max} bytes per file name in "
            f"{out / MASK_DIR_NAME}; rename the image with a shorter name")


def _mask_name(rec: ImageRecord) -> str:
    return f"{MASK_DIR_NAME}/{_stem(rec)}.png"


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
        resolved = _resolve(path)  # ExportError for a link loop
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


def _write(out: Path, name: str, data: bytes, manifest: _Manifest, so_far: str) -> None:
    """Write OUT/name atomically; ExportError (ending with `so_far`: what is complete) when that fails."""
    try:  # the folders are fsynced once, before the manifest
        write_atomic(out / name, data, sync_dir=False, prefix=EXPORT_TEMP_PREFIX)
    except OSError as exc:
        raise ExportError(f"cannot write {out / name}: {describe_os_error(exc)}; {so_far}") from exc
    manifest.files[name] = sha256_bytes(data)


def _remove_stale(out: Path, manifest: _Manifest, written: set[str], formats: tuple[str, ...]) -> list[Path]:
    """Masks an earlier export wrote that this (PNG) export did not: removed when unchanged since. Entries of files
    that are gone or were changed by someone else are dropped from the manifest (those files are no longer ours)."""
    removed = []
    for name in list(manifest.files):
        if name in written:
            continue
        path = out / name
        if not manifest.wrote(out, name):
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
    real_target = Path(os.path.realpath(target))
    if real_target.is_relative_to(out) or out.is_relative_to(real_target):
        notes.append(f"the images are in {target}, which holds or is inside the export folder, so no Image link "
                     "was made (it would loop)")
        return None
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
    temp = out / f"{EXPORT_TEMP_PREFIX}{secrets.token_hex(6)}"  # removed as a leftover if killed before the swap
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
    """The files (name -> SHA-256, None while pending) and links (name -> target) exports wrote into OUT.
    found: OUT held a manifest of an earlier export (a regular file, format 1)."""

    files: dict[str, str | None] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    found: bool = False

    @classmethod
    def load(cls, out: Path) -> _Manifest:
        """The manifest in OUT; only entries an export can have written (coco.json, Mask/<plain name>, Image)."""
        path = out / MANIFEST_NAME
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return cls()
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != 1:
                return cls()
            files = {name: digest for name, digest in dict(data.get("files", {})).items()
                     if _is_own_name(name) and (digest is None or isinstance(digest, str))}
            links = {name: target for name, target in dict(data.get("links", {})).items()
                     if name == IMAGE_LINK_NAME and isinstance(target, str)}
        except (OSError, ValueError, AttributeError, TypeError):
            return cls()  # no manifest (or an unreadable one): nothing in OUT counts as ours
        return cls(files=files, links=links, found=True)

    def wrote(self, out: Path, name: str) -> bool:
        """True when an export wrote `name` and it is unchanged since (pending entries: written by a killed export).
        A link is never the export's."""
        if name not in self.files:
            return False
        path = out / name
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return False
            expected = self.files[name]
            return expected is None or sha256_file(path) == expected
        except OSError:
            return False

    def save(self, out: Path) -> None:
        data = json.dumps({"format": 1, "files": dict(sorted(self.files.items())), "links": self.links}, indent=1)
        try:
            write_atomic(out / MANIFEST_NAME, data.encode(), prefix=EXPORT_TEMP_PREFIX)
        except OSError as exc:
            raise ExportError(f"cannot write {out / MANIFEST_NAME}: {describe_os_error(exc)}") from exc


def _is_own_name(name: object) -> bool:
    """True for the names an export writes: coco.json and Mask/<a plain file name>."""
    if not isinstance(name, str) or "\0" in name:
        return False
    if name == COCO_NAME:
        return True
    folder, _, file_name = name.partition("/")
    separators = {"/", os.sep, os.altsep or "/"}  # a backslash is a plain character on POSIX
    return folder == MASK_DIR_NAME and file_name not in ("", ".", "..") and not any(c in separators
                                                                                   for c in file_name)
