"""SAM 2.1's side of the trainer (`families.DecoderFamily`): its prompt encoder and mask decoder, its stretched
1024x1024 input frame, and its three cached feature maps.

SAM 2.1's mask decoder is SAM v1's two-way transformer (batched_decoder's re-associated form is reused as is) with
an object-score token ahead of the IoU token and the image encoder's two high-resolution maps added inside the
mask head: `act1(ln1(dc1(src) + feat_s1))`, `act2(dc2(.) + feat_s0)`. `decode` computes
`MaskDecoder.predict_masks(..., repeat_image=False, high_res_features=[feat_s0, feat_s1])` for K images with one
prompt each: the masks of the 4 mask tokens (K, 4, 256, 256) over the whole (stretched) image, and their
predicted IoU (K, 4). The object score is not trained: SAM2ImagePredictor (and the window) never use it on images.

Prompts are built as SAM2ImagePredictor builds them: box corners as points labelled 2 and 3, then the clicks, then
one padding point (`PromptEncoder(points=..., boxes=None)`), so a prompt has len(points) + 2 (box) + 1 tokens.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from floodlabel.core.sam2.checkpoint import IMAGE_SIZE, LoadedSam2
from floodlabel.core.sam2.loading import SAM2_FAMILY
from floodlabel.core.training import batched_decoder

FEATURES = ("image_embed", "high_res_feats_0", "high_res_feats_1")  # core.sam2.backend.FEATURE_NAMES


class Sam2Family:
    """SAM 2.1 (any size: the decoder is the same)."""

    name = SAM2_FAMILY
    embedding_bytes = (256 * 64 * 64 + 32 * 256 * 256 + 64 * 128 * 128) * 2 + 4096  # the three maps in float16

    @staticmethod
    def accepts(loaded) -> bool:
        return isinstance(loaded, LoadedSam2)

    @staticmethod
    def to_input(points: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """(x * 1024 / W, y * 1024 / H): the image is resized to 1024x1024, not padded (SAM2Transforms)."""
        h, w = original_size
        return (np.asarray(points, np.float32) * np.array([IMAGE_SIZE / w, IMAGE_SIZE / h], np.float32))

    @staticmethod
    def modules(model):
        return model.sam_mask_decoder, model.sam_prompt_encoder

    @staticmethod
    def batch(features: list) -> dict[str, torch.Tensor]:
        return {k: torch.cat([f[k] for f in features]) for k in FEATURES}

    @staticmethod
    def take(features: dict[str, torch.Tensor], idx: list[int]) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in features.items()}

    @staticmethod
    def tokens(prompt) -> int:
        coords, _labels, box = prompt[:3]
        return (0 if coords is None else len(coords)) + (0 if box is None else 2) + 1

    @staticmethod
    def encode(prompt_encoder, prompt, device):
        """prompt: (coords (N, 2) | None, labels (N,) | None, box (4,) | None, mask_input | None), input frame."""
        coords, labels, box, mask_input = prompt[:4]
        pts, lbl = [], []
        if box is not None:
            pts.append(np.asarray(box, np.float32).reshape(2, 2))
            lbl.append(np.array([2, 3], np.int64))
        if coords is not None:
            pts.append(np.asarray(coords, np.float32).reshape(-1, 2))
            lbl.append(np.asarray(labels, np.int64))
        points = None
        if pts:
            points = (torch.as_tensor(np.concatenate(pts), dtype=torch.float32, device=device)[None],
                      torch.as_tensor(np.concatenate(lbl), dtype=torch.int64, device=device)[None])
        return prompt_encoder(points=points, boxes=None, masks=mask_input)

    @staticmethod
    def decode(decoder, dense_pe, features, sparse, dense, grid=None):
        """See the module docstring; grid is ignored (the image covers the whole 64x64 grid)."""
        return decode(decoder, dense_pe, features, sparse, dense)


def decode(decoder, dense_pe: torch.Tensor, features: dict[str, torch.Tensor], sparse: torch.Tensor,
           dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """features: image_embed (K, 256, 64, 64), high_res_feats_0 (K, 32, 256, 256), high_res_feats_1 (K, 64, 128,
    128); sparse (K, T, 256); dense (K, 256, 64, 64). Returns (masks (K, 4, 256, 256), iou (K, 4))."""
    image = features["image_embed"]
    K, C, gh, gw = image.shape
    device = image.device.type
    lp = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else image.dtype
    keys = (image + dense).flatten(2).transpose(1, 2).to(lp, memory_format=torch.contiguous_format)  # (K, N, C)
    pe = dense_pe.flatten(2).transpose(1, 2).to(lp, memory_format=torch.contiguous_format)
    out = [decoder.iou_token.weight, decoder.mask_tokens.weight]
    if decoder.pred_obj_scores:
        out.insert(0, decoder.obj_score_token.weight)
    s = 1 if decoder.pred_obj_scores else 0
    tokens = torch.cat([torch.cat(out).unsqueeze(0).expand(K, -1, -1), sparse], dim=1)
    hs, keys = batched_decoder.transformer(decoder.transformer, keys, pe, tokens)
    iou = decoder.iou_prediction_head(hs[:, s, :])
    n = decoder.num_mask_tokens
    hyper = torch.stack([decoder.output_hypernetworks_mlps[i](hs[:, s + 1 + i, :]) for i in range(n)], dim=1)
    return _mask_head(decoder, keys, hyper, features["high_res_feats_0"], features["high_res_feats_1"]), iou


def _mask_head(decoder, keys: torch.Tensor, hyper: torch.Tensor, feat_s0: torch.Tensor,
               feat_s1: torch.Tensor) -> torch.Tensor:
    """keys (K, 4096, C) final image tokens; hyper (K, 4, 32). Per-cell form of the upscaling (batched_decoder's
    mask head) with the high-res maps rearranged into its rows: feat_s1 -> (K 4096, (dy1, dx1, 64)),
    feat_s0 -> (K 16384, (dy2, dx2, 32)), as FastSam2Decoder.prepare lays them out."""
    K, C = keys.shape[0], keys.shape[-1]
    dc1, ln1, act1, dc2, act2 = decoder.output_upscaling
    c1, c2 = dc1.out_channels, dc2.out_channels
    lp = keys.dtype
    r1 = feat_s1.view(K, c1, 64, 2, 64, 2).permute(0, 2, 4, 3, 5, 1).reshape(K * 4096, 4 * c1).to(lp)
    r0 = feat_s0.view(K, c2, 64, 2, 2, 64, 2, 2).permute(0, 2, 5, 3, 6, 4, 7, 1).reshape(K * 16384, 4 * c2).to(lp)
    w1, b1 = batched_decoder.convt_as_linear(dc1)
    w2, b2 = batched_decoder.convt_as_linear(dc2)
    y = (torch.addmm(b1, keys.reshape(-1, C), w1) + r1).view(-1, c1)  # dc1(src) + feat_s1, rows (k, gy, gx, dy1, dx1)
    y = act1(F.layer_norm(y, (c1,), ln1.weight, ln1.bias, ln1.eps))
    z = act2(torch.addmm(b2, y, w2) + r0).view(K, -1, c2)  # (K, 65536, 32)
    m = torch.bmm(hyper.to(z.dtype), z.transpose(1, 2))  # (K, 4, 65536)
    n = hyper.shape[1]
    return m.view(K, n, 64, 64, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7).reshape(K, n, 256, 256)
