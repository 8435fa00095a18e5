"""Process set-up for speed: a fast memory allocator for the SAM image encoder.

With glibc's default malloc, the vit_b encoder spends about as much time in the kernel (page faults from mmap/munmap
of its large temporaries) as in compute; jemalloc or tcmalloc halves the encoder time on a 2-core CPU. The allocator
must be chosen before the process starts, so `ensure_fast_allocator` re-executes the program once with LD_PRELOAD set
when a library is installed (Debian/Ubuntu: `apt install libjemalloc2`). Where none is found, glibc's malloc is tuned
in-process with mallopt (keep freed memory instead of returning it to the kernel), which recovers part of the gap.

FLOODLABEL_ALLOCATOR=system turns all of this off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

FAST_ALLOCATOR_NAMES = ("libjemalloc.so.2", "libjemalloc.so", "libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
_REEXEC_MARK = "FLOODLABEL_ALLOCATOR_REEXEC"

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def ensure_fast_allocator() -> None:
    """Call first thing in the program's entry point (before torch is imported). May not return (re-exec)."""
    if os.environ.get("FLOODLABEL_ALLOCATOR", "").lower() == "system" or not sys.platform.startswith("linux"):
        return
    if loaded_fast_allocator():
        return
    lib = find_fast_allocator()
    if lib and not os.environ.get(_REEXEC_MARK):
        env = dict(os.environ)
        env["LD_PRELOAD"] = ":".join(p for p in (str(lib), env.get("LD_PRELOAD", "")) if p)
        env[_REEXEC_MARK] = "1"
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(sys.executable, list(sys.orig_argv), env)
        except OSError:
            pass  # fall through to the in-process tuning
    tune_glibc_malloc()


def allocator_status() -> str:
    """One line for logs and the GUI: which allocator this process uses and what to do about it."""
    name = loaded_fast_allocator()
    if name:
        return f"fast allocator: {name}"
    if not sys.platform.startswith("linux"):
        return "system allocator"
    return "glibc malloc (tuned); install libjemalloc2 for about 2x faster image embedding"


def loaded_fast_allocator() -> str | None:
    """Name of jemalloc/tcmalloc if mapped into this process, else None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for key in ("jemalloc", "tcmalloc"):
        if key in maps:
            return key
    return None


def find_fast_allocator() -> Path | None:
    """Path of an installed jemalloc or tcmalloc shared library, or None."""
    for d in _LIB_DIRS:
        for name in FAST_ALLOCATOR_NAMES:
            p = Path(d) / name
            if p.exists():
                return p
    found = ctypes.util.find_library("jemalloc") or ctypes.util.find_library("tcmalloc_minimal")
    return Path(found) if found and Path(found).is_absolute() else None


def tune_glibc_malloc() -> bool:
    """Keep large freed blocks in the heap rather than unmapping them (fewer page faults). True if applied."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31 - 1)
        return bool(ok)
    except (OSError, AttributeError):
        return False
