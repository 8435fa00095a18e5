"""What an evaluation produces: one row per (model, prompt kind, image), the entries skipped, and the summary.

The runners (`evaluate`'s serial loop, `parallel`, `ray_runner`) fill an EvaluationResult; `report` and
`comparison` read it. A failure is an image with IoU < FAILURE_IOU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.data.datasets import natural_key
from floodlabel.core.evaluation.click_simulation import ClickResult, noc_summary
from floodlabel.core.evaluation.metrics import MaskMetrics, MetricsSummary, aggregate
from floodlabel.core.evaluation.noc import NOC_THRESHOLDS
from floodlabel.core.models.registry import CLASSIC
from floodlabel.core.segment.embedding_cache import CacheStats

PROMPT_KINDS = ("point", "box", "auto", "text")
FAILURE_IOU = 0.5


@dataclass(frozen=True)
class ImageResult:
    """One (model, prompt kind, image) evaluation.

    score:  the model's own quality estimate of the kept mask (SAM's predicted IoU; classic: a heuristic; text: the
            mean score of the kept instances, `text_step.confidence`).
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
                if kind == "text" and not rows:
                    continue  # a model without a text prompt (SAM, SAM 2.1, classic): no row either
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

    def add_outcome(self, model: str, stem: str, outcome: tuple, bad_stems: set[str]) -> None:
        """Add one image's outcome (rows, problem or None, model id; `worker.evaluate_pair`) in the caller's order;
        an image with a problem goes into `bad_stems`, so that the later models skip it too."""
        rows, problem, model_id = outcome
        self.model_ids[model] = model_id
        self.rows.extend(rows)
        if problem is not None:
            bad_stems.add(stem)
            self.skipped.append(problem)
