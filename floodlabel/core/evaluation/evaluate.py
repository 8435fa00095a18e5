"""Evaluate segmenters on a dataset with prompts made automatically from the ground truth.

    result = evaluate(open_dataset("data/"), ["classic", "vit_b"], ["point", "box"])
    for row in result.summary(): print(row.model, row.prompt, row.metrics.iou)

Protocol (per model, per image; every coordinate in original-image pixels):
- point: one positive click at the GT's interior point (`auto_prompts.point_prompt`). A single point is ambiguous,
  so the model returns 3 candidates (multimask=True) and the one with the highest *predicted* score is kept, as
  SAM's authors recommend; the GT never picks the candidate (no oracle).
- box:   the GT's half-open bounding box (`auto_prompts.box_prompt`), multimask=False (a box is not ambiguous).
- auto:  no prompt at all: SAM's automatic mask generation, its segments chosen by the GT (`eval_auto`; an upper
  bound of what AMG gives for water, as the seed notebook's automatic mode). SAM only: classic has no auto row.
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

jobs: worker processes per model (`eval_parallel`; default: the cores for classic, 1 for SAM). Results are
identical to a serial run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from floodlabel.core.evaluation.auto_prompts import box_prompt, point_prompt
from floodlabel.core.evaluation.click_simulation import DEFAULT_THRESHOLDS, ClickResult, clicks_to_reach, noc_summary
from floodlabel.core.data.datasets import FloodDataset, ImagePair, natural_key
from floodlabel.core.segment.embedding_cache import CacheStats
from floodlabel.core.common.errors import DatasetError, ImageReadError, ModelError
from floodlabel.core.data.images import read_image, read_mask
from floodlabel.core.evaluation.metrics import MaskMetrics, MetricsSummary, aggregate, mask_metrics
from floodlabel.core.models.registry import CLASSIC, checkpoint_architecture
from floodlabel.core.annotation.prompts import Prompt

PROMPT_KINDS = ("point", "box", "auto")
FAILURE_IOU = 0.5
NOC_THRESHOLDS = DEFAULT_THRESHOLDS  # (0.85, 0.90)

Progress = Callable[[int, int], None]
"""progress(done, total): images processed so far over all models (skipped ones count as processed)."""


@dataclass(frozen=True)
class ImageResult:
    """One (model, prompt kind, image) evaluation.

    score:  the model's own quality estimate of the kept mask (SAM's predicted IoU; classic: a heuristic).
    clicks: the NoC session (point rows only, when NoC is on), else None.
    used_prompt: the Prompt the model was given (original-image pixels; the NoC session's first click on point
        rows); None for "auto". Identical for every model on the same image and kind. Not part of the CSV.
    """

    model: str
    prompt: str
    stem: str
    metrics: MaskMetrics
    score: float
    clicks: ClickResult | None = None
    used_prompt: Prompt | None = field(default=None, compare=False, repr=False)

    @property
    def iou(self) -> float:
        return self.metrics.iou


@dataclass(frozen=True)
class Skipped:
    """A dataset entry that was not evaluated, and why."""

    stem: str
    reason: str


@dataclass(frozen=True)
class SummaryRow:
    """mean ± std of one (model, prompt kind). noc: `click_simulation.noc_summary` or None (no NoC run)."""

    model: str
    prompt: str
    metrics: MetricsSummary
    noc: dict | None
    failures: int


@dataclass
class EvaluationResult:
    """Everything `evaluate` found. rows are in model, then image, then prompt-kind order."""

    models: list[str]
    prompt_kinds: list[str]
    rows: list[ImageResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    model_ids: dict[str, str] = field(default_factory=dict)
    cache_stats: dict[str, CacheStats] = field(default_factory=dict)
    noc: bool = True
    max_clicks: int = 20
    cancelled: bool = False

    def summary(self) -> list[SummaryRow]:
        """One row per (model, prompt kind), in the order asked for."""
        out = []
        for model in self.models:
            for kind in self.prompt_kinds:
                rows = [r for r in self.rows if r.model == model and r.prompt == kind]
                if kind == "auto" and model == CLASSIC:
                    continue  # classic has no automatic mask generation: no row rather than an empty one
                clicks = [r.clicks for r in rows if r.clicks is not None]
                noc = noc_summary(clicks, NOC_THRESHOLDS) if self.noc and kind == "point" else None
                out.append(SummaryRow(model, kind, aggregate([r.metrics for r in rows]), noc,
                                      sum(r.iou < FAILURE_IOU for r in rows)))
        return out

    def failures(self, threshold: float = FAILURE_IOU) -> list[ImageResult]:
        """Rows with IoU < threshold, worst first (ties: model order, prompt order, natural stem order)."""
        model_rank = {m: i for i, m in enumerate(self.models)}
        kind_rank = {k: i for i, k in enumerate(self.prompt_kinds)}
        bad = [r for r in self.rows if r.iou < threshold]
        return sorted(bad, key=lambda r: (r.iou, model_rank[r.model], kind_rank[r.prompt], natural_key(r.stem)))


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
) -> EvaluationResult:
    """Evaluate each model on the dataset's pairs (protocol in the module docstring).

    models: 'classic', registered SAM names or checkpoint paths; duplicates are dropped.
    prompt_kinds: any of 'point', 'box' ('both' means both); each kind is its own summary row.
    limit: evaluate only the first `limit` evaluable pairs (natural stem order).
    jobs: worker processes per model (None: eval_parallel.default_jobs, i.e. cores for classic, 1 for SAM).
    ray: a Ray address ("local" or a cluster's): the per-image work runs as Ray tasks (`eval_ray`; jobs ignored).
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
        if ray is not None:
            from floodlabel.core.evaluation.ray_runner import evaluate_model_ray

            done = evaluate_model_ray(ray, model, pairs, kinds, result.noc, max_clicks, result, bad_stems, done,
                                      total, progress, cancel)
            continue
        model_jobs = jobs if jobs is not None else _default_jobs(model, len(pairs))
        if model_jobs > 1 and len(pairs) > 1:
            from floodlabel.core.evaluation.parallel import evaluate_model_parallel

            done = evaluate_model_parallel(model, pairs, kinds, result.noc, max_clicks, model_jobs, result,
                                           bad_stems, done, total, progress, cancel)
            continue
        session = SegmentationSession.open(model)
        loaded = getattr(session.segmenter, "loaded", None)  # SAM: a fine-tuned decoder shares its base's model_id
        result.model_ids[model] = getattr(loaded, "weights_id", session.model_id)
        for pair in pairs:
            if cancel is not None and cancel.is_set():
                break
            if pair.stem not in bad_stems:
                problem = _evaluate_pair(session, model, pair, kinds, result.noc, max_clicks, result.rows)
                if problem is not None:
                    bad_stems.add(pair.stem)
                    result.skipped.append(problem)
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


def _evaluate_pair(session, model: str, pair: ImagePair, kinds: list[str], noc: bool, max_clicks: int,
                   rows: list[ImageResult]) -> Skipped | None:
    """Append this pair's rows (one per prompt kind) to `rows`; a Skipped instead if it cannot be evaluated."""
    assert pair.mask is not None
    try:
        image = read_image(pair.image)
        gt = read_mask(pair.mask, size=(image.shape[1], image.shape[0]))
    except ImageReadError as exc:
        return Skipped(pair.stem, f"unreadable: {exc}")
    if not gt.any():
        return Skipped(pair.stem, "ground-truth mask is empty (no water to prompt for)")
    emb = session.embedding(image)
    for kind in kinds:
        prompt = None
        if kind == "point":
            prompt = point_prompt(gt)
            pred = session.predict(emb, prompt, multimask=True)
            best = pred.best
            mask, score, logits = pred.mask(best), float(pred.scores[best]), pred.low_res_logits[best]
            clicks = _click_session(session, emb, gt, mask, logits, max_clicks) if noc else None
        elif kind == "auto":
            from floodlabel.core.evaluation.auto import auto_water_prediction, supports_auto

            if not supports_auto(session):
                continue  # classic: no automatic mask generation (no auto row for it)
            mask, score = auto_water_prediction(session, image, emb, gt)
            clicks = None
        else:
            prompt = box_prompt(gt)
            pred = session.predict(emb, prompt, multimask=False)
            mask, score, clicks = pred.mask(0), float(pred.scores[0]), None
        rows.append(ImageResult(model, kind, pair.stem, mask_metrics(mask, gt), score, clicks, prompt))
    return None


def _click_session(session, emb, gt: np.ndarray, first_mask: np.ndarray, first_logits: np.ndarray,
                   max_clicks: int) -> ClickResult:
    """NoC session whose interaction 1 is the point prediction already made; later clicks refine the previous
    prediction's low-res logits with multimask=False."""
    state = {"logits": first_logits, "calls": 0}

    def predict(prompt: Prompt) -> np.ndarray:
        state["calls"] += 1
        if state["calls"] == 1:
            return first_mask
        pred = session.predict(emb, prompt, multimask=False, mask_input=state["logits"])
        state["logits"] = pred.low_res_logits[0]
        return pred.mask(0)

    return clicks_to_reach(predict, gt, NOC_THRESHOLDS, max_clicks)


def _default_jobs(model: str, pairs: int) -> int:
    from floodlabel.core.evaluation.parallel import default_jobs

    return default_jobs(model, pairs)


def _expand_kinds(prompt_kinds: Sequence[str]) -> list[str]:
    groups = {"both": ["point", "box"], "all": list(PROMPT_KINDS)}
    kinds: list[str] = []
    for kind in prompt_kinds:
        if kind not in (*PROMPT_KINDS, *groups):
            raise ValueError(f"prompt kind must be 'point', 'box', 'auto', 'both' or 'all', not {kind!r}")
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
