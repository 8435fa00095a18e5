"""Open-folder benchmark: how long the window takes to show the image list of a folder of many tiny images.

    .venv/bin/python -m benchmarks.bench_open_folder                  # 10,000 images (+ masks): about a minute
    .venv/bin/python -m benchmarks.bench_open_folder --images 2000

Rows, each window measure in a fresh process (offscreen Qt, the classic backend, a temporary project):
- `floodlabel stats --quick DATA`, the baseline (lists the folder and reads every header);
- the window on 10 images and on N images: time from creating the window to the image list's first paint with
  every row, and where the UI thread spent it (opening the folder, filling the list, the project's statuses, the
  model's start); then the background header scan: when it ends, and the longest the UI thread was blocked
  meanwhile (a 10 ms timer's longest gap); the same on N images with the scan forced into a thread
  (FLOODLABEL_HEADER_SCAN=thread, how it ran before), the baseline of the stall ratio;
- the list alone (in this process): filling the dock and sorting it by IoU with its ViewOrder, and with a
  QSortFilterProxyModel whose lessThan is Python (what the list did before ViewOrder).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="images in the folder (default 10000)")
    parser.add_argument("--child", metavar="DATA", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.child:
        print(json.dumps(_window_child(args.child)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        small, big = make_folder(Path(tmp) / "small", 10), make_folder(Path(tmp) / "big", args.images)
        rows = [("stats --quick", f"{args.images:,}", f"{_stats_quick(big):.2f} s", "baseline")]
        for data, n in ((small, 10), (big, args.images)):
            r = _run_window(data, Path(tmp))
            phases = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["phases"].items(), key=lambda kv: -kv[1]))
            rows.append(("window: list shown", f"{n:,}", f"{r['shown']:.2f} s", f"UI thread: {phases}"))
            rows.append(("window: header scan done", f"{n:,}", f"{r['scanned']:.2f} s",
                         f"longest UI stall meanwhile {1000 * r['stall']:.0f} ms, {r['stalls']} over 50 ms "
                         f"({r['stalled']:.2f} s in all; {r['scan']}); rows {r['rows']:,}"))
        baseline = _run_window(big, Path(tmp), FLOODLABEL_HEADER_SCAN="thread")
        rows.append(("window: header scan done, in a thread (before)", f"{args.images:,}",
                     f"{baseline['scanned']:.2f} s", f"longest UI stall meanwhile {1000 * baseline['stall']:.0f} ms, "
                     f"{baseline['stalls']} over 50 ms ({baseline['stalled']:.2f} s in all; {baseline['scan']}); "
                     f"ratio now / before: longest {r['stall'] / max(baseline['stall'], 1e-3):.2f}, "
                     f"time stalled {r['stalled'] / max(baseline['stalled'], 1e-3):.2f}"))
        rows += _list_only(big)
    print(format_table(rows))
    return 0


def make_folder(root: Path, n: int) -> Path:
    """ROOT/Image/<i>.png (8x8 grey) and ROOT/Mask/<i>.png for i < n."""
    import numpy as np
    from PIL import Image

    blobs = []
    for array in (np.full((8, 8, 3), 90, np.uint8), np.zeros((8, 8), np.uint8)):
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, "PNG")
        blobs.append(buf.getvalue())
    for sub, blob in zip(("Image", "Mask"), blobs):
        (root / sub).mkdir(parents=True)
        for i in range(n):
            (root / sub / f"{i}.png").write_bytes(blob)
    return root


def format_table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| measure | images | time | notes |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def _stats_quick(data: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "floodlabel", "stats", "--quick", str(data)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _run_window(data: Path, tmp: Path, **extra_env: str) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", FLOODLABEL_DATA_DIR=str(tmp / "user-data"),
               XDG_CONFIG_HOME=str(tmp / "config"), FLOODLABEL_CACHE_DIR=str(tmp / "cache"), **extra_env)
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_open_folder", "--child", str(data)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _window_child(data: str) -> dict:
    from PySide6.QtCore import QElapsedTimer, QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    import floodlabel.gui.window.annotation_window as aw
    from floodlabel.gui.panels.image_list import ImageListDock
    from floodlabel.gui.window.model_actions import ModelActions
    from floodlabel.gui.window.project_actions import ProjectActions

    app = QApplication.instance() or QApplication([])
    phases: dict[str, float] = defaultdict(float)

    def timed(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                phases[label] += time.perf_counter() - t

        setattr(owner, name, wrapper)

    timed(aw, "open_dataset", "open_dataset")
    timed(ImageListDock, "set_dataset", "image list")
    timed(ProjectActions, "show_statuses", "statuses")
    timed(ProjectActions, "open_store", "open store")
    timed(ModelActions, "use_model", "start model")

    shown: list[float] = []

    class FirstPaint(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
            if event.type() == QEvent.Type.Paint and not shown:
                shown.append(time.perf_counter())
            return False

    t0 = time.perf_counter()
    w = aw.AnnotationWindow(data, model="classic", project=Path(os.environ["FLOODLABEL_DATA_DIR"]) / "project")
    painted = FirstPaint()
    w.image_list.view.viewport().installEventFilter(painted)
    w.resize(1280, 760)
    w.show()
    while not shown and time.perf_counter() - t0 < 300:
        app.processEvents()
    phases["until the first paint"] = shown[0] - t0 - sum(phases.values())
    stall, clock = [0.0], QElapsedTimer()
    clock.start()

    gaps: list[float] = []

    def tick() -> None:
        gaps.append(clock.restart() / 1000 - 0.010)
        stall[0] = max(stall[0], gaps[-1])

    timer = QTimer(interval=10)
    timer.timeout.connect(tick)
    timer.start()
    scanner = w.image_list._scanner
    scan = "child process" if scanner is not None and scanner.in_process else "thread"
    while w.image_list.scanning() and time.perf_counter() - t0 < 300:
        app.processEvents()
        time.sleep(0.001)
    scanned = time.perf_counter() - t0
    rows = w.image_list.proxy.rowCount()
    timer.stop()
    w.close()
    return {"shown": shown[0] - t0, "scanned": scanned, "stall": stall[0], "rows": rows, "scan": scan,
            "stalled": sum(g for g in gaps if g > 0.05), "stalls": sum(1 for g in gaps if g > 0.05),
            "phases": dict(phases)}


def _list_only(data: Path) -> list[tuple[str, str, str, str]]:
    from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt
    from PySide6.QtWidgets import QApplication

    from floodlabel.core.data.datasets import open_dataset
    from floodlabel.gui.panels.image_list import COL_IOU, SORT_ROLE, ImageListDock

    class PythonLessThan(QSortFilterProxyModel):
        """The list's proxy before ViewOrder: None last, ties in dataset order, keys through data(SORT_ROLE)."""

        def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:  # noqa: N802 (Qt API)
            a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
            descending = self.sortOrder() == Qt.SortOrder.DescendingOrder
            if a == b:
                return (left.row() < right.row()) != descending
            if a is None or b is None:
                return (a is None) == descending
            return a < b

    app = QApplication.instance() or QApplication([])  # noqa: F841 (kept alive for the widgets)
    dataset = open_dataset(data)
    n = len(dataset.pairs)
    dock = ImageListDock()
    t0 = time.perf_counter()
    dock.set_dataset(dataset)
    fill = time.perf_counter() - t0
    dock._scanner.stop()
    for row in range(0, n, 3):
        dock.set_iou(row, (row * 7919 % 1000) / 1000)
    t0 = time.perf_counter()
    dock.sort_by_iou()
    sort_new = time.perf_counter() - t0

    old = PythonLessThan()
    old.setSortRole(SORT_ROLE)
    t0 = time.perf_counter()
    old.setSourceModel(dock.model)
    old.sort(0, Qt.SortOrder.AscendingOrder)
    fill_old = time.perf_counter() - t0
    t0 = time.perf_counter()
    old.sort(COL_IOU, Qt.SortOrder.AscendingOrder)
    sort_old = time.perf_counter() - t0
    same = [old.mapToSource(old.index(r, 0)).row() for r in range(old.rowCount())] == dock.visible_rows()
    return [("list: fill and sort by #", f"{n:,}", f"{fill:.3f} s", f"QSortFilterProxyModel + Python lessThan "
             f"(before): {fill_old:.3f} s"),
            ("list: sort by IoU", f"{n:,}", f"{sort_new:.3f} s", f"before: {sort_old:.3f} s; same order: {same}")]


if __name__ == "__main__":
    raise SystemExit(main())
