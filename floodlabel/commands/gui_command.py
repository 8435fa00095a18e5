"""`floodlabel gui [DATA] [--model NAME|PATH]`: open the app window (the default command; `floodlabel DATA` too).

Without DATA the app opens the most recent folder that still exists, else the bundled sample (gui/recent.py).

Qt is imported only inside `run`: cli.py imports every command module to build its parser.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gui", help="open the app (the default command)",
        description="Open the FloodLabel window. Works without any SAM checkpoint: it then uses the offline "
                    "classic (OpenCV) backend and shows how to download one.")
    parser.add_argument("data", metavar="DATA", nargs="?", default=None,
                        help="dataset folder to open (Kaggle Image/ + Mask/, images/ + masks/, or a folder of "
                             "images; default: the last folder opened, else the bundled sample)")
    parser.add_argument("--model", metavar="NAME|PATH", default=None,
                        help="vit_b, vit_l, vit_h, classic, or a SAM .pth file "
                             "(default: the first downloaded of vit_b, vit_l, vit_h, else classic)")
    parser.add_argument("--project", metavar="DIR", default=None,
                        help="project folder for accepted masks (default: DATA/floodlabel-project, or a folder "
                             "under the user data folder when DATA is read-only)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from floodlabel.gui.qt_platform import platform_problem

    # the fast allocator is set up by cli.entry() before this runs (it may re-execute the process)
    problem = platform_problem()  # Qt aborts the process if its platform plugin fails: check first
    if problem:
        print(f"floodlabel: {problem}", file=sys.stderr)
        return 2

    from floodlabel.gui.app import create_annotation_window, create_app

    app = create_app(["floodlabel"])  # program name: the X11 WM_CLASS, also under `python -m floodlabel`
    # data None: the last folder used, else the bundled sample
    window = create_annotation_window(args.data, args.model, project=getattr(args, "project", None))
    window.show()
    from floodlabel.gui.quit_signals import quit_on_signals

    with quit_on_signals():  # SIGTERM / SIGINT close the window (and its project) cleanly
        return app.exec()
