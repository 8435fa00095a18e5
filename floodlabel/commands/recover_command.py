"""`floodlabel recover DATA [--project DIR]`: bring accepted masks back after the project database was damaged,
emptied or moved away (see `floodlabel.core.store.recovery`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recover", help="restore accepted masks after the project database was damaged or lost",
        description="Rebuild the project's record of every accepted mask in its masks/ folder that the database "
                    "does not list (from the sidecar written beside each mask). A database that cannot be read is "
                    "moved aside as project.sqlite.damaged-<time>, never deleted. No mask file is deleted. Proposals "
                    "(`floodlabel propose`) lived only in the database: the report counts those lost, and "
                    "`floodlabel propose` makes them again. Close the app on this project first.")
    parser.add_argument("data", metavar="DATA", help="the dataset folder whose project to recover")
    parser.add_argument("--project", metavar="DIR", help="the project folder, when it is not DATA's default one")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from floodlabel.core.data.datasets import open_dataset
    from floodlabel.core.common.errors import DatasetError
    from floodlabel.core.store.recovery import recover_project
    from floodlabel.core.store.project_store import relative_image_path

    try:
        dataset = open_dataset(args.data)
        rels = [relative_image_path(p.image, args.data) for p in dataset.pairs]
    except DatasetError:
        rels = None  # masks with sidecars need no listing
    report = recover_project(args.data, args.project, rels)
    for line in report.lines():
        print(line)
    return 0
