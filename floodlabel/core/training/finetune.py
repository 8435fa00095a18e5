"""Fine-tune SAM's mask decoder on cached image embeddings: the encoder is frozen and never runs in the loop.

    session = SegmentationSession.open("vit_b")                 # the base (or a fine-tuned model to continue)
    items, _ = items_from_dataset(open_dataset("data/"))
    result = finetune(items, session, "flood-decoder.pth", FinetuneSettings(epochs=10),
                      progress=on_progress, cancel=stop_event)

Steps:
1. Embeddings (`embeddings.prepare_embeddings`): every image is embedded once by the session (cache hit or the
   encoder), with progress events of phase "embedding"; nothing else is encoded afterwards.
2. A seeded split: `round(val_fraction * n)` items (at least 1 when val_fraction > 0 and n >= 2) validate, the
   rest train. With val_fraction = 0 the training items are also the validation items (said in the result).
3. Training: copies of the session model's mask decoder (and prompt encoder when `train_prompt_encoder`) in train
   mode, float32 weights, through segment_anything's own differentiable modules (`PromptEncoder.forward`, and
   `MaskDecoder.predict_masks`'s computation for the whole batch in one call per prompt length, see _Trainer),
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
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from floodlabel.core.training import batched_decoder, distributed, losses
from floodlabel.core.sam.decoder_checkpoint import (BaseModelInfo, DecoderCheckpoint, read_decoder_checkpoint,
                                                         save_decoder_checkpoint)
from floodlabel.core.training.embeddings import EmbeddingReader, PreparedItem, TrainingError
from floodlabel.core.training.examples import (PROMPT_KINDS, Target, TrainingItem, correction_click, jittered_box,
                                               random_point, validation_prompts)

Progress = Callable[["TrainingProgress"], None]


@dataclass(frozen=True)
class FinetuneSettings:
    """Training settings (stored in the checkpoint). Defaults follow the seed notebook."""

    epochs: int = 10
    lr: float = 1e-4
    batch_size: int = 4
    val_fraction: float = 0.2
    seed: int = 0
    lr_step_epochs: int = 5  # StepLR: multiply the lr by lr_gamma every this many epochs
    lr_gamma: float = 0.5
    loss: str = "bce"  # "bce" or "focal", each + Dice
    dice_weight: float = 1.0
    iou_head_weight: float = 1.0
    train_prompt_encoder: bool = False
    prompt_kinds: tuple[str, ...] = PROMPT_KINDS  # "recorded" is used only for items that have prompts
    max_loss: float = 1000.0  # a batch loss above this counts as exploded
    precision: str = "auto"  # decoder products in "bf16" (autocast; float32 weights) or "fp32"; auto: bf16 where native

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch size must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"validation fraction must be in [0, 1), got {self.val_fraction}")
        if self.loss not in losses.LOSSES:
            raise ValueError(f"loss must be one of {losses.LOSSES}, not {self.loss!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, not {self.precision!r}")
        unknown = set(self.prompt_kinds) - set(PROMPT_KINDS)
        if unknown or not set(self.prompt_kinds) - {"recorded"}:
            raise ValueError(f"prompt kinds must include one of point/box/correction; unknown: {sorted(unknown)}")


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
    if not hasattr(seg, "loaded"):
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

    trainer = _Trainer(seg, settings, reader)
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    train, val, val_on_train = _split(prepared, settings, rng)
    base_info = _base_info(seg)
    data = {"train": len(train), "val": len(val), "val_on_train": val_on_train, "skipped": len(skipped),
            "hash": _data_hash(train, val), "train_items": [p.name for p in train], "val_items": [p.name for p in val]}
    base_iou, base_dice = trainer.validate(val)

    steps_per_epoch = -(-len(train) // settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    metrics: list[EpochMetrics] = []
    best: tuple[int, float, dict, dict | None] | None = None  # epoch, val IoU, decoder state, prompt-encoder state
    saved: Path | None = None
    stopped, message = None, ""
    step, step_time, val_time = 0, 0.0, 0.0
    t_train = time.perf_counter()

    def checkpoint_of(b) -> DecoderCheckpoint:
        return DecoderCheckpoint(mask_decoder=b[2], prompt_encoder=b[3], base=base_info, settings=asdict(settings),
                                 data=data, metrics=[asdict(m) for m in metrics], best_epoch=b[0], best_val_iou=b[1])

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
                kept = (f"the best checkpoint (epoch {best[0]}, val IoU {best[1]:.3f}) in {saved} is intact"
                        if saved else "no checkpoint was written (no epoch had finished)")
                message = (f"training stopped at epoch {epoch}, step {step}: the loss is {what} (diverged; try a "
                           f"lower learning rate than {settings.lr:g}); {kept}")
                break
            batch_losses.append(loss)
            step_time += time.perf_counter() - t_step
            eta = _eta(step, total_steps, step_time, val_time, epoch - 1, settings.epochs)
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
        if best is None or val_iou > best[1]:
            best = (epoch, val_iou, *trainer.state())
            saved = ddp.save(save_decoder_checkpoint, checkpoint_of(best), out)
        emit(TrainingProgress("epoch", step, total_steps, epoch, settings.epochs, step, m.train_loss, val_iou,
                              m.lr, time.perf_counter() - t_start,
                              _eta(step, total_steps, step_time, val_time, epoch, settings.epochs), m))

    if stopped != "diverged" and best is not None:
        saved = ddp.save(save_decoder_checkpoint, checkpoint_of(best), out)  # same weights, every epoch's metrics
    if stopped == "cancelled":
        message = (f"cancelled at epoch {len(metrics) + 1}; " +
                   (f"best checkpoint (epoch {best[0]}, val IoU {best[1]:.3f}) saved to {saved}" if best
                    else "no epoch had finished, nothing saved"))
    elif stopped is None:
        message = (f"finished {settings.epochs} epochs; best epoch {best[0]} (val IoU {best[1]:.3f}, base "
                   f"{base_iou:.3f}) saved to {saved}")
    result = FinetuneResult(
        checkpoint=saved, metrics=metrics, base_val_iou=base_iou, base_val_dice=base_dice,
        best_epoch=best[0] if best else None, best_val_iou=best[1] if best else None, stopped=stopped,
        message=message, train_count=len(train), val_count=len(val), val_on_train=val_on_train, skipped=skipped,
        embedded=sum(p.computed for p in prepared), embed_seconds=embed_seconds,
        train_seconds=time.perf_counter() - t_train)
    emit(TrainingProgress("done", step, total_steps, len(metrics), settings.epochs, step, None,
                          best[1] if best else None, trainer.lr, time.perf_counter() - t_start, 0.0,
                          message=message))
    return result


# ---------------------------------------------------------------------------------------------------------------
# the trainer: modules, one step, validation


class _Trainer:
    """The trained modules, one optimiser step over a batch, and validation.

    Speed (the same function as one `MaskDecoder.forward` per example, regrouped):
    - one decoder call per group of examples whose prompts have the same number of sparse tokens (a single point
      plus SAM's padding point and a box are both 2 tokens, so a batch of point and box prompts is one call; a
      correction prompt is 3): `decode_batch` computes `MaskDecoder.predict_masks` for K images with one prompt
      each (segment_anything's own repeats every image embedding per prompt, which for K images and K prompts
      would be K x K). No padding tokens are added, so nothing changes what the decoder sees;
    - `batched_decoder.decode`: the attention projections of the 4096 image tokens re-associated onto the few
      prompt tokens (about half the products, forward and backward; exact algebra), token-major layout;
    - the dense positional encoding is computed once (the prompt encoder's random Fourier matrix is a buffer);
    - the mask head (upscaling, hypernetwork product) runs only over the 64x64 grid cells that cover the batch's
      images: it is per-cell local, and the loss never counts the padding, so losses and gradients are the same;
    - bf16 autocast (`precision="bf16"`, the default on CPUs with native bf16 and on recent GPUs): the decoder's
      products run in bf16, the weights, Adam state, losses and metrics stay float32.
    """

    def __init__(self, seg, settings: FinetuneSettings, reader: EmbeddingReader) -> None:
        self.settings = settings
        self.reader = reader
        self.device = seg.device
        self.bf16 = resolve_precision(settings.precision, self.device) == "bf16"
        model = seg.loaded.model
        self.decoder = copy.deepcopy(model.mask_decoder).float().to(self.device).train()
        self.prompt_encoder = copy.deepcopy(model.prompt_encoder).float().to(self.device)
        self.prompt_encoder.train(settings.train_prompt_encoder)
        self.prompt_encoder.requires_grad_(settings.train_prompt_encoder)
        with torch.no_grad():  # a function of the fixed random Fourier matrix only
            self.dense_pe = self.prompt_encoder.get_dense_pe()  # (1, 256, 64, 64)
        params = list(self.decoder.parameters())
        if settings.train_prompt_encoder:
            params += [p for p in self.prompt_encoder.parameters() if p.requires_grad]
        self.ddp = distributed.current()
        self.loss_module = self.ddp.wrap(_BatchLoss(self))  # DistributedDataParallel under torchrun
        self.optimizer = torch.optim.Adam(params, lr=settings.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, settings.lr_step_epochs, settings.lr_gamma)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state(self) -> tuple[dict, dict | None]:
        dec = {k: v.detach().cpu().clone() for k, v in self.decoder.state_dict().items()}
        pe = ({k: v.detach().cpu().clone() for k, v in self.prompt_encoder.state_dict().items()}
              if self.settings.train_prompt_encoder else None)
        return dec, pe

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # ------------------------------------------------------------------ training
    def step(self, batch: Sequence[PreparedItem], rng: np.random.Generator) -> float:
        """One optimiser step over the batch; returns the batch loss (no step is taken if it is not finite)."""
        self.decoder.train()
        self.optimizer.zero_grad(set_to_none=True)
        size = len(batch)
        prompts = [self._draw_prompt(item.target, rng) for item in batch]  # all of them on every rank: rng in step
        batch, prompts = self.ddp.share(batch), self.ddp.share(prompts)  # this rank's part (one process: all)
        features = torch.cat([self.reader.features(item) for item in batch]) if batch else None  # (B, 256, 64, 64)
        self._add_corrections(features, batch, prompts)
        total_loss = self.loss_module(features, batch, prompts) / size
        total = self.ddp.sum(float(total_loss.detach()))
        if not math.isfinite(total) or total > self.settings.max_loss:
            return total
        (total_loss * self.ddp.world).backward()  # DDP averages the ranks' gradients: the batch mean's gradient
        self.optimizer.step()
        return total

    def batch_loss_sum(self, features, batch: Sequence[PreparedItem], prompts) -> torch.Tensor:
        """The sum of the examples' losses (`_BatchLoss.forward`)."""
        if not batch:  # a rank with no share of a short batch still joins the gradient all-reduce, with zeros
            return sum(p.reshape(-1)[0] for p in self.decoder.parameters()) * 0.0
        example_losses: list[torch.Tensor | None] = [None] * len(batch)
        for idx in _groups(prompts):
            with self.autocast():
                low, iou_pred = self.decode_batch(features[idx], [prompts[i][:4] for i in idx],
                                                  _grid_of(batch[i].target for i in idx))
            for j, i in enumerate(idx):
                multimask = prompts[i][4]
                sel = slice(1, 4) if multimask else slice(0, 1)
                example_losses[i] = self._loss(low[j: j + 1, sel].float(), iou_pred[j: j + 1, sel].float(),
                                               batch[i].target)
        return torch.stack(example_losses).sum()

    def _draw_prompt(self, target: Target, rng: np.random.Generator):
        """(coords, labels, box, mask_input, multimask, kind); correction prompts get their click later."""
        kinds = [k for k in self.settings.prompt_kinds if k != "recorded" or target.recorded]
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "recorded":
            coords, labels, box = target.recorded[int(rng.integers(len(target.recorded)))]
        elif kind == "box":
            coords, labels, box = None, None, jittered_box(target, rng)
        else:
            coords, labels, box = random_point(target, rng), np.ones(1, np.int64), None
        multimask = box is None and coords is not None and len(coords) == 1
        return [coords, labels, box, None, multimask, kind]

    @torch.no_grad()
    def _add_corrections(self, features, batch, prompts) -> None:
        """For correction prompts: the current model's prediction for the point (one call for all of them), then
        the click in its largest error region with the first prediction's logits as mask input."""
        idx = [i for i, p in enumerate(prompts) if p[5] == "correction"]
        if not idx:
            return
        with self.autocast():
            low, iou = self.decode_batch(features[idx], [prompts[i][:4] for i in idx])  # the whole grid: fed back
        for j, i in enumerate(idx):
            k = 1 + int(iou[j, 1:].argmax())
            first = low[j, k].float()
            coords = prompts[i][0]
            click = correction_click((first > 0).cpu().numpy(), batch[i].target, coords)
            if click is not None:
                prompts[i][:5] = [np.concatenate([coords, click[0]]), np.array([1, click[1]], np.int64), None,
                                  first[None, None], False]

    def _loss(self, low: torch.Tensor, iou_pred: torch.Tensor, target: Target) -> torch.Tensor:
        """low: (1, C, h, w) float32 logits over the top-left h x w low-res cells (h, w >= the image's)."""
        gt, valid = self._target_tensors(target, low.shape[-2:])
        per_candidate = losses.mask_loss(low, gt, valid, self.settings.loss, self.settings.dice_weight)  # (1, C)
        iou_loss = losses.iou_head_loss(iou_pred, low, gt, valid).mean()
        return per_candidate.min(dim=1).values.mean() + self.settings.iou_head_weight * iou_loss

    # ------------------------------------------------------------------ the decoder, batched
    def decode_batch(self, features: torch.Tensor, prompts: Sequence, grid: tuple[int, int] | None = None):
        """segment_anything's PromptEncoder + MaskDecoder.predict_masks for K images with one prompt each.

        features: (K, 256, 64, 64); prompts: K x (coords (N, 2) | None, labels (N,) | None, box (4,) | None,
        mask_input (1, 1, 256, 256) | None), input frame, all with the same number of sparse tokens.
        grid: (rows, cols) of 64x64 grid cells for the mask head (None: all). Returns SAM's four candidates:
        low-res logits (K, 4, 4 rows, 4 cols) and predicted IoU (K, 4); callers pick [0:1] or [1:4].
        """
        sparse, dense = [], []
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.settings.train_prompt_encoder):
            for coords, labels, box, mask_input in prompts:
                points = None
                if coords is not None:
                    points = (torch.as_tensor(coords, dtype=torch.float32, device=self.device)[None],
                              torch.as_tensor(labels, dtype=torch.int64, device=self.device)[None])
                boxes = None if box is None else torch.as_tensor(box, dtype=torch.float32, device=self.device)[None]
                s, d = self.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
                sparse.append(s)
                dense.append(d)
        return batched_decoder.decode(self.decoder, self.dense_pe, features, torch.cat(sparse), torch.cat(dense), grid)

    def _target_tensors(self, target: Target, size=None) -> tuple[torch.Tensor, torch.Tensor]:
        gt, valid = target.gt, target.valid
        if size is not None:
            gt, valid = gt[: size[0], : size[1]], valid[: size[0], : size[1]]
        return torch.from_numpy(np.ascontiguousarray(gt)).to(self.device), torch.from_numpy(
            np.ascontiguousarray(valid)).to(self.device)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, items: Sequence[PreparedItem], images_per_call: int = 4) -> tuple[float, float]:
        """Mean IoU and Dice over items x {interior point (best-scored of 3), box}, low-res frame.

        Both prompts have 2 sparse tokens, so `images_per_call` images (2 prompts each) go through one call."""
        self.decoder.eval()
        ious, dices = [], []
        items = self.ddp.share(items)  # each rank its contiguous part; gathered in rank order below
        for start in range(0, len(items), images_per_call):
            chunk = items[start: start + images_per_call]
            feats, prompts, owners = [], [], []
            for item in chunk:
                f = self.reader.features(item)
                for coords, labels, box in validation_prompts(item.target).values():
                    feats.append(f)
                    prompts.append((coords, labels, box, None))
                    owners.append(item)
            with self.autocast():
                low, iou_pred = self.decode_batch(torch.cat(feats), prompts, _grid_of(i.target for i in chunk))
            low, iou_pred = low.float(), iou_pred.float()
            for j, (item, prompt) in enumerate(zip(owners, prompts)):
                sel = slice(0, 1) if prompt[2] is not None else slice(1, 4)  # the box: one mask; the point: 3
                k = sel.start + int(iou_pred[j, sel].argmax())
                chosen = low[j: j + 1, k: k + 1]
                gt, valid = self._target_tensors(item.target, chosen.shape[-2:])
                ious.append(float(losses.hard_iou(chosen, gt, valid)))
                dices.append(float(losses.hard_dice(chosen, gt, valid)))
        self.decoder.train()
        ious, dices = self.ddp.gather(ious), self.ddp.gather(dices)
        return float(np.mean(ious)), float(np.mean(dices))


