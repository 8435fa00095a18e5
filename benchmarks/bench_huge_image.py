"""Huge-image benchmark: peak memory and time of `floodlabel stats`, of the window's image loader and of the window
itself on one 30000 x 30000 PNG (2.7 MB on disk: mostly flat), with the pixel limit (core/images.MAX_IMAGE_PIXELS,
100 MP) and, as the baseline, with the limit raised to 1000 MP (what the code did before it had one).

    .venv/bin/python -m benchmarks.bench_huge_image              # stats and loader: about a minute, 6 GB at peak
    .venv/bin/python -m benchmarks.bench_huge_image --window     # also the window: 10+ GB at peak, a few minutes
    .venv/bin/python -m benchmarks.bench_huge_image --side 10000 # another image size (10000 x 10000 = 100 MP)

Every measure runs in a fresh process; its peak RSS is that process's own (getrusage ru_maxrss, what
/usr/bin/time -v reports as "Maximum resident set size").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.huge_png import write_flat_png

BASELINE_MEGAPIXELS = "1000"
"""The limit the baseline runs with: 1e9 px, the old MAX_IMAGE_PIXELS."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=30000, help="width and height of the PNG (default 30000)")
    parser.add_argument("--window", action="store_true", help="also open it in the window (heavy for the baseline)")
    parser.add_argument("--no-baseline", action="store_true", help="only the runs with the default limit")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "DATA"
        png = write_flat_png(data / "Image" / "huge.png", args.side, args.side)
        print(f"{png.name}: {args.side}x{args.side} = {args.side ** 2 / 1e6:.0f} MP, "
              f"{png.stat().st_size / 1e6:.1f} MB on disk", flush=True)
        modes = ["stats", "stats --quick", "loader"] + (["window"] if args.window else [])
        limits = [None] if args.no_baseline else [BASELINE_MEGAPIXELS, None]
        rows = []
        for mode in modes:
            for limit in limits:
                result = _run(mode, data, limit, Path(tmp))
                rows.append((mode, f"{limit} MP (baseline)" if limit else "default", result))
                print(f"  {mode:<14} {rows[-1][1]:<20} {_fmt(result)}", flush=True)
    print()
    print(format_table(rows))
    return 0


def format_table(rows: list[tuple[str, str, dict]]) -> str:
    lines = ["| measure | limit | peak RSS | wall time | result |", "|---|---|---|---|---|"]
    for mode, limit, r in rows:
        lines.append(f"| {mode} | {limit} | {r['rss_mb']:,.0f} MB | {r['seconds']:.2f} s | {r['result']} |")
    return "\n".join(lines)


def _fmt(r: dict) -> str:
    return f"{r['rss_mb']:>8,.0f} MB  {r['seconds']:>7.2f} s  {r['result']}"


def _run(mode: str, data: Path, limit: str | None, tmp: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", FLOODLABEL_DATA_DIR=str(tmp / "user-data"),
               XDG_CONFIG_HOME=str(tmp / "config"))
    env.pop("FLOODLABEL_MAX_MEGAPIXELS", None)
    if limit:
        env["FLOODLABEL_MAX_MEGAPIXELS"] = limit
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_huge_image", "--child", mode, str(data)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"rss_mb": float("nan"), "seconds": float("nan"), "result": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(mode: str, data: str) -> dict:
    t0 = time.perf_counter()
    if mode.startswith("stats"):
        import contextlib
        import io

        from floodlabel.cli import main as cli_main

        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = cli_main(["stats", data, "--json", *mode.split()[1:]])
        stats = json.loads(out.getvalue())
        unreadable = stats["unreadable"]
        result = f"exit {code}, " + (f"unreadable: {unreadable[0]['reason']}" if unreadable else "no problem")
    elif mode == "loader":
        from floodlabel.core.data.datasets import open_dataset
        from floodlabel.core.common.errors import ImageReadError
        from floodlabel.core.data.image_item import load_image_item

        try:
            item = load_image_item(open_dataset(data).pairs[0])
            result = f"loaded {item.image.shape[1]}x{item.image.shape[0]}"
        except ImageReadError as exc:
            result = f"refused: {exc.reason}"
    else:
        result = _window(data)
    return {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": time.perf_counter() - t0,
            "result": result}


def _window(data: str) -> str:
    """Open the window on `data` (classic backend) and wait until its first image is shown or refused."""
    from PySide6.QtWidgets import QApplication

    from floodlabel.gui.window.annotation_window import AnnotationWindow

    app = QApplication.instance() or QApplication([])
    project = Path(os.environ["FLOODLABEL_DATA_DIR"]) / "project"
    w = AnnotationWindow(data, model="classic", project=project)
    w.resize(1280, 760)
    w.show()
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        app.processEvents()
        if w.canvas.image_size is not None:
            h, wd = w.canvas.image_size
            app.processEvents()
            result = f"shown {wd}x{h}"
            break
        if w.message_label.isVisibleTo(w) and w.message_label.text():
            result = f"message: {w.message_label.text()}"
            break
        time.sleep(0.01)
    else:
        result = "timed out"
    w.close()
    return result


if __name__ == "__main__":
    raise SystemExit(main())
