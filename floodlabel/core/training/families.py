"""What the trainer needs to know about a model family, behind one interface (`DecoderFamily`), chosen once per
run by `family_of(segmenter)`; the trainer, the embedding reader and the checkpoint never ask which family it is.

A family says:
- `name`:            the checkpoint's family field ("sam", "sam2.1"), which picks the loader that applies it;
- `embedding_bytes`: one cached embedding on disk (SAM v1 about 2 MiB, SAM 2.1's three maps about 8 MiB);
- `to_input`:        original-frame points -> the decoder's 1024 input frame (SAM v1: longest side resized, padded;
                     SAM 2.1: stretched to 1024x1024), for the recorded prompts;
- `modules`:         the mask decoder and prompt encoder of the segmenter's model (the trainer trains copies);
- `batch` / `take`:  cached features of K images stacked into one batch, and a sub-batch of it;
- `tokens`:          how many sparse tokens a prompt gives (prompts of one count are decoded in one call);
- `encode` / `decode`: one prompt through the prompt encoder, and K images x one prompt each through the mask
                     decoder: low-res logits of the 4 candidates (K, 4, h, w) and predicted IoU (K, 4).

SAM v1 is here (`SamFamily`: batched_decoder); SAM 2.1 in sam2_family.py.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from segment_anything.utils.transforms import ResizeLongestSide

from floodlabel.core.sam.checkpoint import IMAGE_SIZE, LoadedSam
from floodlabel.core.sam.decoder_checkpoint import SAM_FAMILY
from floodlabel.core.training import batched_decoder
from floodlabel.core.training.sam2_family import Sam2Family

Prompt4 = tuple  # (coords (N, 2) | None, labels (N,) | None, box (4,) | None, mask_input (1, 1, 256, 256) | None)


class DecoderFamily(Protocol):
    name: str
    embedding_bytes: int

    def to_input(self, points: np.ndarray, original_size: tuple[int, int]) -> np.ndarray: ...

    def modules(self, model) -> tuple[torch.nn.Module, torch.nn.Module]: ...

    def batch(self, features: list) -> object: ...

    def take(self, features, idx: list[int]) -> object: ...

    def tokens(self, prompt: Prompt4) -> int: ...

    def encode(self, prompt_encoder, prompt: Prompt4, device) -> tuple[torch.Tensor, torch.Tensor]: ...

    def decode(self, decoder, dense_pe, features, sparse, dense, grid) -> tuple[torch.Tensor, torch.Tensor]: ...


def family_of(seg) -> DecoderFamily:
    """The training family of a segmenter whose capabilities say `finetune_decoder` (by its loaded model's type)."""
    for family in (SamFamily(), Sam2Family()):
        if family.accepts(seg.loaded):
            return family
    raise TypeError(f"no training family for {type(seg.loaded).__name__}")


def points_tensors(coords, labels, device):
    return (torch.as_tensor(coords, dtype=torch.float32, device=device)[None],
            torch.as_tensor(labels, dtype=torch.int64, device=device)[None])


class SamFamily:
    """SAM v1: segment_anything's PromptEncoder and MaskDecoder, decoded with batched_decoder (re-associated)."""

    name = SAM_FAMILY
    embedding_bytes = 256 * 64 * 64 * 2 + 4096  # one float16 (1, 256, 64, 64) entry with its header

    def __init__(self) -> None:
        self._transform = ResizeLongestSide(IMAGE_SIZE)

    @staticmethod
    def accepts(loaded) -> bool:
        return isinstance(loaded, LoadedSam)

    def to_input(self, points: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        return self._transform.apply_coords(np.asarray(points, np.float32), original_size).astype(np.float32)

    @staticmethod
    def modules(model):
        return model.mask_decoder, model.prompt_encoder

    @staticmethod
    def batch(features: list) -> torch.Tensor:
        return torch.cat(features)  # (K, 256, 64, 64)

    @staticmethod
    def take(features: torch.Tensor, idx: list[int]) -> torch.Tensor:
        return features[idx]

    @staticmethod
    def tokens(prompt: Prompt4) -> int:
        """Points (+ a padding point without a box) and 2 box corners."""
        coords, _labels, box = prompt[:3]
        return (0 if coords is None else len(coords) + (box is None)) + (0 if box is None else 2)

    @staticmethod
    def encode(prompt_encoder, prompt: Prompt4, device):
        coords, labels, box, mask_input = prompt[:4]
        points = None if coords is None else points_tensors(coords, labels, device)
        boxes = None if box is None else torch.as_tensor(box, dtype=torch.float32, device=device)[None]
        return prompt_encoder(points=points, boxes=boxes, masks=mask_input)

    @staticmethod
    def decode(decoder, dense_pe, features, sparse, dense, grid):
        return batched_decoder.decode(decoder, dense_pe, features, sparse, dense, grid)
