"""Evaluate segmenters on a dataset with prompts made automatically from the ground truth.

    result = evaluate(open_dataset("data/"), ["classic", "vit_b"], ["point", "box"])
    for row in result.summary(): print(row.model, row.prompt, row.metrics.iou)

Protocol (per model, per image; every coordinate in original-image pixels):
- point: one positive click at the GT's interior point (`auto_prompts.point_prompt`). A single point is ambiguous,
  so the model returns 3 candidates (multimask=True) and the one with the highest *predicted* score is kept, as
  SAM's authors recommend; the GT never picks the candidate (no oracle).
- box:   the GT's half-open bounding box (`auto_prompts.box_prompt`), multimask=False (a box is not ambiguous).
- auto:  no prompt at all: SAM's automatic mask generation, its segments chosen by the GT (`auto`; an upper
  bound of what AMG gives for water, as the seed notebook's automatic mode). SAM only: classic has no auto row.
- text:  the concept prompt (`text`: a phrase such as "flood water" and a threshold), the same for every image; the
  mask is the union of the instances scoring >= the threshold (`worker.text_mask`, the window's and `propose`'s
  rule), the GT plays no part. Models whose capabilities lack `text_prompt` have no text row.
- Scores per image: IoU, Dice, precision, recall (`metrics.mask_metrics`); summary = mean ± population std per
  (model, prompt). A failure is an image with IoU < FAILURE_IOU; failures are listed worst first.
- NoC (`click_simulation.clicks_to_reach`, RITM / SAM protocol): interaction 1 is the point prompt above (its
  prediction is reused, not recomputed); each next click goes at the centre of the largest error
  (`next_click`) and is added to the accumulated prompt, which is decoded with multimask=False and the previous
  prediction's (256, 256) low-res logits as mask_input, as SAM's interactive evaluation does. Up to max_clicks
  predictions; NoC@85 / NoC@90 count max_clicks when not reached. NoC belongs to the point protocol: it is
  reported on the "point" rows and is not run when only box prompts are asked for.

Data handling: only complete pairs are evaluated. Pairs whose image and mask sizes differ (from file headers),
unreadable files, empty GT masks, images without masks and masks without images are skipped and reported with a
reason, never resized. Models are validated up front (a missing checkpoint raises ModelError before any work),
then loaded lazily one at a time; each image is read once per model and embedded once per model through the
session, so SAM embeddings go through the disk cache (a second run does not run the encoder). Cancellation is
checked between images; the partial result comes back with `cancelled=True`.

Runners: the serial loop here, worker processes per model (`parallel`, jobs; default: the cores for classic, 1 for
SAM) or Ray tasks (`ray_runner`). All of them evaluate a pair with `worker.evaluate_pair` and give identical
results. The result types are in `results`, NoC's thresholds in `noc`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from floodlabel.core.annotation.prompts import TextPrompt
from floodlabel.core.common.errors import DatasetError, ImageReadError, ModelError
from floodlabel.core.common.progress import Progress
from floodlabel.core.data.datasets import FloodDataset, ImagePair, natural_key
from floodlabel.core.evaluation.noc import NOC_THRESHOLDS
from floodlabel.core.evaluation.parallel import default_jobs, evaluate_model_parallel
from floodlabel.core.evaluation.ray_runner import evaluate_model_ray
from floodlabel.core.evaluation.results import (FAILURE_IOU, PROMPT_KINDS, EvaluationResult, ImageResult, Skipped,
                                                SummaryRow)
from floodlabel.core.evaluation.worker import EvalContext, evaluate_pair, weights_id
from floodlabel.core.models.registry import CLASSIC, checkpoint_architecture

__all__ = ["FAILURE_IOU", "NOC_THRESHOLDS", "PROMPT_KINDS", "EvaluationResult", "ImageResult", "Progress", "Skipped",
           "SummaryRow", "evaluate", "plan_pairs", "validate_models"]

_evaluate_pair = evaluate_pair
"""The serial loop's per-pair call, looked up here on every pair (a test slows it down to cancel mid-run)."""