class _BatchLoss(torch.nn.Module):
    """The trained modules with the batch loss as forward: what DistributedDataParallel wraps (one forward and
    one backward per step)."""

    def __init__(self, trainer: _Trainer) -> None:
        super().__init__()
        self.decoder = trainer.decoder
        if trainer.settings.train_prompt_encoder:
            self.prompt_encoder = trainer.prompt_encoder
        self._trainer = [trainer]  # not a submodule

    def forward(self, features, batch, prompts) -> torch.Tensor:
        return self._trainer[0].batch_loss_sum(features, batch, prompts)


def resolve_precision(precision: str, device) -> str:
    """"fp32" or "bf16" for a setting of "auto", "fp32" or "bf16". auto: bf16 where it runs natively (CPUs with
    avx512_bf16/AMX, recent GPUs) unless FLOODLABEL_PRECISION=fp32, else fp32."""
    if precision != "auto":
        return precision
    from floodlabel.core.segment.compute_config import environment_overrides, native_bf16

    forced = environment_overrides()[1]
    if forced:
        return forced
    return "bf16" if native_bf16(str(torch.device(device))) else "fp32"


def _groups(prompts) -> list[list[int]]:
    """Indices of examples grouped by their number of sparse tokens (points, SAM's padding point, box corners)."""
    groups: dict[int, list[int]] = {}
    for i, (coords, _labels, box, *_rest) in enumerate(prompts):
        n = (0 if coords is None else len(coords) + (box is None)) + (0 if box is None else 2)
        groups.setdefault(n, []).append(i)
    return list(groups.values())


