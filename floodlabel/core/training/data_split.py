"""The run's data: the seeded train/validation split of the prepared items and the record of it that the
checkpoint stores (counts, item names and a hash of the keys, masks and recorded prompts)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

from floodlabel.core.training.embeddings import PreparedItem
from floodlabel.core.training.finetune_settings import FinetuneSettings


def split_items(prepared: list[PreparedItem], settings: FinetuneSettings, rng: np.random.Generator
                ) -> tuple[list[PreparedItem], list[PreparedItem], bool]:
    """(train, val, val_on_train): `round(val_fraction * n)` items validate (at least 1 when val_fraction > 0, at
    most n - 1), the rest train, each in dataset order; with val_fraction = 0 the training items also validate."""
    n = len(prepared)
    order = rng.permutation(n)
    n_val = 0 if settings.val_fraction == 0 else min(n - 1, max(1, round(settings.val_fraction * n)))
    val = sorted((prepared[i] for i in order[:n_val]), key=lambda p: p.index)
    train = sorted((prepared[i] for i in order[n_val:]), key=lambda p: p.index)
    if not val:
        return train, train, True
    return train, val, False


def data_record(train: Sequence[PreparedItem], val: Sequence[PreparedItem], val_on_train: bool,
                skipped: int) -> dict:
    """The checkpoint's `data` entry for this split."""
    return {"train": len(train), "val": len(val), "val_on_train": val_on_train, "skipped": skipped,
            "hash": data_hash(train, val), "train_items": [p.name for p in train],
            "val_items": [p.name for p in val]}


def data_hash(train: Sequence[PreparedItem], val: Sequence[PreparedItem]) -> str:
    """A digest of both parts' image keys, mask digests and recorded prompts."""
    h = hashlib.blake2b(digest_size=16)
    for part, items in (("train", train), ("val", val)):
        h.update(part.encode())
        for p in items:
            prompts = [[None if a is None else np.asarray(a).tolist() for a in r] for r in p.target.recorded]
            h.update(f"|{p.key}|{p.mask_hash}|{json.dumps(prompts)}".encode())
    return h.hexdigest()
