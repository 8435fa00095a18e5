"""`floodlabel embed DATA --model M [--cache DIR] [--ray ADDRESS|local] [--batch N]`: pre-encode every image of a
dataset into the embedding cache (here, or on a Ray cluster), so the app, eval and finetune never wait for the
encoder."""

from __future__ import annotations

import argparse
import json
import sys

from floodlabel.commands.eval_command import _positive_int
from floodlabel.core.models.registry import MODELS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed", help="pre-encode a dataset's images into the embedding cache (locally or on a Ray cluster)",
        description="Encode every image of DATA with the model's image encoder (SAM or SAM 2.1) and store the "
                    "embeddings in the cache folder, in the format and under the keys the app, eval and finetune "
                    "read. Images already cached are skipped (an interrupted run resumes; a re-run adds nothing); unreadable images are "
                    "listed with the reason and do not stop the run. With --ray the work runs on a Ray cluster "
                    "(Ray Data, one model load per worker; one worker per GPU, or per --cpus-per-worker CPUs): "
                    "every node must see DATA, the model file and the cache folder at the same paths.")
    parser.add_argument("data", metavar="DATA", help="dataset folder or folder of images (masks are not needed)")
    parser.add_argument("--model", "-m", default="vit_b", metavar="MODEL",
                        help=f"a downloaded SAM or SAM 2.1 name ({', '.join(MODELS)}) or a checkpoint file (.pth, "
                             "or a SAM 2.1 .pt; its family is read from its tensors) (default: vit_b)")
    parser.add_argument("--cache", metavar="DIR", default=None,
                        help="embedding cache folder (default: the user cache's embeddings folder, i.e. "
                             "$FLOODLABEL_CACHE_DIR/embeddings when that is set); the app finds the entries when "
                             "FLOODLABEL_CACHE_DIR points at the folder above it")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="run on Ray: 'local' (a Ray on this machine) or a cluster address such as "
                             "10.0.0.5:6379 (printed by `ray start --head`); needs the cluster extra")
    parser.add_argument("--batch", type=_positive_int, default=None, metavar="N",
                        help="with --ray: images handed to a worker at a time (default: 4)")
    parser.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="with --ray: worker actors (default: one per GPU, else one per --cpus-per-worker CPUs)")
    parser.add_argument("--cpus-per-worker", type=_positive_int, default=None, metavar="N",
                        help="with --ray: CPUs (torch threads) per worker (default: 4, or all when fewer)")
    parser.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                        help="encode only the first N images (natural file-name order)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from floodlabel.core.cluster import batch_embed
    from floodlabel.core.segment.compute_config import environment_overrides
    from floodlabel.core.common.errors import FloodLabelError
    from floodlabel.core.models.registry import CLASSIC, resolve_checkpoint
    from floodlabel.core.common.paths import embeddings_dir

    environment_overrides()  # a bad FLOODLABEL_DEVICE / FLOODLABEL_PRECISION -> one line + exit 2, before any work
    if args.model == CLASSIC:
        raise FloodLabelError("the classic backend has no embeddings to cache: pass a SAM model")
    if args.ray is None and (args.batch or args.workers or args.cpus_per_worker):
        raise FloodLabelError("--batch, --workers and --cpus-per-worker apply to --ray runs only")
    model = str(resolve_checkpoint(args.model))  # not downloaded / bad path -> one line + exit 2
    cache_dir = Path(args.cache).expanduser().absolute() if args.cache else embeddings_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = batch_embed.image_paths(args.data)
    if args.limit is not None:
        paths = paths[: args.limit]

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="embed", unit="img", file=sys.stderr, disable=None)
        bar.n = done
        bar.refresh()

    try:
        if args.ray is None:
            summary = batch_embed.embed_local(paths, model, cache_dir, progress=progress)
        else:
            summary = batch_embed.embed_ray(paths, model, cache_dir, address=args.ray,
                                            batch=args.batch or batch_embed.DEFAULT_BATCH, workers=args.workers,
                                            cpus_per_worker=args.cpus_per_worker, progress=progress)
    finally:
        if bar is not None:
            bar.close()

    if args.json:
        print(json.dumps({
            "cache": str(summary.cache_dir), "model_id": summary.model_id, "images": len(summary.outcomes),
            "encoded": summary.encoded, "skipped": summary.skipped,
            "failed": [{"path": o.path, "reason": o.reason} for o in summary.failed],
            "seconds": round(summary.seconds, 3), "images_per_second": round(summary.images_per_second, 4),
            "steady_images_per_second": round(summary.steady_images_per_second, 4),
            "startup_seconds": round(summary.startup_seconds, 3), "workers": summary.workers,
        }, indent=2, ensure_ascii=False))
    else:
        print("\n".join(summary.lines()))
    return 1 if summary.failed and not (summary.encoded or summary.skipped) else 0
