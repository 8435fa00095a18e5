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

Map and polygon formats (`formats` geotiff, gpkg, geojson, labelme, yolo; `core.geo.export_files` makes the bytes):
one file per accepted image in OUT/GeoTIFF, OUT/GeoPackage, OUT/GeoJSON (only for images with a CRS: GeoTIFFs;
plain photos are counted in a note), OUT/labelme and OUT/labels (YOLO-seg; every image). They follow the same rules
as the masks: checked before anything is written, written atomically, listed in the manifest, stale ones of an
earlier export removed only when unchanged. Every exported image's water area (`core.geo.area.Area`: m² / ha with
a CRS, pixels without) is in ExportResult.areas.

The parts: `export_folder` (where an export may go), `export_manifest` (the names in OUT and the manifest), `coco`
(coco.json); this module writes the files.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from floodlabel.core.common.atomic_files import describe_os_error, fsync_dir, remove_temp_files, write_atomic
from floodlabel.core.common.errors import ExportError, StoreError
from floodlabel.core.common.hashing import sha256_bytes
from floodlabel.core.common.progress import Progress
from floodlabel.core.export.coco import WATER_CATEGORY, CocoBuilder
from floodlabel.core.export.export_folder import (DEFAULT_NAME_MAX, check_export_folder, make_export_folder, name_max,
                                                  resolve_folder)
from floodlabel.core.export.export_manifest import (COCO_NAME, EXPORT_TEMP_PREFIX, IMAGE_LINK_NAME, MANIFEST_NAME,
                                                    MASK_DIR_NAME, ExportManifest)
from floodlabel.core.geo.area import Area, mask_area
from floodlabel.core.geo.export_files import GEO_FORMATS, PHOTO_FORMATS, file_name, formats_for, image_files
from floodlabel.core.geo.georef import GeoInfo, geotiff_info
from floodlabel.core.store.mask_files import decode_mask_png, read_mask_bytes
from floodlabel.core.store.project_store import ProjectStore
from floodlabel.core.store.records import ImageRecord, Status

__all__ = ["COCO_NAME", "DEFAULT_FORMATS", "DEFAULT_NAME_MAX", "EXPORT_TEMP_PREFIX", "FORMATS", "IMAGE_LINK_NAME", "MANIFEST_NAME",
           "MASK_DIR_NAME", "WATER_CATEGORY", "ExportCancelled", "ExportResult", "Progress", "check_export_folder",
           "export_project"]

FORMATS = ("png", "coco", *GEO_FORMATS, *PHOTO_FORMATS)
DEFAULT_FORMATS = ("png", "coco")
MAP_FORMATS = (*GEO_FORMATS, *PHOTO_FORMATS)
"""The formats with one file per image besides png (core.geo.export_files)."""


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
    files: dict[str, list[Path]] = field(default_factory=dict)
    """format (geotiff, gpkg, geojson, labelme, yolo) -> the files written in it."""
    areas: list[tuple[str, Area]] = field(default_factory=list)
    """(relative image path, its water area) of every exported image."""

    def total_area(self) -> tuple[float | None, int]:
        """(summed m² over the images with a CRS or None when none has one, summed pixels of those without)."""
        m2 = [a.m2 for _, a in self.areas if a.m2 is not None]
        return (sum(m2) if m2 else None), sum(a.pixels for _, a in self.areas if a.m2 is None)


