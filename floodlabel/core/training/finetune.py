"""Fine-tune SAM's mask decoder on cached image embeddings: the encoder is frozen and never runs in the loop.

    session = SegmentationSession.open("vit_b")                 # the base (or a fine-tuned model to continue)
    items, _ = items_from_dataset(open_dataset("data/"))
    result = finetune(items, session, "flood-decoder.pth", FinetuneSettings(epochs=10),
                      progress=on_progress, cancel=stop_event)

Steps:
1. Embeddings (`embeddings.prepare_embeddings`): every image is embedded once by the session (cache hit or the
   encoder), with progress events of phase "embedding"; nothing else is encoded afterwards.
2. A seeded split (`data_split`): `round(val_fraction * n)` items (at least 1 when val_fraction > 0 and n >= 2) validate, the
   rest train. With val_fraction = 0 the training items are also the validation items (said in the result).
3. Training: copies of the session model's mask decoder (and prompt encoder when `train_prompt_encoder`) in train
   mode, float32 weights, through segment_anything's own differentiable modules (`PromptEncoder.forward`, and
   `MaskDecoder.predict_masks`'s computation for the whole batch in one call per prompt length, see trainer.Trainer),
   with bf16 autocast where it is native (`precision`). Adam(lr), StepLR(step_size=lr_step_epochs, gamma=lr_gamma).
   Each example gets a simulated prompt (examples.py) drawn from the seeded generator at every step;
   loss = mask loss (BCE or focal + Dice; the lowest over the 3 candidates for single-point prompts) +
   iou_head_weight * MSE of SAM's IoU head. The batch loss is the mean over its examples.
4. Validation after every epoch (and once before training: `base_val_iou`) with fixed prompts (the water's
   interior point with the best-scored of 3 candidates, and its box), IoU and Dice in the 256x256 low-res frame.
   The best epoch's weights are kept and saved atomically to `out` whenever the validation IoU improves.
5. A loss that is not finite or exceeds `max_loss` stops the run at once (`stopped="diverged"`): no optimiser step
   is taken with it and the file at `out` (the best epoch so far) is not touched.
   `cancel` (a threading.Event) is checked between steps and images: the run stops with `stopped="cancelled"`; the
   best epoch's checkpoint, if any epoch finished, is rewritten with the metrics so far (same weights).
6. Under `torchrun --nproc-per-node N` the same run is shared by N processes with DistributedDataParallel
   (`distributed.py`: each rank a share of every batch and of validation, rank 0 writes the checkpoint).

The model family (SAM v1 or SAM 2.1, `families.family_of`) is chosen once: the trainer and the embedding step ask it
which modules train, how features batch, how prompts map and decode; the checkpoint records its family.

Where the parts live: `finetune_settings` (FinetuneSettings, resolve_precision), `finetune_progress`
(TrainingProgress, EpochMetrics, FinetuneResult), `data_split` (step 2), `trainer` (Trainer: step 3's step and
step 4's validation), `best_checkpoint` (step 4's best epoch and its file). This module is the loop; it re-exports
the public names, so `from floodlabel.core.training.finetune import FinetuneSettings, finetune` keeps working.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from floodlabel.core.training import distributed
from floodlabel.core.training.best_checkpoint import BestCheckpoint, base_info
from floodlabel.core.training.data_split import data_record, split_items
from floodlabel.core.training.embeddings import EmbeddingReader, TrainingError
from floodlabel.core.training.examples import TrainingItem
from floodlabel.core.training.finetune_progress import (EpochMetrics, FinetuneResult, Progress, TrainingProgress,
                                                        eta_seconds)
from floodlabel.core.training.finetune_settings import FinetuneSettings, resolve_precision
from floodlabel.core.training.trainer import Trainer

__all__ = ["finetune", "FinetuneSettings", "FinetuneResult", "TrainingProgress", "EpochMetrics", "Progress",
           "TrainingError", "resolve_precision"]


def finetune(
    items: Sequence[TrainingItem],
    session,
    out: str | os.PathLike,
    settings: FinetuneSettings = FinetuneSettings(),
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> FinetuneResult:
    """Fine-tune the session's SAM decoder on `items` and save the best epoch to `out` (see the module docstring).

    session: a SegmentationSession on a SAM segmenter (base or fine-tuned). Raises TrainingError when fewer than
    two usable items remain, ValueError on bad settings.
    """
    settings.validate()
    out = Path(out).expanduser().absolute()
    seg = session.segmenter
    if not seg.capabilities.finetune_decoder:
        raise TrainingError(f"{session.model_id} is not a SAM model: only SAM's decoder can be fine-tuned")
    settings = replace(settings, precision=resolve_precision(settings.precision, seg.device))  # recorded as run
    ddp = distributed.current()  # several processes under torchrun (training/distributed.py), else a no-op
    emit = progress if progress is not None and ddp.is_main else (lambda event: None)
    t_start = time.perf_counter()

    prepared, skipped = distributed.prepare(
        items, session, lambda d, t, name: emit(TrainingProgress("embedding", d, t, message=name)), cancel)
    embed_seconds = time.perf_counter() - t_start
    if ddp.any(cancel is not None and cancel.is_set()):
        return _finish_early(prepared, skipped, embed_seconds, "cancelled while preparing embeddings", emit)
    if len(prepared) < 2:
        raise TrainingError(f"fine-tuning needs at least 2 usable image/mask pairs, found {len(prepared)}")
    reader = EmbeddingReader(session, seg.device)
    reader.check(prepared)

    trainer = Trainer(seg, settings, reader)
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    train, val, val_on_train = split_items(prepared, settings, rng)
    metrics: list[EpochMetrics] = []
    best = BestCheckpoint(out, base_info(seg), settings, data_record(train, val, val_on_train, len(skipped)),
                          metrics, ddp, trainer.family.name)
    base_iou, base_dice = trainer.validate(val)

    steps_per_epoch = -(-len(train) // settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    stopped, message = None, ""
    step, step_time, val_time = 0, 0.0, 0.0
    t_train = time.perf_counter()

    for epoch in range(1, settings.epochs + 1):
        t_epoch = time.perf_counter()
        order = rng.permutation(len(train))
        batch_losses = []
        for s in range(steps_per_epoch):
            if ddp.any(cancel is not None and cancel.is_set()):
                stopped = "cancelled"
                break
            t_step = time.perf_counter()
            batch = [train[j] for j in order[s * settings.batch_size: (s + 1) * settings.batch_size]]
            loss = trainer.step(batch, rng)
            step += 1
            if not math.isfinite(loss) or loss > settings.max_loss:
                stopped = "diverged"
                what = "not a number" if math.isnan(loss) else f"{loss:.4g}"
                kept = (f"the best checkpoint (epoch {best.epoch}, val IoU {best.val_iou:.3f}) in {best.saved} is "
                        "intact" if best.saved else "no checkpoint was written (no epoch had finished)")
                message = (f"training stopped at epoch {epoch}, step {step}: the loss is {what} (diverged; try a "
                           f"lower learning rate than {settings.lr:g}); {kept}")
                break
            batch_losses.append(loss)
            step_time += time.perf_counter() - t_step
            eta = eta_seconds(step, total_steps, step_time, val_time, epoch - 1, settings.epochs)
            emit(TrainingProgress("training", step, total_steps, epoch, settings.epochs, step, loss,
                                  metrics[-1].val_iou if metrics else base_iou, trainer.lr,
                                  time.perf_counter() - t_start, eta))
        if stopped:
            break
        t_val = time.perf_counter()
        val_iou, val_dice = trainer.validate(val)
        val_time += time.perf_counter() - t_val
        m = EpochMetrics(epoch, float(np.mean(batch_losses)), val_iou, val_dice, trainer.lr,
                         time.perf_counter() - t_epoch)
        metrics.append(m)
        trainer.scheduler.step()
        best.offer(epoch, val_iou, trainer.state)
        emit(TrainingProgress("epoch", step, total_steps, epoch, settings.epochs, step, m.train_loss, val_iou,
                              m.lr, time.perf_counter() - t_start,
                              eta_seconds(step, total_steps, step_time, val_time, epoch, settings.epochs), m))

    if stopped != "diverged":
        best.save()  # same weights, every epoch's metrics
    if stopped == "cancelled":
        message = (f"cancelled at epoch {len(metrics) + 1}; " +
                   (f"best checkpoint (epoch {best.epoch}, val IoU {best.val_iou:.3f}) saved to {best.saved}"
                    if best.epoch is not None else "no epoch had finished, nothing saved"))
    elif stopped is None:
        message = (f"finished {settings.epochs} epochs; best epoch {best.epoch} (val IoU {best.val_iou:.3f}, base "
                   f"{base_iou:.3f}) saved to {best.saved}")
    result = FinetuneResult(
        checkpoint=best.saved, metrics=metrics, base_val_iou=base_iou, base_val_dice=base_dice,
        best_epoch=best.epoch, best_val_iou=best.val_iou, stopped=stopped,
        message=message, train_count=len(train), val_count=len(val), val_on_train=val_on_train, skipped=skipped,
        embedded=sum(p.computed for p in prepared), embed_seconds=embed_seconds,
        train_seconds=time.perf_counter() - t_train)
    emit(TrainingProgress("done", step, total_steps, len(metrics), settings.epochs, step, None,
                          best.val_iou, trainer.lr, time.perf_counter() - t_start, 0.0,
                          message=message))
    return result


def _finish_early(prepared, skipped, embed_seconds, message, emit) -> FinetuneResult:
    emit(TrainingProgress("done", 0, 0, message=message))
    return FinetuneResult(None, [], math.nan, math.nan, None, None, "cancelled", message, 0, 0, False, skipped,
                          sum(p.computed for p in prepared), embed_seconds)
