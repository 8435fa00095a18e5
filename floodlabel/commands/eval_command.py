"""`floodlabel eval DATA --model M [--model M2 ...] --prompt point|box|auto|text|both|all [--prompt ...]
[--text PHRASE] [--jobs N] [--ray ADDRESS]`: score models with automatic prompts."""

from __future__ import annotations

import argparse
import json
import sys
import time

from floodlabel.core.models.registry import MODELS

DEFAULT_CSV = "floodlabel-eval.csv"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate models with automatic prompts made from the ground truth",
        description="Score each model on every image/mask pair of DATA with prompts made from the ground truth: "
                    "'point' = one positive click at the water's interior point (best of SAM's 3 candidates by "
                    "predicted score), 'box' = the water's bounding box, 'auto' = no prompt at all: SAM's "
                    "automatic mask generation (a 16x16 grid of points), its segments lying at least half in the "
                    "ground-truth water united (an upper bound of what AMG gives; the seed notebook's automatic "
                    "mode; SAM and SAM 2.1), 'text' = the concept prompt --text (same phrase for every image, the "
                    "instances scoring at least --threshold united; models with a text prompt: SAM 3), 'both' = "
                    "point and box, 'all' = every kind, each reported "
                    "as its own row. Reports IoU, Dice, precision, recall (mean ± std), NoC@85/90 (simulated clicks, "
                    "measured with point prompts) and failures (IoU < 0.5). Pairs whose image and mask sizes "
                    "differ, unreadable files and empty masks are skipped and listed, never resized.")
    parser.add_argument("data", metavar="DATA",
                        help="dataset folder (Kaggle Image/ + Mask/, images/ + masks/, or a folder of images "
                             "with a masks/ folder)")
    parser.add_argument("--model", "-m", dest="models", action="append", required=True, metavar="MODEL",
                        help=f"'classic', a downloaded SAM or SAM 2.1 name ({', '.join(MODELS)}), a checkpoint "
                             "file (.pth / .pt) or a fine-tuned decoder checkpoint; repeat to compare models, SAM "
                             "and SAM 2.1 alike (the first is the reference)")
    parser.add_argument("--base", dest="bases", action="append", default=[], metavar="PATH",
                        help="base SAM or SAM 2.1 checkpoint of the fine-tuned --model files (default: found by "
                             "SHA-256 where it was at training time or in the model folder)")
    parser.add_argument("--prompt", choices=("point", "box", "auto", "text", "both", "all"), action="append",
                        default=None,
                        help="automatic prompt kind: point, box, auto (SAM's automatic mask generation, segments "
                             "chosen by the ground truth: no user input), text (the concept prompt --text, for "
                             "models with a text prompt: SAM 3); 'both' = point + box rows, 'all' = every kind; "
                             "repeat for several, e.g. --prompt both --prompt text (default: both)")
    parser.add_argument("--text", default="water", metavar="PHRASE",
                        help="the phrase of text rows, e.g. 'flood water' (default: water)")
    parser.add_argument("--threshold", type=_unit_float, default=0.5, metavar="T",
                        help="text rows: instances scoring at least T (0..1) make the mask (default: 0.5)")
    parser.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                        help="worker processes per model (default: every core for classic, whose work per image "
                             "is single-threaded; 1 for SAM, whose encoder already uses every core)")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="run the per-image work as Ray tasks: 'local' (a Ray on this machine) or a cluster "
                             "address such as 10.0.0.5:6379; results equal a local run's (needs the cluster extra; "
                             "every node must see DATA and the models at the same paths)")
    parser.add_argument("--csv", metavar="PATH", default=DEFAULT_CSV,
                        help=f"per-image results, one row per model, prompt and image (default: ./{DEFAULT_CSV})")
    parser.add_argument("--no-noc", dest="noc", action="store_false",
                        help="skip the simulated-click NoC@85/90 measurement (much faster)")
    parser.add_argument("--max-clicks", type=_positive_int, default=20, metavar="N",
                        help="most simulated clicks per image for NoC (default: 20)")
    parser.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                        help="evaluate only the first N pairs (natural file-name order)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from floodlabel.core.sam.decoder_checkpoint import given_bases

    with given_bases(args.bases):  # fine-tuned --model files load onto these (or are refused, naming both)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from floodlabel.core.segment.compute_config import environment_overrides
    from floodlabel.core.data.datasets import open_dataset
    from floodlabel.core.evaluation.report import format_comparison, format_failures, format_skipped, format_summary, \
        to_json, write_csv
    from floodlabel.core.evaluation.evaluate import evaluate, plan_pairs, validate_models

    environment_overrides()  # a bad FLOODLABEL_DEVICE / FLOODLABEL_PRECISION -> one line + exit 2, before any work
    text = _text_prompt(args)
    dataset = open_dataset(args.data)
    validate_models(args.models)  # bad model -> one line + exit 2 before any image is read
    plan_pairs(dataset)  # no masks / no pairs -> one line + exit 2
    _check_writable(args.csv)  # fail now, not after a long run

    bar = None
    line = _ProgressLines() if not sys.stderr.isatty() else None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if line is not None:  # a log file or CI: plain lines every few images or seconds
            line(done, total)
            return
        if bar is None:
            bar = tqdm(total=total, desc="eval", unit="img", file=sys.stderr, leave=False)
        bar.n = done
        bar.refresh()

    from floodlabel.core.cluster.connection import ray_session

    try:
        with ray_session(args.ray):  # one Ray for every model
            result = evaluate(dataset, args.models, args.prompt or ["both"], noc=args.noc,
                              max_clicks=args.max_clicks, limit=args.limit, progress=progress, jobs=args.jobs,
                              ray=args.ray, text=text)
    finally:
        if bar is not None:
            bar.close()
    csv_path = write_csv(result, args.csv)

    if args.json:
        print(json.dumps({**to_json(result), "csv": str(csv_path)}, indent=2, ensure_ascii=False))
        return 0
    print(format_summary(result))
    print()
    comparison = format_comparison(result)
    if comparison:
        print(comparison)
        print()
    print(format_failures(result))
    print()
    print(format_skipped(result))
    print()
    print(f"Per-image results ({len(result.rows)} rows): {csv_path}")
    return 0


