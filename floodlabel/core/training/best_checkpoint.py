"""Checkpoint selection: the best epoch so far by validation IoU, saved atomically to `out` whenever it improves
(rank 0 only under torchrun), rewritten at the end with every epoch's metrics; and the base model it records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from floodlabel.core.sam.decoder_checkpoint import (SAM_FAMILY, BaseModelInfo, DecoderCheckpoint,
                                                    read_decoder_checkpoint, save_decoder_checkpoint)
from floodlabel.core.training.finetune_progress import EpochMetrics
from floodlabel.core.training.finetune_settings import FinetuneSettings

States = tuple[dict, "dict | None"]
"""CPU copies of the trained weights: (mask decoder state, prompt-encoder state or None)."""


class BestCheckpoint:
    """The best epoch so far and the file it was saved to; each save records the metrics of every epoch so far.

    best = BestCheckpoint(out, base_info(seg), settings, data, metrics, ddp)
    best.offer(epoch, val_iou, trainer.state)   # after each validation: kept and saved when it is better
    best.save()                                 # at the end: the same weights with the metrics so far
    """

    def __init__(self, out: Path, base: BaseModelInfo, settings: FinetuneSettings, data: dict,
                 metrics: list[EpochMetrics], ddp, family: str = SAM_FAMILY) -> None:
        self.out, self.base, self.settings, self.data, self.family = out, base, settings, data, family
        self.metrics = metrics  # the run's list, read at each save
        self.epoch: int | None = None
        self.val_iou: float | None = None
        self.saved: Path | None = None
        self._states: States | None = None
        self._ddp = ddp

    def offer(self, epoch: int, val_iou: float, states: Callable[[], States]) -> bool:
        """Keep `states()` and save it when `val_iou` beats the best so far (or nothing is kept yet)."""
        if self.epoch is not None and not val_iou > self.val_iou:
            return False
        self.epoch, self.val_iou, self._states = epoch, val_iou, states()
        self.save()
        return True

    def save(self) -> None:
        """(Re)write the best epoch's weights to `out` with the metrics so far; nothing before an epoch is kept."""
        if self._states is None:
            return
        self.saved = self._ddp.save(save_decoder_checkpoint, self.checkpoint(), self.out)

    def checkpoint(self) -> DecoderCheckpoint:
        """The best epoch as a DecoderCheckpoint (raises when none is kept)."""
        assert self._states is not None, "no epoch has been kept"
        decoder, prompt_encoder = self._states
        return DecoderCheckpoint(mask_decoder=decoder, prompt_encoder=prompt_encoder, base=self.base,
                                 settings=asdict(self.settings), data=self.data,
                                 metrics=[asdict(m) for m in self.metrics], best_epoch=self.epoch,
                                 best_val_iou=self.val_iou, family=self.family)


def base_info(seg) -> BaseModelInfo:
    """The base model a checkpoint of `seg`'s decoder records: continuing from a fine-tuned decoder keeps its base."""
    loaded = seg.loaded
    if loaded.decoder_path is not None:
        return read_decoder_checkpoint(loaded.decoder_path).base
    return BaseModelInfo.of(loaded)
