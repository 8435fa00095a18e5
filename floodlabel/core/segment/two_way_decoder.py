"""SAM's mask decoder network, evaluated faster for one prompt at a time: the part SAM v1 and SAM 2.1 share.

Both families decode a prompt with the same network: a two-way transformer between the few prompt tokens and the
64x64 = 4096 image tokens, then a mask head (two stride-2 transposed convolutions, a hypernetwork per mask token).
`segment_anything` and `sam2` spend most of a click in matrix products over the 4096 image tokens; this module
evaluates the same network with the same weights, reordered so that less work happens per click:

1. Per image (`image_state`, once): the prompt-independent parts of the first two-way-attention layer, i.e. the
   image side of both cross attentions: K = k_proj(src + pe), V = v_proj(src) and Q = q_proj(src + pe), where
   src = image embedding + no-mask embedding (tokens x 256 -> tokens x 128).
2. Per click (`transformer`), every other cross attention between the T prompt tokens and the 4096 image tokens is
   re-associated so the 256 -> 128 projections act on the T tokens instead of the 4096 image tokens:
       token->image:  softmax((q_h Wk_h^T) (x)^T)  and  (A_h x) Wv_h        (x = image tokens, 4096 x 256)
       image->token:  softmax(x (Wq_h k_h^T) + bq_h k_h^T) and  sum_h A_h (v_h Wo_h)
   This is exact algebra (the key bias shifts every score of a row equally, so softmax ignores it); only float
   rounding differs.
3. With `dtype=torch.bfloat16` the image-token stream (4096 x 256: residual adds, LayerNorm, the products with the
   few prompt tokens) and the mask head (upscaling convolutions, GELU, hypernetwork product) run in bf16, which CPUs
   with avx512_bf16 execute about twice as fast and which halves the memory traffic of these memory-bound steps.
   The prompt tokens, softmax statistics and the layer-1 cache stay float32.

4. The two-way transformer runs as a TorchScript graph traced on its first call (`torch.jit.trace`, executed
   unoptimised, so its results are bitwise the eager ones): about 15% faster than eager Python on a 2-core CPU, and
   it runs without Python's GIL, so the UI thread's Python work (a click's release, painting) no longer stalls
   the decode between two of its ~200 operations. The mask head is traced too, once per range of mask tokens
   (rows and cols of the grid stay dynamic): with a busy Python thread beside it, a 64x40-cell head took 34-97 ms
   eager against 15-22 ms traced (session-only script, 2026-12-03). Where tracing fails, or with
   FLOODLABEL_TRACED_DECODER=0, they run eagerly.

What differs per family stays in the family's package: which output tokens lead (SAM 2.1 adds an object-score
token), how a prompt becomes sparse tokens, the frame of the coordinates, and what the mask head adds (SAM 2.1's
high-resolution maps: `mask_head`'s add1 / add2). core/sam/fast_decoder.py and core/sam2/fast_decoder.py use it.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["ImageState", "TwoWayDecoder"]

log = logging.getLogger(__name__)

GRID = 64
"""The image tokens form a GRID x GRID grid (16 input pixels each); the mask head turns it into 4 * GRID = 256."""


@dataclass
class ImageState:
    """Per-image tensors from `TwoWayDecoder.image_state`, compute dtype unless said otherwise.

    src: (4096, 256) image tokens + no-mask (or dense mask-input) embedding.
    k1, v1: (4096, 128) float32 layer-1 token->image key/value projections.
    q1: (8, 16, 4096) float32 layer-1 image->token queries per head.
    The dense positional encoding is the decoder's, not the image's (`TwoWayDecoder.pe`), so it is not held here.
    """

    src: torch.Tensor
    k1: torch.Tensor
    v1: torch.Tensor
    q1: torch.Tensor


class TwoWayDecoder:
    """SAM's two-way transformer and mask head over precomputed image state, for one prompt at a time.

    mask_decoder:   a SAM mask decoder (segment_anything's or sam2's MaskDecoder: .transformer, .output_upscaling,
                    .output_hypernetworks_mlps, .iou_prediction_head).
    prompt_encoder: its prompt encoder (.get_dense_pe(), .no_mask_embed, .mask_downscaling).
    dtype:          torch.float32 (exact up to rounding) or torch.bfloat16 (image-token stream and mask head).
    """

    def __init__(self, mask_decoder: torch.nn.Module, prompt_encoder: torch.nn.Module,
                 dtype: torch.dtype = torch.float32) -> None:
        self.decoder = mask_decoder
        self.prompt_encoder = prompt_encoder
        self.dtype = dtype
        self._traced: torch.jit.ScriptModule | None = None  # the transformer's graph, traced on its first call
        self._trace_tried = not _tracing_wanted()
        self._trace_lock = threading.Lock()
        self._heads: dict[tuple[int, int, bool], torch.jit.ScriptModule | None] = {}  # see _traced_head
        with torch.inference_mode():
            pe = prompt_encoder.get_dense_pe()  # (1, 256, 64, 64)
            self._pe32 = pe.flatten(2).transpose(1, 2)[0].contiguous()  # (4096, 256) float32
            self.pe = self._pe32.to(dtype)
            """(4096, 256) dense positional encoding of the image tokens, compute dtype."""
            self.embed_dim = int(self._pe32.shape[1])
            self._no_mask = prompt_encoder.no_mask_embed.weight.reshape(1, -1)  # (1, 256)
            up = mask_decoder.output_upscaling  # ConvT(256->64, k2 s2), LayerNorm2d(64), GELU, ConvT(64->32), GELU
            self.ct1_w, self.ct1_b = (t.to(dtype) for t in _convt_as_linear(up[0]))  # (256, 4*64), (4*64,)
            self._ln = (up[1].weight.to(dtype), up[1].bias.to(dtype), up[1].eps)
            self.ct2_w, self.ct2_b = (t.to(dtype) for t in _convt_as_linear(up[3]))  # (64, 4*32), (4*32,)
            self._norm4 = [(l.norm4.weight.to(dtype), l.norm4.bias.to(dtype), l.norm4.eps)
                           for l in mask_decoder.transformer.layers]

    # ------------------------------------------------------------------ per image
    def image_state(self, image_embedding: torch.Tensor) -> ImageState:
        """image_embedding: (1, 256, 64, 64) float32 -> per-image state with the no-mask embedding (about 8 MiB)."""
        src = image_embedding.float().flatten(2).transpose(1, 2)[0] + self._no_mask  # (4096, 256)
        return self._layer1_state(src)

    def with_mask_input(self, state: ImageState, mask_input: torch.Tensor) -> ImageState:
        """The state with the dense prompt of mask_input (1, 1, 256, 256) logits in place of the no-mask embedding."""
        dense = self.prompt_encoder.mask_downscaling(mask_input.float()).flatten(2).transpose(1, 2)[0]
        return self._layer1_state(state.src.float() - self._no_mask + dense)

    # ------------------------------------------------------------------ per prompt
    def transformer(self, state: ImageState, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: (T, 256) float32 output tokens then sparse prompt tokens -> (queries (T, 256) float32, keys
        (4096, 256) final image tokens in the compute dtype), as the mask decoder's TwoWayTransformer (its traced
        graph, see the module docstring: any T)."""
        if not self._trace_tried:
            self._trace(state, tokens)
        if self._traced is not None:
            with torch.jit.optimized_execution(False):  # the graph as traced: no fusion, the eager results
                return self._traced(state.src, state.k1, state.v1, state.q1, tokens)
        return self.eager_transformer(state, tokens)

    def eager_transformer(self, state: ImageState, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`transformer` in Python, op by op (what is traced)."""
        tr = self.decoder.transformer
        query_pe = tokens
        queries = tokens
        keys = state.src
        for i, layer in enumerate(tr.layers):
            queries = _self_attn(layer, queries, query_pe, skip_pe=(i == 0 and layer.skip_first_layer_pe))
            q = queries + query_pe
            kp = None if i == 0 else keys + self.pe  # image tokens + positional encoding, (4096, 256)
            if i == 0:
                attn = _t2i_projected(layer.cross_attn_token_to_image, q, state.k1, state.v1)
            else:
                attn = _t2i(layer.cross_attn_token_to_image, q, kp, keys)
            queries = layer.norm2(queries + attn)
            queries = layer.norm3(queries + layer.mlp(queries))
            q = queries + query_pe
            attn = self._i2t(layer.cross_attn_image_to_token, kp, q, queries, q_heads=state.q1 if i == 0 else None)
            keys = F.layer_norm(attn.add_(keys), (keys.shape[1],), *self._norm4[i][:2], self._norm4[i][2])
        q = queries + query_pe
        attn = _t2i(tr.final_attn_token_to_image, q, keys + self.pe, keys)
        queries = tr.norm_final_attn(queries + attn)
        return queries, keys

    def mask_head(self, keys: torch.Tensor, mask_tokens: torch.Tensor, first: int, rows: int = GRID,
                  cols: int = GRID, add1: torch.Tensor | None = None, add2: torch.Tensor | None = None) -> torch.Tensor:
        """Mask logits (C, 4 * rows, 4 * cols) float32 of C mask tokens, the first being mask token `first`: see
        `eager_mask_head`. Runs as a graph traced on the first call for each (first, C, with adds) (rows and cols
        stay dynamic), like `transformer`."""
        adds = () if add1 is None else (add1, add2)
        traced = self._traced_head(first, len(mask_tokens), keys, mask_tokens, rows, cols, adds)
        if traced is not None:
            with torch.jit.optimized_execution(False):
                return traced(keys, mask_tokens, keys.new_empty(rows, cols, 0), *adds)
        return self.eager_mask_head(keys, mask_tokens, first, rows, cols, add1, add2)

    def eager_mask_head(self, keys: torch.Tensor, mask_tokens: torch.Tensor, first: int, rows: int = GRID,
                        cols: int = GRID, add1: torch.Tensor | None = None,
                        add2: torch.Tensor | None = None) -> torch.Tensor:
        """Mask logits (C, 4 * rows, 4 * cols) float32 of C mask tokens, the first being mask token `first`.

        keys: (rows * cols, 256) final image tokens (compute dtype) of the top-left rows x cols grid cells, rows
        (gy, gx); mask_tokens: (C, 256). The two stride-2 transposed convolutions are per-pixel linear maps whose
        output columns are ordered (sub-pixel dy, dx, channel), so each result reshapes into rows of pixels without
        a copy; rows end up ordered (gy, gx, dy1, dx1, dy2, dx2) and one small permute at the end restores the
        raster. add1 (rows * cols, 4 * 64) / add2 (rows * cols * 4, 4 * 32), compute dtype: what is added to each
        convolution's output before its activation instead of the convolution's bias (ct1_b / ct2_b), in that
        row and column order (SAM 2.1: its high-resolution maps plus the bias).
        """
        y = torch.addmm(self.ct1_b if add1 is None else add1, keys, self.ct1_w).view(-1, 64)  # (cells*4, 64)
        y = F.gelu(F.layer_norm(y, (64,), self._ln[0], self._ln[1], self._ln[2]))
        z = F.gelu(torch.addmm(self.ct2_b if add2 is None else add2, y, self.ct2_w).view(-1, 32))  # (cells*16, 32)
        hyper = torch.stack(
            [self.decoder.output_hypernetworks_mlps[first + i](mask_tokens[i]) for i in range(len(mask_tokens))]
        ).to(self.dtype)  # (C, 32)
        c = len(mask_tokens)
        m = ((hyper @ z.t()) if c > 1 else (z @ hyper.t()).t()).float()  # (C, cells*16)
        return m.view(c, rows, cols, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4, 6).reshape(c, 4 * rows, 4 * cols)

    def iou(self, iou_token: torch.Tensor) -> torch.Tensor:
        """iou_token: (1, 256) the IoU token's final query -> (4,) predicted IoU of the four mask tokens."""
        return self.decoder.iou_prediction_head(iou_token)[0]

    # ------------------------------------------------------------------ helpers
    def _trace(self, state: ImageState, tokens: torch.Tensor) -> None:
        with self._trace_lock:
            if self._trace_tried:
                return
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torch.jit.trace's deprecation and tracer notes
                    self._traced = torch.jit.trace(_TransformerModule(self), (state.src, state.k1, state.v1,
                                                                              state.q1, tokens), check_trace=False)
            except Exception as exc:  # noqa: BLE001 - eager is the same network, only slower
                log.warning("the decoder's transformer runs eagerly: tracing failed (%s)", exc)
            self._trace_tried = True

    def _traced_head(self, first: int, count: int, keys, mask_tokens, rows: int, cols: int, adds: tuple):
        """The mask head's graph for (first, count, with adds), traced on first need; None: run it eagerly. The
        first trace also traces the other usual range (multimask 1..3, single 0), so that a session's second click
        (single-mask) does not pay a trace (~150 ms)."""
        key = (first, count, bool(adds))
        if key not in self._heads:
            with self._trace_lock:
                if key not in self._heads:
                    self._trace_head(key, keys, mask_tokens, rows, cols, adds)
                    for other in ((1, 3, key[2]), (0, 1, key[2])):
                        if other not in self._heads:
                            self._trace_head(other, keys, mask_tokens[:1].expand(other[1], -1), rows, cols, adds)
        return self._heads[key]

    def _trace_head(self, key: tuple[int, int, bool], keys, mask_tokens, rows: int, cols: int, adds: tuple) -> None:
        self._heads[key] = None
        if not _tracing_wanted():
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._heads[key] = torch.jit.trace(_MaskHeadModule(self, key[0]), (
                    keys, mask_tokens.contiguous(), keys.new_empty(rows, cols, 0), *adds), check_trace=False)
        except Exception as exc:  # noqa: BLE001 - eager is the same network, only slower
            log.warning("the decoder's mask head runs eagerly: tracing failed (%s)", exc)

    def _layer1_state(self, src: torch.Tensor) -> ImageState:
        layer = self.decoder.transformer.layers[0]
        kp = src + self._pe32
        t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
        h = i2t.num_heads
        q1 = i2t.q_proj(kp)  # (N, D)
        q1 = q1.view(len(q1), h, -1).permute(1, 2, 0).contiguous()  # (h, d, N)
        return ImageState(src=src.to(self.dtype), k1=t2i.k_proj(kp), v1=t2i.v_proj(src), q1=q1)

    def _i2t(self, attn, q_in, k_in, v_in, q_heads: torch.Tensor | None = None) -> torch.Tensor:
        """Image->token attention: 4096 image queries over T token keys. Returns (N, C) in the compute dtype.

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


class _TransformerModule(torch.nn.Module):
    """`TwoWayDecoder.eager_transformer` as a module that owns the mask decoder, so that tracing it keeps the decoder's
    parameters as parameters (shared, not copied) rather than as constants."""

    def __init__(self, network: TwoWayDecoder) -> None:
        super().__init__()
        self.decoder = network.decoder
        self._network = (network,)  # not a submodule

    def forward(self, src, k1, v1, q1, tokens):  # noqa: D102
        return self._network[0].eager_transformer(ImageState(src, k1, v1, q1), tokens)


class _MaskHeadModule(torch.nn.Module):
    """`TwoWayDecoder.eager_mask_head` for mask tokens from `first` on, as a module owning the mask decoder (its
    hypernetworks' parameters stay shared). grid: an empty (rows, cols, 0) tensor whose shape carries the grid, so
    that the trace keeps rows and cols dynamic."""

    def __init__(self, network: TwoWayDecoder, first: int) -> None:
        super().__init__()
        self.decoder = network.decoder
        self._network = (network,)
        self.first = first

    def forward(self, keys, mask_tokens, grid, *adds):  # noqa: D102
        add1, add2 = adds if adds else (None, None)
        return self._network[0].eager_mask_head(keys, mask_tokens, self.first, grid.shape[0], grid.shape[1],
                                                add1, add2)


def _tracing_wanted() -> bool:
    return os.environ.get("FLOODLABEL_TRACED_DECODER", "1").strip() not in ("0", "false", "no")


def _self_attn(layer, queries, query_pe, skip_pe: bool) -> torch.Tensor:
    if skip_pe:
        x = queries[None]
        return layer.norm1(layer.self_attn(q=x, k=x, v=x)[0])
    q = (queries + query_pe)[None]
    return layer.norm1(queries + layer.self_attn(q=q, k=q, v=queries[None])[0])


def _t2i_projected(attn, q_in, k, v) -> torch.Tensor:
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


def _t2i(attn, q_in, k_in, v_in) -> torch.Tensor:
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


def _convt_as_linear(conv: torch.nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """ConvTranspose2d(k=2, s=2): weight (Cin, Cout, 2, 2) -> (Cin, 4*Cout) with columns (dy, dx, Cout)."""
    w = conv.weight
    cin, cout = w.shape[:2]
    return w.permute(0, 2, 3, 1).reshape(cin, 4 * cout).contiguous(), conv.bias.repeat(4)
