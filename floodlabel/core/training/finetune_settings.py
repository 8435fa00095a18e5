"""The fine-tuning run's settings (`FinetuneSettings`, stored in the checkpoint) and the precision they resolve to."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from floodlabel.core.training import losses
from floodlabel.core.training.examples import PROMPT_KINDS


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
        """Raise ValueError on a setting out of range."""
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
