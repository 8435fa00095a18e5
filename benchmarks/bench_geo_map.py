"""Large-map benchmark (issue 17): a synthetic 20,000 x 20,000 RGB GeoTIFF (UTM, 0.1 m pixels, a lake with islands,
DEFLATE, 512 px tiles) without and with internal overviews. Measures, each in a fresh process with its own peak RSS:

- open: `core.geo.pyramid.open_map` at view size (long side 2048); cold (no preview cached: it is made) and warm
  (3 runs); the time excludes Python's imports;
- tile: full-resolution 1024 px tiles with their 128 px halo (`raster.read_map(window=...)`), median per tile, a
  row of 8 tiles as panning at full zoom reads them;
- export: area, polygons (holes kept), GeoTIFF mask and GeoPackage bytes of the lake's 400 MP mask;
- pan (with overviews, offscreen Qt, a 1000 x 700 canvas zoomed 4x past the 2048 px view): the frame time of one
  pan step (translate + synchronous repaint), median, overview only (the baseline, in the same process) and with
  the full-resolution detail layer drawn (gui/window/maps/map_detail) with every overlay it has (the mask, the
  GT filled and outlined, compare mode's B mask and A xor B); the detail's read in the worker
  (`core.tiles.detail.read_detail`), its mask crop (`detail_mask`) and B's (`upscaled_detail_mask`) on the UI
  thread per new window;
- compose (with overviews): the UI thread's time when a brush stroke ends on the map and when the restored
  accepted mask is shown, and the time until the native-size mask is in (`benchmarks.bench_ui_compose`: composed
  in a worker, gui/window/native/native_compose);
- sam_tile (with overviews; `--sam` lists the models, random weights, the app's compute config and allocator): one
  full-resolution tile's encode (a 1280 px read window: a 1024 core and its halo, what the refine and the prefetch
  embed per tile), median of 2 after a warm-up, against the view image's encode (the one embedding per map the
  view-level decode uses) in the same process;
- click (with overviews; `--click` lists the models: the offline classic backend and a random-weight
  sam2.1_hiera_tiny, `benchmarks.bench_sam2.tiny_sam2_model`, the session built off the UI thread through
  `core.segment.passing_thread.in_passing_thread`): the real AnnotationWindow (offscreen, 1280 x 760, zoomed out to
  the whole map, a fresh cache, settings and project folder), driven with real Qt mouse clicks on the canvas
  viewport at the image point (`benchmarks.bench_window.Driver`, `PaintWatch`). Open -> ready to click: from building
  the window on the map's folder to the view's embedding ready. Click -> view overlay: from the mouse press to the
  end of the viewport's first paint after the controller's mask_changed for that prompt (the 2048 px view's
  decode), median of CLICKS clicks at lake pixels between the islands, Escape between them. Click -> refine in: from
  the same press to the end of the paint after the full-resolution tiled refine's mask (gui/window/maps/
  tiled_refine, pasted over the view-level one) became the shown model mask (`shown_fixed_mask`), with the tiles it
  decoded (its status line) and encoded (encoder runs: SAM's session cache misses; classic has no session cache,
  its TiledDecoder's LRU misses); the first click's tiles are encoded cold, the later clicks' are reported apart
  (SAM's session cache holds the tiles: memory, then disk). Peak RSS: the window's process (VmHWM). The lake
  spans many tiles: the refine decodes every tile it grows into, up to `core.tiles.tiled.MAX_TILES` (64), each
  encoded once (the sam_tile row is one tile's encode), so the first refine's time is about that many encodes. At
  20,000 px both models reach the cap (64 of the ~130 tiles the lake covers; outside them the view-level mask stays).

    .venv/bin/python -m benchmarks.bench_geo_map                 # 20,000 x 20,000: a few minutes on 2 cores
    .venv/bin/python -m benchmarks.bench_geo_map --side 8000     # smaller
    .venv/bin/python -m benchmarks.bench_geo_map --only click    # the click rows only
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=20000, help="width and height of the map (default 20000)")
    parser.add_argument("--sam", default="vit_b,sam2.1_hiera_tiny",
                        help="models for the per-tile encode rows (comma-separated; '' skips them)")
    parser.add_argument("--click", default="classic,sam2.1_hiera_tiny",
                        help="models for the click rows (comma-separated: classic, sam2.1_hiera_tiny; '' skips them)")
    parser.add_argument("--only", choices=("sam_tile", "click"), help="run only these rows (a map with overviews)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "MAP", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-geo-") as tmp:
        results = {"side": args.side}
        if args.only:
            path = Path(tmp) / "overviews.tif"
            _write(path, args.side, (2, 4, 8, 16))
            results.update(_sam_rows(path, args.sam) if args.only == "sam_tile" else _click_rows(path, args.click))
            print(json.dumps(results, indent=1))
            _table(results)
            return 0
        for name, overviews in (("plain", ()), ("overviews", (2, 4, 8, 16))):
            path = Path(tmp) / f"{name}.tif"
            started = time.perf_counter()
            _write(path, args.side, overviews)
            results[f"{name}_write_s"] = round(time.perf_counter() - started, 2)
            results[f"{name}_file_mb"] = round(path.stat().st_size / 1e6, 2)
            cache = Path(tmp) / f"cache-{name}"
            results[f"{name}_open_cold"] = _run("open", path, cache)  # the preview is made (plain map)
            results[f"{name}_open_warm"] = [_run("open", path, cache) for _ in range(3)]
            results[f"{name}_tile"] = _run("tile", path, cache)
            if name == "plain":
                results["export"] = _run("export", path, cache)
            else:
                results["pan"] = _run("pan", path, cache)
                results["compose"] = _run("compose", path, cache)
                results.update(_sam_rows(path, args.sam))
                results.update(_click_rows(path, args.click))
        print(json.dumps(results, indent=1))
        _table(results)
    return 0


def _write(path: Path, side: int, overviews: tuple[int, ...]) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from affine import Affine
    from geo_maps import UTM, lake_with_islands, write_map

    write_map(path, UTM, Affine(0.1, 0, 500_000, 0, -0.1, 5_000_000), (side, side), _lake(side), overviews=overviews)


def _lake(side: int):
    sys.path.insert(0, str(ROOT / "tests"))
    from geo_maps import lake_with_islands

    islands = [(side // 2 + side // 20 * i, side // 2 + side // 20 * j, side // 60) for i in range(-3, 4)
               for j in range(-3, 4)]
    return lake_with_islands((side / 2, side / 2), side / 3, islands)


def _run(mode: str, path: Path, cache: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_geo_map", "--child", mode, str(path), str(cache)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(mode: str, map_path: str, cache: str) -> dict:
    from floodlabel.core.geo.georef import read_geo_info
    from floodlabel.core.geo.pyramid import open_map, tile_windows
    from floodlabel.core.geo.raster import read_map

    out: dict = {}
    started = time.perf_counter()
    if mode == "open":
        view, _ = open_map(map_path, cache_root=cache)
        out["view"] = list(view.rgb.shape[:2])
    elif mode == "tile":
        view, stretch = open_map(map_path, cache_root=cache)
        info = view.info
        middle = info.height // 2 // 1024
        row = [t for t in tile_windows(info.width, info.height) if t.core[1] == middle * 1024][:8]
        times = []
        for tile in row:
            t0 = time.perf_counter()
            read_map(map_path, window=tile.read, stretch=stretch)
            times.append((time.perf_counter() - t0) * 1000)
        out["tile_ms_median"] = round(statistics.median(times), 1)
        out["tile_ms_max"] = round(max(times), 1)
    elif mode == "export":
        import numpy as np

        from floodlabel.core.geo import gis_formats
        from floodlabel.core.geo.area import mask_area
        from floodlabel.core.geo.polygons import mask_to_polygons

        info = read_geo_info(map_path)
        water = _lake(info.width)
        mask = np.concatenate([water(top, min(info.height, top + 1024), info.width)
                               for top in range(0, info.height, 1024)])
        t0 = time.perf_counter()
        area = mask_area(mask, info)
        out["area_s"] = round(time.perf_counter() - t0, 2)
        out["ha"] = round(area.ha, 4)
        t0 = time.perf_counter()
        polygons = mask_to_polygons(mask, info.transform)
        out["polygons_s"] = round(time.perf_counter() - t0, 2)
        out["holes"] = sum(len(p.interiors) for p in polygons)
        t0 = time.perf_counter()
        out["geotiff_mb"] = round(len(gis_formats.geotiff_mask_bytes(mask, info)) / 1e6, 2)
        out["geotiff_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        out["gpkg_mb"] = round(len(gis_formats.gpkg_bytes(polygons, info)) / 1e6, 2)
        out["gpkg_s"] = round(time.perf_counter() - t0, 2)
    elif mode == "pan":
        out.update(_pan(map_path, cache))
    elif mode == "compose":
        out.update(_compose(map_path))
    elif mode.startswith("sam_tile:"):
        out.update(_sam_tile(map_path, mode.split(":", 1)[1]))
    elif mode.startswith("click:"):
        out.update(_click(map_path, cache, mode.split(":", 1)[1]))
    out["s"] = round(time.perf_counter() - started, 2)
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _sam_rows(path: Path, models: str) -> dict:
    return {f"sam_tile_{m}": _run(f"sam_tile:{m}", path, path.parent / "cache-sam") for m in models.split(",") if m}


def _sam_tile(map_path: str, model: str) -> dict:
    """One tile's encode and the view's, random weights (see the module docstring)."""
    from floodlabel.core.geo.pyramid import open_map, tile_windows
    from floodlabel.core.segment.compute_config import default_compute_config
    from floodlabel.runtime import tune_allocator

    tune_allocator()
    config = default_compute_config()
    if model.startswith("sam2"):
        from benchmarks.bench_sam2 import tiny_sam2_model
        from floodlabel.core.sam2.backend import Sam2Segmenter

        segmenter = Sam2Segmenter(tiny_sam2_model(), config)
    else:
        from benchmarks.bench_engine import _vit_b
        from floodlabel.core.sam.backend import SamSegmenter

        segmenter = SamSegmenter(_vit_b(), config)
    from floodlabel.core.geo.raster import read_map

    view, stretch = open_map(map_path, cache_root=Path(map_path).parent / "cache-sam")
    info = view.info
    tile = next(t for t in tile_windows(info.width, info.height) if t.read[2] == t.read[3] == 1280)
    pixels = read_map(map_path, window=tile.read, stretch=stretch).rgb
    segmenter.embed(pixels)  # warm-up
    tiles, views = [], []
    for _ in range(2):  # interleaved: a tile, then the view
        t0 = time.perf_counter()
        segmenter.embed(pixels)
        tiles.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        segmenter.embed(view.rgb)
        views.append(time.perf_counter() - t0)
    return {"model": model, "config": config.describe(), "tile_px": list(pixels.shape[:2]),
            "tile_encode_s": round(statistics.median(tiles), 2), "view_encode_s": round(statistics.median(views), 2)}


CLICKS = 3
"""Clicks per click row (the first one's refine encodes its tiles; the later ones find most in the caches)."""


def _click_rows(path: Path, models: str) -> dict:
    return {f"click_{m}": _run(f"click:{m}", path, path.parent / f"click-{m}") for m in models.split(",") if m}


def _click_points(side: int) -> list[tuple[float, float]]:
    """CLICKS lake pixels between the islands (checked against the lake's own drawing), full-resolution frame."""
    water = _lake(side)
    points = [(side / 2 + side / 40 + k * side / 20, side / 2 + side / 40) for k in (0, -1, 1, -2, 2)][:CLICKS]
    for x, y in points:
        if not water(int(y), int(y) + 1, side)[0, int(x)]:
            raise RuntimeError(f"click point ({x:.0f}, {y:.0f}) is not water")
    return points


def _click(map_path: str, work_dir: str, model: str) -> dict:
    """Open -> ready, click -> view-level overlay and click -> full-resolution refine in the real window (see the
    module docstring), in this process."""
    import os
    import re

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    work = Path(work_dir)
    folder = work / "map"
    (folder / "Image").mkdir(parents=True, exist_ok=True)
    link = folder / "Image" / Path(map_path).name
    if not link.exists():
        try:
            os.link(map_path, link)
        except OSError:
            link.symlink_to(map_path)
    os.environ["FLOODLABEL_CACHE_DIR"] = str(work / "cache")  # fresh: the preview and embeddings are made here
    from floodlabel.runtime import tune_allocator

    tune_allocator()
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, str(work / "settings"))
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from benchmarks.bench_window import Driver, PaintWatch
    from floodlabel.core.models.session import SegmentationSession
    from floodlabel.core.segment.passing_thread import in_passing_thread
    from floodlabel.core.tiles.map_item import MapItem
    from floodlabel.gui.window.annotation_window import AnnotationWindow

    # built off the UI thread, as the app does: a second live OpenMP team slows the decode (core.segment.passing_thread)
    if model == "classic":
        session = in_passing_thread(lambda: SegmentationSession.open("classic"))
    else:
        from benchmarks.bench_sam2 import tiny_sam2_model
        from floodlabel.core.sam2.backend import Sam2Segmenter
        from floodlabel.core.segment.compute_config import default_compute_config
        from floodlabel.core.segment.embedding_cache import EmbeddingCache

        session = in_passing_thread(lambda: SegmentationSession(
            Sam2Segmenter(tiny_sam2_model(), default_compute_config()), EmbeddingCache(work / "embeddings")))

    t0 = time.perf_counter()
    w = AnnotationWindow(folder, session=session, project=work / "project")
    w.resize(1280, 760)
    w.show()
    d = Driver(app, w, work)
    c = w.controller
    d.wait_ready(600)
    ready_s = time.perf_counter() - t0
    if not isinstance(c.item, MapItem):
        raise RuntimeError(f"the map did not open as a MapItem: {type(c.item).__name__}")
    side = c.item.original_size[1]

    refine = PaintWatch(w.canvas.main_viewport)  # the paint after the refined mask was emitted
    wanted: dict = {}
    tiles: list[int] = []

    def on_mask(mask) -> None:
        if wanted.get("key") is not None and c.fixed.key == wanted["key"] and c.shown_fixed_mask() is not None:
            wanted["key"] = None
            refine.arm()

    def on_progress(text: str) -> None:
        found = re.match(r"Full resolution: (\d+) tiles? in ", text)
        if found:
            tiles.append(int(found.group(1)))

    def encoder_runs() -> int:
        """Tile encodes so far: the session cache's misses (SAM), else the TiledDecoder's (classic: no cache)."""
        if c.session.cache is not None:
            return c.session.cache.stats.misses
        return c.refiner._decoder.embeds if c.refiner._decoder is not None else 0

    c.mask_changed.connect(on_mask)
    c.refiner.progress.connect(on_progress)
    clicks = []
    for x, y in _click_points(side):
        if not c.annotation.prompt.is_empty:
            QTest.keyClick(w, Qt.Key.Key_Escape)  # start over
        d.spin(lambda: d.decoded() and not c.refiner.running, 600)
        d.sleep(0.2)
        encoded = encoder_runs()
        n = len(c.annotation.prompt.points)
        tiles.clear()
        d.watch.reset()
        refine.reset()
        d._expect_points = n + 1  # the Driver arms its paint watch for the mask of the prompt with this point
        t0 = time.perf_counter()
        QTest.mouseClick(w.canvas.main_viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         w.canvas.widget_pos(x, y))
        if len(c.annotation.prompt.points) != n + 1:
            raise RuntimeError(f"the click at ({x:.0f}, {y:.0f}) added no point")
        key = c.prompt_key(c.annotation.prompt)
        wanted["key"] = (c.row, key)
        if not d.wait_painted(120):
            raise RuntimeError("no view-level mask was painted for the click")
        view_s = d.watch.t_done - t0
        if not d.spin(lambda: refine.t_done is not None, 1800):
            raise RuntimeError("the full-resolution refine did not come in")
        refine_s = refine.t_done - t0
        d.spin(lambda: bool(tiles), 30)
        clicks.append({"x": round(x), "y": round(y), "view_ms": round(view_s * 1000, 1),
                       "refine_s": round(refine_s, 2), "tiles": tiles[-1] if tiles else None,
                       "encoded": encoder_runs() - encoded})
    c.shutdown()
    w.close()
    later = clicks[1:] or clicks
    return {"model": model, "map": list(c.item.original_size) if c.item is not None else [side, side],
            "ready_s": round(ready_s, 2), "clicks": clicks,
            "view_ms_median": round(statistics.median(k["view_ms"] for k in clicks), 1),
            "first_refine_s": clicks[0]["refine_s"], "first_tiles": clicks[0]["tiles"],
            "first_encoded": clicks[0]["encoded"],
            "later_refine_s_median": round(statistics.median(k["refine_s"] for k in later), 2),
            "later_tiles": [k["tiles"] for k in later], "later_encoded": [k["encoded"] for k in later]}


