"""A private X server (Xvfb) with real X input (xdotool) and screenshots (imagemagick `import`), for tests and
benchmarks that start FloodLabel as a real process and click into its windows.

    from xvfb_session import XvfbSession, missing_tools
    with XvfbSession(1366, 768) as x:
        proc = subprocess.Popen([...], env=x.env())
        wid = x.find_window("^FloodLabel$", timeout=20)
        x.click(400, 300)                 # real pointer events (XTEST), button 1 = left
        x.key("Escape")                   # real key events to the focused window
        shot = x.screenshot()             # (H, W, 3) uint8 RGB of the whole screen
        x.screenshot("/tmp/s.png")        # ... or saved as PNG

Every external command runs with a timeout (XvfbError when it expires or fails), so nothing hangs. There is no
window manager: windows have no title bar and keep the position Qt gives them. Packages (Debian): xvfb, xdotool,
imagemagick; Qt's xcb platform also needs libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import cv2
import numpy as np

TOOLS = {"Xvfb": "xvfb", "xdotool": "xdotool", "import": "imagemagick"}
"""Programs this module runs -> the Debian package that has them."""

SIZES = {"1366x768": (1366, 768), "1920x1080": (1920, 1080)}


class XvfbError(RuntimeError):
    """An X command failed or timed out."""


def missing_tools() -> list[str]:
    """'program (package)' for every program this module needs that is not on PATH; [] when all are there."""
    return [f"{prog} (package {pkg})" for prog, pkg in TOOLS.items() if shutil.which(prog) is None]


class XvfbSession:
    """Xvfb on a free display number with one screen of `width` x `height` x 24 bit. Use as a context manager, or
    call start() / stop(). `display` is ':N' once started."""

    def __init__(self, width: int = 1366, height: int = 768, start_timeout: float = 10.0) -> None:
        self.width, self.height = width, height
        self.start_timeout = start_timeout
        self.display: str | None = None
        self._proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    # ------------------------------------------------------------------------------------------- life cycle
    def start(self) -> XvfbSession:
        """Start Xvfb and wait until it accepts connections (XvfbError after start_timeout s)."""
        if self._proc is not None:
            return self
        self._log = tempfile.TemporaryFile()  # Xvfb's messages: read back only when it fails
        read_fd, write_fd = os.pipe()
        # -displayfd: Xvfb picks a free display number itself and writes it once it is ready for clients
        self._proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{self.width}x{self.height}x24",
             "-nolisten", "tcp", "-noreset"],
            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            start_new_session=True)
        os.close(write_fd)
        try:
            number = _read_line(read_fd, self.start_timeout)
        finally:
            os.close(read_fd)
        if not number.strip().isdigit():
            err = self._stop_and_collect_stderr()
            raise XvfbError(f"Xvfb did not start: {err or 'no display number within the timeout'}")
        self.display = f":{number.strip()}"
        deadline = time.monotonic() + self.start_timeout
        while not self._accepts_connections():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self._stop_and_collect_stderr()
                raise XvfbError(f"Xvfb {self.display} does not accept connections: {err}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Terminate Xvfb (SIGTERM, then SIGKILL after 5 s). Safe to call twice."""
        self._terminate()
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __enter__(self) -> XvfbSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) with DISPLAY set to this server and nothing forcing a headless Qt platform
        or Wayland (QT_QPA_PLATFORM and WAYLAND_DISPLAY removed)."""
        env = dict(os.environ if base is None else base)
        env["DISPLAY"] = self._need_display()
        env.pop("QT_QPA_PLATFORM", None)
        env.pop("WAYLAND_DISPLAY", None)
        return env

    # ----------------------------------------------------------------------------------------- windows, input
    def find_window(self, name_regex: str, timeout: float = 20.0) -> int:
        """X id of the first visible window whose name (title) matches `name_regex`; XvfbError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            ids = self.find_windows(name_regex)
            if ids:
                return ids[0]
            if time.monotonic() > deadline:
                raise XvfbError(f"no visible window named like {name_regex!r} within {timeout:g} s")
            time.sleep(0.1)

    def find_windows(self, name_regex: str) -> list[int]:
        """X ids of the visible windows whose name matches `name_regex` now (no waiting; [] when none)."""
        # `xdotool search --sync` would wait forever; polling keeps our own timeout in charge
        result = self._xdotool(["search", "--onlyvisible", "--name", name_regex], check=False)
        return [int(tok) for tok in result.stdout.split() if tok.isdigit()]

    def window_geometry(self, window: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) of `window` on the screen."""
        out = self._xdotool(["getwindowgeometry", "--shell", str(window)]).stdout
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])

    def click(self, x: float, y: float, button: int = 1) -> None:
        """Move the pointer to screen pixel (x, y) and click `button` (1 left, 2 middle, 3 right): real XTEST
        events, exactly what a user's mouse sends."""
        self.move(x, y)
        self._xdotool(["click", str(button)])

    def wheel(self, steps: int) -> None:
        """Turn the wheel where the pointer is: `steps` > 0 away from the user (zoom in), < 0 towards."""
        if steps:
            self._xdotool(["click", "--repeat", str(abs(steps)), "--delay", "50", "4" if steps > 0 else "5"])

    def move(self, x: float, y: float) -> None:
        """Move the pointer to screen pixel (x, y) (waits until the server has moved it)."""
        self._xdotool(["mousemove", "--sync", str(round(x)), str(round(y))])

    def drag(self, x0: float, y0: float, x1: float, y1: float, button: int = 1, steps: int = 10) -> None:
        """Press `button` at (x0, y0), move in `steps` straight steps to (x1, y1), release."""
        self.move(x0, y0)
        self._xdotool(["mousedown", str(button)])
        try:
            for i in range(1, steps + 1):
                t = i / steps
                self.move(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
        finally:
            self._xdotool(["mouseup", str(button)])

    def key(self, *keys: str, window: int | None = None) -> None:
        """Press and release each key (xdotool names: "Escape", "ctrl+z", "space", "Return"). With `window`,
        that window gets the keyboard focus first (no window manager does it for us)."""
        if window is not None:
            self._xdotool(["windowfocus", str(window)])
        self._xdotool(["key", "--delay", "20", *keys])

    def type_text(self, text: str) -> None:
        """Type `text` into the focused widget."""
        self._xdotool(["type", "--delay", "10", text])

    # -------------------------------------------------------------------------------------------- screenshots
    def screenshot(self, path: str | Path | None = None, timeout: float = 15.0) -> np.ndarray:
        """The whole screen as (H, W, 3) uint8 RGB; also written to `path` (PNG) when given."""
        result = self._run(["import", "-display", self._need_display(), "-window", "root", "png:-"],
                           timeout, binary=True)
        image = cv2.imdecode(np.frombuffer(result.stdout, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise XvfbError("`import -window root` returned no image")
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(result.stdout)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    # ------------------------------------------------------------------------------------------------ helpers
    def _need_display(self) -> str:
        if self.display is None:
            raise XvfbError("the X server is not started")
        return self.display

    def _accepts_connections(self) -> bool:
        from floodlabel.gui.qt_platform import x_display_reachable  # Qt-free; libxcb via ctypes

        reachable = x_display_reachable(self._need_display())
        if reachable is not None:
            return reachable
        result = self._xdotool(["getmouselocation"], check=False)  # no libxcb in this process: ask a client
        return result.returncode == 0

    def _xdotool(self, args: list[str], timeout: float = 10.0, check: bool = True) -> subprocess.CompletedProcess:
        return self._run(["xdotool", *args], timeout, check=check)

    def _run(self, cmd: list[str], timeout: float, check: bool = True,
             binary: bool = False) -> subprocess.CompletedProcess:
        env = dict(os.environ, DISPLAY=self._need_display())
        try:
            result = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                                    text=not binary)
        except subprocess.TimeoutExpired as exc:
            raise XvfbError(f"{' '.join(cmd)} took more than {timeout:g} s") from exc
        if check and result.returncode != 0:
            err = result.stderr.decode(errors="replace") if binary else result.stderr
            raise XvfbError(f"{' '.join(cmd)} failed ({result.returncode}): {err.strip()}")
        return result

    def _stop_and_collect_stderr(self) -> str:
        self._terminate()
        log, self._log = self._log, None
        if log is None:
            return ""
        with log:
            log.seek(0)
            return log.read().decode(errors="replace").strip()[-500:]


def _read_line(fd: int, timeout: float) -> str:
    """What arrives on `fd` up to the first newline, EOF or `timeout` seconds."""
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")
