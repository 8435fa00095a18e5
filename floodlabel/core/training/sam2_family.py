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
    def batch(features: list[dict[str, torch.Tensor]]) -> dict:
        """K images' cached maps -> one batch: image_embed (K, 256, 64, 64), and per image its high-res maps in the
        mask head's row layout (one copy each): rows [(s1 (4096, 4 * 64), s0 (16384, 4 * 32))] * K."""
        return {"image_embed": torch.cat([f["image_embed"] for f in features]),
                "rows": [_rows(f["high_res_feats_1"], f["high_res_feats_0"]) for f in features]}

    @staticmethod
    def take(features: dict, idx: list[int]) -> dict:
        """A sub-batch: the image embeddings indexed, the high-res rows picked (no copy)."""
        if idx == list(range(len(features["rows"]))):
            return features
        return {"image_embed": features["image_embed"][idx], "rows": [features["rows"][i] for i in idx]}

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
    """features: a `Sam2Family.batch` (image_embed (K, 256, 64, 64) and the high-res maps in row layout); sparse
    (K, T, 256); dense (K, 256, 64, 64). Returns (masks (K, 4, 256, 256), iou (K, 4))."""
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
    return _mask_head(decoder, keys, hyper, features["rows"]), iou


def _rows(feat_s1: torch.Tensor, feat_s0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """feat_s1 (1, 64, 128, 128) -> (4096, (dy1, dx1, 64)); feat_s0 (1, 32, 256, 256) -> (16384, (dy1, dx1, dy2,
    dx2 ... see FastSam2Decoder.prepare)), rows (gy, gx) and (gy, gx, dy1, dx1)."""
    c1, c0 = feat_s1.shape[1], feat_s0.shape[1]
    s1 = feat_s1[0].view(c1, 64, 2, 64, 2).permute(1, 3, 2, 4, 0).reshape(4096, 4 * c1)
    s0 = feat_s0[0].view(c0, 64, 2, 2, 64, 2, 2).permute(1, 4, 2, 5, 3, 6, 0).reshape(16384, 4 * c0)
    return s1, s0


def _mask_head(decoder, keys: torch.Tensor, hyper: torch.Tensor, rows: list) -> torch.Tensor:
    """keys (K, 4096, C) final image tokens; hyper (K, 4, 32); rows: per image (s1, s0) from `_rows`. Per-cell form
    of the upscaling (batched_decoder's mask head), one image at a time (large products each), with the high-res
    maps added to the transposed convolutions' outputs: feat_s1 in float32 (the layer norm runs in float32),
    feat_s0 in the compute dtype. Returns (K, 4, 256, 256)."""
    K, C = keys.shape[0], keys.shape[-1]
    dc1, ln1, act1, dc2, act2 = decoder.output_upscaling
    c1, c2 = dc1.out_channels, dc2.out_channels
    w1, b1 = batched_decoder.convt_as_linear(dc1)
    w2, b2 = batched_decoder.convt_as_linear(dc2)
    n = hyper.shape[1]
    out = []
    for k, (r1, r0) in enumerate(rows):
        y = (torch.addmm(b1, keys[k], w1) + r1).view(-1, c1)  # dc1(src) + feat_s1, rows (gy, gx, dy1, dx1)
        y = act1(F.layer_norm(y, (c1,), ln1.weight, ln1.bias, ln1.eps))
        z = act2(torch.addmm(b2, y, w2) + r0.to(keys.dtype)).view(-1, c2)  # (65536, 32)
        out.append(hyper[k].to(z.dtype) @ z.t())  # (4, 65536)
    m = torch.stack(out)
    return m.view(K, n, 64, 64, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7).reshape(K, n, 256, 256)
