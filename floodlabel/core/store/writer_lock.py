"""One writer per project: an exclusive lock on `project.lock`, held by the writable store for its lifetime.

A store that cannot take it (another window or process holds it, or the folder is not writable) opens read-only
and says why (`take_writer_lock`'s reason); `try_writer_lock` takes it later, once it is free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from floodlabel.core.common.atomic_files import describe_os_error

LOCK_NAME = "project.lock"

HELD_ELSEWHERE = ("another FloodLabel window or command is using this project; it is open read-only until that "
                  "one closes")
"""The read-only reason when another store holds the lock (`try_writer_lock` may take it later)."""


def take_writer_lock(project_dir: Path, masks_dir: Path) -> tuple[Any | None, str]:
    """Create `masks_dir` (and the project folder) and take the lock without waiting: (the held FileLock, "") or
    (None, why the project must open read-only)."""
    from filelock import FileLock, Timeout

    try:
        masks_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(project_dir / LOCK_NAME, timeout=0)
        lock.acquire()
    except Timeout:
        return None, HELD_ELSEWHERE
    except OSError as exc:
        return None, f"the project folder is not writable ({describe_os_error(exc)})"
    return lock, ""


def try_writer_lock(project_dir: Path) -> Any | None:
    """The held FileLock when it is free now, else None."""
    from filelock import FileLock, Timeout

    lock = FileLock(project_dir / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except (Timeout, OSError):
        return None
    return lock
