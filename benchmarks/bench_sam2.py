"""SAM 2.1 pieces of benchmarks/bench_engine.py (run that; this module has no entry point of its own).

sam2.1_hiera_tiny is built with random weights (seeded) from the config in the `sam2` package: the timings of random
and real weights are the same.
"""

from __future__ import annotations

import time

import numpy as np


def tiny_sam2_model():
    """A seeded, randomly initialised sam2.1_hiera_tiny as a LoadedSam2 (no file behind it)."""
    import torch

    from floodlabel.core.sam2.checkpoint import SIZES, LoadedSam2, build_sam2_model

    torch.manual_seed(0)
    return LoadedSam2(build_sam2_model(SIZES["tiny"]), SIZES["tiny"], "random", None)


def sam2_click_latency(loaded, image: np.ndarray, n: int) -> tuple[list[float], list[float], list[float], str]:
    """Per-click seconds, interleaved click by click: SAM2ImagePredictor.predict (3 masks at the original size),
    Sam2Segmenter.predict + the shown mask, + all three masks; and an agreement note. Decoder only: both get the
    same random features (1, 256, 64, 64) + high-res maps; no encoder runs."""
    import torch
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from floodlabel.core.annotation.prompts import Prompt
    from floodlabel.core.sam2.backend import Sam2Segmenter
    from floodlabel.core.segment.compute_config import default_compute_config
    from floodlabel.core.segment.segmenter import Embedding

    h, w = image.shape[:2]
    g = torch.Generator().manual_seed(1)
    features = {"image_embed": torch.randn(1, 256, 64, 64, generator=g) * 0.5,
                "high_res_feats_0": torch.randn(1, 32, 256, 256, generator=g) * 0.5,
                "high_res_feats_1": torch.randn(1, 64, 128, 128, generator=g) * 0.5}
    predictor = SAM2ImagePredictor(loaded.model)
    predictor._features = {"image_embed": features["image_embed"],
                           "high_res_feats": [features["high_res_feats_0"], features["high_res_feats_1"]]}
    predictor._orig_hw, predictor._is_image_set = [(h, w)], True
    seg = Sam2Segmenter(loaded, default_compute_config())
    emb = Embedding(features, (h, w), (1024, 1024), seg.model_id)
    rng = np.random.default_rng(0)
    base, ours, ours_all, agree, iou_diff = [], [], [], [], []
    for i in range(n + 3):
        x, y = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        t0 = time.perf_counter()
        with torch.inference_mode():
            ref_masks, ref_scores, _ = predictor.predict(np.array([[x, y]]), np.array([1]), multimask_output=True)
        t1 = time.perf_counter()
        pred = seg.predict(emb, Prompt.point(x, y))
        pred.mask(pred.best)  # the candidate the app shows
        t2 = time.perf_counter()
        pred.masks  # the other two, as SAM2ImagePredictor computes them
        t3 = time.perf_counter()
        if i >= 3:  # warm-up
            base.append(t1 - t0)
            ours.append(t2 - t1)
            ours_all.append(t3 - t1)
            agree.append(float((pred.masks == ref_masks.astype(bool)).mean()))
            iou_diff.append(float(np.abs(pred.scores - ref_scores).max()))
    decoder = {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(seg.config.decoder_dtype, "?")
    note = (f"mask pixels agree {100 * np.mean(agree):.3f}% (min {100 * np.min(agree):.3f}%), "
            f"predicted IoU max diff {max(iou_diff):.4f} (decoder only, same random features; decoder {decoder})")
    return base, ours, ours_all, note
