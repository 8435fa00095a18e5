"""`floodlabel propose DATA --model sam3 --text water [--threshold T] [--ray ADDRESS|local] [--project DIR]`: run a
text prompt on every image of a folder and store each result as a *proposed* mask with its confidence in the project,
for review in the window (the list sorts proposals least confident first). Resumable and idempotent: images with a
proposal, work in progress or an accepted mask are skipped (`core.cluster.batch_propose`)."""

from __future__ import annotations

import argparse
import json
import sys

from floodlabel.commands.eval_command import _positive_int


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a threshold is in [0, 1], not {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    from floodlabel.core.annotation.prompts import DEFAULT_PHRASE, DEFAULT_TEXT_THRESHOLD

    parser = subparsers.add_parser(
        "propose", help="propose a water mask for every image with a text prompt (SAM 3), for review",
        description="Ask a text-prompt model (SAM 3) for every instance of PHRASE in each image of DATA and store "
                    "the union of those scoring at least the threshold as the image's proposed mask, with its "
                    "confidence (the mean score of those instances; 0 when none passes). Proposals are never "
                    "accepted work: export, finetune and eval ignore them until someone accepts them in the window "
                    "(Enter). Images that already have a proposal, work in progress or an accepted mask are skipped, "
                    "so an interrupted run resumes and a second run adds none.")
    parser.add_argument("data", metavar="DATA", help="dataset folder or folder of images")
    parser.add_argument("--model", "-m", default="sam3", metavar="MODEL",
                        help="a model with a text prompt (default: sam3)")
    parser.add_argument("--text", "-t", default=DEFAULT_PHRASE, metavar="PHRASE",
                        help=f"the concept to find, a short noun phrase (default: {DEFAULT_PHRASE!r})")
    parser.add_argument("--threshold", type=_threshold, default=DEFAULT_TEXT_THRESHOLD, metavar="T",
                        help=f"instances scoring at least T (0..1) make the mask (default: {DEFAULT_TEXT_THRESHOLD})")
    parser.add_argument("--project", metavar="DIR", default=None,
                        help="the project folder (default: the dataset's project, created when missing)")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="run on Ray: 'local' or a cluster address such as 10.0.0.5:6379; needs the cluster "
                             "extra; every node must see DATA and the model at the same paths")
    parser.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="with --ray: worker actors (default: one per GPU, else one per --cpus-per-worker CPUs)")
    parser.add_argument("--cpus-per-worker", type=_positive_int, default=None, metavar="N",
                        help="with --ray: CPUs (torch threads) per worker (default: 4, or all when fewer)")
    parser.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                        help="only the first N images (natural file-name order)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from floodlabel.core.annotation.prompts import TextPrompt
    from floodlabel.core.cluster import batch_propose
    from floodlabel.core.cluster.batch_embed import image_paths
    from floodlabel.core.common.errors import FloodLabelError
    from floodlabel.core.models.registry import CLASSIC
    from floodlabel.core.segment.compute_config import environment_overrides
    from floodlabel.core.store.project_store import ProjectStore

    environment_overrides()
    try:
        text = TextPrompt(args.text, args.threshold)
    except ValueError as exc:
        raise FloodLabelError(str(exc)) from None
    if args.model == CLASSIC:
        raise FloodLabelError(f"classic has no text prompt; {batch_propose.TEXT_MODELS_HINT}")
    if args.ray is None and (args.workers or args.cpus_per_worker):
        raise FloodLabelError("--workers and --cpus-per-worker apply to --ray runs only")
    paths = image_paths(args.data)
    if args.limit is not None:
        paths = paths[: args.limit]

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="propose", unit="img", file=sys.stderr, disable=None)
        bar.n = done
        bar.refresh()

    session = model = None
    if args.ray is None:  # the model first: a wrong one is refused before a project is made
        from floodlabel.core.models.session import SegmentationSession

        session = SegmentationSession.open(args.model)
        batch_propose.require_text_prompt(session.segmenter, args.model)
    else:
        from floodlabel.core.models.registry import resolve_checkpoint

        model = str(resolve_checkpoint(args.model))
    with ProjectStore(args.data, args.project) as store:
        if store.read_only:
            raise FloodLabelError(f"the project {store.project_dir} is read-only ({store.read_only_reason}): "
                                  "close the window that has it open, or pass another --project")
        try:
            if session is not None:
                summary = batch_propose.propose_local(store, paths, session, text.phrase, text.threshold,
                                                      progress=progress)
            else:
                summary = batch_propose.propose_ray(store, paths, model, text.phrase, text.threshold,
                                                    address=args.ray, workers=args.workers,
                                                    cpus_per_worker=args.cpus_per_worker, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        counts = store.counts(paths)

    if args.json:
        print(json.dumps({
            "phrase": summary.phrase, "threshold": summary.threshold, "model_id": summary.model_id,
            "images": len(summary.outcomes), "proposed": summary.proposed, "skipped": summary.skipped,
            "failed": [{"path": o.path, "reason": o.reason} for o in summary.failed],
            "confidence": {o.path: round(o.confidence, 4) for o in summary.outcomes if o.status == "proposed"},
            "seconds": round(summary.seconds, 3), "workers": summary.workers,
            "project": {str(k): v for k, v in counts.items()},
        }, indent=2, ensure_ascii=False))
    else:
        print("\n".join(summary.lines()))
        print("Project: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if summary.failed and not (summary.proposed or summary.skipped) else 0