def export_project(store: ProjectStore, out_dir: str | os.PathLike[str], *, formats: Iterable[str] = DEFAULT_FORMATS,
                   overwrite: bool = False, progress: Progress | None = None,
                   link_images: bool = True, cancel: threading.Event | None = None,
                   simplify: float = 0.0) -> ExportResult:
    """Export every accepted image of `store` into `out_dir` (layout and safety rules in the module docstring).

    The store may be read-only (the export only reads it). Raises ExportError before creating or deleting anything
    when out_dir is refused (`check_export_folder`), and before writing any mask when a target lies outside out_dir,
    would replace a file the export did not write (unless overwrite), or two accepted images share a stem;
    ExportError when a write fails (disk full, permission), saying how many masks were written (they are listed in
    the manifest). cancel: checked before each file; once set, the export stops and raises ExportCancelled (a
    subclass of ExportError). Every file written before is complete and in the manifest. progress(done, total):
    called before the first image and after each one. simplify: the polygon simplification tolerance of the
    map and polygon formats (map units; pixels for labelme / yolo), 0 = off (exact).
    """
    formats = _check_formats(formats)
    out = check_export_folder(store, out_dir)
    records = store.records(Status.ACCEPTED)
    if not records:
        raise ExportError(f"nothing to export: no image of {store.data_root} is accepted in the project "
                          f"{store.project_dir}")
    make_export_folder(out)
    result = ExportResult(out_dir=out)
    manifest = ExportManifest.load(out)
    if manifest.found:  # OUT is an earlier export's: the leftovers of a killed one are ours to remove
        for folder in (out, out / MASK_DIR_NAME):
            remove_temp_files(folder, EXPORT_TEMP_PREFIX)
    longest = name_max(out)
    exportable = []
    geos: dict[str, GeoInfo | None] = {}
    for rec in records:
        reason = _skip_reason(rec)
        if not reason:
            geos[rec.rel_path] = geotiff_info(rec.image_path)  # for the area too; non-TIFFs: a 4-byte read
            reason = _name_reason(_image_names(rec, formats, geos[rec.rel_path]), out, longest)
        if reason:
            result.skipped.append((rec.rel_path, reason))
        else:
            exportable.append(rec)
    if "png" in formats or any(f in MAP_FORMATS for f in formats):
        _check_stem_clashes(exportable)
    no_crs = sum(1 for rec in exportable if geos[rec.rel_path] is None)
    if no_crs and any(f in GEO_FORMATS for f in formats):
        result.notes.append(f"{no_crs} image(s) have no CRS (not GeoTIFFs), so no GeoTIFF, GeoPackage or GeoJSON "
                            "was written for them; labelme and yolo export plain photos")

    targets = [name for rec in exportable for name in _image_names(rec, formats, geos[rec.rel_path])]
    targets += [COCO_NAME] if "coco" in formats else []
    _check_targets(out, targets, manifest, overwrite)

    manifest.files.update(dict.fromkeys(targets))  # ours, pending until written (a killed export leaves them so)
    manifest.save(out)
    coco = CocoBuilder() if "coco" in formats else None
    image_root = os.path.commonpath([str(rec.image_path.parent) for rec in exportable]) if exportable else ""
    written: set[str] = set()
    total = len(exportable)
    if progress:
        progress(0, total)
    try:
        for folder in _image_dirs(formats):
            (out / folder).mkdir(exist_ok=True)
        for done, rec in enumerate(exportable, 1):
            _check_cancel(cancel, out, result.exported, total)
            assert rec.mask_path is not None
            try:
                data = read_mask_bytes(rec.mask_path, rec.rel_path, rec.mask_sha256)
                mask = decode_mask_png(data, rec.mask_path, rec.rel_path)
            except StoreError as exc:
                result.skipped.append((rec.rel_path, str(exc)))
                continue
            if "png" in formats:
                name = _mask_name(rec)
                _write(out, name, data, manifest, _written_so_far(out, len(result.masks), total, formats))
                written.add(name)
                result.masks.append(out / name)
            geo = geos[rec.rel_path]
            files = image_files(mask, geo, tuple(f for f in formats if f in MAP_FORMATS), simplify=simplify,
                                image_path_for_labelme=_labelme_image_path(out, rec))
            for fmt, content in files.items():
                name = file_name(fmt, _stem(rec))
                _write(out, name, content, manifest, _written_so_far(out, len(result.masks), total, formats))
                written.add(name)
                result.files.setdefault(fmt, []).append(out / name)
            if coco is not None:
                coco.add(rec, mask, Path(os.path.relpath(rec.image_path, image_root)).as_posix())
            result.areas.append((rec.rel_path, mask_area(mask, geo)))
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
        for folder in (*(out / d for d in _image_dirs(formats)), out):
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


