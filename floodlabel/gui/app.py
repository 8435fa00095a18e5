"""Application set-up: the QApplication, the app icon from resources/, and the window factory used by
`floodlabel gui` and by the tests."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

import floodlabel.resources
from floodlabel.gui.start_window import StartWindow

RESOURCES_DIR = Path(floodlabel.resources.__file__).resolve().parent
"""The package floodlabel.resources: resources/ at the top of the repository, shipped as package data in the wheel
(see setup.py); in a checkout or an editable install it is the repository's resources/ folder itself."""

ICON_FILE = "floodlabel.svg"
SAMPLE_DIR_NAME = "sample"


def create_app(argv: list[str] | None = None) -> QApplication:
    """The process's QApplication (created on first call), named and with the app icon."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("FloodLabel")
    app.setOrganizationName("FloodLabel")
    app.setWindowIcon(app_icon())
    return app


def create_start_window(data: str | Path | None = None, model: str | None = None) -> StartWindow:
    """The launch window (not shown yet). `data`: dataset folder to open; `model`: --model name or .pth path."""
    return StartWindow(data=data, model=model, icon=app_icon())


def create_annotation_window(data: str | Path | None = None, model: str | None = None, session=None,
                             project: str | Path | None = None):
    """The annotation window (not shown yet) on `data` (None: the last folder used, else the bundled sample).

    `model`: --model name or .pth path (None: the last model used, else the first downloaded SAM, else classic);
    `session`: an already opened SegmentationSession (tests and benchmarks). `project`: the project folder
    (default: <DATA>/floodlabel-project, or one under the user data folder when DATA is not writable).
    """
    from floodlabel.gui.window.annotation_window import AnnotationWindow

    return AnnotationWindow(data=data, model=model, icon=app_icon(), session=session, project=project)


def app_icon() -> QIcon:
    """The water-drop icon (an empty QIcon if the file were missing)."""
    path = RESOURCES_DIR / ICON_FILE
    return QIcon(str(path)) if path.is_file() else QIcon()


def sample_dataset_dir() -> Path:
    """The bundled sample dataset (SYNTHETIC scenes in the Kaggle layout: Image/*.jpg, Mask/*.png; see its
    README.txt and packaging/make_sample.py)."""
    return RESOURCES_DIR / SAMPLE_DIR_NAME
