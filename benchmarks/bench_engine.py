"""Engine benchmark: FloodLabel's SAM paths against plain segment_anything, measured in the same run.

    .venv/bin/python -m benchmarks.bench_engine            # prints a table (a few minutes on 2 CPU cores)
    .venv/bin/python -m benchmarks.bench_engine --quick    # fewer repetitions

vit_b is built with random weights (seeded): the timings of random and real weights are the same. Rows:
- click latency (one point, multimask, masks at the original size), median and p95: FloodLabel's SamSegmenter.predict
  plus the shown (best) mask, and plus all three masks, vs SamPredictor.predict, interleaved click by click, on
  893x551 and 4000x3000 images;
- image embedding: FloodLabel's launch configuration (glibc malloc tuned, bf16 autocast on CPUs with native bf16)
  vs torch defaults (default glibc malloc, fp32), each in its own fresh process;
- embedding cache: disk hit and memory hit vs a cold embedding;
- agreement with SamPredictor on the same clicks (mask pixels, predicted IoU), which bounds what the decoder's
  speed-ups change: decoder only (both decoders get the same random features; no encoder runs). The encoder's
  precision is bounded separately by the feature difference of the embedding rows.
- SAM 2.1 (sam2.1_hiera_tiny, random weights from the packaged config; `--family sam2` for these rows only):
  clicks, FloodLabel's Sam2Segmenter.predict + the shown mask vs SAM2ImagePredictor.predict, interleaved; image
  embedding, launch configuration vs torch defaults, each in a fresh process; agreement as for SAM v1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZES = {"893x551": (551, 893), "4000x3000": (3000, 4000)}
SAM2_MODEL = "sam2.1_hiera_tiny"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--clicks", type=int, default=60, help="clicks per image size (default 60)")
    parser.add_argument("--embeds", type=int, default=3, help="timed encoder runs per configuration, after one "
                        "warm-up run (default 3)")
    parser.add_argument("--family", choices=["all", "sam", "sam2"], default="all",
                        help="SAM v1 rows, SAM 2.1 rows, or both (default)")
    parser.add_argument("--worker", choices=["embed"], help=argparse.SUPPRESS)
    parser.add_argument("--config", choices=["baseline", "floodlabel"], help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=["vit_b", SAM2_MODEL], default="vit_b", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "embed":
        return _embed_worker(args.config, args.embeds, args.model)
    if args.quick:
        args.clicks, args.embeds = 20, 2

    rows: list[tuple[str, str, str, str]] = []
    agreement: list[str] = []
    notes: list[str] = []
    embeds: dict[str, float] = {}
    if args.family in ("all", "sam"):
        sam = _vit_b()
        for label, (h, w) in SIZES.items():
            base, ours, ours_all, agree = _click_latency(sam, _scene(h, w), args.clicks)
            _click_rows(rows, label, base, ours, ours_all)
            agreement.append(f"SamPredictor, {label}: {agree}")
        del sam
        b, o = _embed_rows(rows, "vit_b", args.embeds, notes)
        embeds["vit_b"] = float(np.median(o["times"]))
        cold = np.median(o["times"])
        rows.append(("cache disk hit", _s(cold), _ms(o["disk_hit"]), f"{cold / o['disk_hit']:.0f}x"))
        rows.append(("cache memory hit", _s(cold), _ms(o["memory_hit"]), f"{cold / o['memory_hit']:.0f}x"))
    if args.family in ("all", "sam2"):
        from benchmarks.bench_sam2 import sam2_click_latency, tiny_sam2_model

        loaded = tiny_sam2_model()
        for label, (h, w) in SIZES.items():
            base, ours, ours_all, agree = sam2_click_latency(loaded, _scene(h, w), args.clicks)
            _click_rows(rows, f"sam2.1 {label}", base, ours, ours_all)
            agreement.append(f"SAM2ImagePredictor, {label}: {agree}")
        del loaded
        b, o = _embed_rows(rows, "sam2.1 tiny", args.embeds, notes, SAM2_MODEL)
        embeds["sam2.1 tiny"] = float(np.median(o["times"]))

    print()
    print(f"{'measure':<28} {'baseline':>12} {'floodlabel':>12} {'speed-up':>9}")
    print("-" * 64)
    for name, base_v, ours_v, ratio in rows:
        print(f"{name:<28} {base_v:>12} {ours_v:>12} {ratio:>9}")
    print()
    print("baseline: SamPredictor.predict / SAM2ImagePredictor.predict, 3 masks at the original size (clicks); torch")
    print("defaults, fp32 (embedding).")
    print("floodlabel click: decode + the best candidate's mask at the original size (what the app shows; the")
    print("other candidates are upscaled when picked: the 'all 3 masks' rows).")
    for line in notes:
        print(line)
    if len(embeds) == 2:
        print(f"sam2.1 tiny embedding / vit_b embedding, both floodlabel config: "
              f"{embeds['sam2.1 tiny'] / embeds['vit_b']:.2f}")
    for line in agreement:
        print(f"click agreement with {line}")
    return 0


def _click_rows(rows, label, base, ours, ours_all) -> None:
    rows.append((f"click {label} median", _ms(np.median(base)), _ms(np.median(ours)), _ratio(base, ours, 50)))
    rows.append((f"click {label} p95", _ms(np.percentile(base, 95)), _ms(np.percentile(ours, 95)),
                 _ratio(base, ours, 95)))
    rows.append(("  all 3 masks, median", _ms(np.median(base)), _ms(np.median(ours_all)), _ratio(base, ours_all, 50)))


def _embed_rows(rows, label: str, n: int, notes: list[str], model: str = "vit_b") -> tuple[dict, dict]:
    """Embedding rows of one model: torch defaults vs the launch configuration, each in a fresh process."""
    b, o = (_run_embed_worker(cfg, n, model) for cfg in ("baseline", "floodlabel"))
    rows.append((f"embed {label} median", _s(np.median(b["times"])), _s(np.median(o["times"])),
                 f"{np.median(b['times']) / np.median(o['times']):.2f}x"))
    notes.append(f"{label} embedding: floodlabel config {o['config']}; {o['allocator']}")
    notes.append(f"{label} embedding: baseline process {b['config']}; {b['allocator']}")
    notes.append(f"{label} embedding agreement (features, floodlabel vs fp32 on the same image): {o['feature_note']}")
    return b, o


# ---------------------------------------------------------------------------------------------- clicks
def _click_latency(sam, image: np.ndarray, n: int) -> tuple[list[float], list[float], list[float], str]:
    """sam: LoadedSam. Per-click seconds: baseline, shown mask, all masks; and an agreement note."""
    import torch
    from segment_anything import SamPredictor

    from floodlabel.core.segment.compute_config import default_compute_config
    from floodlabel.core.annotation.prompts import Prompt
    from floodlabel.core.sam.backend import SamSegmenter
    from floodlabel.core.segment.segmenter import Embedding

    h, w = image.shape[:2]
    predictor = SamPredictor(sam.model)
    torch.manual_seed(1)
    features = torch.randn(1, 256, 64, 64) * 0.5  # stands in for the encoder output: decoding cost is the same
    predictor.features, predictor.original_size = features, (h, w)
    predictor.input_size = predictor.transform.get_preprocess_shape(h, w, 1024)
    predictor.is_image_set = True
    seg = SamSegmenter(sam, default_compute_config())
    emb = Embedding(features, (h, w), tuple(predictor.input_size), seg.model_id)
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
        pred.masks  # the other two, as SamPredictor computes them
        t3 = time.perf_counter()
        if i >= 3:  # warm-up
            base.append(t1 - t0)
            ours.append(t2 - t1)
            ours_all.append(t3 - t1)
            agree.append(float((pred.masks == ref_masks).mean()))
            iou_diff.append(float(np.abs(pred.scores - ref_scores).max()))
    decoder = {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(seg.config.decoder_dtype, "?")
    note = (f"mask pixels agree {100 * np.mean(agree):.2f}% (min {100 * np.min(agree):.2f}%), "
            f"predicted IoU max diff {max(iou_diff):.4f} (decoder only: the same random features to both, "
            f"no encoder; decoder {decoder})")
    return base, ours, ours_all, note


# ---------------------------------------------------------------------------------------------- embedding
def _run_embed_worker(config: str, n: int, model: str = "vit_b") -> dict:
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "benchmarks.bench_engine", "--worker", "embed", "--config", config,
           "--embeds", str(n), "--model", model]
    env.pop("LD_PRELOAD", None)
    if config == "baseline":
        env["FLOODLABEL_ALLOCATOR"] = "system"
        env["FLOODLABEL_PRECISION"] = "fp32"
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _embed_worker(config: str, n: int, model: str = "vit_b") -> int:
    import torch

    from floodlabel.core.segment.compute_config import ComputeConfig, default_compute_config
    from floodlabel.core.common.hashing import image_key
    from floodlabel.core.segment.embedding_cache import EmbeddingCache
    from floodlabel.core.sam.backend import SamSegmenter
    from floodlabel.runtime import allocator_status, tune_allocator

    if config == "floodlabel":
        tune_allocator()  # what `floodlabel` does at start-up
        cfg = default_compute_config()
    else:
        cfg = ComputeConfig("cpu", torch.float32, torch.float32)
    if model == SAM2_MODEL:
        from benchmarks.bench_sam2 import tiny_sam2_model
        from floodlabel.core.sam2.backend import Sam2Segmenter

        def segmenter(c):
            return Sam2Segmenter(loaded, c)

        loaded = tiny_sam2_model()
    else:
        def segmenter(c):
            return SamSegmenter(loaded, c)

        loaded = _vit_b()
    seg = segmenter(cfg)
    image = _scene(551, 893)
    seg.embed(image)  # warm-up (first-run allocations, oneDNN kernel selection), for both configurations
    times = []
    for _ in range(n):
        t = time.perf_counter()
        emb = seg.embed(image)
        times.append(time.perf_counter() - t)
    result = {"times": times, "config": cfg.describe(), "allocator": allocator_status()}
    if config == "floodlabel":
        exact = segmenter(ComputeConfig("cpu", torch.float32, torch.float32)).embed(image).features
        if isinstance(exact, dict):  # SAM 2.1: the image embedding (the high-res maps follow the same encoder)
            diff, exact = (emb.features["image_embed"] - exact["image_embed"]).abs(), exact["image_embed"]
        else:
            diff = (emb.features - exact).abs()
        result["feature_note"] = (f"max |diff| {diff.max().item():.4f}, mean {diff.mean().item():.5f}, "
                                  f"feature std {exact.std().item():.3f}")
        with tempfile.TemporaryDirectory() as d:
            key = image_key(image)
            EmbeddingCache(d).put(seg.model_id, key, emb)
            disk, mem = [], []
            for _ in range(20):
                cache = EmbeddingCache(d)  # empty memory: a disk hit
                t = time.perf_counter()
                assert cache.get(seg.model_id, key) is not None
                disk.append(time.perf_counter() - t)
                t = time.perf_counter()
                cache.get(seg.model_id, key)
                mem.append(time.perf_counter() - t)
            result["disk_hit"], result["memory_hit"] = float(np.median(disk)), float(np.median(mem))
    print(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------- helpers
def _vit_b():
    """A seeded, randomly initialised vit_b as a LoadedSam (no file behind it)."""
    import torch

    from floodlabel.core.sam.checkpoint import KNOWN_ARCHITECTURES, LoadedSam, build_sam

    torch.manual_seed(0)
    return LoadedSam(build_sam(KNOWN_ARCHITECTURES["vit_b"]), KNOWN_ARCHITECTURES["vit_b"], "random", None)


def _scene(h: int, w: int) -> np.ndarray:
    """A smooth synthetic RGB image (H, W, 3) uint8 (content does not change the timings)."""
    import cv2

    rng = np.random.default_rng(h * w)
    small = rng.integers(0, 255, (max(h // 32, 2), max(w // 32, 2), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _ratio(base: list[float], ours: list[float], q: float) -> str:
    return f"{np.percentile(base, q) / np.percentile(ours, q):.2f}x"


if __name__ == "__main__":
    raise SystemExit(main())
