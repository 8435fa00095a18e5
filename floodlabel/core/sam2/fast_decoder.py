"""A faster, numerically equivalent evaluation of SAM 2.1's prompt encoder + mask decoder for one prompt.

SAM 2.1's mask decoder is SAM v1's two-way transformer with three additions: an object-score token ahead of the
IoU token, the image encoder's two high-resolution feature maps added inside the mask head's upscaling
(`act1(ln1(dc1(src) + feat_s1))`, `act2(dc2(.) + feat_s0)`), and, for single-mask output, a fall-back to the best
multimask candidate when the single mask is unstable (`dynamic_multimask_via_stability`). So this class evaluates
the shared network with `core.segment.two_way_decoder.TwoWayDecoder` (per-image layer-1 projections, projections
moved onto the few prompt tokens, bf16 image-token stream; see there), as SAM v1's fast decoder does, and adds:

- per image (`prepare`): the high-res maps rearranged once into the mask head's layout, each with its transposed
  convolution's bias added, so they enter as the `input` of that convolution's addmm and cost no extra pass
  (feat_s1 (1, 64, 128, 128) -> (4096, 256), feat_s0 (1, 32, 256, 256) -> (16384, 128));
- the prompt as SAM2ImagePredictor builds it: box corners (labels 2, 3) first, then the points, then one padding
  point, all through `_embed_points` (SAM 2 never uses `_embed_boxes`);
- single-mask output with the stability rule: mask 0's logits first, and the three others only when it is unstable.

Frames: coordinates given here are in SAM 2.1's 1024x1024 input frame (x * 1024 / W, y * 1024 / H: the image is
resized, not padded); the output is low-res logits (C, 256, 256) over the whole image, and the predicted IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from floodlabel.core.segment.two_way_decoder import ImageState, TwoWayDecoder


@dataclass
class Sam2ImageState:
    """Per-image tensors from `FastSam2Decoder.prepare`: the shared network's part (image tokens and layer-1
    projections, see two_way_decoder.ImageState) and the high-res maps in the mask head's row order, compute dtype."""

    base: ImageState
    s1: torch.Tensor  # (4096, 4 * 64): feat_s1 + dc1's bias, rows (gy, gx), columns (dy1, dx1, channel)
    s0: torch.Tensor  # (16384, 4 * 32): feat_s0 + dc2's bias, rows (gy, gx, dy1, dx1), columns (dy2, dx2, channel)


