"""`floodlabel gui [DATA] [--model NAME|PATH]`: open the app window (the default command; `floodlabel DATA` too).

Without DATA the app opens the most recent folder that still exists, else the bundled sample (gui/window/recent.py).

Qt is imported only inside `run` (through floodlabel.gui.app, this command's one gui import): cli.py imports every
command module to build its parser.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gui", help="open the app (the default command)",
        description="Open the FloodLabel window. Works without any SAM checkpoint: it then uses the offline "
                    "classic (OpenCV) backend and shows how to download one.")
    parser.add_argument("data", metavar="DATA", nargs="?", default=None,
                        help="dataset folder to open (Kaggle Image/ + Mask/, images/ + masks/, or a folder of "
                             "images; default: the last folder opened, else the bundled sample)")
    parser.add_argument("--model", metavar="NAME|PATH", default=None,
                        help="vit_b, vit_l, vit_h, sam2.1_hiera_tiny, sam2.1_hiera_small, sam2.1_hiera_base_plus, "
                             "sam2.1_hiera_large, classic, or a SAM / SAM 2.1 checkpoint file (default: the model "
                             "used last, else the downloaded one with the smallest encoder: sam2.1_hiera_tiny, "
                             "_small, _base_plus, vit_b, sam2.1_hiera_large, vit_l, vit_h; else classic)")
    parser.add_argument("--project", metavar="DIR", default=None,
                        help="project folder for accepted masks (default: DATA/floodlabel-project, or a folder "
                             "under the user data folder when DATA is read-only)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from floodlabel.gui.app import run_app

    # the fast allocator is set up by cli.entry() before this runs (it may re-execute the process)
    return run_app(args.data, args.model, project=getattr(args, "project", None))
