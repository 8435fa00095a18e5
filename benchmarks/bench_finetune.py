"""Fine-tuning benchmark: a training step on cached embeddings vs the same step with the frozen encoder in the loop.

    .venv/bin/python -m benchmarks.bench_finetune                 # batch 4, 5 cached steps, 1 encoder step
    .venv/bin/python -m benchmarks.bench_finetune --encoder-steps 0   # skip the slow baseline
    .venv/bin/python -m benchmarks.bench_finetune --threads 1         # one torch thread (a busy 2-core machine)
    .venv/bin/python -m benchmarks.bench_finetune --precision fp32    # no bf16 autocast
    .venv/bin/python -m benchmarks.bench_finetune --family sam        # SAM v1 only (no SAM 2.1 row)

A seeded, randomly initialised vit_b (random weights time like real ones). Both rows run FloodLabel's training step
(core/training/trainer.py: segment_anything's prompt encoder + mask decoder, forward and backward, Adam, simulated
prompts from synthetic water masks), on the same batch size in the same process:
- cached:   embeddings read per batch from the on-disk embedding cache (float16 -> float32), as `finetune` does;
- baseline: each image of the batch through the frozen vit_b encoder first (no grad, fp32), as the seed notebook did.
SAM 2.1 (`--family all`, the default, needs the sam2 package): the same cached step on a seeded random
sam2.1_hiera_tiny (every size has the same mask decoder), its three cached maps (8 MiB in float16) per image, the
images stretched to its 1024x1024 frame (core/training/sam2_family.py); its steps are interleaved with SAM v1's in
the same process, and the ratio of the medians is printed (issue 15's budget: within 1.5x of SAM v1's).
One untimed warm-up step precedes the cached steps. Also printed: one epoch over 200 images extrapolated from the
cached median (50 steps at batch 4, plus no validation), and the process's peak RSS after the cached steps (before
the baseline loads its activations) and at the end.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="images per step (default 4)")
    parser.add_argument("--steps", type=int, default=5, help="timed cached steps (default 5)")
    parser.add_argument("--encoder-steps", type=int, default=1, help="timed steps with the encoder (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="training precision (default auto: bf16 where native, as `finetune` does)")
    parser.add_argument("--family", choices=("sam", "all"), default="all",
                        help="all (default): SAM 2.1 tiny's cached step beside vit_b's; sam: vit_b only")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from floodlabel.core.segment.compute_config import ComputeConfig
    from floodlabel.core.segment.embedding_cache import EmbeddingCache
    from floodlabel.core.models.session import SegmentationSession
    from floodlabel.core.sam.backend import SamSegmenter
    from floodlabel.core.sam.checkpoint import KNOWN_ARCHITECTURES, LoadedSam, build_sam
    from floodlabel.core.segment.segmenter import Embedding
    from floodlabel.core.training.embeddings import EmbeddingReader, PreparedItem
    from floodlabel.core.training.examples import make_target, mask_digest
    from floodlabel.core.training.finetune_settings import FinetuneSettings
    from floodlabel.core.training.trainer import Trainer

    torch.manual_seed(0)
    arch = KNOWN_ARCHITECTURES["vit_b"]
    loaded = LoadedSam(build_sam(arch), arch, "random", Path("random-vit_b.pth"))
    seg = SamSegmenter(loaded, ComputeConfig(args.device, torch.float32, torch.float32))
    tmp = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    session = SegmentationSession(seg, EmbeddingCache(tmp))
    rng = np.random.default_rng(0)
    n = max(args.batch, 8)
    images, items = [], []
    for i in range(n):  # random embeddings in the cache (what `prepare_embeddings` leaves there) + real masks
        image, mask = _scene(551, 893, i)
        images.append(image)
        key = f"bench-{i}"
        cache_id = getattr(session, "cache_model_id", session.model_id)  # the key the reader uses
        session.cache.put(cache_id, key, Embedding(torch.randn(1, 256, 64, 64), (551, 893), (632, 1024), cache_id))
        items.append(PreparedItem(i, key, key, make_target(mask, (632, 1024)), mask_digest(mask), False))
    settings = FinetuneSettings(batch_size=args.batch, precision=args.precision)
    trainer = Trainer(seg, settings, EmbeddingReader(session, seg.device))
    batches = [[items[(s * args.batch + j) % n] for j in range(args.batch)] for s in range(args.steps + 1)]

    sam2 = _sam2_trainer(args, tmp, n) if args.family == "all" else None

    trainer.step(batches[0], rng)  # warm-up
    if sam2 is not None:
        sam2[0].step(sam2[1][0], rng)
    cached, cached_cpu, cached2 = [], [], []
    for s, batch in enumerate(batches[1:]):
        t, c = time.perf_counter(), time.process_time()
        trainer.step(batch, rng)
        cached.append(time.perf_counter() - t)
        cached_cpu.append(time.process_time() - c)
        if sam2 is not None:  # interleaved: both families see the same load
            t = time.perf_counter()
            sam2[0].step(sam2[1][1 + s], rng)
            cached2.append(time.perf_counter() - t)
    rss_cached = _peak_rss_gib()
    read_ms = 1000 * trainer.reader.read_seconds / (args.batch * (args.steps + 1))

    encoder = []
    if args.encoder_steps:
        trainer.reader = _EncoderInTheLoop(seg, images)
        for s in range(args.encoder_steps):
            t = time.perf_counter()
            trainer.step(batches[1 + s % args.steps], rng)
            encoder.append(time.perf_counter() - t)

    med = float(np.median(cached))
    rows = [("step, cached embeddings (median)", f"{med:.2f} s", f"{args.steps} steps"),
            ("  its process CPU time (median)", f"{np.median(cached_cpu):.2f} s",
             "all threads; on a busy machine wall > CPU / threads"),
            ("  of which embedding reads", f"{read_ms:.1f} ms/image", "float16 from disk -> float32")]
    if cached2:
        med2 = float(np.median(cached2))
        rows.append(("step, SAM 2.1 tiny, cached embeddings (median)", f"{med2:.2f} s",
                     f"{len(cached2)} steps interleaved; {med2 / med:.2f}x SAM v1's (budget 1.5x)"))
    if encoder:
        rows.append(("step, encoder in the loop (baseline)", f"{np.median(encoder):.1f} s",
                     f"{len(encoder)} step(s); {np.median(encoder) / med:.0f}x slower"))
    rows += [("epoch of 200 images, batch 4 (extrapolated)", f"{med * 200 / args.batch:.1f} s",
              f"50 steps (CPU time {np.median(cached_cpu) * 200 / args.batch:.1f} s)"),
             ("peak RSS after the cached steps", f"{rss_cached:.2f} GiB", "vit_b model + decoder training"),
             ("peak RSS at the end", f"{_peak_rss_gib():.2f} GiB", "with the encoder's activations")]
    print(f"Fine-tuning step, vit_b (random weights), batch {args.batch}, {args.device}, "
          f"torch threads {torch.get_num_threads()}, training precision {'bf16' if trainer.bf16 else 'fp32'} "
          f"(the encoder baseline: fp32 encoder, same training step)")
    width = max(len(r[0]) for r in rows)
    for label, value, note in rows:
        print(f"  {label.ljust(width)}  {value:>14}  {note}")
    return 0


def _sam2_trainer(args, tmp: Path, n: int):
    """(Trainer on a seeded random sam2.1_hiera_tiny, its batches): random cached maps + the same masks."""
    from floodlabel.core.models.session import SegmentationSession
    from floodlabel.core.sam2.backend import FEATURE_SHAPES, Sam2Segmenter
    from floodlabel.core.sam2.checkpoint import SIZES, LoadedSam2, build_sam2_model
    from floodlabel.core.segment.compute_config import ComputeConfig
    from floodlabel.core.segment.embedding_cache import EmbeddingCache
    from floodlabel.core.segment.segmenter import Embedding
    from floodlabel.core.training.embeddings import EmbeddingReader, PreparedItem
    from floodlabel.core.training.examples import make_target, mask_digest
    from floodlabel.core.training.finetune_settings import FinetuneSettings
    from floodlabel.core.training.trainer import Trainer

    torch.manual_seed(1)
    loaded = LoadedSam2(build_sam2_model(SIZES["tiny"]), SIZES["tiny"], "random", Path("random-sam2.1-tiny.pt"))
    seg = Sam2Segmenter(loaded, ComputeConfig(args.device, torch.float32, torch.float32))
    session = SegmentationSession(seg, EmbeddingCache(tmp / "sam2", max_disk_bytes=2**31))
    items = []
    for i in range(n):
        _image, mask = _scene(551, 893, i)
        key = f"bench2-{i}"
        features = {k: torch.randn(shape) for k, shape in FEATURE_SHAPES.items()}
        session.cache.put(session.cache_model_id, key, Embedding(features, (551, 893), (1024, 1024),
                                                                 session.cache_model_id))
        items.append(PreparedItem(i, key, key, make_target(mask, (1024, 1024)), mask_digest(mask), False))
    trainer = Trainer(seg, FinetuneSettings(batch_size=args.batch, precision=args.precision),
                      EmbeddingReader(session, seg.device))
    return trainer, [[items[(s * args.batch + j) % n] for j in range(args.batch)] for s in range(args.steps + 1)]


class _EncoderInTheLoop:
    """A reader that runs the frozen encoder on the item's image at every use (the notebook's way; fp32)."""

    def __init__(self, seg, images):
        self.seg, self.images, self.read_seconds = seg, images, 0.0

    def features(self, item):
        from floodlabel.core.sam.checkpoint import IMAGE_SIZE
        from segment_anything.utils.transforms import ResizeLongestSide

        image = self.images[item.index]
        resized = ResizeLongestSide(IMAGE_SIZE).apply_image(image)
        x = torch.as_tensor(resized, device=self.seg.device).permute(2, 0, 1).contiguous()[None].float()
        with torch.no_grad():
            return self.seg.model.image_encoder(self.seg.model.preprocess(x))


def _scene(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h * rng.uniform(0.3, 0.7), w * rng.uniform(0.3, 0.7)
    mask = ((yy - cy) / (0.3 * h)) ** 2 + ((xx - cx) / (0.3 * w)) ** 2 < 1
    image = rng.integers(60, 180, (h, w, 3)).astype(np.uint8)
    image[mask] = (90, 110, 140)
    return image, mask


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


if __name__ == "__main__":
    raise SystemExit(main())