def evaluate(
    dataset: FloodDataset,
    models: Sequence[str],
    prompt_kinds: Sequence[str],
    noc: bool = True,
    max_clicks: int = 20,
    limit: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    jobs: int | None = None,
    ray: str | None = None,
    text: TextPrompt | None = None,
) -> EvaluationResult:
    """Evaluate each model on the dataset's pairs (protocol in the module docstring).

    models: 'classic', registered SAM names or checkpoint paths; duplicates are dropped.
    prompt_kinds: any of 'point', 'box', 'auto', 'text' ('both' = point + box, 'all' = every kind); each kind is
        its own summary row. text: the concept prompt of the text rows (default: "water", threshold 0.5).
    limit: evaluate only the first `limit` evaluable pairs (natural stem order).
    jobs: worker processes per model (None: parallel.default_jobs, i.e. cores for classic, 1 for SAM).
    ray: a Ray address ("local" or a cluster's): the per-image work runs as Ray tasks (`ray_runner`; jobs ignored).
    progress(done, total): images processed so far over all models (skipped ones count as processed).
    Raises ModelError (unknown name, missing checkpoint) or DatasetError (no masks, no pairs) before any work.
    """
    models = list(dict.fromkeys(str(m) for m in models))
    kinds = _expand_kinds(prompt_kinds)
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be at least 1, got {max_clicks}")
    validate_models(models)
    pairs, skipped = plan_pairs(dataset)
    if limit is not None:
        pairs = pairs[: max(0, limit)]

    result = EvaluationResult(models, kinds, skipped=skipped, noc=noc and "point" in kinds, max_clicks=max_clicks)
    bad_stems: set[str] = set()  # pairs found unreadable or empty while evaluating an earlier model
    total, done = len(models) * len(pairs), 0
    if progress:
        progress(0, total)
    from floodlabel.core.models.session import SegmentationSession  # torch and friends only when there is work

    for model in models:
        if cancel is not None and cancel.is_set():
            break
        ctx = EvalContext(model, tuple(kinds), result.noc, max_clicks, text=text or TextPrompt())
        if ray is not None:
            done = evaluate_model_ray(ray, ctx, pairs, result, bad_stems, done, total, progress, cancel)
            continue
        model_jobs = jobs if jobs is not None else default_jobs(model, len(pairs))
        if model_jobs > 1 and len(pairs) > 1:
            done = evaluate_model_parallel(ctx, pairs, model_jobs, result, bad_stems, done, total, progress, cancel)
            continue
        session = SegmentationSession.open(model)
        result.model_ids[model] = weights_id(session)
        for pair in pairs:
            if cancel is not None and cancel.is_set():
                break
            if pair.stem not in bad_stems:
                result.add_outcome(model, pair.stem, _evaluate_pair(session, ctx, pair), bad_stems)
            done += 1
            if progress:
                progress(done, total)
        if session.cache is not None:
            result.cache_stats[model] = session.cache.stats
        del session
    result.skipped.sort(key=lambda s: natural_key(s.stem))
    result.cancelled = cancel is not None and cancel.is_set() and done < total
    return result


def validate_models(models: Sequence[str]) -> None:
    """Cheap up-front check: each is 'classic', or a downloaded registered name or file holding a SAM (tensor
    shapes read through a memory map; no weights loaded).

    Raises ModelError for the first bad one, or when the list is empty.
    """
    if not models:
        raise ModelError("no model given")
    for model in models:
        if model != CLASSIC:
            checkpoint_architecture(model)  # memory-mapped read of the tensor shapes: milliseconds


def plan_pairs(dataset: FloodDataset) -> tuple[list[ImagePair], list[Skipped]]:
    """The pairs to evaluate (natural stem order) and the entries skipped with reasons, from file headers only.

    Raises DatasetError when the dataset has no mask folder or no image/mask pair.
    """
    if dataset.mask_dir is None:
        raise DatasetError(f"no mask folder found in {dataset.root}: evaluation needs ground-truth masks")
    if not dataset.complete_pairs:
        raise DatasetError(f"no image has a mask in {dataset.root} (masks are paired with images by file stem)")
    # complete pairs that cannot be evaluated
    skipped = [Skipped(m.stem, f"size mismatch: image {_wh(m.image_size)}, mask {_wh(m.mask_size)}")
               for m in dataset.size_mismatches]
    unreadable: dict[str, ImageReadError] = {}
    for err in dataset.unreadable:
        unreadable.setdefault(_stem_of(dataset, err.path), err)
    skipped += [Skipped(stem, f"unreadable: {err}") for stem, err in unreadable.items()]
    bad = {s.stem for s in skipped}
    pairs = [p for p in dataset.complete_pairs if p.stem not in bad]
    # entries that are not pairs at all
    skipped += [Skipped(p.stem, f"image {p.image.name} has no mask") for p in dataset.pairs if p.mask is None]
    skipped += [Skipped(m.stem, f"mask {m.name} has no image") for m in dataset.masks_without_images]
    skipped += [Skipped(d.stem, f"{d.name} ignored: another file has the same stem") for d in dataset.duplicates]
    skipped.sort(key=lambda s: natural_key(s.stem))
    return pairs, skipped


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _expand_kinds(prompt_kinds: Sequence[str]) -> list[str]:
    groups = {"both": ["point", "box"], "all": list(PROMPT_KINDS)}
    kinds: list[str] = []
    for kind in prompt_kinds:
        if kind not in (*PROMPT_KINDS, *groups):
            raise ValueError(f"prompt kind must be 'point', 'box', 'auto', 'text', 'both' or 'all', not {kind!r}")
        kinds += groups.get(kind, [kind])
    kinds = [k for k in PROMPT_KINDS if k in kinds]
    if not kinds:
        raise ValueError("no prompt kind given")
    return kinds


def _stem_of(dataset: FloodDataset, path: str) -> str:
    for p in dataset.complete_pairs:
        if str(p.image) == path or str(p.mask) == path:
            return p.stem
    return str(path)


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"