def _table(results: dict) -> None:
    """The rows a person reads, as a table (the JSON above has every figure)."""
    rows = []
    pan = results.get("pan")
    if pan:
        rows += [("pan frame, overview only (baseline)", f"{pan['pan_frame_ms_overview_only']} ms", "1.00"),
                 ("pan frame, with the full-resolution detail", f"{pan['pan_frame_ms_with_detail']} ms",
                  f"{pan['pan_frame_ratio']:.2f}"),
                 ("detail read per new window (worker)", f"{pan['detail_read_ms_median']} ms", ""),
                 ("detail mask crop per window (UI thread)", f"{pan['detail_mask_ms_median']} ms", ""),
                 ("compare B mask crop per window (UI thread)", f"{pan['detail_b_mask_ms_median']} ms", "")]
    for row in results.get("compose", {}).get("rows", []):
        rows += [(f"{row['action']}: UI thread", f"{row['ui_ms']:.1f} ms", ""),
                 (f"{row['action']}: until the native mask is in", f"{row['ready_ms']:.1f} ms", "")]
    for key, row in results.items():
        if key.startswith("sam_tile_"):
            rows += [(f"{row['model']}: view image encode (baseline)", f"{row['view_encode_s']} s", "1.00"),
                     (f"{row['model']}: one 1280 px tile encode", f"{row['tile_encode_s']} s",
                      f"{row['tile_encode_s'] / row['view_encode_s']:.2f}")]
    for key, row in results.items():
        if key.startswith("click_"):
            m, n = row["model"], len(row["clicks"])
            rows += [(f"{m}: open -> ready to click", f"{row['ready_s']} s", ""),
                     (f"{m}: click -> view overlay (median of {n})", f"{row['view_ms_median']} ms", ""),
                     (f"{m}: click -> refine in, first click ({row['first_tiles']} tiles, "
                      f"{row['first_encoded']} encoded)", f"{row['first_refine_s']} s", ""),
                     (f"{m}: click -> refine in, later (tiles {row['later_tiles']}, encoded "
                      f"{row['later_encoded']})", f"{row['later_refine_s_median']} s", ""),
                     (f"{m}: peak RSS of the window's process", f"{row['peak_rss_mb']} MB", "")]
    if rows:
        width = max(len(r[0]) for r in rows)
        print(f"\n{'row':<{width}}  {'median':>10}  ratio")
        for name, value, ratio in rows:
            print(f"{name:<{width}}  {value:>10}  {ratio}")


