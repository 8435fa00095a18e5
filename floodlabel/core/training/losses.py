"""Losses over SAM's low-res mask logits, restricted to the cells the image covers.

Shapes: logits (K, C, 256, 256) for K prompts with C candidates each; target and valid (256, 256) float32
(target: water fraction per cell, valid: 1 on the image, 0 on the padding). Each function returns (K, C).

mask loss = BCE (or focal, alpha 0.25, gamma 2, as SAM) + dice_weight * soft Dice; SAM's IoU head is trained
towards the candidates' actual IoU with a mean squared error (`iou_head_loss`), so the predicted score that
picks the shown candidate stays honest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("bce", "focal")


def mask_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, kind: str = "bce",
              dice_weight: float = 1.0) -> torch.Tensor:
    """(K, C) loss per candidate: BCE or focal, plus dice_weight * Dice, averaged over the valid cells."""
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {kind!r}")
    t = target.expand_as(logits)
    n = valid.sum().clamp(min=1.0)
    pixel = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    if kind == "focal":
        p = torch.sigmoid(logits)
        p_t = p * t + (1 - p) * (1 - t)
        alpha_t = 0.25 * t + 0.75 * (1 - t)
        pixel = alpha_t * (1 - p_t) ** 2 * pixel
    per_pixel = (pixel * valid).sum(dim=(-2, -1)) / n
    return per_pixel + dice_weight * dice_loss(logits, target, valid)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(K, C) soft Dice loss 1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1) over valid cells."""
    p = torch.sigmoid(logits) * valid
    t = target * valid
    inter = (p * t).sum(dim=(-2, -1))
    return 1 - (2 * inter + 1) / (p.sum(dim=(-2, -1)) + t.sum(dim=(-2, -1)) + 1)


def hard_iou(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(K, C) IoU of (logits > 0) against (target >= 0.5) over valid cells (1.0 when both are empty)."""
    pred = (logits > 0) & (valid > 0)
    gt = (target >= 0.5) & (valid > 0)
    inter = (pred & gt).sum(dim=(-2, -1)).float()
    union = (pred | gt).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def hard_dice(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(K, C) Dice of (logits > 0) against (target >= 0.5) over valid cells."""
    pred = (logits > 0) & (valid > 0)
    gt = (target >= 0.5) & (valid > 0)
    inter = (pred & gt).sum(dim=(-2, -1)).float()
    total = (pred.sum(dim=(-2, -1)) + gt.sum(dim=(-2, -1))).float()
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))


def iou_head_loss(iou_pred: torch.Tensor, logits: torch.Tensor, target: torch.Tensor,
                  valid: torch.Tensor) -> torch.Tensor:
    """(K, C) squared error between SAM's predicted IoU and each candidate's actual IoU (no gradient to masks)."""
    return (iou_pred - hard_iou(logits.detach(), target, valid)) ** 2
