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
    """

    cache_embeddings: bool = False
    fast_decode: bool = False
    auto_masks: bool = False
    finetune_decoder: bool = False


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
