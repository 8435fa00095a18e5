"""SAM's mask decoder for K images with one prompt each, differentiable, with fewer operations than
`MaskDecoder.predict_masks` computes for the same outputs.

The network and weights are segment_anything's own modules (the trained `MaskDecoder`); only the order of the
products changes (exact algebra, float rounding aside), so gradients reach the same parameters as through
`MaskDecoder.forward`:

- Cross attention between the T prompt tokens (5 output tokens + points + box corners, T ~ 7) and the N = 4096
  image tokens: the 256 -> 128 projections of the N image tokens (k_proj, v_proj, q_proj, out_proj; 4 x N x 256 x
  128 multiply-adds per layer) are re-associated onto the T tokens, as `sam_fast_decoder` does for inference:
      token->image: scores = (q_h Wk_h) X^T, out = (A_h X) Wv_h^T + bv   (the key bias shifts a row of scores
                    equally, so the softmax ignores it: its gradient is zero in SAM's form too)
      image->token: scores = X (Wq_h^T k_h) + bq.k_h,  out = sum_h A_h (v_h Wo_h^T) + bo
  which is h x T x N x 256 each (8 x 7 = 56 < 128): about 2x fewer products in the transformer, forward and
  backward. The image tokens stay in a (K, N, 256) token-major layout throughout (no NCHW transposes).
- The mask head (two stride-2 transposed convolutions, LayerNorm2d, GELU, the hypernetwork product) is a per-cell
  map, evaluated as two matrix products on token-major rows, and only over the grid cells asked for (`grid`):
  the cells beyond it are padding that no loss counts.

Shapes: features (K, 256, 64, 64) image embeddings; sparse (K, T, 256) prompt tokens; dense (K, 256, 64, 64) dense
prompt embeddings (no-mask embedding or a mask input's). Output: low-res logits of SAM's 4 candidates
(K, 4, 4 rows, 4 cols) over the top-left grid cells, and their predicted IoU (K, 4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from segment_anything.modeling.mask_decoder import MaskDecoder
from segment_anything.modeling.transformer import Attention


def decode(decoder: MaskDecoder, dense_pe: torch.Tensor, features: torch.Tensor, sparse: torch.Tensor,
           dense: torch.Tensor, grid: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`decoder.predict_masks` for K images x one prompt each (see the module docstring).

    dense_pe: (1, 256, 64, 64) the prompt encoder's `get_dense_pe()`. grid: (rows, cols) of 64x64 grid cells for
    the mask head, from the top left (None: all 64 x 64). Returns (masks (K, 4, 4 rows, 4 cols), iou (K, 4)).
    """
    K, C, gh, gw = features.shape
    device = features.device.type
    # token-major and contiguous, in the autocast dtype when autocast is on (the image-token stream: one cast)
    lp = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else features.dtype
    keys = (features + dense).flatten(2).transpose(1, 2).to(lp, memory_format=torch.contiguous_format)  # (K, N, C)
    pe = dense_pe.flatten(2).transpose(1, 2).to(lp, memory_format=torch.contiguous_format)  # (1, N, C)
    out_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat([out_tokens.unsqueeze(0).expand(K, -1, -1), sparse], dim=1)  # (K, T, C)
    hs, keys = transformer(decoder.transformer, keys, pe, tokens)
    iou = decoder.iou_prediction_head(hs[:, 0, :])
    n = decoder.num_mask_tokens
    hyper = torch.stack([decoder.output_hypernetworks_mlps[i](hs[:, 1 + i, :]) for i in range(n)], dim=1)
    rows, cols = grid if grid is not None else (gh, gw)
    return _mask_head(decoder, keys.view(K, gh, gw, C), hyper, rows, cols), iou


def transformer(tr, keys: torch.Tensor, pe: torch.Tensor, tokens: torch.Tensor):
    queries, query_pe = tokens, tokens
    for layer in tr.layers:
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        kp = keys + pe
        queries = layer.norm2(queries + _token_to_image(layer.cross_attn_token_to_image, queries + query_pe, kp, keys))
        queries = layer.norm3(queries + layer.mlp(queries))
        keys = layer.norm4(keys + _image_to_token(layer.cross_attn_image_to_token, kp, queries + query_pe, queries))
    attn = _token_to_image(tr.final_attn_token_to_image, queries + query_pe, keys + pe, keys)
    return tr.norm_final_attn(queries + attn), keys


