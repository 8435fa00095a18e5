"""Files shipped with the app: the resources folder, the app icon and the bundled sample dataset.

A leaf module (it imports nothing from floodlabel.gui), so every layer of the gui may use it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon

import floodlabel.resources

RESOURCES_DIR = Path(floodlabel.resources.__file__).resolve().parent
"""The package floodlabel.resources: resources/ at the top of the repository, shipped as package data in the wheel
(see setup.py); in a checkout or an editable install it is the repository's resources/ folder itself."""

ICON_FILE = "floodlabel.svg"
SAMPLE_DIR_NAME = "sample"


def app_icon() -> QIcon:
    """The water-drop icon (an empty QIcon if the file were missing)."""
    path = RESOURCES_DIR / ICON_FILE
    return QIcon(str(path)) if path.is_file() else QIcon()


def sample_dataset_dir() -> Path:
    """The bundled sample dataset (SYNTHETIC scenes in the Kaggle layout: Image/*.jpg, Mask/*.png; see its
    README.txt and packaging/make_sample.py)."""
    return RESOURCES_DIR / SAMPLE_DIR_NAME
