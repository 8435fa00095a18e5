"""The Qt-free object the app, the CLI and evaluations use: a segmenter plus its embedding cache.

    session = SegmentationSession.open("vit_b")          # or "sam2.1_hiera_tiny", "classic", or a checkpoint file
    emb = session.embedding(image)                          # cache hit, or the encoder once
    pred = session.predict(emb, Prompt.point(x, y))         # milliseconds per prompt

Modelled on labelme's AI session: it owns the model and the cache; widgets and workers only call it.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from floodlabel.core.segment.compute_config import ComputeConfig
from floodlabel.core.common.hashing import image_key
from floodlabel.core.segment.embedding_cache import EmbeddingCache
from floodlabel.core.models.registry import CLASSIC, SAM2, SAM3, checkpoint_family, resolve_checkpoint
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.segment.segmenter import Embedding, Prediction, Segmenter


def load_segmenter(name_or_path: str | os.PathLike, config: ComputeConfig | None = None) -> Segmenter:
    """'classic' -> the OpenCV backend; a registered name or a checkpoint path -> SAM, SAM 2.1 or SAM 3, by the
    file's tensors (`registry.checkpoint_family`), never its name.

    Raises ModelError (one readable line) when the name is unknown or the checkpoint is missing or bad.
    """
    if str(name_or_path) == CLASSIC:
        from floodlabel.core.classic.backend import ClassicSegmenter

        return ClassicSegmenter()
    path = resolve_checkpoint(name_or_path)
    family = checkpoint_family(path)
    if family == SAM2:
        from floodlabel.core.sam2.backend import Sam2Segmenter

        return Sam2Segmenter.from_checkpoint(path, config)
    if family == SAM3:
        from floodlabel.core.sam3.backend import Sam3Segmenter

        return Sam3Segmenter.from_checkpoint(path, config)
    from floodlabel.core.sam.backend import SamSegmenter

    return SamSegmenter.from_checkpoint(path, config)


class SegmentationSession:
    """A segmenter with an embedding cache (memory LRU + disk) in front of its encoder."""

    def __init__(self, segmenter: Segmenter, cache: EmbeddingCache | None = None, speed_key: str | None = None,
                 source: str | None = None) -> None:
        self.segmenter = segmenter
        # a backend with a cheap embed (classic) does not cache embeddings: nothing to gain from the disk
        self.cache = cache if segmenter.capabilities.cache_embeddings else None
        self.speed_key = speed_key  # where computed embeddings' times are recorded (model_speed); None: nowhere
        self.source = source
        """The model name or checkpoint path `open` was given (another process can open the same model), or None."""

    @classmethod
    def open(
        cls, name_or_path: str | os.PathLike, cache_dir: Path | None = None, config: ComputeConfig | None = None
    ) -> "SegmentationSession":
        segmenter = load_segmenter(name_or_path, config)
        key = None
        if segmenter.capabilities.cache_embeddings:  # an encoder worth timing (not classic)
            from floodlabel.core.models.model_speed import speed_key

            key = speed_key(resolve_checkpoint(name_or_path), segmenter.compute_label)
        return cls(segmenter, EmbeddingCache(cache_dir), speed_key=key, source=str(name_or_path))

    @property
    def model_id(self) -> str:
        return self.segmenter.model_id

    @property
    def cache_model_id(self) -> str:
        """The embedding cache's model key: the segmenter's `cache_model_id` (SAM: model_id plus encoder precision
        and device type, which change the features)."""
        return self.segmenter.cache_model_id

    def cached_embedding(self, image: np.ndarray, key: str | None = None) -> Embedding | None:
        """The embedding if memory or disk has it, else None (never runs the encoder)."""
        if self.cache is None:
            return None
        return self._own(self.cache.get(self.cache_model_id, key or image_key(image)))

    def embedding(
        self, image: np.ndarray, key: str | None = None, checkpoint: Callable[[], None] | None = None
    ) -> Embedding:
        """image: (H, W, 3) uint8 RGB. key: its content hash if already known (see hashing.image_key).

        checkpoint: passed to the encoder of segmenters whose embed accepts one (SAM: called between encoder
        blocks; it may raise core.cancel.Cancelled, which caches nothing); others (classic) ignore it.
        """
        if self.cache is None:
            return self._embed(image, checkpoint)
        return self._own(self.cache.get_or_compute(self.cache_model_id, key or image_key(image),
                                                   lambda: self._embed(image, checkpoint)))

    def _own(self, embedding: Embedding | None) -> Embedding | None:
        """An embedding read from disk carries the cache key (cache_model_id); predict checks model_id."""
        if embedding is not None and embedding.model_id != self.model_id:
            embedding.model_id = self.model_id
        return embedding

    def _embed(self, image: np.ndarray, checkpoint: Callable[[], None] | None) -> Embedding:
        paused = [0.0]  # seconds spent inside the checkpoint (a paused prefetch), not encoding

        def timed_checkpoint() -> None:
            t = time.perf_counter()
            try:
                checkpoint()
            finally:
                paused[0] += time.perf_counter() - t

        start = time.perf_counter()
        if checkpoint is not None and _accepts_checkpoint(self.segmenter):
            embedding = self.segmenter.embed(image, checkpoint=timed_checkpoint)
        else:
            embedding = self.segmenter.embed(image)
        if self.speed_key is not None:
            from floodlabel.core.models.model_speed import record_embed_seconds

            record_embed_seconds(self.speed_key, time.perf_counter() - start - paused[0])
        return embedding

    def predict(
        self,
        embedding: Embedding,
        prompt: Prompt,
        multimask: bool = True,
        output_size: tuple[int, int] | None = None,
        mask_input: np.ndarray | None = None,
    ) -> Prediction:
        return self.segmenter.predict(embedding, prompt, multimask, output_size, mask_input)


def _accepts_checkpoint(segmenter: Segmenter) -> bool:
    """Whether segmenter.embed takes a `checkpoint` keyword (the Segmenter protocol does not require one)."""
    try:
        return "checkpoint" in inspect.signature(segmenter.embed).parameters
    except (TypeError, ValueError):
        return False
