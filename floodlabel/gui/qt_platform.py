"""Can Qt open a window here? Checked before QApplication exists, because Qt aborts the whole process when its
platform plugin fails to load (no display, missing xcb libraries) instead of raising something we could catch.

Qt-free: reads the environment and dlopens Qt's xcb platform library to learn which system library is missing.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import sys
from pathlib import Path

INSTALL_HINT = "Debian/Ubuntu: sudo apt install libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0"
NO_DISPLAY_HINT = "start it from a desktop session, or under a virtual screen: xvfb-run -a floodlabel (package xvfb)"

# platforms that need no display server
HEADLESS_PLATFORMS = ("offscreen", "minimal", "minimalegl", "vnc", "linuxfb", "eglfs", "vkkhrdisplay")

# sonames Qt's xcb plugin links against -> the Debian package that provides them
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}


def platform_problem(environ: os._Environ | dict[str, str] | None = None) -> str | None:
    """None when Qt can start a GUI platform here; else one line saying why not and what to install or set.

    Looks at QT_QPA_PLATFORM, DISPLAY and WAYLAND_DISPLAY (Linux only; other systems always have a display),
    and for X11 checks that Qt's xcb library and its system dependencies load.
    """
    env = os.environ if environ is None else environ
    requested = env.get("QT_QPA_PLATFORM", "").strip()
    # QT_QPA_PLATFORM may list fallbacks ("wayland;xcb"); the first that can start wins
    choices = [c.split(":", 1)[0].strip().lower() for c in requested.split(";") if c.strip()]
    if any(c in HEADLESS_PLATFORMS for c in choices):
        return None
    if not sys.platform.startswith("linux"):
        return None
    display, wayland = env.get("DISPLAY", "").strip(), env.get("WAYLAND_DISPLAY", "").strip()
    if not choices:
        choices = (["wayland"] if wayland else []) + (["xcb"] if display else [])
    problems: list[str] = []
    needs_libraries = False
    for platform in choices:
        if platform == "wayland":
            if wayland:
                return None
            problems.append("WAYLAND_DISPLAY is not set")
        elif platform == "xcb":
            if not display:
                problems.append("DISPLAY is not set")
                continue
            missing = missing_xcb_library()
            if missing is not None:
                package = DEBIAN_PACKAGES.get(missing)
                problems.append(f"Qt's X11 support needs {missing}" + (f" (package {package})" if package else ""))
                needs_libraries = True
            elif x_display_reachable(display) is False:
                problems.append(f"the X display {display} cannot be reached")
            else:
                return None
        else:
            return None  # a platform we don't know how to check: let Qt try it
    reason = "; ".join(problems) if problems else "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    return f"cannot open a window: {reason}. {INSTALL_HINT if needs_libraries else NO_DISPLAY_HINT}"


def missing_xcb_library() -> str | None:
    """The soname of a system library Qt's xcb platform cannot load, or None when everything is there.

    Loads PySide6's libQt6XcbQpa (which the xcb plugin is a thin wrapper of) with dlopen; the loader names the
    first missing dependency. Returns None when PySide6 or the library cannot be located (Qt will report it).
    """
    lib = _xcb_qpa_library()
    if lib is None:
        return None
    try:
        ctypes.CDLL(str(lib), mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    except OSError as exc:
        found = re.search(r"([\w.+-]+\.so[\w.]*): cannot open shared object file", str(exc))
        return found.group(1) if found else str(exc).splitlines()[0]
    return None


def x_display_reachable(display: str) -> bool | None:
    """True/False: whether libxcb can connect to X display `display` (e.g. ':0'); None when libxcb is missing."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return None
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    try:
        return conn is not None and xcb.xcb_connection_has_error(conn) == 0
    finally:
        if conn is not None:
            xcb.xcb_disconnect(conn)  # also frees the error object xcb returns on failure


# ----------------------------------------------------------------------------------------------------- helpers


def _xcb_qpa_library() -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidates = sorted((Path(root) / "Qt" / "lib").glob("libQt6XcbQpa.so*"))
        if candidates:
            return candidates[0]
    return None