class FastSam2Decoder:
    """Evaluates `model.sam_prompt_encoder` + `model.sam_mask_decoder` (SAM2Base) for one prompt at a time.

    dtype: torch.float32 (exact up to rounding) or torch.bfloat16 (large products and the mask head in bf16).
    """

    def __init__(self, model, dtype: torch.dtype = torch.float32) -> None:
        dec = model.sam_mask_decoder
        self.model = model
        self.dtype = dtype
        self.network = TwoWayDecoder(dec, model.sam_prompt_encoder, dtype)
        tokens = [dec.iou_token.weight, dec.mask_tokens.weight]
        self._s = 1 if dec.pred_obj_scores else 0  # the IoU token's index among the output tokens
        if dec.pred_obj_scores:
            tokens.insert(0, dec.obj_score_token.weight)
        with torch.inference_mode():
            self._out_tokens = torch.cat(tokens, 0)  # (5 or 6, 256)
        self._dynamic = bool(dec.dynamic_multimask_via_stability)
        self._delta = float(dec.dynamic_multimask_stability_delta)
        self._thresh = float(dec.dynamic_multimask_stability_thresh)
        if not dec.use_high_res_features:
            raise ValueError("FastSam2Decoder expects a SAM 2.1 mask decoder with high-res features")

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def prepare(self, image_embed: torch.Tensor, feat_s0: torch.Tensor, feat_s1: torch.Tensor) -> Sam2ImageState:
        """image_embed (1, 256, 64, 64), feat_s0 (1, 32, 256, 256), feat_s1 (1, 64, 128, 128), float32 (what
        SAM2ImagePredictor.set_image keeps) -> per-image state (about 22 MiB in fp32, 12 MiB in bf16)."""
        net = self.network
        base = net.image_state(image_embed)
        s1 = feat_s1[0].float().view(64, 64, 2, 64, 2).permute(1, 3, 2, 4, 0).reshape(4096, 4 * 64)
        s0 = feat_s0[0].float().view(32, 64, 2, 2, 64, 2, 2).permute(1, 4, 2, 5, 3, 6, 0).reshape(16384, 4 * 32)
        s1 = (s1.to(self.dtype) + net.ct1_b).contiguous()  # the sum in the compute dtype, as the reference adds
        s0 = (s0.to(self.dtype) + net.ct2_b).contiguous()
        return Sam2ImageState(base, s1, s0)

    @torch.inference_mode()
    def decode(
        self,
        state: Sam2ImageState,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        box: torch.Tensor | None,
        mask_input: torch.Tensor | None = None,
        multimask: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One prompt in the 1024 input frame -> (low-res logits (C, 256, 256) float32, iou (C,)), C = 3 or 1.

        coords: (N, 2) float32 (x, y); labels: (N,) 1/0; box: (4,) x0 y0 x1 y1; mask_input: (1, 1, 256, 256) logits.
        The logits are not clamped (SAM2ImagePredictor clamps its returned low-res logits to [-32, 32]).
        """
        net = self.network
        sparse = self._sparse_embeddings(coords, labels, box)  # (S, 256)
        base = state.base
        if mask_input is not None:
            base = net.with_mask_input(base, mask_input)
        tokens = torch.cat([self._out_tokens, sparse], 0)  # (T, 256)
        hs, keys = net.transformer(base, tokens)
        s = self._s
        iou_all = net.iou(hs[s: s + 1])  # (4,)
        mask_tokens = hs[s + 1: s + 5]  # (4, 256)
        if multimask:
            return self._head(state, keys, mask_tokens[1:4], 1), iou_all[1:4]
        single = self._head(state, keys, mask_tokens[0:1], 0)
        if not self._dynamic or self._stable(single[0]):
            return single, iou_all[0:1]
        best = int(torch.argmax(iou_all[1:4])) + 1  # unstable: the best multimask candidate, as SAM 2.1 does
        return self._head(state, keys, mask_tokens[best: best + 1], best), iou_all[best: best + 1]

    # ------------------------------------------------------------------ helpers
    def _sparse_embeddings(self, coords, labels, box) -> torch.Tensor:
        """SAM2ImagePredictor's prompt: box corners (labels 2, 3), then the points, padded with one non-point."""
        pts, lbl = [], []
        if box is not None:
            pts.append(box.reshape(2, 2).float())
            lbl.append(torch.tensor([2, 3], dtype=torch.float32, device=box.device))
        if coords is not None and len(coords):
            pts.append(coords.float())
            lbl.append(labels.float())
        if not pts:
            return torch.empty(0, self.network.embed_dim)
        return self.network.prompt_encoder._embed_points(torch.cat(pts)[None], torch.cat(lbl)[None], pad=True)[0]

    def _stable(self, logits: torch.Tensor) -> bool:
        """SAM 2.1's stability score of one (256, 256) logit map against its threshold."""
        area_i = int((logits > self._delta).sum())
        area_u = int((logits > -self._delta).sum())
        return (area_i / area_u if area_u > 0 else 1.0) >= self._thresh

    def _head(self, state: Sam2ImageState, keys: torch.Tensor, mask_tokens: torch.Tensor, first: int) -> torch.Tensor:
        """keys (4096, 256) final image tokens, mask_tokens (C, 256) of mask-token indices first.. -> (C, 256, 256):
        the shared mask head over the whole grid, with the high-res maps added before each activation."""
        return self.network.mask_head(keys, mask_tokens, first, add1=state.s1, add2=state.s0)
