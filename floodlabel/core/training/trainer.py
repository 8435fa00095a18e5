"""The trainer: copies of SAM's mask decoder (and prompt encoder) being trained, one optimiser step over a batch
of cached embeddings with simulated prompts, and validation with fixed prompts (`finetune.finetune` runs the loop).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch

from floodlabel.core.training import distributed, losses
from floodlabel.core.training.embeddings import EmbeddingReader, PreparedItem
from floodlabel.core.training.examples import Target, correction_click, jittered_box, random_point, validation_prompts
from floodlabel.core.training.families import SamFamily, family_of
from floodlabel.core.training.finetune_settings import FinetuneSettings, resolve_precision


class Trainer:
    """The trained modules, one optimiser step over a batch, and validation.

    The model family (`families.family_of`: SAM v1 or SAM 2.1) says which modules train, how cached features form a
    batch, how a prompt is encoded and how K images x one prompt are decoded; everything else here is shared.

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
        self.family = family_of(seg)  # SAM v1 or SAM 2.1: modules, feature batches, prompts, the batched decoder
        mask_decoder, prompt_encoder = self.family.modules(seg.loaded.model)
        self.decoder = copy.deepcopy(mask_decoder).float().to(self.device).train()
        self.prompt_encoder = copy.deepcopy(prompt_encoder).float().to(self.device)
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
        """The optimiser's current learning rate (after the scheduler's steps)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state(self) -> tuple[dict, dict | None]:
        """CPU copies of the trained weights: (decoder state, prompt-encoder state or None when it is frozen)."""
        dec = {k: v.detach().cpu().clone() for k, v in self.decoder.state_dict().items()}
        pe = ({k: v.detach().cpu().clone() for k, v in self.prompt_encoder.state_dict().items()}
              if self.settings.train_prompt_encoder else None)
        return dec, pe

    def autocast(self):
        """bf16 autocast on the device when the run's precision is bf16, else a no-op context."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # ------------------------------------------------------------------ training
    def step(self, batch: Sequence[PreparedItem], rng: np.random.Generator) -> float:
        """One optimiser step over the batch; returns the batch loss (no step is taken if it is not finite)."""
        self.decoder.train()
        self.optimizer.zero_grad(set_to_none=True)
        size = len(batch)
        prompts = [self._draw_prompt(item.target, rng) for item in batch]  # all of them on every rank: rng in step
        batch, prompts = self.ddp.share(batch), self.ddp.share(prompts)  # this rank's part (one process: all)
        features = self.family.batch([self.reader.features(item) for item in batch]) if batch else None
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
        for idx in prompt_groups(prompts, self.family.tokens):
            with self.autocast():
                low, iou_pred = self.decode_batch(self.family.take(features, idx), [prompts[i][:4] for i in idx],
                                                  grid_of(batch[i].target for i in idx))
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
            low, iou = self.decode_batch(self.family.take(features, idx), [prompts[i][:4] for i in idx])  # all cells
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
    def decode_batch(self, features, prompts: Sequence, grid: tuple[int, int] | None = None):
        """The family's PromptEncoder + MaskDecoder.predict_masks for K images with one prompt each.

        features: the family's batch of K (SAM v1 (K, 256, 64, 64)); prompts: K x (coords (N, 2) | None, labels (N,)
        | None, box (4,) | None, mask_input (1, 1, 256, 256) | None), input frame, all with the same number of
        sparse tokens. grid: (rows, cols) of 64x64 grid cells for the mask head (None: all). Returns the four
        candidates: low-res logits (K, 4, 4 rows, 4 cols) and predicted IoU (K, 4); callers pick [0:1] or [1:4].
        """
        sparse, dense = [], []
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.settings.train_prompt_encoder):
            for prompt in prompts:
                s, d = self.family.encode(self.prompt_encoder, prompt, self.device)
                sparse.append(s)
                dense.append(d)
        return self.family.decode(self.decoder, self.dense_pe, features, torch.cat(sparse), torch.cat(dense), grid)

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

        `images_per_call` images (2 prompts each) go through one call per prompt length (SAM v1: both prompts have
        2 sparse tokens, one call; SAM 2.1: the box has 3, two calls)."""
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
            grid = grid_of(i.target for i in chunk)
            for idx in prompt_groups(prompts, self.family.tokens):
                with self.autocast():
                    low, iou_pred = self.decode_batch(self.family.batch([feats[i] for i in idx]),
                                                      [prompts[i] for i in idx], grid)
                low, iou_pred = low.float(), iou_pred.float()
                for j, i in enumerate(idx):
                    item, prompt = owners[i], prompts[i]
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

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.decoder = trainer.decoder
        if trainer.settings.train_prompt_encoder:
            self.prompt_encoder = trainer.prompt_encoder
        self._trainer = [trainer]  # not a submodule

    def forward(self, features, batch, prompts) -> torch.Tensor:
        return self._trainer[0].batch_loss_sum(features, batch, prompts)


def prompt_groups(prompts, tokens=None) -> list[list[int]]:
    """Indices of examples grouped by their number of sparse tokens (`tokens(prompt)`, the family's count; default
    SAM v1's: points, its padding point, box corners)."""
    tokens = tokens or SamFamily.tokens
    groups: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(tokens(prompt), []).append(i)
    return list(groups.values())


def grid_of(targets) -> tuple[int, int]:
    """64x64 grid cells (4x4 low-res cells each) covering every target's image."""
    targets = list(targets)
    return (-(-max(t.rows for t in targets) // 4), -(-max(t.cols for t in targets) // 4))
