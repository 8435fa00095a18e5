"""Two or more models on the same images and prompts: the seed notebook's comparison, from an EvaluationResult.

    for c in compare(result):            # one Comparison per prompt kind; [] with fewer than two models
        c.delta("B", "iou")              # (mean_B - mean_A, percent of mean_A)
        c.deltas["B"][:10]               # per-image IoU_B - IoU_A, worst first

The first model is the reference (A). Only images scored by every model count (all of them unless a run was
cancelled), so each model saw the identical prompts on the identical images (evaluation's prompts come from the
ground truth alone; NoC's later clicks follow each model's own errors, as the protocol requires).
Failures are images with IoU < FAILURE_IOU; the reduction is failures(A) - failures(B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from floodlabel.core.data.datasets import natural_key
from floodlabel.core.evaluation.click_simulation import noc_summary
from floodlabel.core.evaluation.metrics import METRIC_NAMES, MetricsSummary, aggregate
from floodlabel.core.evaluation.noc import NOC_THRESHOLDS
from floodlabel.core.evaluation.results import FAILURE_IOU, EvaluationResult


@dataclass(frozen=True)
class ModelColumn:
    """One model's scores over the compared images. noc: click_simulation.noc_summary, or None (box, no NoC)."""

    model: str
    metrics: MetricsSummary
    noc: dict | None
    failures: int


@dataclass(frozen=True)
class ImageDelta:
    """One image: the reference's IoU, this model's IoU, and their difference (model - reference)."""

    stem: str
    reference_iou: float
    iou: float

    @property
    def delta(self) -> float:
        return self.iou - self.reference_iou


@dataclass(frozen=True)
class Comparison:
    """All models on one prompt kind. deltas: per non-reference model, every image, worst (most negative) first."""

    prompt: str
    models: list[str]
    stems: list[str]
    columns: dict[str, ModelColumn]
    deltas: dict[str, list[ImageDelta]]

    @property
    def reference(self) -> str:
        return self.models[0]

    def delta(self, model: str, metric: str) -> tuple[float, float]:
        """(model's mean - reference's mean, that difference in % of the reference's mean) for a metric
        ("iou", "dice", "precision", "recall", "NoC@85", "NoC@90") or "failures". NaN where undefined."""
        a, b = self.value(self.reference, metric), self.value(model, metric)
        d = b - a
        return d, (100.0 * d / a if a and math.isfinite(a) else math.nan)

    def value(self, model: str, metric: str) -> float:
        col = self.columns[model]
        if metric in METRIC_NAMES:
            return getattr(col.metrics, metric).mean
        if metric == "failures":
            return float(col.failures)
        if col.noc is None or not col.noc["count"]:
            return math.nan
        return float(col.noc[metric])

    def failure_reduction(self, model: str) -> int:
        """failures(reference) - failures(model): how many images stopped failing, net."""
        return self.columns[self.reference].failures - self.columns[model].failures


def compare(result: EvaluationResult) -> list[Comparison]:
    """One Comparison per prompt kind of the result; [] when it has fewer than two models."""
    if len(result.models) < 2:
        return []
    out = []
    for kind in result.prompt_kinds:
        by_model = {m: {r.stem: r for r in result.rows if r.model == m and r.prompt == kind} for m in result.models}
        common = set.intersection(*(set(rows) for rows in by_model.values()))
        stems = sorted(common, key=natural_key)
        columns = {}
        for m in result.models:
            rows = [by_model[m][s] for s in stems]
            clicks = [r.clicks for r in rows if r.clicks is not None]
            noc = noc_summary(clicks, NOC_THRESHOLDS) if result.noc and kind == "point" else None
            columns[m] = ModelColumn(m, aggregate([r.metrics for r in rows]), noc,
                                     sum(r.iou < FAILURE_IOU for r in rows))
        ref = result.models[0]
        deltas = {}
        for m in result.models[1:]:
            d = [ImageDelta(s, by_model[ref][s].iou, by_model[m][s].iou) for s in stems]
            deltas[m] = sorted(d, key=lambda x: (x.delta, natural_key(x.stem)))
        out.append(Comparison(kind, list(result.models), stems, columns, deltas))
    return out
