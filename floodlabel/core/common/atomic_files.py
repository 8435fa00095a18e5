"""Crash-safe file writes: a file is either its old content or its complete new content, never half of either.

`write_atomic(path, data)`: the bytes go to a temporary file in the same folder, are fsynced, renamed over `path`
with os.replace (atomic on POSIX and Windows), and the folder is fsynced so the rename itself survives a power cut.
On any failure the temporary file is removed, the old file is untouched, and OSError propagates (the caller turns
it into a readable message with `describe_os_error`).

Temporary names: `.tmp-<12 hex>-<name>` by default (`remove_stale_temp_files` deletes any `.tmp-*` file); with
`write_atomic(..., prefix=P)` a short `<P><12 hex>` whatever the target's name (so any name that fits the file system
can be written), and `remove_temp_files(folder, P)` deletes exactly those names and nothing else.

`atomic_writer(path)` is the same rule for writers that want a file object (`torch.save`, `json.dump`, streamed
bytes): write into the yielded file; it replaces `path` only when the `with` block ends without an exception.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"
"""Temporary files start with this; `remove_stale_temp_files` deletes leftovers of a killed process."""


def write_atomic(path: str | os.PathLike[str], data: bytes, *, sync_dir: bool = True,
                 prefix: str | None = None) -> None:
    """Write `data` to `path` atomically and durably (see the module docstring). Raises OSError.

    sync_dir=False leaves the folder's fsync to the caller (one `fsync_dir` after many files).
    prefix: the temporary file is named `<prefix><12 hex digits>` instead of `.tmp-<12 hex digits>-<name>`."""
    with atomic_writer(path, prefix=prefix, sync_dir=sync_dir) as file:
        fd, view = file.fileno(), memoryview(data)  # unbuffered: the bytes go straight to the file
        while view:
            written = os.write(fd, view)
            if written <= 0:  # pragma: no cover - a zero-length write would loop forever
                raise OSError(errno.EIO, "write returned 0 bytes")
            view = view[written:]


@contextmanager
def atomic_writer(path: str | os.PathLike[str], *, durable: bool = True, sync_dir: bool = True,
                  prefix: str | None = None) -> Iterator[BinaryIO]:
    """A binary file to write into; on a clean exit it atomically replaces `path` (see the module docstring).

    durable=False skips the fsyncs (a cache entry that may be lost at a power cut, but never half-written);
    sync_dir=False skips only the folder's fsync (the caller does one after many files).
    On an exception the temporary file is removed, `path` is untouched, and the exception propagates."""
    target = Path(path)
    token = secrets.token_hex(6)
    temp = target.with_name(f"{prefix}{token}" if prefix is not None else f"{TEMP_PREFIX}{token}-{target.name}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        _remove_quietly(temp)
        raise
    if durable and sync_dir:
        fsync_dir(target.parent)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """fsync a folder so renames and deletions in it are durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; NTFS journals renames itself
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on folders
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> int:
    """Delete temporary files left in `folder` by a process killed mid-write; returns how many were removed."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
            removed += _remove_quietly(Path(entry.path))
    return removed


def remove_temp_files(folder: str | os.PathLike[str], prefix: str) -> int:
    """Delete the leftovers of `write_atomic(..., prefix=prefix)` directly in `folder`: entries named exactly
    `<prefix><12 lower-case hex digits>` that are files or links (a link is removed, never followed). Nothing when
    `folder` is itself a link or cannot be listed. Returns how many were removed."""
    pattern = re.compile(re.escape(prefix) + r"[0-9a-f]{12}")
    folder = Path(folder)  # no trailing slash: lstat must not follow a link
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return 0
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        if pattern.fullmatch(entry.name) and (entry.is_symlink() or entry.is_file(follow_symlinks=False)):
            removed += _remove_quietly(Path(entry.path))
    return removed


def describe_os_error(exc: OSError) -> str:
    """A short reason for a failed write: 'the disk is full', 'permission denied', or the system's message."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    return exc.strerror or str(exc)


def _remove_quietly(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except OSError:
        return False