class _ProgressLines:
    """`eval: 12/97 images (12%), 1m05s elapsed, about 8m left` on stderr when stderr is not a terminal: at the
    start, then every EVERY_IMAGES images or EVERY_S seconds (checked as images finish), and at the end."""

    EVERY_IMAGES, EVERY_S = 5, 30.0

    def __init__(self) -> None:
        self.start = self.last_time = time.monotonic()
        self.last_done = -1

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        due = (self.last_done < 0 or done == total or done - self.last_done >= self.EVERY_IMAGES
               or now - self.last_time >= self.EVERY_S)
        if not due or done == self.last_done:
            return
        self.last_done, self.last_time = done, now
        elapsed = now - self.start
        text = f"eval: {done}/{total} images ({100 * done // max(total, 1)}%), {_duration(elapsed)} elapsed"
        if 0 < done < total:
            text += f", about {_duration(elapsed / done * (total - done))} left"
        print(text, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _check_writable(path: str) -> None:
    import tempfile
    from pathlib import Path

    from floodlabel.core.common.errors import FloodLabelError

    folder = Path(path).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise FloodLabelError(f"cannot write the CSV into {folder}: {exc.strerror or exc}") from exc


def _text_prompt(args: argparse.Namespace):
    """The text rows' TextPrompt; FloodLabelError (one line) for an empty phrase."""
    from floodlabel.core.annotation.prompts import TextPrompt
    from floodlabel.core.common.errors import FloodLabelError

    try:
        return TextPrompt(args.text, args.threshold)
    except ValueError as exc:
        raise FloodLabelError(str(exc)) from None


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
