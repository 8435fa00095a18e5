"""`floodlabel models list|download NAME|path NAME`: see, fetch and locate SAM, SAM 2.1 and SAM 3 checkpoints."""

from __future__ import annotations

import argparse
import json
import sys

from floodlabel.core.models.registry import CLASSIC, list_models, model_names, resolve_checkpoint


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, download or locate SAM, SAM 2.1 and SAM 3 checkpoints",
                                   description="List, download or locate SAM, SAM 2.1 and SAM 3 checkpoints.")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    p_list = sub.add_parser("list", help="known models, their size and whether they are downloaded")
    p_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_dl = sub.add_parser("download", help="download a checkpoint and print its path (resumable; SAM: MD5-checked; "
                                                  "SAM 2.1: no published checksum, so loaded and checked, and its "
                                                  "SHA-256 recorded; sam3: from the gated Hugging Face "
                                                  "repository facebook/sam3 with your token, HF_TOKEN or "
                                                  "`hf auth login`, after accepting Meta's licence there)")
    p_dl.add_argument("name", metavar="NAME", help=f"one of {', '.join(model_names()[1:])}")
    p_dl.add_argument("--base-url", metavar="URL", default=None,
                      help="mirror to download from (the file name is appended); "
                           "default: FLOODLABEL_MODEL_BASE_URL or the official URL (sam3: HF_ENDPOINT instead)")
    p_dl.add_argument("--retries", type=int, default=3, metavar="N", help="extra attempts after a failure (3)")
    p_path = sub.add_parser("path", help="print the checkpoint path of a downloaded model (exit 2 if missing)")
    p_path.add_argument("name", metavar="NAME", help="a model name or a checkpoint file (.pth / .pt)")
    parser.set_defaults(func=run, models_command=None, json=False)


def run(args: argparse.Namespace) -> int:
    if args.models_command == "download":
        return _download(args)
    if args.models_command == "path":
        print(resolve_checkpoint(args.name))
        return 0
    return _list(args.json)


def _list(as_json: bool) -> int:
    rows = list_models()
    if as_json:
        print(json.dumps([{"name": r.name, "family": r.family, "size_bytes": r.size_bytes,
                           "downloaded": r.downloaded, "path": str(r.path) if r.path else None,
                           "description": r.description} for r in rows], indent=2))
        return 0
    table = [("NAME", "FAMILY", "SIZE", "DOWNLOADED", "PATH")]
    for r in rows:
        if r.name == CLASSIC:  # FAMILY: the family ids (classic, sam, sam2.1), as in --json
            table.append((r.name, r.family, "-", "built-in", "-"))
        else:
            table.append((r.name, r.family, _human_size(r.size_bytes), "yes" if r.downloaded else "no", str(r.path)))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])
    return 0


def _download(args: argparse.Namespace) -> int:
    if args.name == CLASSIC:
        print(f"{CLASSIC} is built in: nothing to download", file=sys.stderr)
        return 0
    from floodlabel.core.models.download import download_model  # pulls in requests/pooch only when needed

    print(download_model(args.name, base_url=args.base_url, progress=True, retries=args.retries))
    return 0


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"
