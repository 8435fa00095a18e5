"""Where an export may go (`check_export_folder`), and making that folder (the rules are in `project_export`'s
docstring).

OUT is refused when it is the file system root, the home folder, the dataset folder, or is (or is inside) the
project folder or one of the dataset's image or mask folders; OUT/Mask is checked the same way and must be a real
folder, and the manifest must not be a link. Nothing is created or deleted while checking.
"""

from __future__ import annotations

import os
from pathlib import Path

from floodlabel.core.common.atomic_files import describe_os_error
from floodlabel.core.common.errors import ExportError
from floodlabel.core.data.datasets import IMAGE_DIR_NAMES, MASK_DIR_NAMES
from floodlabel.core.export.export_manifest import MANIFEST_NAME, MASK_DIR_NAME
from floodlabel.core.store.project_store import ProjectStore

DEFAULT_NAME_MAX = 255
"""Bytes per file name where the file system does not say (pathconf)."""


def check_export_folder(store: ProjectStore, out_dir: str | os.PathLike[str]) -> Path:
    """The resolved export folder for `store`; ExportError when exporting into it is refused (see the module
    docstring: the root, the home folder, the dataset's and the project's folders, a linked Mask or manifest).
    Creates and deletes nothing."""
    out = resolve_folder(Path(out_dir).expanduser())
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
            target = resolve_folder(mask_dir)
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


def resolve_folder(path: Path) -> Path:
    """`path` resolved; ExportError when it cannot be (a link loop, a folder that cannot be read)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop (Python < 3.13)
        reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        raise ExportError(f"cannot use {path}: {reason}") from exc


def make_export_folder(out: Path) -> None:
    """Create OUT (and its parents) when missing; ExportError when that fails or OUT is not a folder."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the export folder {out}: {describe_os_error(exc)}") from exc
    if not out.is_dir():
        raise ExportError(f"the export folder {out} is not a folder")


def name_max(folder: Path) -> int:
    """The longest file name (in bytes) the file system of `folder` allows."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # AttributeError: no pathconf (Windows)
        return DEFAULT_NAME_MAX


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
            found.setdefault(resolve_folder(child), f"the dataset's {what}")
    for folder in {(data / rel).parent for rel in store.statuses()} - {data}:
        found.setdefault(resolve_folder(folder), "the dataset's image folder")
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
