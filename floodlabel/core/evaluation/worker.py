"""One image pair evaluated for one model: the unit of work of every runner (`evaluate`'s serial loop, the
`--jobs` processes of `parallel`, the Ray tasks of `ray_runner`), so that all of them give identical rows.

    ctx = EvalContext("vit_b", ("point", "box"), noc=True, max_clicks=20)
    rows, problem, model_id = evaluate_pair(session, ctx, pair)      # in this process

    init_worker(ctx)                                                  # once per worker process
    rows, problem, model_id = evaluate_in_worker(pair)                # then per pair

The per-pair protocol (point with the best predicted candidate and NoC refinement, box, auto) is described in
`evaluate`'s module docstring. A worker process's state (its context and its open session) lives here and is only
changed by `init_worker` and `reset_worker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from floodlabel.core.annotation.prompts import Prompt, TextPrompt
from floodlabel.core.annotation.text_step import confidence, text_base
from floodlabel.core.common.errors import ImageReadError
from floodlabel.core.data.datasets import ImagePair
from floodlabel.core.data.images import read_image, read_mask
from floodlabel.core.evaluation.auto_prompts import box_prompt, point_prompt
from floodlabel.core.evaluation.click_simulation import ClickResult, clicks_to_reach
from floodlabel.core.evaluation.metrics import mask_metrics
from floodlabel.core.evaluation.noc import NOC_THRESHOLDS
from floodlabel.core.evaluation.results import ImageResult, Skipped

if TYPE_CHECKING:
    from floodlabel.core.models.session import SegmentationSession


@dataclass(frozen=True)
class EvalContext:
    """What evaluating a pair needs besides the session: the model name the rows carry, the prompt kinds (in
    PROMPT_KINDS order), whether NoC runs on point rows, its click limit, and what the session is opened from when
    that is not `model` (a Ray worker opens a checkpoint by its absolute path: its working folder differs)."""

    model: str
    kinds: tuple[str, ...]
    noc: bool
    max_clicks: int
    source: str | None = None
    text: TextPrompt = TextPrompt()  # the concept prompt of "text" rows (phrase, threshold)

    @property
    def opens(self) -> str:
        """The name or path given to SegmentationSession.open."""
        return self.model if self.source is None else self.source


class PairOutcome(NamedTuple):
    """One pair's outcome: its rows (one per prompt kind), a Skipped instead when it cannot be evaluated, and the
    weights id of the model that made them."""

    rows: list[ImageResult]
    problem: Skipped | None
    model_id: str


def weights_id(session: SegmentationSession) -> str:
    """The id of the weights a session predicts with. SAM: a fine-tuned decoder has its own weights id while it
    shares its base's model_id; other segmenters: the session's model_id."""
    return session.segmenter.weights_id


def evaluate_pair(session: SegmentationSession, ctx: EvalContext, pair: ImagePair) -> PairOutcome:
    """Evaluate one pair with an open session: its rows, or a Skipped when it is unreadable or its GT is empty."""
    assert pair.mask is not None
    model_id = weights_id(session)
    try:
        image = read_image(pair.image)
        gt = read_mask(pair.mask, size=(image.shape[1], image.shape[0]))
    except ImageReadError as exc:
        return PairOutcome([], Skipped(pair.stem, f"unreadable: {exc}"), model_id)
    if not gt.any():
        return PairOutcome([], Skipped(pair.stem, "ground-truth mask is empty (no water to prompt for)"), model_id)
    emb = session.embedding(image)
    rows: list[ImageResult] = []
    for kind in ctx.kinds:
        prompt = None
        if kind == "point":
            prompt = point_prompt(gt)
            pred = session.predict(emb, prompt, multimask=True)
            best = pred.best
            mask, score, logits = pred.mask(best), float(pred.scores[best]), pred.low_res_logits[best]
            clicks = _click_session(session, emb, gt, mask, logits, ctx.max_clicks) if ctx.noc else None
        elif kind == "text":
            if not session.segmenter.capabilities.text_prompt:
                continue  # SAM, SAM 2.1, classic: no text row
            prompt = Prompt.from_text(ctx.text.phrase, ctx.text.threshold)
            mask, score = text_mask(session, emb, ctx.text, gt.shape)
            clicks = None
        elif kind == "auto":
            from floodlabel.core.evaluation.auto import auto_water_prediction, supports_auto  # torch: auto rows only

            if not supports_auto(session):
                continue  # classic: no automatic mask generation (no auto row for it)
            mask, score = auto_water_prediction(session, image, emb, gt)
            clicks = None
        else:
            prompt = box_prompt(gt)
            pred = session.predict(emb, prompt, multimask=False)
            mask, score, clicks = pred.mask(0), float(pred.scores[0]), None
        rows.append(ImageResult(ctx.model, kind, pair.stem, mask_metrics(mask, gt), score, clicks, prompt))
    return PairOutcome(rows, None, model_id)


def text_mask(session: SegmentationSession, emb, text: TextPrompt, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The concept prompt's mask (H, W) bool at `size` (the union of the instances scoring >= the threshold, as the
    window and `propose` make it; no GT involved) and its confidence (the mean score of those instances)."""
    instances = session.segmenter.segment_text(emb, text.phrase, size)
    if len(instances) == 0:
        return np.zeros(size, bool), 0.0
    return text_base(instances.masks, instances.scores, text.threshold), confidence(instances.scores, text.threshold)


# ------------------------------------------------------------------------------------------ a worker process


@dataclass
class _WorkerState:
    ctx: EvalContext | None = None
    session: SegmentationSession | None = None


_state = _WorkerState()


def set_threads(torch_threads: int, cv_threads: int) -> None:
    """Threads of torch and OpenCV in this process (results depend on them in the last bits)."""
    import cv2
    import torch

    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv_threads)


def init_worker(ctx: EvalContext) -> None:
    """Set up this process to evaluate pairs for ctx: one torch / OpenCV thread (N workers use N cores), and the
    session opened once (classic: nothing to load; SAM: the checkpoint, the disk embedding cache shared)."""
    set_threads(1, 1)
    from floodlabel.core.models.session import SegmentationSession  # torch: only in processes that do the work

    reset_worker()  # a failed open leaves no half state behind
    _state.session = SegmentationSession.open(ctx.opens)
    _state.ctx = ctx


def reset_worker() -> None:
    """Forget this process's context and session (the next `init_worker` opens afresh)."""
    _state.ctx, _state.session = None, None


def worker_context() -> EvalContext | None:
    """The context this process was set up for by `init_worker`, or None."""
    return _state.ctx


def evaluate_in_worker(pair: ImagePair) -> PairOutcome:
    """`evaluate_pair` with this process's session and context (`init_worker` first)."""
    if _state.ctx is None:
        raise RuntimeError("init_worker was not called in this process")
    return evaluate_pair(_state.session, _state.ctx, pair)


# ----------------------------------------------------------------------------------------------------- helpers


def _click_session(session: SegmentationSession, emb, gt: np.ndarray, first_mask: np.ndarray, first_logits: np.ndarray,
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