def _token_to_image(attn: Attention, q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor) -> torch.Tensor:
    """q_in (K, T, C) tokens + pe; k_in (K, N, C) image tokens + pe; v_in (K, N, C) image tokens -> (K, T, C)."""
    h = attn.num_heads
    q = attn.q_proj(q_in)  # (K, T, D)
    K, T, D = q.shape
    d = D // h
    wk = attn.k_proj.weight.view(h, d, -1)  # (h, d, C)
    qk = torch.einsum("kthd,hdc->khtc", q.view(K, T, h, d), wk).reshape(K, h * T, -1) * (1.0 / math.sqrt(d))
    a = torch.softmax(torch.bmm(qk, k_in.transpose(1, 2)), dim=-1)  # (K, hT, N)
    ax = torch.bmm(a, v_in).view(K, h, T, -1)  # (K, h, T, C)
    wv = attn.v_proj.weight.view(h, d, -1)
    out = torch.einsum("khtc,hdc->kthd", ax, wv).reshape(K, T, D) + attn.v_proj.bias  # rows of a sum to 1
    return attn.out_proj(out)


def _image_to_token(attn: Attention, q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor) -> torch.Tensor:
    """q_in (K, N, C) image tokens + pe; k_in (K, T, C) tokens + pe; v_in (K, T, C) tokens -> (K, N, C).
    Scores are laid out (K, h, T, N): the softmax over the T tokens runs with N contiguous."""
    h = attn.num_heads
    k = attn.k_proj(k_in)  # (K, T, D)
    v = attn.v_proj(v_in)
    K, T, D = k.shape
    d = D // h
    kh = k.view(K, T, h, d)
    wq = attn.q_proj.weight.view(h, d, -1)  # (h, d, C)
    m = torch.einsum("kthd,hdc->khtc", kh, wq).reshape(K, h * T, -1)  # (K, hT, C)
    bias = torch.einsum("kthd,hd->kht", kh, attn.q_proj.bias.view(h, d)).reshape(K, h * T, 1)
    scores = torch.baddbmm(bias, m, q_in.transpose(1, 2)) * (1.0 / math.sqrt(d))  # (K, hT, N)
    a = torch.softmax(scores.view(K, h, T, -1), dim=2).view(K, h * T, -1)
    wo = attn.out_proj.weight.view(-1, h, d)  # (C, h, d)
    vo = torch.einsum("kthd,chd->khtc", v.view(K, T, h, d), wo).reshape(K, h * T, -1)  # (K, hT, C)
    return torch.baddbmm(attn.out_proj.bias, a.transpose(1, 2), vo)


def _mask_head(decoder: MaskDecoder, keys: torch.Tensor, hyper: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """keys (K, 64, 64, C) final image tokens; hyper (K, 4, 32). Returns (K, 4, 4 rows, 4 cols) logits.

    ConvTranspose2d(k=2, s=2) is a per-cell linear map whose output columns, ordered (dy, dx, channel), reshape into
    rows of sub-pixels without a copy; one permute at the end restores the raster."""
    K, C = keys.shape[0], keys.shape[-1]
    up = decoder.output_upscaling  # ConvT(256->64), LayerNorm2d(64), GELU, ConvT(64->32), GELU
    x = keys[:, :rows, :cols].reshape(-1, C)
    w1, b1 = convt_as_linear(up[0])
    w2, b2 = convt_as_linear(up[3])
    c1, c2 = up[0].out_channels, up[3].out_channels
    y = F.gelu(F.layer_norm(torch.addmm(b1, x, w1).view(-1, c1), (c1,), up[1].weight, up[1].bias, up[1].eps))
    z = F.gelu(torch.addmm(b2, y, w2)).view(K, -1, c2)  # (K, cells*16, 32)
    m = torch.bmm(hyper, z.transpose(1, 2))  # (K, 4, cells*16)
    n = hyper.shape[1]
    return m.view(K, n, rows, cols, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7).reshape(K, n, 4 * rows, 4 * cols)


def convt_as_linear(conv: torch.nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (Cin, Cout, 2, 2) -> (Cin, 4 Cout) with columns (dy, dx, Cout); bias repeated per sub-pixel."""
    w = conv.weight
    cin, cout = w.shape[:2]
    return w.permute(0, 2, 3, 1).reshape(cin, 4 * cout), conv.bias.repeat(4)
