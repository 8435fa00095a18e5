"""The one interface every segmentation backend implements: embed once, decode per prompt.

Coordinate frames used across backends:
- original: the image as read, (H, W) pixels; prompts and returned masks live here (or at a display size).
- input:    SAM's 1024 frame: the image resized so its long side is 1024, padded to 1024x1024.
- low-res:  SAM's 256x256 mask-logit frame (a 4x downsample of the padded 1024 input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from floodlabel.core.annotation.prompts import Prompt

LOW_RES = 256


@dataclass
class Embedding:
    """What `embed` returns and `predict` consumes.

    features:      backend payload. SAM: float32 torch tensor (1, 256, 64, 64) from the image encoder.
                   SAM 2.1: a dict of float32 tensors, "image_embed" (1, 256, 64, 64), "high_res_feats_0"
                   (1, 32, 256, 256) and "high_res_feats_1" (1, 64, 128, 128).
                   Classic: the RGB uint8 image (H, W, 3), possibly downscaled.
    original_size: (H, W) of the original image.
    input_size:    (h, w) of the resized image inside the backend's input frame (SAM: long side 1024, padded;
                   SAM 2.1: always (1024, 1024), the image is resized to the whole frame, not padded).
    model_id:      the id of the model that produced it (embeddings of different models never mix).
    extra:         per-image caches a backend may keep (e.g. prompt-independent decoder parts).
    """

    features: Any
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    model_id: str
    extra: dict = field(default_factory=dict)


class Prediction:
    """What `predict` returns.

    masks:          (C, H, W) bool at the original size (or the requested output size); C = 3 with
                    multimask, else 1. A backend may compute them lazily: `mask(i)` builds only candidate i
                    (the one on screen), `masks` builds all of them; each is computed once.
    scores:         (C,) float32, the model's quality estimate of each mask (SAM's predicted IoU).
    low_res_logits: (C, 256, 256) float32 mask logits in the low-res frame (> 0 means water).
    stretched_from: None when the image sits top-left in the low-res frame with its aspect kept (SAM, classic);
                    (H, W) of the image when the whole 256x256 frame is the image resized to a square (SAM 2.1),
                    so a preview made from the logits must be stretched back to that aspect.
    """

    stretched_from: tuple[int, int] | None = None

    def __init__(
        self,
        masks: np.ndarray | None,
        scores: np.ndarray,
        low_res_logits: np.ndarray,
        mask_fn: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        if masks is None and mask_fn is None:
            raise ValueError("a Prediction needs masks or a mask_fn")
        self.scores = scores
        self.low_res_logits = low_res_logits
        self._masks = masks
        self._mask_fn = mask_fn
        self._built: dict[int, np.ndarray] = {}

    @classmethod
    def lazy(cls, scores: np.ndarray, low_res_logits: np.ndarray, mask_fn: Callable[[int], np.ndarray]) -> "Prediction":
        """mask_fn(i) -> (H, W) bool mask of candidate i, called at most once per candidate."""
        return cls(None, scores, low_res_logits, mask_fn)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def best(self) -> int:
        """Index of the highest-scoring candidate."""
        return int(np.argmax(self.scores))

    def mask(self, i: int) -> np.ndarray:
        """(H, W) bool mask of candidate i."""
        if self._masks is not None:
            return self._masks[i]
        if i not in self._built:
            self._built[i] = self._mask_fn(i)
        return self._built[i]

    @property
    def masks(self) -> np.ndarray:
        """(C, H, W) bool, all candidates."""
        if self._masks is None:
            self._masks = np.stack([self.mask(i) for i in range(len(self))])
        return self._masks


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond embed + predict. The window, store, evaluation and training ask this, never a
    backend's class or attributes.

    cache_embeddings: its embedding is worth keeping on disk and pre-computing for the next images (SAM: seconds
                      of encoder; classic: a resize, so no).
    fast_decode:      predict takes milliseconds, so the hover preview can follow the mouse.
    auto_masks:       it can propose every segment of an image (automatic mask generation, the window's Auto).
    finetune_decoder: its mask decoder can be fine-tuned on the user's masks (core.training).
    text_prompt:      it implements `TextSegmenter.segment_text` (a concept prompt such as "water" returns every
                      instance at once: SAM 3).
    """

    cache_embeddings: bool = False
    fast_decode: bool = False
    auto_masks: bool = False
    finetune_decoder: bool = False
    text_prompt: bool = False


@runtime_checkable
class Segmenter(Protocol):
    """A backend (one model family's implementation).

    model_id:       names the model and its weights hash (an embedding carries it; predict checks it).
    cache_model_id: keys the embedding cache: model_id plus whatever else changes the features (precision, device).
    weights_id:     the weights that predict (a fine-tuned decoder has its own while sharing its base's model_id).
    compute_label:  one short line for the status bar: the device and precisions, or what the backend is.
    capabilities:   see Capabilities.
    """

    model_id: str

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def cache_model_id(self) -> str: ...

    @property
    def weights_id(self) -> str: ...

    @property
    def compute_label(self) -> str: ...

    def embed(self, image: np.ndarray) -> Embedding:
        """image: (H, W, 3) uint8 RGB in the original frame."""
        ...

    def predict(
        self,
        embedding: Embedding,
        prompt: Prompt,
        multimask: bool = True,
        output_size: tuple[int, int] | None = None,
        mask_input: np.ndarray | None = None,
    ) -> Prediction:
        """Decode one prompt. output_size (H, W) defaults to embedding.original_size.

        mask_input: optional (256, 256) float32 logits from an earlier prediction (SAM's refinement input).
        """
        ...


@dataclass
class Instances:
    """What `TextSegmenter.segment_text` returns: every instance of the concept the model found, unfiltered.

    masks:  (N, H, W) bool at the original size (or the requested output size); N may be 0.
    scores: (N,) float32 confidence in [0, 1] that the instance is the concept.
    boxes:  (N, 4) float32 (x0, y0, x1, y1) in the same frame as masks.
    phrase: the phrase that was asked.
    """

    masks: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    phrase: str

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the masks."""
        return tuple(self.masks.shape[1:3])

    def above(self, threshold: float) -> np.ndarray:
        """(K,) int64 indices of the instances whose score is >= threshold, most confident first."""
        keep = np.flatnonzero(self.scores >= threshold)
        return keep[np.argsort(-self.scores[keep], kind="stable")]

    def union(self, threshold: float, dropped: frozenset[int] | set[int] = frozenset()) -> np.ndarray:
        """(H, W) bool: the union of the instances above threshold, leaving out the indices in `dropped`."""
        out = np.zeros(self.shape, bool)
        for i in self.above(threshold):
            if int(i) not in dropped:
                out |= self.masks[i]
        return out


@runtime_checkable
class TextSegmenter(Segmenter, Protocol):
    """A Segmenter whose capabilities say `text_prompt`: a phrase returns every instance of the concept."""

    def segment_text(self, embedding: Embedding, phrase: str,
                     output_size: tuple[int, int] | None = None) -> Instances:
        """All instances of `phrase` in the image `embedding` was made from, unfiltered (the caller applies the
        threshold, so a threshold change never runs the model again). output_size (H, W) defaults to
        embedding.original_size."""
        ...
