"""What a fine-tuning run reports: progress events while it runs (`TrainingProgress`, one `EpochMetrics` per
finished epoch) and its `FinetuneResult` at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Progress = Callable[["TrainingProgress"], None]
"""The progress callback `finetune` calls (on rank 0 only under torchrun)."""


@dataclass(frozen=True)
class EpochMetrics:
    """One finished epoch. train_loss: mean batch loss; val_iou / val_dice: low-res frame, both prompt kinds."""

    epoch: int
    train_loss: float
    val_iou: float
    val_dice: float
    lr: float
    seconds: float


@dataclass(frozen=True)
class TrainingProgress:
    """A progress event.

    phase: "embedding" (done/total = images), "training" (after each step; done/total = steps of the whole run),
           "epoch" (after each validation; `epoch_metrics` is set), "done" (once, at the end; message says why).
    loss:  the last step's batch loss (training) or the epoch's mean (epoch).
    eta_s: estimated seconds left for the whole run (None until a step has been timed).
    """

    phase: str
    done: int
    total: int
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    loss: float | None = None
    val_iou: float | None = None
    lr: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    epoch_metrics: EpochMetrics | None = None
    message: str = ""


@dataclass
class FinetuneResult:
    """What a run did. checkpoint: the saved file (None if no epoch finished). stopped: None (all epochs ran),
    "cancelled" or "diverged"; message says what happened in one line."""

    checkpoint: Path | None
    metrics: list[EpochMetrics]
    base_val_iou: float
    base_val_dice: float
    best_epoch: int | None
    best_val_iou: float | None
    stopped: str | None
    message: str
    train_count: int
    val_count: int
    val_on_train: bool
    skipped: list[tuple[str, str]] = field(default_factory=list)
    embedded: int = 0  # images the encoder ran for (the rest were cache hits)
    embed_seconds: float = 0.0
    train_seconds: float = 0.0


def eta_seconds(step: int, total: int, step_time: float, val_time: float, epochs_done: int,
                epochs: int) -> float | None:
    """Seconds left for the whole run: the mean step time for the steps left plus the mean validation time for the
    validations left (None before the first step)."""
    if step == 0:
        return None
    per_val = val_time / epochs_done if epochs_done else 0.0
    return (total - step) * step_time / step + (epochs - epochs_done) * per_val
