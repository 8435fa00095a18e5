"""SAM 3 on this machine: the full-size image model (0.86 B parameters, random weights, seeded: they time like real
ones) per image: the ViT trunk (embed), the text path's neck, a text prompt, a click's neck and a click; against
SAM v1 vit_b's and SAM 2.1 tiny's embedding measured in the same run (the baseline). Prints a table.

    .venv/bin/python -m benchmarks.bench_sam3 [--images 2] [--size 893x551]

The app's compute setting (core.segment.compute_config.default_compute_config: bf16 encoder where the CPU has
native bf16, FLOODLABEL_PRECISION=fp32 to turn it off). Needs about 8 GB of memory.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="images per model (medians are reported)")
    parser.add_argument("--size", default="893x551", help="image size WxH")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import torch

    from benchmarks.bench_engine import _scene, _vit_b
    from benchmarks.bench_sam2 import tiny_sam2_model
    from floodlabel.core.annotation.prompts import Prompt
    from floodlabel.core.sam.backend import SamSegmenter
    from floodlabel.core.sam2.backend import Sam2Segmenter
    from floodlabel.core.sam3.architecture import OFFICIAL, build_sam3_model
    from floodlabel.core.sam3.backend import Sam3Segmenter
    from floodlabel.core.sam3.checkpoint import LoadedSam3
    from floodlabel.core.sam3.vocabulary import bpe_path
    from floodlabel.core.segment.compute_config import default_compute_config

    w, h = (int(v) for v in args.size.split("x"))
    config = default_compute_config()
    images = [_scene(h + i, w) for i in range(args.images)]
    rows: dict[str, list[float]] = {}

    def timed(name: str, fn):
        t = time.perf_counter()
        out = fn()
        rows.setdefault(name, []).append(time.perf_counter() - t)
        return out

    base = {"vit_b": SamSegmenter(_vit_b(), config), "sam2.1_hiera_tiny": Sam2Segmenter(tiny_sam2_model(), config)}
    for name, seg in base.items():
        seg.embed(images[0])  # warm-up
        for img in images:
            timed(f"embed {name}", lambda: seg.embed(img))
    del base
    torch.manual_seed(0)
    t = time.perf_counter()
    sam3 = Sam3Segmenter(LoadedSam3(build_sam3_model(OFFICIAL, bpe_path()), OFFICIAL, "random", None), config)
    build = time.perf_counter() - t
    for img in images:
        emb = timed("embed sam3 (ViT trunk)", lambda: sam3.embed(img))
        timed("sam3 text: first prompt on the image (neck + prompt)", lambda: sam3.segment_text(emb, "water"))
        inst = timed("sam3 text: next prompt (neck kept)", lambda: sam3.segment_text(emb, "flood water"))
        timed("sam3 click: first on the image (neck + decode)", lambda: sam3.predict(emb, Prompt.point(w / 2, h / 2)))
        timed("sam3 click: next", lambda: sam3.predict(emb, Prompt.point(w / 3, h / 3)).mask(0))
    vit_b = statistics.median(rows["embed vit_b"])
    print(f"\nSAM 3 on this CPU ({config.describe()}), {w}x{h}, {args.images} image(s), random weights; "
          f"built in {build:.0f} s; {len(inst)} instances above the floor on the last prompt\n")
    print(f"| measure | median | x vit_b embed |\n|---|---|---|")
    for name, values in rows.items():
        m = statistics.median(values)
        print(f"| {name} | {m:.2f} s | {m / vit_b:.2f} |")
    total = (statistics.median(rows["embed sam3 (ViT trunk)"])
             + statistics.median(rows["sam3 text: first prompt on the image (neck + prompt)"]))
    print(f"| sam3: an image from nothing to its text instances | {total:.2f} s | {total / vit_b:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