def _check_cancel(cancel: threading.Event | None, out: Path, exported: int, total: int) -> None:
    """Raise ExportCancelled when `cancel` is set (the caller then drops pending entries of files not written)."""
    if cancel is None or not cancel.is_set():
        return
    raise ExportCancelled(f"export cancelled after {exported} of {total} mask(s); the files written so far are "
                          f"complete and listed in {out / MANIFEST_NAME}")


def _forget_unwritten(out: Path, manifest: ExportManifest, written: set[str]) -> None:
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


def _name_reason(names: list[str], out: Path, name_max: int) -> str | None:
    """Why one of an image's export files `names` ("Mask/<stem>.png", ...) cannot be written (its name is too
    long), or None."""
    for name in names:
        size = len(os.fsencode(Path(name).name))
        if size > name_max:
            kind = "mask" if name.startswith(f"{MASK_DIR_NAME}/") else "file"
            return (f"its {kind} name would be {size} bytes, over the limit of {name_max} bytes per file name in "
                    f"{out / Path(name).parent}; rename the image with a shorter name")
    return None


def _image_names(rec: ImageRecord, formats: tuple[str, ...], geo: GeoInfo | None) -> list[str]:
    """The export-relative names of the files `rec` gets in `formats` (png mask first)."""
    names = [_mask_name(rec)] if "png" in formats else []
    return names + [file_name(f, _stem(rec)) for f in formats_for(tuple(f for f in formats if f in MAP_FORMATS),
                                                                   geo)]


def _image_dirs(formats: tuple[str, ...]) -> list[str]:
    """The per-image folders of `formats` (Mask for png, GeoTIFF for geotiff, ...)."""
    dirs = [MASK_DIR_NAME] if "png" in formats else []
    return dirs + [file_name(f, "x").partition("/")[0] for f in formats if f in MAP_FORMATS]


def _labelme_image_path(out: Path, rec: ImageRecord) -> str:
    """The image's path relative to OUT/labelme, as labelme's imagePath."""
    folder = out / file_name("labelme", "x").partition("/")[0]
    return Path(os.path.relpath(rec.image_path, folder)).as_posix()


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


def _check_targets(out: Path, targets: Iterable[str], manifest: ExportManifest, overwrite: bool) -> None:
    foreign = []
    for name in targets:
        path = out / name
        resolved = resolve_folder(path)  # ExportError for a link loop
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


def _write(out: Path, name: str, data: bytes, manifest: ExportManifest, so_far: str) -> None:
    """Write OUT/name atomically; ExportError (ending with `so_far`: what is complete) when that fails."""
    try:  # the folders are fsynced once, before the manifest
        write_atomic(out / name, data, sync_dir=False, prefix=EXPORT_TEMP_PREFIX)
    except OSError as exc:
        raise ExportError(f"cannot write {out / name}: {describe_os_error(exc)}; {so_far}") from exc
    manifest.files[name] = sha256_bytes(data)


def _remove_stale(out: Path, manifest: ExportManifest, written: set[str], formats: tuple[str, ...]) -> list[Path]:
    """Per-image files an earlier export wrote in the folders of this export's formats (Mask for png, GeoTIFF, ...)
    that this export did not: removed when unchanged since. Entries of files
    that are gone or were changed by someone else are dropped from the manifest (those files are no longer ours)."""
    removed = []
    for name in list(manifest.files):
        if name in written:
            continue
        path = out / name
        if not manifest.wrote(out, name):
            del manifest.files[name]
        elif name.partition("/")[0] in _image_dirs(formats):
            path.unlink()
            del manifest.files[name]
            removed.append(path)
    for folder in {p.parent for p in removed}:
        fsync_dir(folder)
    return removed


def _link_images(out: Path, records: list[ImageRecord], manifest: ExportManifest, notes: list[str]) -> Path | None:
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
    # a link swapped in atomically (write_atomic writes bytes, not links); the temporary link is removed as a
    # leftover if the export is killed before the swap
    temp = out / f"{EXPORT_TEMP_PREFIX}{secrets.token_hex(6)}"
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
