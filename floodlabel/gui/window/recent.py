"""Recently opened dataset folders (QSettings key "recent/folders", most recent first) and the folder the app opens
at start: the one asked for, else the most recent that still exists, else the bundled sample.

QSettings is built as QSettings(ORGANIZATION, APPLICATION), the names create_app gives the QApplication, so these
work before any QApplication exists (the CLI). Tests redirect every QSettings file with QSettings.setPath (conftest).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

from floodlabel.gui.resources import sample_dataset_dir

ORGANIZATION = APPLICATION = "FloodLabel"
RECENT_KEY = "recent/folders"
MAX_RECENT = 8


def settings() -> QSettings:
    """The app's settings store (the user's FloodLabel.conf on Linux)."""
    return QSettings(ORGANIZATION, APPLICATION)


def recent_folders() -> list[str]:
    """Recently opened folders, most recent first (absolute paths; they may no longer exist)."""
    value = settings().value(RECENT_KEY)
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else list(value)  # an INI file gives one item back as a string
    return [str(v) for v in items if v][:MAX_RECENT]


def add_recent_folder(path: str | os.PathLike[str]) -> list[str]:
    """Put `path` (made absolute) first in the recent list, dropping an older copy and anything past MAX_RECENT.
    Returns the new list."""
    folder = str(Path(path).expanduser().resolve())
    folders = [folder] + [f for f in recent_folders() if f != folder]
    folders = folders[:MAX_RECENT]
    store = settings()
    store.setValue(RECENT_KEY, folders)
    store.sync()
    return folders


def startup_folder(requested: str | os.PathLike[str] | None) -> Path:
    """The folder to open at start: `requested` as given (the window reports it if it cannot be opened), else the
    most recent folder that still exists, else the bundled sample dataset."""
    if requested is not None and str(requested) != "":
        return Path(requested).expanduser()
    for folder in recent_folders():
        if Path(folder).is_dir():
            return Path(folder)
    return sample_dataset_dir()
