"""Prefetch benchmark: how much a pre-encoding of the next images slows a click's decode, when it runs in the
window's process (a thread, as before) and when it runs in a child process at nice +10 (core.models.background_encoder).

    .venv/bin/python -m benchmarks.bench_prefetch              # vit_b with random weights, about 3 minutes
    .venv/bin/python -m benchmarks.bench_prefetch --seconds 20 --model vit_b

One process decodes a click (SegmentationSession.predict, a point on an 893x551 photo, the window's decode) every
100 ms for --seconds while (1) nothing else runs: the baseline, (2) a thread of the same process encodes other
images without a pause, (3) a child process encodes the same images, the decode with the process's torch threads
and (4) with 1, as the window did while its child was busy, and (5) the child stopped (SIGSTOP) for the length of each
decode, which has the process's threads, as the window does now (core.common.background_work). The table gives the decode's median and p95,
their ratios to the baseline in the same run, and how many images each prefetch encoded meanwhile. Random weights
time like real ones. No pause after a click in (2): it shows what a click pays when it lands inside an encoder block.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="clicking time per row (default 30)")
    parser.add_argument("--model", default="vit_b", choices=("vit_b", "tiny"),
                        help="random-weight vit_b (default) or the tests' tiny SAM")
    args = parser.parse_args(argv)

    from PIL import Image

    from floodlabel.core.annotation.prompts import Prompt
    from floodlabel.core.common import background_work
    from floodlabel.core.models.background_encoder import BackgroundEncoder
    from floodlabel.core.models.session import SegmentationSession
    from synthetic_scenes import interior_point, make_flood_scene

    with tempfile.TemporaryDirectory(prefix="floodlabel-bench-prefetch-") as tmp_name:
        tmp = Path(tmp_name)
        checkpoint = _checkpoint(args.model, tmp)
        images = []
        for i in range(8):
            image, mask = make_flood_scene(551, 893, seed=i, kind="lake")
            path = tmp / "Image" / f"{i}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(image).save(path)
            images.append((path, image, mask))
        session = SegmentationSession.open(str(checkpoint), cache_dir=tmp / "cache")
        _, shown, mask = images[0]
        embedding = session.embedding(shown)
        x, y = interior_point(mask)
        prompt = Prompt.point(x, y)
        for _ in range(3):
            session.predict(embedding, prompt)  # warm

        def clicks(stop: tuple[int, ...] = ()) -> list[float]:
            times, end = [], time.perf_counter() + args.seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                with background_work.stopped(stop):
                    session.predict(embedding, prompt)
                times.append(time.perf_counter() - t0)
                time.sleep(0.1)
            return times

        rows = [("nothing else running (baseline)", clicks(), "-")]

        stop, encoded = threading.Event(), [0]
        other = SegmentationSession.open(str(checkpoint), cache_dir=tmp / "cache-thread")

        def encode_in_thread() -> None:
            k = 1
            while not stop.is_set():
                other.embedding(images[k % len(images)][1], f"bench-{k}")  # a new key: encoded every time
                encoded[0] += 1
                k += 1

        worker = threading.Thread(target=encode_in_thread, daemon=True)
        worker.start()
        time.sleep(1.0)  # the encoder is inside a block
        rows.append(("pre-encoding in a thread of this process", clicks(), f"{encoded[0]}"))
        stop.set()
        worker.join()

        done = threading.Event()
        count = [0]

        def on_event(kind: str, _path: str, _detail: object) -> None:
            if kind == "done":
                count[0] += 1
            if kind in ("ready", "done"):
                done.set()

        child = BackgroundEncoder(str(checkpoint), tmp / "cache-child", on_event, idle_exit_s=600)
        try:
            for k in range(1, 200):  # far more than it can do in the time: it never runs dry
                child.submit(images[k % len(images)][0] if k < len(images) else _copy(images, k, tmp))
            done.wait(120)  # the model is loaded (the child's start is not what is measured)
            time.sleep(1.0)
            start = count[0]
            rows.append(("pre-encoding in a child process, nice +10, decode with the process's threads", clicks(),
                         f"{count[0] - start}"))
            from floodlabel.core.segment.compute_config import threads_here

            threads_here(1)  # the window's rule while the child is busy (SegmentationController._submit_decode)
            start = count[0]
            rows.append(("pre-encoding in a child process, nice +10, decode with 1 thread (the window before)",
                         clicks(), f"{count[0] - start}"))
            threads_here(None)
            start = count[0]
            rows.append(("pre-encoding in a child process, nice +10, stopped during each decode, which has the "
                         "process's threads (the window now)", clicks((child.pid,)), f"{count[0] - start}"))
            memory = f"memory: this process {_status_mb('self')}, the child {_status_mb(child.pid)}"
        finally:
            child.close(timeout=1.0)

    base = rows[0][1]
    print(f"\nclick decode (SegmentationSession.predict, 893x551, {args.model}, {args.seconds:.0f} s per row)\n")
    print("| while | clicks | median | p95 | median / baseline | p95 / baseline | images pre-encoded |")
    print("|---|---|---|---|---|---|---|")
    for label, times, n in rows:
        print(f"| {label} | {len(times)} | {_ms(statistics.median(times))} | {_ms(_p95(times))} | "
              f"{statistics.median(times) / statistics.median(base):.2f} | {_p95(times) / _p95(base):.2f} | {n} |")
    print(f"\n{memory}")
    return 0


def _status_mb(pid) -> str:
    """VmRSS / VmHWM (peak) of a process from /proc, in MB."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except OSError:
        return "unknown"
    mb = {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM") if k in fields}
    return f"{mb.get('VmRSS', '?')} MB resident, {mb.get('VmHWM', '?')} MB peak"


def _checkpoint(model: str, tmp: Path) -> Path:
    import torch

    if model == "tiny":
        from tiny_sam import tiny_sam_checkpoint

        return tiny_sam_checkpoint(tmp / "tiny.pth")
    from floodlabel.core.sam.checkpoint import KNOWN_ARCHITECTURES, build_sam, save_sam

    torch.manual_seed(0)
    return save_sam(build_sam(KNOWN_ARCHITECTURES["vit_b"]), tmp / "sam_vit_b_random.pth")


def _copy(images, k: int, tmp: Path) -> Path:
    """Image k as its own file with one changed pixel: a new cache key, so the child encodes it again."""
    from PIL import Image

    path = tmp / "more" / f"{k}.png"
    path.parent.mkdir(exist_ok=True)
    image = images[k % len(images)][1].copy()
    image[0, 0] = (k * 7) % 256
    Image.fromarray(image).save(path)
    return path


def _p95(times: list[float]) -> float:
    return float(np.percentile(times, 95))


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f} ms"


if __name__ == "__main__":
    sys.exit(main())
