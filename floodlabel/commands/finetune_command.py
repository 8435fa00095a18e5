"""`floodlabel finetune DATA_OR_PROJECT --model vit_b --out PATH`: train SAM's mask decoder (encoder frozen) on the
masks a user accepted in a FloodLabel project (with the prompts they clicked), or on a dataset's ground truth."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading

from floodlabel.commands.eval_command import _positive_int
from floodlabel.core.models.registry import MODELS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune SAM's mask decoder on image/mask pairs (encoder frozen, cached embeddings)",
        description="Train SAM's mask decoder (encoder frozen) on every image/mask pair of DATA with simulated "
                    "prompts (a point inside the water, a correction click in the error of the current prediction, "
                    "a jittered box). Each image is embedded once (embedding cache); the loop reads the cached "
                    "embeddings. A seeded split validates after every epoch; the best epoch is saved to --out, "
                    "a small checkpoint holding the decoder weights and the base model's SHA-256. Ctrl-C stops "
                    "after the current step and keeps the best epoch.")
    parser.add_argument("data", metavar="DATA_OR_PROJECT",
                        help="a FloodLabel project folder, or a dataset folder: its project's accepted masks when it "
                             "has a project with accepted masks, else its ground-truth masks (Kaggle Image/ + Mask/, "
                             "or images/ + masks/)")
    parser.add_argument("--from-gt", action="store_true",
                        help="train on the dataset's ground-truth masks even when its project has accepted masks")
    parser.add_argument("--model", "-m", default="vit_b", metavar="MODEL",
                        help=f"base: a downloaded SAM or SAM 2.1 name ({', '.join(MODELS)}), a checkpoint file "
                             "(.pth / .pt), or a fine-tuned checkpoint to train further (default: vit_b)")
    parser.add_argument("--base", dest="bases", action="append", default=[], metavar="PATH",
                        help="base SAM or SAM 2.1 checkpoint when --model is a fine-tuned checkpoint whose base "
                             "is elsewhere")
    parser.add_argument("--out", "-o", required=True, metavar="PATH", help="where to write the fine-tuned checkpoint")
    parser.add_argument("--epochs", type=_positive_int, default=10, metavar="N", help="epochs (default: 10)")
    parser.add_argument("--lr", type=_positive_float, default=1e-4, metavar="X",
                        help="Adam learning rate, halved every 5 epochs (default: 1e-4)")
    parser.add_argument("--batch", type=_positive_int, default=4, metavar="B", help="images per step (default: 4)")
    parser.add_argument("--val-fraction", type=_fraction, default=0.2, metavar="F",
                        help="share of the images held out for validation, in [0, 1) (default: 0.2; 0 validates "
                             "on the training images)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="split and prompt seed (default: 0)")
    parser.add_argument("--loss", choices=("bce", "focal"), default="bce",
                        help="pixel loss added to Dice (default: bce)")
    parser.add_argument("--train-prompt-encoder", action="store_true",
                        help="train the prompt encoder too (default: only the mask decoder)")
    parser.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                        help="use only the first N pairs (natural file-name order)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Under `torchrun --nproc-per-node N -m floodlabel finetune ...`: N processes train together (DDP,
    core/training/distributed.py); rank 0 prints the report and writes the checkpoint."""
    import contextlib
    import io

    from floodlabel.core.training import distributed

    started = distributed.init_from_env()
    try:
        if distributed.current().is_main:
            return _run(args)
        with contextlib.redirect_stdout(io.StringIO()):  # one report, from rank 0
            return _run(args)
    finally:
        if started:
            distributed.shutdown()


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from floodlabel.core.models.session import SegmentationSession
    from floodlabel.core.common.errors import FloodLabelError
    from floodlabel.core.sam.decoder_checkpoint import use_base_checkpoints
    from floodlabel.core.training.finetune import FinetuneSettings, finetune

    settings = FinetuneSettings(epochs=args.epochs, lr=args.lr, batch_size=args.batch,
                                val_fraction=args.val_fraction, seed=args.seed, loss=args.loss,
                                train_prompt_encoder=args.train_prompt_encoder)
    if args.bases:
        use_base_checkpoints(args.bases)
    source, items, skipped = training_items(args.data, args.from_gt)
    if args.limit is not None:
        items = items[: args.limit]
    if len(items) < 2:
        raise FloodLabelError(f"fine-tuning needs at least 2 image/mask pairs, {source} has {len(items)}")
    if not args.json:
        print(f"Training on {source}" + (f" (first {len(items)})" if args.limit is not None else ""))
    session = SegmentationSession.open(args.model)
    if not session.segmenter.capabilities.finetune_decoder:
        raise FloodLabelError(f"{args.model} is not a SAM model: only SAM's mask decoder can be fine-tuned")

    bars: dict[str, tqdm] = {}
    table_started = False

    def bar(name: str, total: int, unit: str) -> tqdm:
        if name not in bars:
            for other in bars.values():
                other.close()
            bars[name] = tqdm(total=total, desc=name, unit=unit, file=sys.stderr, leave=False, disable=None)
        return bars[name]

    def progress(event) -> None:
        nonlocal table_started
        if event.phase == "embedding":
            b = bar("embed", event.total, "img")
            b.n = event.done
            b.refresh()
        elif event.phase == "training":
            b = bar("train", event.total, "step")
            b.n = event.done
            b.set_postfix(epoch=f"{event.epoch}/{event.epochs}", loss=f"{event.loss:.4f}", refresh=False)
            b.refresh()
        elif event.phase == "epoch" and not args.json:
            rows = []
            if not table_started:
                rows.append(_EPOCH_HEADER)
                table_started = True
            rows.append(_epoch_row(event.epoch_metrics))
            for row in rows:
                (bars["train"].write if "train" in bars else print)(row, file=sys.stdout)

    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set()) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        result = finetune(items, session, args.out, settings, progress=progress, cancel=cancel)
    finally:
        for b in bars.values():
            b.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)

    if args.json:
        print(json.dumps(_result_json(result), indent=2, ensure_ascii=False))
    else:
        print()
        split = (f"{result.train_count} training images, validated on the same images"
                 if result.val_on_train else f"{result.train_count} training / {result.val_count} validation images")
        print(f"{split}; {result.embedded} embedded now, the rest from the cache ({result.embed_seconds:.1f} s); "
              f"training {result.train_seconds:.1f} s")
        print(f"Validation IoU: base {result.base_val_iou:.3f}" +
              (f" -> best {result.best_val_iou:.3f} (epoch {result.best_epoch})" if result.best_epoch else ""))
        for name, reason in [*((s.stem, s.reason) for s in skipped), *result.skipped]:
            print(f"  skipped {name}: {reason}")
    print(result.message, file=sys.stderr if result.stopped == "diverged" else sys.stdout)
    if result.stopped == "diverged":
        return 1
    return 130 if result.stopped == "cancelled" else 0