def _grid_of(targets) -> tuple[int, int]:
    """64x64 grid cells (4x4 low-res cells each) covering every target's image."""
    targets = list(targets)
    return (-(-max(t.rows for t in targets) // 4), -(-max(t.cols for t in targets) // 4))


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _split(prepared: list[PreparedItem], settings: FinetuneSettings, rng: np.random.Generator):
    n = len(prepared)
    order = rng.permutation(n)
    n_val = 0 if settings.val_fraction == 0 else min(n - 1, max(1, round(settings.val_fraction * n)))
    val = sorted((prepared[i] for i in order[:n_val]), key=lambda p: p.index)
    train = sorted((prepared[i] for i in order[n_val:]), key=lambda p: p.index)
    if not val:
        return train, train, True
    return train, val, False


def _base_info(seg) -> BaseModelInfo:
    loaded = seg.loaded
    if loaded.decoder_path is not None:  # continuing from a fine-tuned decoder: its base stays the base
        return read_decoder_checkpoint(loaded.decoder_path).base
    return BaseModelInfo.of(loaded)


def _data_hash(train: Sequence[PreparedItem], val: Sequence[PreparedItem]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part, items in (("train", train), ("val", val)):
        h.update(part.encode())
        for p in items:
            prompts = [[None if a is None else np.asarray(a).tolist() for a in r] for r in p.target.recorded]
            h.update(f"|{p.key}|{p.mask_hash}|{json.dumps(prompts)}".encode())
    return h.hexdigest()


def _eta(step: int, total: int, step_time: float, val_time: float, epochs_done: int, epochs: int) -> float | None:
    if step == 0:
        return None
    per_val = val_time / epochs_done if epochs_done else 0.0
    return (total - step) * step_time / step + (epochs - epochs_done) * per_val


def _finish_early(prepared, skipped, embed_seconds, message, emit) -> FinetuneResult:
    emit(TrainingProgress("done", 0, 0, message=message))
    return FinetuneResult(None, [], math.nan, math.nan, None, None, "cancelled", message, 0, 0, False, skipped,
                          sum(p.computed for p in prepared), embed_seconds)
