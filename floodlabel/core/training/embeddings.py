"""Image embeddings for training: computed once through the session's EmbeddingCache, then read back per batch.

Memory budget: nothing but the current batch is held as float32. Every embedding lives on disk in the embedding
cache (float16: 2 MiB for a (1, 256, 64, 64) SAM embedding, 8 MiB for SAM 2.1's three maps) and is read back when its batch comes (about 1-2 ms
per entry from the page cache, against ~0.5 s for a decoder step). 200 vit_b images: 400 MiB on disk,
batch x 4 MiB in RAM (16 MiB at batch 4), instead of 800 MiB of float32 for all of them.
The reader has no memory level (memory_items=0), so the session's own LRU is not churned by training.

The images must all fit the cache folder at once (they are checked after preparing); a dataset larger than
`EmbeddingCache.max_disk_bytes` allows is refused before training with a message saying so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from floodlabel.core.common.hashing import image_key
from floodlabel.core.segment.embedding_cache import EmbeddingCache
from floodlabel.core.common.errors import FloodLabelError, ImageReadError
from floodlabel.core.training.examples import Target, TrainingItem, make_target, mask_digest
from floodlabel.core.training.families import SamFamily, family_of

EMBEDDING_DISK_BYTES = SamFamily.embedding_bytes  # one float16 SAM v1 entry with its header (SAM 2.1: ~8 MiB)


class TrainingError(FloodLabelError):
    """Fine-tuning cannot start or go on (no usable items, the embedding cache cannot hold them, ...)."""


@dataclass(frozen=True)
class PreparedItem:
    """An item ready for training: where its embedding is, its low-res target, and hashes for the data record."""

    index: int  # position in the items given
    name: str
    key: str  # image_key: the embedding-cache key with the model id
    target: Target
    mask_hash: str
    computed: bool  # the encoder ran for it (False: cache hit)


def prepare_embeddings(
    items: Sequence[TrainingItem],
    session,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[list[PreparedItem], list[tuple[str, str]]]:
    """Embed every item not in the cache yet (one image at a time), and make its target.

    session: a SegmentationSession on a SAM model (its cache is used; fine-tuned models share the base's).
    progress(done, total, name) after each image. Returns (prepared items, [(name, reason) skipped]).
    Cancelled: returns what is done so far (the caller checks `cancel`).
    """
    if session.cache is None:
        raise TrainingError("fine-tuning needs a SAM model with an embedding cache")
    cache: EmbeddingCache = session.cache
    family = family_of(session.segmenter)
    need = len(items) * family.embedding_bytes
    if need > cache.max_disk_bytes:
        raise TrainingError(
            f"{len(items)} images need about {need / 2**20:.0f} MiB of cached embeddings, but the embedding cache "
            f"holds {cache.max_disk_bytes / 2**20:.0f} MiB: use fewer images")
    prepared, skipped = [], []
    for i, item in enumerate(items):
        if cancel is not None and cancel.is_set():
            break
        try:
            image, mask = item.read()
        except ImageReadError as exc:
            skipped.append((item.name, f"unreadable: {exc}"))
        else:
            if not mask.any():
                skipped.append((item.name, "mask is empty (no water to prompt for)"))
            else:
                key = image_key(image)
                hit = cache.contains(session.cache_model_id, key)
                emb = session.embedding(image, key)
                target = make_target(mask, emb.input_size, item.prompts, family.to_input)
                if not target.water.any():
                    skipped.append((item.name, "water too small for SAM's 256x256 mask frame"))
                else:
                    prepared.append(PreparedItem(i, item.name, key, target, mask_digest(mask), not hit))
                del emb
        if progress:
            progress(i + 1, len(items), item.name)
    return prepared, skipped


class EmbeddingReader:
    """Reads prepared embeddings back from the cache folder as float32 tensors, one batch at a time."""

    def __init__(self, session, device: torch.device | str = "cpu") -> None:
        self.model_id = session.cache_model_id  # the cache key (precision included), not the segmenter's id
        self.device = torch.device(device)
        self._cache = EmbeddingCache(session.cache.directory, max_disk_bytes=session.cache.max_disk_bytes,
                                     memory_items=0)
        self.read_seconds = 0.0

    def check(self, prepared: Sequence[PreparedItem]) -> None:
        """TrainingError if any prepared embedding is no longer on disk (evicted by another process)."""
        missing = [p.name for p in prepared if not self._cache.contains(self.model_id, p.key)]
        if missing:
            raise TrainingError(f"{len(missing)} embeddings left the cache while preparing (first: {missing[0]}); "
                                f"the cache folder {self._cache.directory} is too small or shared")

    def features(self, item: PreparedItem) -> torch.Tensor | dict[str, torch.Tensor]:
        """The cached features as float32 on the training device: SAM v1 (1, 256, 64, 64); SAM 2.1 a dict of its
        three maps (core.sam2.backend.FEATURE_SHAPES). Never runs the encoder."""
        t0 = time.perf_counter()
        emb = self._cache.get(self.model_id, item.key)
        if emb is None:
            raise TrainingError(f"the embedding of {item.name} left the cache during training; start again")
        self.read_seconds += time.perf_counter() - t0
        if isinstance(emb.features, dict):
            return {k: torch.as_tensor(v).to(self.device, torch.float32) for k, v in emb.features.items()}
        return torch.as_tensor(emb.features).to(self.device, torch.float32)
