"""Real windows: FloodLabel runs as its own process on a private Xvfb screen and gets real X input events.

Everything else in tests/ runs offscreen; this file checks what only a real display shows: the window maps on an X
screen, a real mouse click reaches the right widget, a real quick drag is a drag (X delivers its moves as one when
the app is busy), and the pixels on the screen change where they should.
It skips (with the reason) when Xvfb / xdotool / imagemagick or Qt's xcb libraries are missing; .ci/run installs them
when it can (Debian: xvfb xdotool imagemagick libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0).

Geometry-file contract (the app's side: floodlabel/gui/window/geometry_probe.py). The test sets
FLOODLABEL_TEST_GEOMETRY_FILE=/some/path.json; the window then writes (atomically: tmp + rename, rewritten whenever
it is shown, moved, resized, or the probe's update() is called) one JSON object, in X screen pixels:

    {"window": [x, y, w, h],                      # top-level window's screen rectangle
     "view": [x, y, w, h],                        # main image view's screen rectangle (annotation window)
     "image_to_screen": [[ix, iy, sx, sy], ...],  # >= 3 non-collinear points: original-frame image pixel (x right,
                                                  # y down) -> screen pixel; [] while no image is shown
     "ready": true}                               # clicks on the image are accepted (embedding ready)

The annotation window test needs "view", "image_to_screen" (for the first image of the dataset) and "ready"; the
mapping is taken as affine (pan + zoom, no rotation), fitted by least squares to the points given.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic_scenes import bounding_box, interior_point, make_flood_scene
from xvfb_session import XvfbError, XvfbSession, missing_tools

from floodlabel.gui.canvas.markers import BOX_RGB

REPO = Path(__file__).resolve().parents[1]
APP_COMMAND = [sys.executable, "-m", "floodlabel", "gui"]  # + the dataset folder
START_TIMEOUT = 40.0  # s until the first window shows; generous: 2 shared cores, torch imports in the background
INSTALL = ("apt-get install xvfb xdotool imagemagick libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 "
           "libxkbcommon-x11-0 (.ci/run does this when it runs as root)")


@pytest.fixture(scope="module")
def xvfb() -> Iterator[XvfbSession]:
    """A private 1366x768 X screen for this module; skips when the tools or Qt's xcb libraries are missing."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"real-window tests need {', '.join(missing)}: {INSTALL}")
    from floodlabel.gui.qt_platform import platform_problem

    try:
        session = XvfbSession(1366, 768).start()
    except XvfbError as exc:
        pytest.skip(f"Xvfb cannot start here: {exc}")
    try:
        problem = platform_problem(session.env())
        if problem:
            pytest.skip(f"Qt cannot open a window on Xvfb: {problem}")
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="module")
def flood_data(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """(dataset folder with Image/scene.jpg + Mask/scene.png, image (H, W, 3) uint8 RGB, mask (H, W) bool)."""
    root = tmp_path_factory.mktemp("flood_data")
    image, mask = make_flood_scene(480, 640, seed=5, kind="lake")
    (root / "Image").mkdir()
    (root / "Mask").mkdir()
    cv2.imwrite(str(root / "Image" / "scene.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(root / "Mask" / "scene.png"), mask.astype(np.uint8) * 255)
    return root, image, mask


# --------------------------------------------------------------------------------------------------------- tests


def test_real_keys_open_and_close_the_folder_dialog(xvfb, flood_data, tmp_path):
    root, _, _ = flood_data
    with running_app(xvfb, root, tmp_path) as app:
        window = xvfb.find_window(r"\(1 / 1\) — FloodLabel$", START_TIMEOUT)
        geometry = app.wait_geometry(lambda g: "view" in g)
        # what the window reports about itself is where X has it
        assert list(xvfb.window_geometry(window)) == geometry["window"]
        x, y, w, h = geometry["window"]
        # mapped is not yet painted: on a slow machine the first frame can come seconds after the geometry file
        before = wait_for_screen(xvfb, lambda shot: shot[y:y + h, x:x + w].std() > 10, 20)
        xvfb.screenshot(tmp_path / "before.png")
        assert before[y:y + h, x:x + w].std() > 10, "the window was not drawn (screenshot is flat)"

        xvfb.key("ctrl+o", window=window)  # a real key press: File → Open folder…
        dialog = xvfb.find_window("^Open a folder of flood photos$", 20)
        dx, dy, dw, dh = xvfb.window_geometry(dialog)
        after = wait_for_screen(xvfb, lambda shot: _mean_diff(before, shot, (dx, dy, dw, dh)) > 10, 10)
        xvfb.screenshot(tmp_path / "dialog.png")
        assert _mean_diff(before, after, (dx, dy, dw, dh)) > 10, f"the dialog is not on the screen ({tmp_path})"

        xvfb.key("Escape", window=dialog)  # real key events close it
        wait_until(lambda: not xvfb.find_windows("^Open a folder of flood photos$"), 10, "the dialog did not close")
        app.assert_running()


def test_annotation_window_real_click_shows_the_overlay_there_and_a_drag_a_box(xvfb, flood_data, tmp_path):
    root, _, mask = flood_data
    with running_app(xvfb, root, tmp_path) as app:
        geometry = app.wait_geometry(lambda g: bool(g.get("ready")) and len(g.get("image_to_screen", [])) >= 3
                                     and "view" in g)
        to_screen = affine_from_points(geometry["image_to_screen"])
        view = geometry["view"]
        click = interior_point(mask)  # deep inside the water, original frame
        sx, sy = to_screen(np.array([click]))[0]
        assert _inside(view, sx, sy), f"the click point {click} is off the view: screen ({sx:.0f}, {sy:.0f}), {view}"

        water_pts, land_pts = _probe_points(mask, click, to_screen, view)
        vx, vy, vw, vh = view
        before = wait_for_screen(xvfb, lambda shot: shot[vy:vy + vh, vx:vx + vw].std() > 10, 20)
        xvfb.screenshot(tmp_path / "before.png")
        xvfb.click(sx, sy, button=1)  # a real left click = positive point

        def overlay_shown(shot: np.ndarray) -> bool:
            return _changed_fraction(before, shot, water_pts) >= 0.3

        after = wait_for_screen(xvfb, overlay_shown, 20)
        xvfb.screenshot(tmp_path / "after.png")
        water_changed = _changed_fraction(before, after, water_pts)
        land_changed = _changed_fraction(before, after, land_pts)
        assert water_changed >= 0.3, (f"no overlay around the click: {water_changed:.0%} of water pixels near it "
                                      f"changed (screenshots in {tmp_path})")
        assert land_changed < water_changed - 0.2, (f"the screen changed as much on land far from the water "
                                                    f"({land_changed:.0%}) as near the click ({water_changed:.0%})")

        # Escape drops the point, B takes the Box tool, and a real quick drag around the water draws the box
        xvfb.key("Escape", "b", window=xvfb.find_window(r"— FloodLabel$"))
        (bx0, by0), (bx1, by1) = to_screen(np.array(bounding_box(mask, margin=8)).reshape(2, 2))
        xvfb.drag(bx0, by0, bx1, by1, steps=2)
        edges = _box_edges((bx0, by0, bx1, by1))
        boxed = wait_for_screen(xvfb, lambda shot: _box_coloured(shot, edges) >= 0.3, 20)
        xvfb.screenshot(tmp_path / "box.png")
        assert _box_coloured(boxed, edges) >= 0.3, (f"no box along the drag: {_box_coloured(boxed, edges):.0%} of its "
                                                    f"edges are drawn (screenshots in {tmp_path})")
        app.assert_running()


# ------------------------------------------------------------------------------------------------------ helpers


class RunningApp:
    """A `python -m floodlabel gui DATA` process and its geometry file."""

    def __init__(self, proc: subprocess.Popen, geometry_file: Path, log: Path) -> None:
        self.proc, self.geometry_file, self.log = proc, geometry_file, log

    def assert_running(self) -> None:
        assert self.proc.poll() is None, f"the app exited with {self.proc.returncode}:\n{self.log_tail()}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def wait_geometry(self, condition: Callable[[dict], bool], timeout: float = START_TIMEOUT) -> dict:
        """The geometry file's content once `condition` holds for it (fails with the app's log otherwise)."""
        deadline = time.monotonic() + timeout
        data: dict = {}
        while time.monotonic() < deadline:
            self.assert_running()
            try:
                data = json.loads(self.geometry_file.read_text())
            except (OSError, ValueError):
                data = {}
            if data and condition(data):
                return data
            time.sleep(0.1)
        pytest.fail(f"geometry file not as expected within {timeout:g} s: {data or 'not written'}\n{self.log_tail()}")


@contextmanager
def running_app(xvfb: XvfbSession, data: Path, tmp_path: Path) -> Iterator[RunningApp]:
    """Start the app on `xvfb` with an isolated cache and settings; terminated (then killed) at the end."""
    geometry_file = tmp_path / "geometry.json"
    log = tmp_path / "app.log"
    env = xvfb.env()
    env.update(FLOODLABEL_CACHE_DIR=str(tmp_path / "cache"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_CACHE_HOME=str(tmp_path / "xdg-cache"), FLOODLABEL_TEST_GEOMETRY_FILE=str(geometry_file),
               PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([*APP_COMMAND, str(data)], env=env, cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    app = RunningApp(proc, geometry_file, log)
    try:
        yield app
    except (XvfbError, AssertionError) as exc:
        raise AssertionError(f"{exc}\n--- app log ---\n{app.log_tail()}") from exc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def affine_from_points(points: list[list[float]]) -> Callable[[np.ndarray], np.ndarray]:
    """Least-squares affine map from [[ix, iy, sx, sy], ...] (>= 3 non-collinear points): (N, 2) image -> screen."""
    p = np.asarray(points, dtype=np.float64)
    src = np.column_stack([p[:, :2], np.ones(len(p))])
    assert np.linalg.matrix_rank(src) == 3, f"image_to_screen points are collinear: {points}"
    coef, *_ = np.linalg.lstsq(src, p[:, 2:], rcond=None)  # (3, 2)
    return lambda xy: np.column_stack([np.asarray(xy, np.float64), np.ones(len(xy))]) @ coef


def wait_for_screen(xvfb: XvfbSession, condition: Callable[[np.ndarray], bool], timeout: float) -> np.ndarray:
    """Screenshots until `condition(shot)` holds or `timeout` s pass; returns the last one."""
    deadline = time.monotonic() + timeout
    while True:
        shot = xvfb.screenshot()
        if condition(shot) or time.monotonic() > deadline:
            return shot
        time.sleep(0.2)


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{message} within {timeout:g} s")
        time.sleep(0.1)


def _mean_diff(a: np.ndarray, b: np.ndarray, rect: tuple[int, int, int, int]) -> float:
    x, y, w, h = rect
    return float(np.abs(a[y:y + h, x:x + w].astype(np.int16) - b[y:y + h, x:x + w]).mean())


def _inside(rect: list[int], x: float, y: float, margin: float = 0) -> bool:
    rx, ry, rw, rh = rect
    return rx + margin <= x < rx + rw - margin and ry + margin <= y < ry + rh - margin


def _probe_points(mask: np.ndarray, click: tuple[float, float], to_screen: Callable[[np.ndarray], np.ndarray],
                  view: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Screen pixels (N, 2) int to compare: water near the click (but off the click marker), and land far from
    any water. Both inside the view, up to 300 each, seeded."""
    rng = np.random.default_rng(0)
    h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w]
    near = np.hypot(xs - click[0], ys - click[1]) <= 0.15 * max(h, w)
    land_far = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5) > 0.05 * max(h, w)
    click_screen = to_screen(np.array([click]))[0]

    def pick(region: np.ndarray) -> np.ndarray:
        iy, ix = np.nonzero(region)
        screen = to_screen(np.column_stack([ix, iy]).astype(np.float64))
        keep = np.array([_inside(view, sx, sy, 2) for sx, sy in screen], dtype=bool)
        keep &= np.hypot(*(screen - click_screen).T) > 14  # the point marker is drawn at the click
        screen = np.round(screen[keep]).astype(int)
        assert len(screen) >= 20, "too few probe pixels on the screen: is the image shown that small?"
        return screen[rng.choice(len(screen), min(300, len(screen)), replace=False)]

    return pick(mask & near), pick(land_far)


def _box_edges(box: tuple[float, float, float, float]) -> np.ndarray:
    """Screen pixels (N, 2) int (x, y) along the top and bottom edges of screen box (x0, y0, x1, y1), corners left
    out."""
    x0, y0, x1, y1 = (round(v) for v in box)
    xs = np.arange(x0 + 4, x1 - 3)
    return np.concatenate([np.column_stack([xs, np.full_like(xs, y)]) for y in (y0, y1)])


def _box_coloured(shot: np.ndarray, edges: np.ndarray, tolerance: int = 60) -> float:
    """Share of `edges` with the box's magenta (markers.BOX_RGB; the line is dashed) within 2 pixels across."""
    rgb = np.array(BOX_RGB, np.int16)
    hit = np.zeros(len(edges), bool)
    for dy in range(-2, 3):
        px = shot[np.clip(edges[:, 1] + dy, 0, shot.shape[0] - 1), edges[:, 0]].astype(np.int16)
        hit |= np.abs(px - rgb).sum(axis=1) <= tolerance
    return float(hit.mean())


def _changed_fraction(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> float:
    """Share of screen pixels `points` (N, 2) (x, y) whose RGB differs by more than 30 (sum) between a and b."""
    xs, ys = points[:, 0], points[:, 1]
    diff = np.abs(a[ys, xs].astype(np.int16) - b[ys, xs]).sum(axis=1)
    return float((diff > 30).mean())
