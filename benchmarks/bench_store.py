"""Project-store benchmark: accept of a 4000x3000 mask, how long the UI thread is held, reload, and export.

    .venv/bin/python -m benchmarks.bench_store              # about half a minute on 2 CPU cores
    .venv/bin/python -m benchmarks.bench_store --quick

Rows:
- accept 4000x3000: `ProjectStore.accept` end to end (PNG encode, fsync, rename, folder fsync, SQLite commit with
  fsync), median and p95, and its parts;
- UI thread during a background accept: the longest gap a 1 ms timer loop on the main thread sees while a worker
  thread runs `accept` (what a window's event loop would feel), and the main thread's own share (copying the mask);
- reopen: `record` + `load_mask` of the 4000x3000 mask in a fresh store;
- export of 200 accepted masks (default 1000x750 each): PNG only, and PNG + COCO RLE.
Everything runs in a temporary folder on the same disk as the system temp folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and 50 export masks")
    parser.add_argument("--accepts", type=int, default=15, help="timed 4000x3000 accepts (default 15)")
    parser.add_argument("--export-masks", type=int, default=200, help="masks to export (default 200)")
    parser.add_argument("--export-size", default="1000x750", help="WxH of each exported mask (default 1000x750)")
    parser.add_argument("--dir", help="folder to work in (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.quick:
        args.accepts, args.export_masks = 5, 50
    width, height = (int(v) for v in args.export_size.lower().split("x"))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = bench_accept(Path(tmp) / "big", args.accepts)
        rows += bench_export(Path(tmp) / "many", args.export_masks, (height, width))
    print(format_table(rows))
    return 0


def water_mask(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A flood-like mask: a large smooth region with a hole, plus scattered specks (about 40% water)."""
    h, w = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:h, :w]
    cy, cx = rng.uniform(0.4, 0.6) * h, rng.uniform(0.4, 0.6) * w
    mask = ((yy - cy) / (0.45 * h)) ** 2 + ((xx - cx) / (0.5 * w)) ** 2 < 1
    mask &= ((yy - cy) / (0.1 * h)) ** 2 + ((xx - cx) / (0.1 * w)) ** 2 > 1
    mask ^= rng.random(shape) < 0.002
    return mask


def bench_accept(root: Path, repeats: int) -> list[tuple[str, str, str]]:
    from floodlabel.core.common.atomic_files import write_atomic
    from floodlabel.core.store.project_store import ProjectStore, encode_mask_png

    shape = (3000, 4000)
    Image.new("RGB", (shape[1], shape[0]), (60, 80, 90)).save(_mkdir(root) / "big.jpg", quality=80)
    masks = [water_mask(shape, seed) for seed in range(3)]
    state = {"points": [[1200.5, 900.0, 1], [300, 2500, 0]], "box": [10, 20, 3900, 2900], "candidate": 1}
    rows = []
    with ProjectStore(root) as store:
        store.accept("big.jpg", masks[0], state)  # warm-up: imports, first hash of the image
        times = []
        for i in range(repeats):
            t0 = time.perf_counter()
            store.accept("big.jpg", masks[i % 3], state, model_id="vit_b", metrics={"iou": 0.9})
            times.append(time.perf_counter() - t0)
        rows.append(("accept 4000x3000 (end to end)", _ms(statistics.median(times)),
                     f"p95 {_ms(_p95(times))}, n={repeats}"))

        encode, write = [], []
        for i in range(repeats):
            t0 = time.perf_counter()
            png = encode_mask_png(masks[i % 3])
            t1 = time.perf_counter()
            write_atomic(root / "scratch.png", png)
            write.append(time.perf_counter() - t1)
            encode.append(t1 - t0)
        rows.append(("  of which PNG encode", _ms(statistics.median(encode)), f"{len(png) / 1024:.0f} KiB"))
        rows.append(("  of which write + fsync + rename", _ms(statistics.median(write)), ""))

        gaps, copies = [], []
        for i in range(repeats):
            t0 = time.perf_counter()
            snapshot = masks[i % 3].copy()  # what the UI thread does: hand a copy to the worker
            copies.append(time.perf_counter() - t0)
            worker = threading.Thread(target=store.accept, args=("big.jpg", snapshot, state))
            worst, last = 0.0, time.perf_counter()
            worker.start()
            while worker.is_alive():
                time.sleep(0.001)
                now = time.perf_counter()
                worst, last = max(worst, now - last), now
            worker.join()
            gaps.append(worst)
        rows.append(("UI thread: copy the mask for the worker", _ms(statistics.median(copies)), ""))
        rows.append(("UI thread: longest stall during a background accept", _ms(statistics.median(gaps)),
                     f"max {_ms(max(gaps))} (1 ms timer loop)"))

    loads = []
    for _ in range(repeats):
        with ProjectStore(root, read_only=True) as store:
            t0 = time.perf_counter()
            store.record("big.jpg").load_mask()
            loads.append(time.perf_counter() - t0)
    rows.append(("reopen: record + load_mask 4000x3000", _ms(statistics.median(loads)), ""))
    return rows


def bench_export(root: Path, count: int, shape: tuple[int, int]) -> list[tuple[str, str, str]]:
    from floodlabel.core.export.project_export import export_project
    from floodlabel.core.store.project_store import ProjectStore

    image = Image.new("RGB", (shape[1], shape[0]), (60, 80, 90))
    images = _mkdir(root / "Image")
    with ProjectStore(root) as store:
        for i in range(count):
            image.save(images / f"{i}.jpg", quality=70)
            store.accept(f"Image/{i}.jpg", water_mask(shape, i))
        rows = []
        for formats in (["png"], ["png", "coco"]):
            out = root.parent / f"export-{'-'.join(formats)}"
            t0 = time.perf_counter()
            result = export_project(store, out, formats=formats)
            elapsed = time.perf_counter() - t0
            assert result.exported == count and not result.skipped
            rows.append((f"export {count} masks {shape[1]}x{shape[0]}, {' + '.join(formats)}",
                         f"{elapsed:.2f} s", f"{_ms(elapsed / count)} per mask"))
    return rows


def format_table(rows: list[tuple[str, str, str]]) -> str:
    header = ("measure", "time", "notes")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    return "\n".join(lines)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


if __name__ == "__main__":
    raise SystemExit(main())
