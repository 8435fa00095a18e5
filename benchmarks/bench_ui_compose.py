"""How long the UI thread blocks when the mask that would be saved changes without a new decode (issue 17): a brush
stroke ends on a decoded prompt, another candidate is picked, the accepted mask restored from the project store is
shown (then a stroke on it). Each row: the segmentation controller's UI-thread call (what the event loop waits for),
median of `--runs` after one untimed run (the first allocations of a worker's memory arena), and the time until the native-size mask and its metrics are in (`native_ready()`; the same as the
call when the compose runs on the UI thread).

The controller runs without a window or a model: a fake session returns fixed masks at once (the decode itself is
not measured), a photo is an ImageItem at its own size, a map a MapItem whose view is 2048 px. The GT (and so the
metrics) is there when the image is within the pixel limit (100 MP), as the app reads it.

    .venv/bin/python -m benchmarks.bench_ui_compose                          # 4000x3000, 12000^2, 20000^2
    .venv/bin/python -m benchmarks.bench_ui_compose --sizes 4000x3000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4000x3000,12000x12000,20000x20000", help="WIDTHxHEIGHT, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    rows = []
    for text in args.sizes.split(","):
        width, height = (int(v) for v in text.lower().split("x"))
        rows.extend(_measure(app, (height, width), args.runs))
    print(json.dumps(rows, indent=1))
    print("\n| image | action | UI thread (ms) | until the native mask is in (ms) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['action']} | {r['ui_ms']:.1f} | {r['ready_ms']:.1f} |")
    return 0


def _measure(app, size: tuple[int, int], runs: int) -> list[dict]:
    from floodlabel.core.annotation.annotation import Annotation, Stroke, view_size
    from floodlabel.core.data.images import MAX_IMAGE_PIXELS
    from floodlabel.gui.window.segmentation_controller import SegmentationController

    H, W = size
    view = view_size(size)
    rng = np.random.default_rng(0)
    gt = _disk(size, 0.30) if H * W <= MAX_IMAGE_PIXELS else None
    c = SegmentationController()
    c.item = _item(size, view, gt)
    c.session, c.embedding = _FakeSession(), _FakeEmbedding(c.item.image.shape[:2])
    c.row = 0
    c.annotation = Annotation(size)
    c.annotation.add_listener(c._on_annotation_changed)
    c.add_point(W / 2, H / 2, True)
    c.shown = _decoded(c, size, view)
    c._show_mask()
    _settle(app, c)
    label = f"{W}x{H}" + ("" if gt is not None else " (no GT)")
    out = []

    def row(action: str, fn) -> None:
        ui, ready = [], []
        for run in range(runs + 1):
            _settle(app, c)
            start = time.perf_counter()
            fn()
            ui.append(time.perf_counter() - start)
            while not c.native_ready():
                app.processEvents()
                time.sleep(0.001)
            ready.append(time.perf_counter() - start)
            if run == 0:  # the warm-up
                ui.clear()
                ready.clear()
        out.append({"size": label, "action": action, "ui_ms": 1e3 * statistics.median(ui),
                    "ready_ms": 1e3 * statistics.median(ready)})

    def stroke() -> None:
        x, y = rng.uniform(0.2, 0.8) * W, rng.uniform(0.2, 0.8) * H
        c.add_stroke(Stroke("paint", W / 200, np.array([[x, y], [x + W / 20, y + H / 30]], np.float32)))

    row("brush stroke ends", stroke)
    row("another candidate", lambda: c.choose_candidate((c.annotation.candidate or 0) + 1 if
                                                        (c.annotation.candidate or 0) < 2 else 0))
    c.fixed.restore(_disk(size, 0.25), (c.row, c.prompt_key(c.annotation.prompt)))
    c.annotation.mark_saved_mask()
    row("restored accept shown", c._show_mask)
    row("stroke on the restored accept", stroke)
    c.shutdown()
    c.deleteLater()
    return out


def _settle(app, c) -> None:
    deadline = time.monotonic() + 120
    while (not c.native_ready() or c.decoder.pending) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.002)
    for _ in range(5):
        app.processEvents()


def _disk(size: tuple[int, int], radius: float) -> np.ndarray:
    import cv2

    H, W = size
    mask = np.zeros(size, np.uint8)
    cv2.circle(mask, (W // 2, H // 2), int(radius * min(H, W)), 1, -1)
    return mask.view(bool)


def _item(size, view, gt):
    from floodlabel.core.data.image_item import ImageItem
    from floodlabel.core.tiles.map_item import MAP_PIXELS, MapItem

    H, W = size
    if H * W <= MAP_PIXELS:  # a photo (or a small GeoTIFF): read whole
        return ImageItem(Path("photo.png"), np.zeros((H, W, 3), np.uint8), gt, "photo", None)
    return MapItem(Path("map.tif"), np.zeros((*view, 3), np.uint8), gt, "map", None, full_size=(H, W))


def _decoded(c, size, view):
    from floodlabel.gui.window.decode_jobs import Decoded

    key = c.prompt_key(c.annotation.prompt)
    pred = c.session.predict(c.embedding, None, True, view)
    native = _disk(size, 0.28)
    return Decoded("native", key, pred, 0, view, [], native, native, None, c.annotation.version)


class _FakeEmbedding:
    def __init__(self, view):
        self.original_size = tuple(view)
        self.input_size = (1024, 1024)
        self.model_id = "fake"


class _FakeSession:
    """predict -> three disks at output_size (default the embedding's size) at once."""

    model_id = "fake"

    def predict(self, embedding, prompt, multimask=True, output_size=None, mask_input=None):
        from floodlabel.core.segment.segmenter import Prediction

        size = tuple(output_size or embedding.original_size)
        return Prediction.lazy(np.array([0.9, 0.8, 0.7], np.float32), np.zeros((3, 256, 256), np.float32),
                               lambda i: _disk(size, 0.2 + 0.04 * i))


if __name__ == "__main__":
    sys.exit(main())