def training_items(path: str, from_gt: bool = False) -> tuple[str, list, list]:
    """(a one-line description of the source, TrainingItems, skipped entries with .stem and .reason).

    A project folder, or a dataset folder whose project has accepted masks: the accepted masks with the prompts
    the user clicked (`items_from_store`), unless from_gt. Otherwise, or with from_gt: the dataset's ground truth
    (for a project folder, that of the dataset it belongs to)."""
    from floodlabel.core.data.datasets import open_dataset
    from floodlabel.core.common.errors import FloodLabelError
    from floodlabel.core.store.project_store import ProjectStore, Status, find_project_dir, is_project_dir
    from floodlabel.core.training.examples import items_from_dataset, items_from_store

    data = path
    project = path if is_project_dir(path) else find_project_dir(path)
    if project is not None:
        with ProjectStore(project_dir=project, read_only=True) as store:  # never blocks a window that is open on it
            accepted = store.counts().get(Status.ACCEPTED, 0)
            if accepted and not from_gt:
                items, skipped = items_from_store(store)
                clicked = sum(1 for item in items if item.prompts)
                return (f"{len(items)} accepted masks of the project {store.project_dir} ({clicked} with the user's "
                        f"prompts)", items, skipped)
            if is_project_dir(path):
                if not from_gt:
                    raise FloodLabelError(f"the project {store.project_dir} has no accepted masks yet: accept some "
                                          "in the window, or add --from-gt to train on its dataset's ground truth")
                data = str(store.data_root)
    items, skipped = items_from_dataset(open_dataset(data))  # no masks / no pairs -> one line + exit 2
    return f"the ground-truth masks of {data} ({len(items)} pairs)", items, skipped


_EPOCH_HEADER = f"{'EPOCH':>5}  {'TRAIN LOSS':>10}  {'VAL IoU':>7}  {'VAL Dice':>8}  {'LR':>8}  {'TIME':>7}"


def _epoch_row(m) -> str:
    return (f"{m.epoch:>5}  {m.train_loss:>10.4f}  {m.val_iou:>7.3f}  {m.val_dice:>8.3f}  {m.lr:>8.1e}  "
            f"{m.seconds:>6.1f}s")


def _result_json(result) -> dict:
    from dataclasses import asdict

    def finite(x):
        return x if isinstance(x, (int, float)) and math.isfinite(x) else None

    return {
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "stopped": result.stopped, "message": result.message,
        "train": result.train_count, "val": result.val_count, "val_on_train": result.val_on_train,
        "base_val_iou": finite(result.base_val_iou), "base_val_dice": finite(result.base_val_dice),
        "best_epoch": result.best_epoch, "best_val_iou": finite(result.best_val_iou),
        "epochs": [asdict(m) for m in result.metrics],
        "embedded": result.embedded, "embed_seconds": result.embed_seconds, "train_seconds": result.train_seconds,
        "skipped": [{"stem": n, "reason": r} for n, r in result.skipped],
    }


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value
