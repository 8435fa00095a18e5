"""Batch embedding throughput: `floodlabel embed` locally vs `--ray local` with N workers, on this machine.

    .venv/bin/python -m benchmarks.bench_embed [--images 4] [--workers 2] [--arch vit_b] [--json]

A seeded, randomly initialised SAM of the given size (vit_b by default; random weights time like real ones) is
written to a temporary .pth, and `--images` synthetic 1024x768 photos are encoded twice into empty caches:
1. locally: one process, torch's default threads (every core);
2. with Ray: a one-machine Ray (`ray.init(num_cpus=workers)`, loopback), an actor pool of `workers` actors with one
   CPU (one torch thread) each, one image per batch.
Reported separately: Ray's start-up (ray.init), the run's wall time (actor start-up and model loading included;
locally, model loading included), images/s over that wall time, and images/s "once loaded" (first image start
to last image end, so model loading and actor start-up are left out). The two caches are checked bit-identical.
Needs the cluster extra (Ray). Encoder timings on a shared machine vary by 10-20% from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--arch", default="vit_b", choices=("vit_b", "vit_l", "vit_h"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch
    from PIL import Image

    from floodlabel.core.cluster import batch_embed
    from floodlabel.core.cluster.connection import require_ray
    from floodlabel.core.sam.checkpoint import KNOWN_ARCHITECTURES, build_sam, save_sam

    ray = require_ray()
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        tmp_path = Path(tmp)
        torch.manual_seed(0)
        model = save_sam(build_sam(KNOWN_ARCHITECTURES[args.arch]), tmp_path / f"random-{args.arch}.pth")
        rng = np.random.default_rng(0)
        paths = []
        for i in range(args.images):
            img = _scene(rng, 768, 1024)
            p = tmp_path / "data" / f"{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(p)
            paths.append(p)

        local = batch_embed.embed_local(paths, str(model), tmp_path / "cache-local")

        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                 configure_logging=False)
        ray_init = time.perf_counter() - t0
        try:
            dist = batch_embed.embed_ray(paths, str(model), tmp_path / "cache-ray", address="local", batch=1,
                                         workers=args.workers, cpus_per_worker=1)
        finally:
            t0 = time.perf_counter()
            ray.shutdown()
            ray_shutdown = time.perf_counter() - t0
        same = _entries(tmp_path / "cache-local") == _entries(tmp_path / "cache-ray")

    result = {
        "arch": args.arch, "images": args.images, "workers": args.workers, "cores": os.cpu_count(),
        "torch_threads_local": torch.get_num_threads(),
        "local": _row(local), "ray": _row(dist),
        "ray_init_s": round(ray_init, 2), "ray_shutdown_s": round(ray_shutdown, 2),
        "entries_bit_identical": same,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.arch} (random weights), {args.images} images 1024x768, {os.cpu_count()} cores")
    print(f"{'run':<34} {'wall s':>7} {'img/s':>7} {'img/s once loaded':>18} {'s/img once loaded':>18}")
    for name, row in ((f"local (1 process, {torch.get_num_threads()} threads)", result["local"]),
                      (f"--ray local ({args.workers} actors x 1 CPU)", result["ray"])):
        print(f"{name:<34} {row['wall_s']:>7.1f} {row['images_per_s']:>7.3f} {row['steady_images_per_s']:>18.3f} "
              f"{row['steady_s_per_image']:>18.2f}")
    print(f"Ray start-up (ray.init): {ray_init:.1f} s; shutdown {ray_shutdown:.1f} s (not in the rows above)")
    print(f"cache entries bit-identical between the two runs: {same}")
    return 0


def _row(summary) -> dict:
    steady = summary.steady_images_per_second
    return {"wall_s": round(summary.seconds, 2), "encoded": summary.encoded,
            "images_per_s": round(summary.images_per_second, 4), "steady_images_per_s": round(steady, 4),
            "steady_s_per_image": round(1 / steady, 2) if steady else None,
            "per_image_s": [round(o.seconds, 2) for o in summary.outcomes]}


def _entries(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.femb"))}


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth synthetic photo (gradients, a dark water band, noise)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([120 + 60 * np.sin(x / 97 + rng.uniform(0, 6)), 140 + 50 * np.cos(y / 71),
                    110 + 40 * np.sin((x + y) / 53)], axis=-1)
    img[int(h * 0.55):] *= 0.6
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


if __name__ == "__main__":
    raise SystemExit(main())
