"""The names an export writes into its folder OUT, and the manifest that says which files there are the export's own.

OUT/.floodlabel-export.json (format 1) maps every file an export wrote (`coco.json`, `Mask/<plain file name>`, and
`<folder>/<plain file name>` in the per-image folders of the map and polygon formats, PER_IMAGE_DIRS) to
its SHA-256 (None while pending: listed before it is written, so a killed export's files still count as its own)
and the `Image` link to its target. A file counts as the export's own only while it is a regular file with the
recorded bytes (`ExportManifest.wrote`); any other entry, and a manifest that is a link or unreadable, is ignored.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from floodlabel.core.common.atomic_files import describe_os_error, write_atomic
from floodlabel.core.common.errors import ExportError
from floodlabel.core.common.hashing import sha256_file
from floodlabel.core.geo.export_files import FOLDERS as MAP_FORMAT_FOLDERS

MASK_DIR_NAME = "Mask"
IMAGE_LINK_NAME = "Image"
COCO_NAME = "coco.json"
MANIFEST_NAME = ".floodlabel-export.json"
PER_IMAGE_DIRS = (MASK_DIR_NAME, *(folder for folder, _ in MAP_FORMAT_FOLDERS.values()))
"""The folders holding one file per image: Mask, GeoTIFF, GeoPackage, GeoJSON, labelme, labels."""
EXPORT_TEMP_PREFIX = ".fl-export-tmp-"
"""The export's temporary files are named this plus 12 hex digits; only such names are removed as leftovers."""


@dataclass
class ExportManifest:
    """The files (name -> SHA-256, None while pending) and links (name -> target) exports wrote into OUT.
    found: OUT held a manifest of an earlier export (a regular file, format 1)."""

    files: dict[str, str | None] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    found: bool = False

    @classmethod
    def load(cls, out: Path) -> ExportManifest:
        """The manifest in OUT; only entries an export can have written (coco.json, Mask/<plain name>, Image)."""
        path = out / MANIFEST_NAME
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return cls()
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != 1:
                return cls()
            files = {name: digest for name, digest in dict(data.get("files", {})).items()
                     if is_own_name(name) and (digest is None or isinstance(digest, str))}
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
        """Write the manifest into OUT atomically; ExportError when that fails."""
        data = json.dumps({"format": 1, "files": dict(sorted(self.files.items())), "links": self.links}, indent=1)
        try:
            write_atomic(out / MANIFEST_NAME, data.encode(), prefix=EXPORT_TEMP_PREFIX)
        except OSError as exc:
            raise ExportError(f"cannot write {out / MANIFEST_NAME}: {describe_os_error(exc)}") from exc


def is_own_name(name: object) -> bool:
    """True for the names an export writes: coco.json and <one of PER_IMAGE_DIRS>/<a plain file name>."""
    if not isinstance(name, str) or "\0" in name:
        return False
    if name == COCO_NAME:
        return True
    folder, _, file_name = name.partition("/")
    separators = {"/", os.sep, os.altsep or "/"}  # a backslash is a plain character on POSIX
    return folder in PER_IMAGE_DIRS and file_name not in ("", ".", "..") and not any(c in separators
                                                                                   for c in file_name)
