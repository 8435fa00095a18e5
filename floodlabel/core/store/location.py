"""Where a dataset's project folder is (beside the data when it can be, else under the user data folder), and the
names inside it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from floodlabel.core.common import paths
from floodlabel.core.common.hashing import sha256_bytes

PROJECT_DIR_NAME = "floodlabel-project"
DB_NAME = "project.sqlite"
MASKS_DIR_NAME = "masks"
"""The project folder's folder of accepted mask PNGs and their sidecars."""


def default_project_dir(data_root: str | os.PathLike[str]) -> Path:
    """`<DATA>/floodlabel-project` when that folder is (or can be made) writable, else a folder named after DATA
    under the user data folder (platformdirs; FLOODLABEL_DATA_DIR overrides)."""
    data = Path(data_root).expanduser().resolve()
    inside = data / PROJECT_DIR_NAME
    if _dir_is_writable(inside if inside.is_dir() else data):
        return inside
    return _user_project_dir(data)


def _user_project_dir(data: Path) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", data.name) or "data"
    return paths.data_dir() / "projects" / f"{safe}-{sha256_bytes(str(data).encode())[:8]}"


def find_project_dir(data_root: str | os.PathLike[str]) -> Path | None:
    """The existing project of a dataset folder: `<DATA>/floodlabel-project`, else the user-data-folder one; None
    when there is neither. ProjectStore(data_root) opens this one when it exists."""
    data = Path(data_root).expanduser().resolve()
    inside = data / PROJECT_DIR_NAME
    if is_project_dir(inside):
        return inside
    fallback = _user_project_dir(data)
    return fallback if is_project_dir(fallback) else None


def is_project_dir(path: str | os.PathLike[str]) -> bool:
    """True when `path` is a project folder (holds project.sqlite)."""
    return (Path(path) / DB_NAME).is_file()


def _dir_is_writable(folder: Path) -> bool:
    """True when a file can be created in `folder` (tried, not guessed from permission bits)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
