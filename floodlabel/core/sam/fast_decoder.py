"""A faster, numerically equivalent evaluation of SAM's prompt encoder + mask decoder for one prompt.

`segment_anything`'s MaskDecoder spends most of a click in matrix products over the 64x64 = 4096 image tokens.
This module evaluates the same network with the same weights, reordered so that less work happens per click:

1. Per image (`prepare`, once): the prompt-independent parts of the first two-way-attention layer, i.e. the image
   side of both cross attentions: K = k_proj(src + pe), V = v_proj(src) and Q = q_proj(src + pe), where
   src = image embedding + no-mask embedding (tokens x 256 -> tokens x 128).
2. Per click, every other cross attention between the few prompt tokens (T = 5 + points + box corners) and the 4096
   image tokens is re-associated so the 256 -> 128 projections act on the T tokens instead of the 4096 image tokens:
       token->image:  softmax((q_h Wk_h^T) (x)^T)  and  (A_h x) Wv_h        (x = image tokens, 4096 x 256)
       image->token:  softmax(x (Wq_h k_h^T) + bq_h k_h^T) and  sum_h A_h (v_h Wo_h)
   This is exact algebra (the key bias shifts every score of a row equally, so softmax ignores it); only float
   rounding differs.
3. With `dtype=torch.bfloat16` the image-token stream (4096 x 256: residual adds, LayerNorm, the products with the
   few prompt tokens) and the mask head (upscaling convolutions, GELU, hypernetwork product) run in bf16, which CPUs
   with avx512_bf16 execute about twice as fast and which halves the memory traffic of these memory-bound steps.
   The prompt tokens, softmax statistics and the layer-1 cache stay float32.

Frames: point and box coordinates given here are already in SAM's 1024 *input* frame; the output is low-res mask
logits (C, 256, 256) over the padded 1024x1024 input, and the predicted IoU per candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from segment_anything.modeling.transformer import Attention, TwoWayAttentionBlock


@dataclass
class ImageState:
    """Per-image tensors, computed once by `FastSamDecoder.prepare`.

    src: (4096, 256) image tokens + no-mask embedding, and pe: (4096, 256) dense positional encoding, both in the
    compute dtype (the image-token stream stays in it).
    k1, v1: (4096, 128) layer-1 token->image key/value projections.   q1: (8, 16, 4096) layer-1 image->token
    queries per head.
    """

    src: torch.Tensor
    pe: torch.Tensor
    k1: torch.Tensor
    v1: torch.Tensor
    q1: torch.Tensor


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
        dec = sam.mask_decoder
        self.dec = dec
        self.pe_enc = sam.prompt_encoder
        with torch.inference_mode():
            pe = self.pe_enc.get_dense_pe()  # (1, 256, 64, 64)
            self._pe = pe.flatten(2).transpose(1, 2)[0].contiguous()  # (4096, 256)
            self._no_mask = self.pe_enc.no_mask_embed.weight.reshape(1, -1)  # (1, 256)
            self._out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], 0)  # (5, 256)
            up = dec.output_upscaling  # ConvT(256->64, k2 s2), LayerNorm2d(64), GELU, ConvT(64->32, k2 s2), GELU
            # mask-head parameters, in the compute dtype
            self._ct1_w, self._ct1_b = (t.to(dtype) for t in self._convt_as_linear(up[0]))  # (256, 4*64), (4*64,)
            self._ln_w, self._ln_b, self._ln_eps = up[1].weight.to(dtype), up[1].bias.to(dtype), up[1].eps
            self._ct2_w, self._ct2_b = (t.to(dtype) for t in self._convt_as_linear(up[3]))  # (64, 4*32), (4*32,)
            self._pe_lp = self._pe.to(dtype)
            # LayerNorm parameters of the image-token stream, in the compute dtype
            self._norm4 = [(l.norm4.weight.to(dtype), l.norm4.bias.to(dtype), l.norm4.eps) for l in dec.transformer.layers]

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def prepare(self, features: torch.Tensor) -> ImageState:
        """features: (1, 256, 64, 64) float32 image embedding -> per-image state (about 8 MB)."""
        src = features.float().flatten(2).transpose(1, 2)[0] + self._no_mask  # (4096, 256)
        return self._layer1_state(src)

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
        sparse = self._sparse_embeddings(coords, labels, box)  # (S, 256)
        if mask_input is not None:
            dense = self.pe_enc.mask_downscaling(mask_input.float()).flatten(2).transpose(1, 2)[0]
            state = self._layer1_state(state.src.float() - self._no_mask + dense)
        tokens = torch.cat([self._out_tokens, sparse], 0)  # (T, 256)
        hs, keys = self._transformer(state, tokens)
        first, last = (1, 4) if multimask else (0, 1)
        rows, cols = (64, 64) if input_size is None else (_grid_cells(input_size[0]), _grid_cells(input_size[1]))
        masks = self._masks(keys, hs[1 + first: 1 + last], first, rows, cols)  # (C, 256, 256)
        iou = self.dec.iou_prediction_head(hs[0:1])[0, first:last]  # (C,)
        return masks, iou, MaskHeadInput(keys, hs[1 + first: 1 + last], first)

    @torch.inference_mode()
    def complete(self, head: MaskHeadInput, index: int) -> torch.Tensor:
        """SAM's low-res logits (256, 256) of candidate `index` over the whole 64x64 grid, padding included: the
        values SAM's MaskDecoder gives (the covered part equals what decode returned, up to rounding)."""
        return self._masks(head.keys, head.mask_tokens[index: index + 1], head.first + index)[0]

    # ------------------------------------------------------------------ prompt encoder (sparse part)
    def _sparse_embeddings(self, coords, labels, box) -> torch.Tensor:
        pe = self.pe_enc
        parts = []
        if coords is not None and len(coords):
            pad = box is None
            parts.append(pe._embed_points(coords[None].float(), labels[None].float(), pad=pad)[0])
        if box is not None:
            parts.append(pe._embed_boxes(box.reshape(1, 4).float())[0])
        if not parts:
            return torch.empty(0, self._pe.shape[1])
        return torch.cat(parts, 0)

    # ------------------------------------------------------------------ transformer
    def _layer1_state(self, src: torch.Tensor) -> ImageState:
        layer = self.dec.transformer.layers[0]
        kp = src + self._pe
        t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
        h = i2t.num_heads
        q1 = i2t.q_proj(kp)  # (N, D)
        q1 = q1.view(len(q1), h, -1).permute(1, 2, 0).contiguous()  # (h, d, N)
        return ImageState(src=src.to(self.dtype), pe=self._pe_lp, k1=t2i.k_proj(kp), v1=t2i.v_proj(src), q1=q1)

    def _transformer(self, st: ImageState, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tr = self.dec.transformer
        query_pe = tokens
        queries = tokens
        keys = st.src
        for i, layer in enumerate(tr.layers):
            queries = self._self_attn(layer, queries, query_pe, skip_pe=(i == 0 and layer.skip_first_layer_pe))
            q = queries + query_pe
            kp = None if i == 0 else keys + st.pe  # image tokens + positional encoding, (4096, 256)
            if i == 0:
                attn = self._t2i_projected(layer.cross_attn_token_to_image, q, st.k1, st.v1)
            else:
                attn = self._t2i(layer.cross_attn_token_to_image, q, kp, keys)
            queries = layer.norm2(queries + attn)
            queries = layer.norm3(queries + layer.mlp(queries))
            q = queries + query_pe
            attn = self._i2t(layer.cross_attn_image_to_token, kp, q, queries, q_heads=st.q1 if i == 0 else None)
            keys = F.layer_norm(attn.add_(keys), (keys.shape[1],), *self._norm4[i][:2], self._norm4[i][2])
        q = queries + query_pe
        attn = self._t2i(tr.final_attn_token_to_image, q, keys + st.pe, keys)
        queries = tr.norm_final_attn(queries + attn)
        return queries, keys

    @staticmethod
    def _self_attn(layer: TwoWayAttentionBlock, queries, query_pe, skip_pe: bool) -> torch.Tensor:
        if skip_pe:
            x = queries[None]
            return layer.norm1(layer.self_attn(q=x, k=x, v=x)[0])
        q = (queries + query_pe)[None]
        return layer.norm1(queries + layer.self_attn(q=q, k=q, v=queries[None])[0])

    @staticmethod
    def _t2i_projected(attn: Attention, q_in, k, v) -> torch.Tensor:
        """Token->image attention with image keys/values already projected: k, v (4096, D)."""
        h = attn.num_heads
        q = attn.q_proj(q_in)  # (T, D)
        T, D = q.shape
        d = D // h
        qh = q.view(T, h, d).transpose(0, 1)  # (h, T, d)
        kh = k.view(-1, h, d).transpose(0, 1)  # (h, N, d)
        vh = v.view(-1, h, d).transpose(0, 1)
        a = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)  # (h, T, N)
        out = (a @ vh).transpose(0, 1).reshape(T, D)
        return attn.out_proj(out)

    def _t2i(self, attn: Attention, q_in, k_in, v_in) -> torch.Tensor:
        """Token->image attention, projections moved onto the T tokens.

        q_in: (T, C) tokens(+pe); k_in: (N, C) image tokens + pe; v_in: (N, C) image tokens. Returns (T, C).
        """
        h = attn.num_heads
        q = attn.q_proj(q_in)  # (T, D)
        T, D = q.shape
        d = D // h
        wk = attn.k_proj.weight.view(h, d, -1)  # (h, d, C)
        qk = torch.einsum("thd,hdc->htc", q.view(T, h, d), wk).reshape(h * T, -1) / math.sqrt(d)  # (hT, C)
        scores = qk.to(k_in.dtype) @ k_in.t()  # (hT, N)
        a = torch.softmax(scores.float(), dim=-1)
        ax = (a.to(v_in.dtype) @ v_in).float().view(h, T, -1)  # (h, T, C)
        wv = attn.v_proj.weight.view(h, d, -1)  # (h, d, C)
        out = torch.einsum("htc,hdc->thd", ax, wv).reshape(T, D) + attn.v_proj.bias  # rows of a sum to 1
        return attn.out_proj(out)

    def _i2t(self, attn: Attention, q_in, k_in, v_in, q_heads: torch.Tensor | None = None) -> torch.Tensor:
        """Image->token attention: 4096 image queries over T token keys. Returns (N, C).

        q_in: (N, C) image tokens + pe (unused when q_heads, the projected queries as (h, d, N), is given);
        k_in: (T, C) tokens + pe; v_in: (T, C) tokens. Scores are laid out (h, T, N) so the softmax over the
        T tokens runs along a strided axis with N contiguous (a softmax over a last axis of ~7 is slow on CPU).
        """
        h = attn.num_heads
        k = attn.k_proj(k_in)  # (T, D)
        v = attn.v_proj(v_in)  # (T, D)
        T, D = k.shape
        d = D // h
        kh = k.view(T, h, d).transpose(0, 1)  # (h, T, d)
        if q_heads is not None:
            scores = torch.bmm(kh, q_heads)  # (h, T, N)
        else:
            wq = attn.q_proj.weight.view(h, d, -1)  # (h, d, C)
            m = torch.bmm(kh, wq).reshape(h * T, -1)  # (hT, C)
            bias = torch.bmm(kh, attn.q_proj.bias.view(h, d, 1)).reshape(h * T, 1)
            scores = (m.to(q_in.dtype) @ q_in.t()).float().add_(bias).view(h, T, -1)
        a = torch.softmax(scores.mul_(1.0 / math.sqrt(d)), dim=1).view(h * T, -1)  # (hT, N)
        wo = attn.out_proj.weight.view(-1, h, d)  # (C, h, d)
        vo = torch.einsum("thd,chd->htc", v.view(T, h, d), wo).reshape(h * T, -1)  # (hT, C)
        lp = self.dtype
        return torch.addmm(attn.out_proj.bias.to(lp), a.t().to(lp), vo.to(lp))

    # ------------------------------------------------------------------ mask head
    def _masks(self, keys: torch.Tensor, mask_tokens: torch.Tensor, first: int, rows: int = 64, cols: int = 64):
        """keys: (4096, 256) final image tokens; mask_tokens: (C, 256). Returns (C, 256, 256) logits.

        The two stride-2 transposed convolutions are per-pixel linear maps whose output columns are ordered
        (sub-pixel dy, dx, channel), so each result reshapes into rows of pixels without a copy; rows end up
        ordered (gy, gx, dy1, dx1, dy2, dx2) and one small permute at the end restores the raster. Only the top-left
        rows x cols grid cells are computed; the rest of the 256x256 output repeats the nearest computed logits.
        """
        g = 64
        if rows < g or cols < g:
            keys = keys.view(g, g, -1)[:rows, :cols].reshape(rows * cols, -1)
        # keys are already in the compute dtype; everything stays in it until the mask logits
        y = torch.addmm(self._ct1_b, keys, self._ct1_w).view(-1, 64)  # (cells*4, 64)
        y = F.gelu(F.layer_norm(y, (64,), self._ln_w, self._ln_b, self._ln_eps))
        z = F.gelu(torch.addmm(self._ct2_b, y, self._ct2_w)).view(-1, 32)  # (cells*16, 32)
        hyper = torch.stack(
            [self.dec.output_hypernetworks_mlps[first + i](mask_tokens[i]) for i in range(len(mask_tokens))]
        ).to(self.dtype)  # (C, 32)
        c = len(mask_tokens)
        m = ((hyper @ z.t()) if c > 1 else (z @ hyper.t()).t()).float()  # (C, cells*16)
        m = m.view(c, rows, cols, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4, 6).reshape(c, 4 * rows, 4 * cols)
        if rows < g or cols < g:
            m = F.pad(m[None], (0, 4 * (g - cols), 0, 4 * (g - rows)), mode="replicate")[0]
        return m

    @staticmethod
    def _convt_as_linear(conv: torch.nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
        """ConvTranspose2d(k=2, s=2): weight (Cin, Cout, 2, 2) -> (Cin, 4*Cout) with columns (dy, dx, Cout)."""
        w = conv.weight
        cin, cout = w.shape[:2]
        return w.permute(0, 2, 3, 1).reshape(cin, 4 * cout).contiguous(), conv.bias.repeat(4)


def _grid_cells(extent: int) -> int:
    """64x64 grid cells (16 input pixels each) needed to upscale an image extent (1024-frame pixels) bilinearly."""
    low_res = -(-extent // 4)  # 256-frame rows or columns the image covers
    return min(64, low_res // 4 + 1)
