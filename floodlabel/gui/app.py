"""The top of the gui: the QApplication with the app icon, the annotation window factory, and `run_app`, the one
entry point of `floodlabel gui` (commands/gui_command.py imports only this module)."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from floodlabel.gui.qt_platform import platform_problem
from floodlabel.gui.quit_signals import quit_on_signals
from floodlabel.gui.resources import app_icon


def run_app(data: str | Path | None = None, model: str | None = None, project: str | Path | None = None) -> int:
    """Open the annotation window and run the event loop; the exit status (2, with one line on stderr, when Qt
    cannot open a window here). Arguments as for `create_annotation_window`."""
    problem = platform_problem()  # Qt aborts the process if its platform plugin fails: check first
    if problem:
        print(f"floodlabel: {problem}", file=sys.stderr)
        return 2
    app = create_app(["floodlabel"])  # program name: the X11 WM_CLASS, also under `python -m floodlabel`
    window = create_annotation_window(data, model, project=project)
    window.show()
    with quit_on_signals():  # SIGTERM / SIGINT close the window (and its project) cleanly
        return app.exec()


def create_app(argv: list[str] | None = None) -> QApplication:
    """The process's QApplication (created on first call), named and with the app icon."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("FloodLabel")
    app.setOrganizationName("FloodLabel")
    app.setWindowIcon(app_icon())
    if not hasattr(app, "_floodlabel_gc"):
        # Python's cyclic garbage collector runs in whichever thread allocates when a threshold is crossed: a
        # collection in a worker thread that destroys Qt objects (a closed window's menus) deadlocked against the
        # main thread. pyqtgraph's GarbageCollector turns automatic collection off and collects on a main-thread timer.
        from pyqtgraph.util.garbage_collector import GarbageCollector

        app._floodlabel_gc = GarbageCollector(interval=1.0)
    return app


def create_annotation_window(data: str | Path | None = None, model: str | None = None, session=None,
                             project: str | Path | None = None):
    """The annotation window (not shown yet) on `data` (None: the last folder used, else the bundled sample).

    `model`: --model name or .pth path (None: the last model used, else the first downloaded SAM, else classic);
    `session`: an already opened SegmentationSession (tests and benchmarks). `project`: the project folder
    (default: <DATA>/floodlabel-project, or one under the user data folder when DATA is not writable).
    """
    from floodlabel.gui.window.annotation_window import AnnotationWindow  # OpenCV, pyqtgraph: not needed by the checks

    return AnnotationWindow(data=data, model=model, icon=app_icon(), session=session, project=project)
