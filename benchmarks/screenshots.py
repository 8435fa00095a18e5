"""Screenshots of the real app window for humans to look at: FloodLabel on a private Xvfb screen, per screen size.

    .venv/bin/python -m benchmarks.screenshots DATA OUT          # 1366x768 and 1920x1080 -> OUT/*.png
    .venv/bin/python -m benchmarks.screenshots resources/sample /tmp/shots --sizes 1366x768 --settle 5
    .venv/bin/python -m benchmarks.screenshots DATA OUT --click  # also one real click on the first image
    .venv/bin/python -m benchmarks.screenshots DATA OUT --models # also the Models tab (Model → Models…)
    .venv/bin/python -m benchmarks.screenshots MAPS OUT --click --zoom 6 --accept --export /tmp/out \
        --export-format png,geotiff,gpkg,geojson             # a map: click, zoom in, accept, export for GIS

Per size it writes OUT/floodlabel_<W>x<H>.png (the whole screen: there is no window manager, so no title bar) and,
with --click, OUT/floodlabel_<W>x<H>_click.png after a left click at the centre of the first image (needs the
annotation window's geometry file, see tests/test_real_window.py), and OUT/app_<W>x<H>.log (the app's output).
Settings are isolated (a fresh XDG_CONFIG_HOME); the model cache is the user's (FLOODLABEL_CACHE_DIR or the default)
unless --isolated-cache.
Needs Debian's xvfb and imagemagick (plus xdotool for --click); see .ci/run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from xvfb_session import SIZES, XvfbError, XvfbSession, missing_tools  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("data", help="dataset folder to open")
    parser.add_argument("out", help="folder for the PNG files (created)")
    parser.add_argument("--sizes", default="1366x768,1920x1080", help="comma-separated WxH screen sizes")
    parser.add_argument("--settle", type=float, default=8.0,
                        help="seconds to wait after the window is up (and ready) before the screenshot")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the window")
    parser.add_argument("--model", default=None, help="--model passed to `floodlabel gui`")
    parser.add_argument("--project", default=None, help="show a copy of this project folder (default: a new one)")
    parser.add_argument("--click", action="store_true", help="also a real click at the centre of the first image")
    parser.add_argument("--drag", action="store_true", help="also a real box drag (Box tool) across the image")
    parser.add_argument("--models", action="store_true",
                        help="also a screenshot with the Models tab raised (keys Alt+M, M: Model → Models…)")
    parser.add_argument("--accept", action="store_true", help="with --click: then Enter (accept), and a screenshot")
    parser.add_argument("--zoom", type=int, default=0, metavar="N",
                        help="with --click: then N wheel steps in at the click (a map shows its full-resolution detail)")
    parser.add_argument("--export", metavar="DIR", help="with --accept: then `floodlabel export` of the project into "
                        "DIR/<W>x<H> (--export-format), while the app still runs")
    parser.add_argument("--export-format", default="png,coco", help="formats for --export (default png,coco)")
    parser.add_argument("--isolated-cache", action="store_true", help="use an empty temporary model cache")
    args = parser.parse_args(argv)

    missing = missing_tools()
    if missing:
        print(f"screenshots: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for size in args.sizes.split(","):
        width, height = SIZES.get(size) or tuple(int(v) for v in size.lower().split("x"))
        try:
            for path in shoot(args, width, height, out):
                print(path)
        except (XvfbError, RuntimeError) as exc:
            print(f"screenshots: {width}x{height}: {exc}", file=sys.stderr)
            return 1
    return 0


def shoot(args: argparse.Namespace, width: int, height: int, out: Path) -> list[Path]:
    """Start the app on a fresh width x height screen, save the screenshot(s), stop everything."""
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="floodlabel-shots-") as tmp, XvfbSession(width, height) as x:
        geometry_file = Path(tmp) / "geometry.json"
        env = x.env()
        env.update(XDG_CONFIG_HOME=str(Path(tmp) / "config"), FLOODLABEL_TEST_GEOMETRY_FILE=str(geometry_file))
        if args.isolated_cache:
            env["FLOODLABEL_CACHE_DIR"] = str(Path(tmp) / "cache")
        if args.project:  # a copy: the screenshot never changes the project it shows
            shutil.copytree(args.project, Path(tmp) / "project", ignore=shutil.ignore_patterns("project.lock"))
        cmd = [sys.executable, "-m", "floodlabel", "gui", args.data, "--project", str(Path(tmp) / "project")]
        cmd += ["--model", args.model] if args.model else []  # the project is temporary: DATA is never written
        log = Path(tmp) / "app.log"
        with open(log, "wb") as log_out:
            proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log_out,
                                    stderr=subprocess.STDOUT)
        try:
            geometry = _wait_geometry(proc, geometry_file, log, args.timeout)
            time.sleep(args.settle)
            written.append(out / f"floodlabel_{width}x{height}.png")
            x.screenshot(written[-1])
            if args.models:
                x.key("alt+m", "m", window=x.find_window("FloodLabel$"))
                time.sleep(args.settle)
                written.append(out / f"floodlabel_{width}x{height}_models.png")
                x.screenshot(written[-1])
            if args.click:
                points = geometry.get("image_to_screen") or []
                if not points:
                    raise RuntimeError("--click: the window reports no image_to_screen points (no image shown?)")
                sx = sum(p[2] for p in points) / len(points)  # the points' centroid: inside the image
                sy = sum(p[3] for p in points) / len(points)
                x.click(sx, sy)
                time.sleep(args.settle)
                written.append(out / f"floodlabel_{width}x{height}_click.png")
                x.screenshot(written[-1])
                if args.zoom:
                    x.wheel(args.zoom)  # the pointer is still at the click
                    time.sleep(args.settle)
                    written.append(out / f"floodlabel_{width}x{height}_zoom.png")
                    x.screenshot(written[-1])
                if args.accept:
                    x.key("Return", window=x.find_window("FloodLabel$"))
                    time.sleep(args.settle)
                    written.append(out / f"floodlabel_{width}x{height}_accept.png")
                    x.screenshot(written[-1])
                if args.export:
                    target = Path(args.export) / f"{width}x{height}"
                    done = subprocess.run([sys.executable, "-m", "floodlabel", "export", str(Path(tmp) / "project"),
                                           "--out", str(target), "--format", args.export_format, "--overwrite"],
                                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
                    print(f"export ({width}x{height}, rc {done.returncode}): {(done.stdout + done.stderr).strip()}")
            if args.drag:
                points = geometry.get("image_to_screen") or []
                xs, ys = [p[2] for p in points], [p[3] for p in points]
                window = x.find_window("FloodLabel$")
                x.key("Escape", "b", window=window)  # drop the click's prompt, then the Box tool
                x.drag(min(xs), min(ys), max(xs), max(ys))  # a real drag across the middle of the image
                time.sleep(args.settle)
                written.append(out / f"floodlabel_{width}x{height}_drag.png")
                x.screenshot(written[-1])
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            shutil.copy(log, out / f"app_{width}x{height}.log")  # the app's output, kept beside its screenshots
    return written


def _wait_geometry(proc: subprocess.Popen, path: Path, log: Path, timeout: float) -> dict:
    """The geometry file once written and "ready" (or the window has no readiness to report)."""
    deadline = time.monotonic() + timeout
    data: dict = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("ready", True) and data:
            return data
        time.sleep(0.2)
    if data:
        return data  # up but never ready: still worth a look
    raise RuntimeError(f"no window within {timeout:g} s: {log.read_text(errors='replace')[-2000:]}")


if __name__ == "__main__":
    raise SystemExit(main())
