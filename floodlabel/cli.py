"""`floodlabel` command line: the core features without a window.

    floodlabel                 open the app (same as `floodlabel gui`): the last folder, or the bundled sample
    floodlabel DATA            open the app on a dataset folder (same as `floodlabel gui DATA`)
    floodlabel stats DIR       dataset statistics
    floodlabel models ...      list / download / locate SAM checkpoints
    floodlabel eval DATA ...   evaluate models with automatic prompts
    floodlabel export DATA --out DIR   export accepted masks (PNG, COCO)
    floodlabel finetune DATA --out PATH   fine-tune SAM's mask decoder on cached embeddings
    floodlabel embed DATA --model M   pre-encode images into the embedding cache (--ray: on a Ray cluster)
    floodlabel recover DATA    restore accepted masks after the project database was damaged or lost
    floodlabel propose DATA --model sam3 --text water   a proposed mask per image from a text prompt, for review

Expected errors print one line on stderr and exit with status 2; set FLOODLABEL_DEBUG=1 for tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from floodlabel import __version__

COMMAND_MODULES = ("gui", "stats", "models", "eval", "export", "finetune", "embed", "recover", "propose")


class _Parser(argparse.ArgumentParser):
    """argparse with one more line on a usage error: how to pass a folder whose name starts with a dash (argparse
    takes `-data` for an option and then says a required argument is missing)."""

    hint = ""  # set by `main` for the command line being parsed; sub-parsers are of this class too

    def error(self, message: str):  # noqa: ANN201 - argparse's signature
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n{_Parser.hint}")


def dash_path_hint(argv: list[str]) -> str:
    """A line for arguments that start with '-' and name an existing file or folder, else ''."""
    paths = [a for a in argv if a.startswith("-") and a not in ("-", "--") and os.path.exists(a)]
    if not paths:
        return ""
    command = argv[0] if argv[0] in COMMAND_MODULES else "gui"
    return (f"floodlabel: hint: {paths[0]!r} is a path but reads as an option: write ./{paths[0]} or put -- before "
            f"it (floodlabel {command} -- {paths[0]})\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="floodlabel", description="Label flood water in photos with SAM.")
    parser.add_argument("--version", action="version", version=f"floodlabel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"floodlabel.commands.{name}_command").register(sub)
    return parser


def with_default_command(argv: list[str]) -> list[str]:
    """`floodlabel DATA ...` means `floodlabel gui DATA ...` when DATA is an existing path and not a command name."""
    if argv and argv[0] not in COMMAND_MODULES and not argv[0].startswith("-") and os.path.exists(argv[0]):
        return ["gui", *argv]
    return argv


def entry() -> int:
    """Console-script entry point: process set-up (malloc tuned for the SAM encoder), then `main`."""
    from floodlabel.runtime import tune_allocator

    tune_allocator()
    signal.signal(signal.SIGTERM, _terminate)  # `kill` unwinds like Ctrl+C: open projects are closed cleanly
    return main(sys.argv[1:])


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    from floodlabel.core.common.errors import FloodLabelError

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    _Parser.hint = dash_path_hint(argv)
    args = parser.parse_args(with_default_command(argv))
    if args.command is None:
        args = parser.parse_args(["gui"])
    try:
        return int(args.func(args) or 0)
    except FloodLabelError as exc:
        print(f"floodlabel: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("floodlabel: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one readable line, traceback only on request
        if os.environ.get("FLOODLABEL_DEBUG"):
            raise
        print(f"floodlabel: unexpected error: {type(exc).__name__}: {exc} (set FLOODLABEL_DEBUG=1 for details)",
              file=sys.stderr)
        return 1