def _pan(map_path: str, cache: str) -> dict:
    """Pan frame times with and without the detail layer (see the module docstring), in this process."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    from PySide6.QtCore import QRectF
    from PySide6.QtWidgets import QApplication

    from floodlabel.core.geo.pyramid import open_map
    from floodlabel.core.tiles.detail import detail_mask, detail_window, read_detail, upscaled_detail_mask
    from floodlabel.gui.canvas.mask_canvas import MaskCanvas

    app = QApplication.instance() or QApplication([])
    view, stretch = open_map(map_path, cache_root=cache)
    H, W = view.info.height, view.info.width
    mask = np.concatenate([_lake(W)(top, min(H, top + 1024), W) for top in range(0, H, 1024)])
    view_mask = mask[:: max(1, H // view.rgb.shape[0]), :: max(1, W // view.rgb.shape[1])]
    canvas = MaskCanvas()
    canvas.resize(1000, 700)
    canvas.show()
    canvas.set_image(view.rgb, (H, W))
    canvas.set_mask(view_mask)
    app.processEvents()
    visible = W / view.rgb.shape[1] * 500 / 4  # map px across ~500 screen px: 4x past the view's own resolution
    x, y = W / 3 - visible / 2, H / 3  # the lake's shore
    canvas.main_view.setRange(QRectF(x, y, visible, visible), padding=0)
    app.processEvents()

    def frames(steps: int) -> list[float]:
        out = []
        for _ in range(steps):
            t0 = time.perf_counter()
            canvas.main_view.translateBy(x=visible / 50)
            canvas.main_viewport.repaint()
            out.append((time.perf_counter() - t0) * 1000)
        canvas.main_view.translateBy(x=-visible / 50 * steps)
        return out

    baseline = frames(60)
    b_view = np.roll(view_mask, view_mask.shape[1] // 100, axis=1)  # compare mode's B: A's lake, a little east
    canvas.set_compare(b_view, view_mask ^ b_view)

    def show(image, wanted, crop) -> float:
        """The detail with all its overlays, as map_detail draws it; returns the ms of B's crop."""
        t0 = time.perf_counter()
        b = upscaled_detail_mask(b_view, (H, W), wanted)
        b_ms = (time.perf_counter() - t0) * 1000
        canvas.set_detail(image.rgb, wanted.window, crop)
        canvas.set_detail_gt(crop)
        canvas.set_detail_compare(b, crop ^ b)
        return b_ms

    reads, crops, b_crops, windows = [], [], [], set()
    for step in range(12):  # a pan across the shore: each new window is read and its mask cropped
        rect, screen = canvas.visible_range()
        wanted = detail_window(rect, (H, W), view.rgb.shape[:2], screen)
        if wanted is not None and wanted.window not in windows:
            windows.add(wanted.window)
            t0 = time.perf_counter()
            image = read_detail(map_path, stretch, wanted)
            reads.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            crop = detail_mask(mask, (H, W), wanted)
            crops.append((time.perf_counter() - t0) * 1000)
            b_crops.append(show(image, wanted, crop))
        canvas.main_view.translateBy(x=visible / 4)
        app.processEvents()
    canvas.main_view.translateBy(x=-visible / 4 * 12)
    rect, screen = canvas.visible_range()
    wanted = detail_window(rect, (H, W), view.rgb.shape[:2], screen)
    show(read_detail(map_path, stretch, wanted), wanted, detail_mask(mask, (H, W), wanted))
    app.processEvents()
    detail = frames(60)
    canvas.set_detail(None)
    canvas.set_compare(None)
    app.processEvents()
    baseline_again = frames(60)  # interleaved: the baseline before and after the detail run
    base = baseline + baseline_again
    return {"pan_frame_ms_overview_only": round(statistics.median(base), 2),
            "pan_frame_ms_with_detail": round(statistics.median(detail), 2),
            "pan_frame_ratio": round(statistics.median(detail) / statistics.median(base), 2),
            "detail_windows": len(reads), "detail_shape": list(wanted.shape),
            "detail_read_ms_median": round(statistics.median(reads), 1) if reads else None,
            "detail_mask_ms_median": round(statistics.median(crops), 1) if crops else None,
            "detail_b_mask_ms_median": round(statistics.median(b_crops), 1) if b_crops else None}


def _compose(map_path: str) -> dict:
    """The UI thread's time on a stroke end and a restored accept on a map of this size (`bench_ui_compose`)."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from benchmarks.bench_ui_compose import _measure
    from floodlabel.core.geo.georef import read_geo_info

    info = read_geo_info(map_path)
    rows = _measure(QApplication.instance() or QApplication([]), (info.height, info.width), 5)
    return {"rows": [r for r in rows if r["action"] in ("brush stroke ends", "restored accept shown")]}


def _peak_rss_mb() -> int:
    """This process's peak RSS (VmHWM: its own address space, unlike ru_maxrss, which a child started with vfork
    inherits from the parent, here the process that wrote the map through GDAL's block cache)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    sys.exit(main())
