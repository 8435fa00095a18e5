"""SAM v1's prompt encoder + mask decoder for one prompt, faster than `segment_anything` and numerically equivalent.

The network itself (per-image layer-1 projections, re-associated cross attention, bf16 image-token stream, the mask
head as linear maps) is `core.segment.two_way_decoder.TwoWayDecoder`, shared with SAM 2.1. What is SAM v1's here:
its output tokens (IoU token, four mask tokens), its prompt tokens (points padded only without a box, then the box
through `_embed_boxes`), and the mask head run only over the grid cells the image covers (`input_size`).

Frames: point and box coordinates given here are already in SAM's 1024 *input* frame; the output is low-res mask
logits (C, 256, 256) over the padded 1024x1024 input, and the predicted IoU per candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam

from floodlabel.core.segment.two_way_decoder import GRID, ImageState, TwoWayDecoder

__all__ = ["FastSamDecoder", "ImageState", "MaskHeadInput"]


@dataclass
class MaskHeadInput:
    """What the mask head of one decode consumed: final image tokens (4096, 256), the candidates' mask tokens
    (C, 256) and the index of the first one among SAM's four (0 single-mask, 1 multimask)."""

    keys: torch.Tensor
    mask_tokens: torch.Tensor
    first: int


class FastSamDecoder:
    """Evaluates `sam.prompt_encoder` + `sam.mask_decoder` for one prompt at a time, faster than the reference.

    dtype: torch.float32 (exact up to rounding) or torch.bfloat16 (large products in bf16).
    """

    def __init__(self, sam: Sam, dtype: torch.dtype = torch.float32) -> None:
        self.sam = sam
        self.dtype = dtype
        self.network = TwoWayDecoder(sam.mask_decoder, sam.prompt_encoder, dtype)
        dec = sam.mask_decoder
        with torch.inference_mode():
            self._out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], 0)  # (5, 256)

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def prepare(self, features: torch.Tensor) -> ImageState:
        """features: (1, 256, 64, 64) float32 image embedding -> per-image state (about 8 MiB)."""
        return self.network.image_state(features)

    @torch.inference_mode()
    def decode(
        self,
        state: ImageState,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        box: torch.Tensor | None,
        mask_input: torch.Tensor | None = None,
        multimask: bool = True,
        input_size: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One prompt in the 1024 input frame -> (low-res logits (C, 256, 256), iou (C,)), C = 3 or 1.

        coords: (N, 2) float32 (x, y); labels: (N,) 1/0; box: (4,) x0 y0 x1 y1; mask_input: (1, 1, 256, 256) logits.
        input_size: (h, w) of the image inside the padded 1024 input. When given, the mask head runs only over the
        64x64 grid cells that the image covers (plus one for interpolation), and the low-res logits of the padding
        beyond them repeat the nearest computed ones; SAM computes logits there that no mask shows, but that do
        count when the logits are fed back as mask_input: `complete` computes them (see MaskHeadInput).
        """
        masks, iou, _ = self.decode_with_head_input(state, coords, labels, box, mask_input, multimask, input_size)
        return masks, iou

    @torch.inference_mode()
    def decode_with_head_input(self, state, coords, labels, box, mask_input=None, multimask=True, input_size=None):
        """decode, also returning the mask head's input, from which `complete` gives SAM's full-grid logits."""
        net = self.network
        sparse = self._sparse_embeddings(coords, labels, box)  # (S, 256)
        if mask_input is not None:
            state = net.with_mask_input(state, mask_input)
        tokens = torch.cat([self._out_tokens, sparse], 0)  # (T, 256)
        hs, keys = net.transformer(state, tokens)
        first, last = (1, 4) if multimask else (0, 1)
        rows, cols = (GRID, GRID) if input_size is None else (_grid_cells(input_size[0]), _grid_cells(input_size[1]))
        masks = self._masks(keys, hs[1 + first: 1 + last], first, rows, cols)  # (C, 256, 256)
        iou = net.iou(hs[0:1])[first:last]  # (C,)
        return masks, iou, MaskHeadInput(keys, hs[1 + first: 1 + last], first)

    @torch.inference_mode()
    def complete(self, head: MaskHeadInput, index: int) -> torch.Tensor:
        """SAM's low-res logits (256, 256) of candidate `index` over the whole 64x64 grid, padding included: the
        values SAM's MaskDecoder gives (the covered part equals what decode returned, up to rounding)."""
        return self._masks(head.keys, head.mask_tokens[index: index + 1], head.first + index)[0]

    # ------------------------------------------------------------------ helpers
    def _sparse_embeddings(self, coords, labels, box) -> torch.Tensor:
        """SAM v1's prompt tokens: the points (padded with one non-point when there is no box), then the box."""
        pe = self.network.prompt_encoder
        parts = []
        if coords is not None and len(coords):
            pad = box is None
            parts.append(pe._embed_points(coords[None].float(), labels[None].float(), pad=pad)[0])
        if box is not None:
            parts.append(pe._embed_boxes(box.reshape(1, 4).float())[0])
        if not parts:
            return torch.empty(0, self.network.embed_dim)
        return torch.cat(parts, 0)

    def _masks(self, keys: torch.Tensor, mask_tokens: torch.Tensor, first: int, rows: int = GRID, cols: int = GRID):
        """keys: (4096, 256) final image tokens; mask_tokens: (C, 256). Returns (C, 256, 256) logits.

        Only the top-left rows x cols grid cells are computed; the rest of the 256x256 output repeats the nearest
        computed logits.
        """
        g = GRID
        if rows < g or cols < g:
            keys = keys.view(g, g, -1)[:rows, :cols].reshape(rows * cols, -1)
        m = self.network.mask_head(keys, mask_tokens, first, rows, cols)  # (C, 4 * rows, 4 * cols)
        if rows < g or cols < g:
            m = F.pad(m[None], (0, 4 * (g - cols), 0, 4 * (g - rows)), mode="replicate")[0]
        return m


def _grid_cells(extent: int) -> int:
    """64x64 grid cells (16 input pixels each) needed to upscale an image extent (1024-frame pixels) bilinearly."""
    low_res = -(-extent // 4)  # 256-frame rows or columns the image covers
    return min(64, low_res // 4 + 1)
