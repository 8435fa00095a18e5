"""The project store: what a user has labelled, kept crash-safe beside (or for) a dataset folder.

A project folder holds `project.sqlite` (SQLite in WAL mode, fsync on every commit) and `masks/`. Per image, keyed
by its path relative to the dataset folder (DATA) and the SHA-256 of its bytes, it keeps:
- the status: new (no row) / in progress (autosaved prompts) / accepted;
- the latest annotation state (any JSON-serialisable dict: prompts, chosen candidate, strokes, ...), autosaved;
- at accept: the mask as a PNG at the image's native size after EXIF orientation (0/255, one channel), the
  annotation state that made it, model id and checkpoint hash, metrics against GT, whether brush strokes were used.
Autosaving an accepted image keeps it accepted (the accepted mask and state stay until the next accept);
`ImageRecord.edited_since_accept` says that newer work exists.

An image whose bytes changed since it was accepted (or autosaved) comes back with `changed=True`; it is never
silently matched to the stored mask.

Crash safety: a mask's sidecar (`mask_sidecar.py`: the row's content as JSON) and then the mask are written to
temporary files in masks/, fsynced, renamed to a new unique name and the folder fsynced; only then is the row
committed, and the previous mask file is deleted after the commit. A row therefore never points to a missing or
half-written file. A mask PNG is deleted only when a readable row says it is superseded (`orphan_masks.py`):
masks no row points to are kept and listed in `orphans`, and `recover_orphans` rebuilds their rows (the database was
damaged, emptied or moved away, or the process died between the mask and its row). Only temporary files of a killed
process and sidecars without a mask are removed when the project is opened for writing. A database that cannot be
read raises StoreError (nothing is opened writable); `project_recovery.recover_project` moves it aside and rebuilds
the project from the masks and their sidecars.

One writer: the store holds an exclusive lock on `project.lock` for its lifetime. A second store on the same project
(another window, another process) opens read-only: `read_only` is True, `read_only_reason` says why, and every write
raises StoreError with that reason. A read-only project folder also opens read-only.

Threads: one store may be used from several threads (calls are serialised on the database). `accept` encodes and
fsyncs a PNG (about 50 ms for 4000x3000): call it off the UI thread. `statuses`, `counts` and `record` read the
database only (`record` also hashes the image file once per file version).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from floodlabel.core.common.atomic_files import describe_os_error, remove_stale_temp_files, write_atomic
from floodlabel.core.common.errors import DamagedProjectError, FloodLabelError, ImageReadError, StoreError
from floodlabel.core.common.hashing import sha256_bytes, sha256_file
from floodlabel.core.data.images import image_size
from floodlabel.core.store.mask_files import decode_mask_png, encode_mask_png, read_mask_bytes, read_mask_png
from floodlabel.core.store.mask_sidecar import MaskSidecar, sidecar_path, write_sidecar
from floodlabel.core.store.orphan_masks import MASK_NAME, OrphanKind, OrphanMask, RowInfo, find_orphans, safe_stem
from floodlabel.core.store.location import (DB_NAME, PROJECT_DIR_NAME, default_project_dir, find_project_dir,
                                              is_project_dir)

__all__ = ["DB_NAME", "PROJECT_DIR_NAME", "SCHEMA_VERSION", "ImageRecord", "OrphanMask", "ProjectStore", "Status",
           "relative_image_path",
           "decode_mask_png", "default_project_dir", "encode_mask_png", "find_project_dir", "is_project_dir",
           "read_mask_bytes", "read_mask_png"]

SCHEMA_VERSION = 1
"""Stored in PRAGMA user_version. A database with a larger number was made by a newer FloodLabel."""

MASKS_DIR_NAME = "masks"
LOCK_NAME = "project.lock"


class Status(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in progress"
    ACCEPTED = "accepted"


@dataclass(frozen=True)
class ImageRecord:
    """What the store knows about one image. Times are Unix seconds. Sizes are (width, height).

    annotation_state: the latest state (from `save_progress` or `accept`). accepted_state: the state at accept.
    image_hash: SHA-256 of the image bytes when last saved; current_hash: of the file now (None: file missing).
    changed: the file's bytes differ from those the accepted mask (or the autosaved state) was made on.
    """

    rel_path: str
    status: Status
    image_path: Path
    image_hash: str
    current_hash: str | None
    annotation_state: dict[str, Any] | None
    updated_at: float
    accepted_state: dict[str, Any] | None = None
    accepted_image_hash: str | None = None
    mask_path: Path | None = None
    mask_size: tuple[int, int] | None = None
    mask_sha256: str | None = None
    model_id: str | None = None
    checkpoint_hash: str | None = None
    metrics: dict[str, Any] | None = None
    strokes_used: bool = False
    accepted_at: float | None = None
    created_at: float = 0.0
    edited_since_accept: bool = False
    _mask_cache: list = field(default_factory=list, repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        return self.status is Status.ACCEPTED

    @property
    def image_missing(self) -> bool:
        return self.current_hash is None

    @property
    def changed(self) -> bool:
        reference = self.accepted_image_hash if self.accepted else self.image_hash
        return self.current_hash is not None and self.current_hash != reference

    @property
    def mask_missing(self) -> bool:
        return self.mask_path is not None and not self.mask_path.is_file()

    def load_mask(self) -> np.ndarray:
        """The accepted mask as an (H, W) bool array (True = water), checked against its stored SHA-256.

        Raises StoreError when the image is not accepted, or its mask file was deleted or damaged outside FloodLabel.
        """
        if self._mask_cache:
            return self._mask_cache[0]
        if self.mask_path is None:
            raise StoreError(f"{self.rel_path} has no accepted mask (status: {self.status})")
        mask = read_mask_png(self.mask_path, self.rel_path, self.mask_sha256)
        self._mask_cache.append(mask)
        return mask


class ProjectStore:
    """A project: statuses, annotation states and accepted masks of the images of one dataset folder.

    data_root: the dataset folder (DATA). None: read from the project (when opening a project folder directly).
    project_dir: None = the dataset's existing project (`find_project_dir`), else `default_project_dir(data_root)`.
    read_only: open for reading only (no lock taken; works while another process writes, e.g. for export).
    create: create the project when it does not exist (otherwise StoreError).
    """

    def __init__(self, data_root: str | os.PathLike[str] | None = None,
                 project_dir: str | os.PathLike[str] | None = None, *, read_only: bool = False,
                 create: bool = True) -> None:
        if data_root is None and project_dir is None:
            raise StoreError("no dataset folder or project folder given")
        if project_dir is None:
            assert data_root is not None
            project_dir = find_project_dir(data_root) or default_project_dir(data_root)
        self.project_dir = Path(project_dir).expanduser().resolve()
        self.db_path = self.project_dir / DB_NAME
        self.masks_dir = self.project_dir / MASKS_DIR_NAME
        self.read_only = read_only
        self.read_only_reason = "opened read-only" if read_only else ""
        self._lock = threading.RLock()
        self._file_lock = None
        self._hashes: dict[tuple, str] = {}
        self._conn: sqlite3.Connection | None = None
        self.created = False
        """True when this open created the database (a new project, or one whose database was missing or empty)."""
        self.orphans: list[OrphanMask] = []
        """Mask PNGs no row points to, kept (see `orphan_masks`): `recover_orphans` restores the recoverable ones."""
        exists = self.db_path.is_file()
        if not exists and (read_only or not create):
            raise StoreError(f"no FloodLabel project at {self.project_dir}")
        if not read_only:
            self._take_writer_lock(exists)
        try:
            self._conn = self._connect()
            self._check_or_create_schema()
            self.data_root = self._resolve_data_root(data_root)
            self._scan_masks()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------------ reading

    def statuses(self) -> dict[str, Status]:
        """{relative path: status} of every image with a row (images not listed are new). Database only."""
        rows = self._query("SELECT rel_path, status FROM images")
        return {rel: Status(status) for rel, status in rows}

    def counts(self, rel_paths: Iterable[str] | None = None) -> dict[Status, int]:
        """How many images have each status. rel_paths: the dataset's images (those without a row count as new);
        None: only stored rows (new = 0)."""
        stored = self.statuses()
        counts = dict.fromkeys(Status, 0)
        keys = stored if rel_paths is None else [self._rel(p) for p in rel_paths]
        for rel in keys:
            counts[stored.get(rel, Status.NEW)] += 1
        return counts

    def record(self, rel_path: str | os.PathLike[str]) -> ImageRecord | None:
        """Everything stored for one image (None when it is new). Hashes the image file to set `changed`."""
        rel = self._rel(rel_path)
        rows = self._query(f"SELECT {_COLUMNS} FROM images WHERE rel_path = ?", (rel,))
        return self._to_record(rows[0]) if rows else None

    def records(self, status: Status | None = None) -> list[ImageRecord]:
        """Records of every stored image (or those with `status`), sorted by relative path."""
        where, params = ("WHERE status = ?", (str(status),)) if status else ("", ())
        rows = self._query(f"SELECT {_COLUMNS} FROM images {where} ORDER BY rel_path", params)
        return [self._to_record(row) for row in rows]

    def image_path(self, rel_path: str | os.PathLike[str]) -> Path:
        return self.data_root / self._rel(rel_path)

    def image_hash(self, rel_path: str | os.PathLike[str]) -> str | None:
        """SHA-256 (hex) of the image file's bytes; None when it is missing. Cached per (size, mtime, inode)."""
        path = self.image_path(rel_path)
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in self._hashes:
            try:
                self._hashes[key] = sha256_file(path)
            except OSError:
                return None
        return self._hashes[key]

    def problems(self) -> list[str]:
        """One line per stored image that needs attention: image missing or changed, accepted mask missing."""
        lines = []
        for rec in self.records():
            if rec.image_missing:
                lines.append(f"{rec.rel_path}: the image file is missing")
            elif rec.changed:
                lines.append(f"{rec.rel_path}: the image changed since it was {rec.status}")
            if rec.mask_missing:
                lines.append(f"{rec.rel_path}: the accepted mask {rec.mask_path} was deleted")
        return lines

    # ------------------------------------------------------------------------------------------------ writing

    def save_progress(self, rel_path: str | os.PathLike[str], annotation_state: dict[str, Any] | None) -> None:
        """Autosave the current annotation state. A new image becomes "in progress"; an accepted one stays accepted
        (its accepted mask is kept) and is marked `edited_since_accept`."""
        self._require_writable()
        rel = self._rel(rel_path)
        state = _to_json(annotation_state, "annotation state")
        image_hash, st = self._hash_and_stat(rel)
        now = time.time()
        self._execute(
            "INSERT INTO images (rel_path, status, image_hash, image_bytes, image_mtime_ns, state_json, "
            "created_at, updated_at, edited_since_accept) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) "
            "ON CONFLICT(rel_path) DO UPDATE SET image_hash = excluded.image_hash, "
            "image_bytes = excluded.image_bytes, image_mtime_ns = excluded.image_mtime_ns, "
            "state_json = excluded.state_json, updated_at = excluded.updated_at, "
            "edited_since_accept = (status = 'accepted')",
            (rel, str(Status.IN_PROGRESS), image_hash, st.st_size, st.st_mtime_ns, state, now, now))

    def accept(self, rel_path: str | os.PathLike[str], mask: np.ndarray,
               annotation_state: dict[str, Any] | None = None, *, model_id: str | None = None,
               checkpoint_hash: str | None = None, metrics: dict[str, Any] | None = None,
               strokes_used: bool | None = None) -> ImageRecord:
        """Store `mask` ((H, W) bool, the image's native size after EXIF orientation) as the image's accepted mask,
        with the annotation state that made it, the model and the metrics. Durable when it returns.

        strokes_used: None = True when annotation_state has a non-empty "strokes" list.
        Raises StoreError (read-only, wrong size, disk full, ...); the previous accepted mask is then unchanged.
        """
        self._require_writable()
        rel = self._rel(rel_path)
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise StoreError(f"a mask must be a 2-D (height, width) array, got shape {mask.shape}")
        mask = mask if mask.dtype == bool else mask != 0
        try:
            width, height = image_size(self.image_path(rel))
        except ImageReadError as exc:
            raise StoreError(f"cannot accept {rel}: {exc.reason}") from exc
        if mask.shape != (height, width):
            raise StoreError(f"cannot accept {rel}: the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                             f"{width}x{height} (after EXIF orientation)")
        state = _to_json(annotation_state, "annotation state")
        metrics_json = _to_json(metrics, "metrics")
        if strokes_used is None:
            strokes_used = bool(isinstance(annotation_state, dict) and annotation_state.get("strokes"))
        image_hash, st = self._hash_and_stat(rel)

        png = encode_mask_png(mask)
        name = f"{safe_stem(rel)}-{secrets.token_hex(6)}.png"
        now = time.time()
        sidecar = MaskSidecar(rel_path=rel, image_hash=image_hash, image_bytes=st.st_size,
                              image_mtime_ns=st.st_mtime_ns, mask_sha256=sha256_bytes(png),
                              mask_width=width, mask_height=height, accepted_at=now,
                              state=annotation_state, model_id=model_id, checkpoint_hash=checkpoint_hash,
                              metrics=metrics, strokes_used=bool(strokes_used))
        try:
            self.masks_dir.mkdir(exist_ok=True)
            write_sidecar(self.masks_dir / name, sidecar)  # first: every mask PNG has its sidecar
            write_atomic(self.masks_dir / name, png)
        except OSError as exc:
            _unlink_quietly(sidecar_path(self.masks_dir / name))
            raise StoreError(f"cannot save the mask of {rel} in {self.masks_dir}: {describe_os_error(exc)}; "
                             "the previously accepted mask is unchanged") from exc
        try:
            with self._lock:
                old = self._query("SELECT mask_file FROM images WHERE rel_path = ?", (rel,))
                self._execute(
                    "INSERT INTO images (rel_path, status, image_hash, image_bytes, image_mtime_ns, state_json, "
                    "created_at, updated_at, edited_since_accept, accepted_state_json, accepted_image_hash, "
                    "mask_file, mask_sha256, mask_width, mask_height, model_id, checkpoint_hash, metrics_json, "
                    "strokes_used, accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(rel_path) DO UPDATE SET status = excluded.status, "
                    "image_hash = excluded.image_hash, image_bytes = excluded.image_bytes, "
                    "image_mtime_ns = excluded.image_mtime_ns, state_json = excluded.state_json, "
                    "updated_at = excluded.updated_at, edited_since_accept = 0, "
                    "accepted_state_json = excluded.accepted_state_json, "
                    "accepted_image_hash = excluded.accepted_image_hash, mask_file = excluded.mask_file, "
                    "mask_sha256 = excluded.mask_sha256, mask_width = excluded.mask_width, "
                    "mask_height = excluded.mask_height, model_id = excluded.model_id, "
                    "checkpoint_hash = excluded.checkpoint_hash, metrics_json = excluded.metrics_json, "
                    "strokes_used = excluded.strokes_used, accepted_at = excluded.accepted_at",
                    (rel, str(Status.ACCEPTED), image_hash, st.st_size, st.st_mtime_ns, state, now, now, state,
                     image_hash, f"{MASKS_DIR_NAME}/{name}", sha256_bytes(png), width, height,
                     model_id, checkpoint_hash, metrics_json, int(strokes_used), now))
        except BaseException:
            _unlink_quietly(self.masks_dir / name)
            _unlink_quietly(sidecar_path(self.masks_dir / name))
            raise
        if old and old[0][0] and old[0][0] != f"{MASKS_DIR_NAME}/{name}":
            # the committed row says the old mask is superseded (a crash here leaves it for the next open)
            _unlink_quietly(self.project_dir / old[0][0])
            _unlink_quietly(sidecar_path(self.project_dir / old[0][0]))
        record = self.record(rel)
        assert record is not None
        record._mask_cache.append(mask)
        return record

    # ------------------------------------------------------------------------------------------------ lifetime

    def recover_orphans(self, image_rel_paths: Iterable[str] | None = None) -> list[str]:
        """Rebuild the rows of the recoverable `orphans` (the newest per image); returns the relative paths restored.

        A mask with a sidecar gets its row back as it was at accept (an in-progress state saved after that is kept
        as newer work: `edited_since_accept`). A mask without a sidecar is matched by the stem in its name to one of
        `image_rel_paths` (the dataset's images) of the mask's size, when exactly one matches and that image has no
        accepted mask; its prompts are unknown. Orphans not restored stay in `orphans`; no file is deleted.
        """
        from floodlabel.core.store.orphan_masks import newest_per_image, stem_of_mask_name

        self._require_writable()
        restored = []
        with self._lock:
            self._scan_masks()
            rows = self._row_infos()
            for rel, orphan in sorted(newest_per_image(self.orphans).items()):
                assert orphan.sidecar is not None
                self._restore_row(orphan.sidecar, orphan.png.name)
                restored.append(rel)
            legacy = [o for o in self.orphans if o.kind is OrphanKind.NO_SIDECAR]
            if legacy and image_rel_paths is not None:
                by_stem: dict[str, list[str]] = {}
                for rel in image_rel_paths:
                    rel = self._rel(rel)
                    by_stem.setdefault(safe_stem(rel), []).append(rel)
                newest: dict[str, Path] = {}
                for orphan in legacy:
                    matches = by_stem.get(stem_of_mask_name(orphan.png.name), [])
                    if len(matches) != 1 or matches[0] in restored:
                        continue
                    row = rows.get(matches[0])
                    if row is not None and row.accepted and row.mask_exists:
                        continue
                    current = newest.get(matches[0])
                    if current is None or orphan.png.stat().st_mtime > current.stat().st_mtime:
                        newest[matches[0]] = orphan.png
                for rel, png in sorted(newest.items()):
                    sidecar = self._legacy_sidecar(rel, png)
                    if sidecar is not None:
                        write_sidecar(png, sidecar)
                        self._restore_row(sidecar, png.name)
                        restored.append(rel)
            self._scan_masks()
        return restored

    def try_take_writer_lock(self) -> bool:
        """For a store that is read-only because another window or process held the project: take the lock when it
        is free now and become writable. True when this store is writable after the call."""
        if not self.read_only:
            return True
        if self._file_lock is not None or not self.read_only_reason.startswith("another FloodLabel"):
            return False
        from filelock import FileLock, Timeout

        lock = FileLock(self.project_dir / LOCK_NAME, timeout=0)
        try:
            lock.acquire()
        except (Timeout, OSError):
            return False
        with self._lock:
            try:
                conn = sqlite3.connect(self.db_path, timeout=10, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error:
                lock.release()
                return False
            if self._conn is not None:
                self._conn.close()
            self._conn, self._file_lock = conn, lock
            self.read_only, self.read_only_reason = False, ""
            self._scan_masks()
        return True

    def close(self) -> None:
        """Checkpoint the WAL into the database (when writable), close it and release the writer lock. Safe to call
        twice."""
        with self._lock:
            if self._conn is not None:
                if not self.read_only:
                    try:
                        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    except sqlite3.Error:
                        pass  # the data is safe in the WAL; SQLite replays it at the next open
                self._conn.close()
                self._conn = None
            if self._file_lock is not None:
                self._file_lock.release()
                self._file_lock = None

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = f"read-only: {self.read_only_reason}" if self.read_only else "writable"
        return f"ProjectStore({str(self.project_dir)!r}, {mode})"

    # ------------------------------------------------------------------------------------------------ helpers

    def _take_writer_lock(self, exists: bool) -> None:
        from filelock import FileLock, Timeout

        try:
            self.masks_dir.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.project_dir / LOCK_NAME, timeout=0)
            lock.acquire()
        except Timeout:
            self._become_read_only(exists, "another FloodLabel window or command is using this project; it is "
                                           "open read-only until that one closes")
        except OSError as exc:
            self._become_read_only(exists, f"the project folder is not writable ({describe_os_error(exc)})")
        else:
            self._file_lock = lock

    def _become_read_only(self, exists: bool, reason: str) -> None:
        if not exists:
            raise StoreError(f"cannot create a FloodLabel project at {self.project_dir}: {reason}")
        self.read_only = True
        self.read_only_reason = reason

    def _connect(self) -> sqlite3.Connection:
        try:
            if not self.read_only:
                return sqlite3.connect(self.db_path, timeout=10, isolation_level=None, check_same_thread=False)
            uri = self.db_path.as_uri()
            try:
                conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=10, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA user_version").fetchone()
                return conn
            except sqlite3.OperationalError:  # WAL files cannot be created in a read-only folder
                return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot open the project database {self.db_path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise DamagedProjectError(self.db_path, str(exc)) from exc

    def _check_or_create_schema(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise DamagedProjectError(self.db_path, str(exc)) from exc
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.db_path} was made by a newer FloodLabel (project format {version}, this "
                             f"version reads up to {SCHEMA_VERSION}); update FloodLabel to open it")
        if version == 0 and tables:
            raise DamagedProjectError(self.db_path)
        try:
            if version == 0:
                if self.read_only:
                    raise StoreError(f"{self.db_path} is an empty project database and the project is read-only")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
                self.created = True
            elif not self.read_only:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise DamagedProjectError(self.db_path, str(exc)) from exc
        if check != "ok":
            raise DamagedProjectError(self.db_path, f"integrity check: {check}")
        if not {"images", "meta"} <= {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}:
            raise DamagedProjectError(self.db_path)

    def _resolve_data_root(self, data_root: str | os.PathLike[str] | None) -> Path:
        stored = dict(self._query("SELECT key, value FROM meta"))
        if data_root is None:
            if "data_root" not in stored:
                raise StoreError(f"the project {self.project_dir} does not say which dataset folder it belongs to")
            return (self.project_dir / stored["data_root"]).resolve()
        root = Path(data_root).expanduser().resolve()
        value = os.path.relpath(root, self.project_dir) if self.project_dir.is_relative_to(root) else str(root)
        if stored.get("data_root") != value and not self.read_only:
            self._execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('data_root', ?)", (value,))
        return root

    def _scan_masks(self) -> None:
        """Find the masks no row points to (`orphans`); when writable, delete what a killed process left: temporary
        files, sidecars without a mask, and masks a readable row says are superseded. Nothing else is deleted."""
        rows = self._row_infos()
        if not self.read_only:
            remove_stale_temp_files(self.masks_dir)
            self._remove_lone_sidecars(rows)
        orphans = find_orphans(self.masks_dir, rows)
        if not self.read_only:
            for orphan in orphans:
                if orphan.kind is OrphanKind.SUPERSEDED:
                    _unlink_quietly(orphan.png)
                    _unlink_quietly(sidecar_path(orphan.png))
        self.orphans = [o for o in orphans if o.kind is not OrphanKind.SUPERSEDED]

    def _row_infos(self) -> dict[str, RowInfo]:
        rows = self._query("SELECT rel_path, status, mask_file, accepted_at FROM images")
        return {rel: RowInfo(accepted=status == str(Status.ACCEPTED), mask_file=Path(f).name if f else None,
                             accepted_at=at, mask_exists=bool(f) and (self.project_dir / f).is_file())
                for rel, status, f, at in rows}

    def _remove_lone_sidecars(self, rows: dict[str, RowInfo]) -> None:
        try:
            names = set(os.listdir(self.masks_dir))
        except OSError:
            return
        for name in names:
            if name.endswith(".json") and MASK_NAME.fullmatch(name[:-5] + ".png") and name[:-5] + ".png" not in names:
                _unlink_quietly(self.masks_dir / name)  # the process died before its mask was written

    def _restore_row(self, sidecar: MaskSidecar, mask_name: str) -> None:
        """Insert (or replace) an image's row as it was when `sidecar` was written; newer in-progress work stays."""
        rel = sidecar.rel_path
        state = _to_json(sidecar.state, "annotation state")
        current = self._query("SELECT state_json, updated_at, created_at FROM images WHERE rel_path = ?", (rel,))
        newer = bool(current) and current[0][1] > sidecar.accepted_at and current[0][0] is not None
        state_json, updated_at = (current[0][0], current[0][1]) if newer else (state, sidecar.accepted_at)
        created_at = min(current[0][2], sidecar.accepted_at) if current else sidecar.accepted_at
        self._execute(
            f"INSERT OR REPLACE INTO images ({_COLUMNS}) VALUES ({', '.join('?' * 20)})",
            (rel, str(Status.ACCEPTED), sidecar.image_hash, sidecar.image_bytes, sidecar.image_mtime_ns, state_json,
             created_at, updated_at, int(newer), state, sidecar.image_hash, f"{MASKS_DIR_NAME}/{mask_name}",
             sidecar.mask_sha256, sidecar.mask_width, sidecar.mask_height, sidecar.model_id, sidecar.checkpoint_hash,
             _to_json(sidecar.metrics, "metrics"), int(sidecar.strokes_used), sidecar.accepted_at))

    def _legacy_sidecar(self, rel: str, png: Path) -> MaskSidecar | None:
        """A sidecar for a mask made before sidecars: the image as it is now, the mask's size checked against it."""
        try:
            data = png.read_bytes()
            mask = decode_mask_png(data, png, rel)
            width, height = image_size(self.image_path(rel))
            image_hash, st = self._hash_and_stat(rel)
        except (OSError, FloodLabelError):
            return None
        if mask.shape != (height, width):
            return None
        return MaskSidecar(rel_path=rel, image_hash=image_hash, image_bytes=st.st_size,
                           image_mtime_ns=st.st_mtime_ns, mask_sha256=sha256_bytes(data),
                           mask_width=width, mask_height=height, accepted_at=png.stat().st_mtime,
                           state=None, model_id="recovered")

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"the project {self.project_dir} is read-only: {self.read_only_reason}")
        if self._conn is None:
            raise StoreError("the project store is closed")

    def _rel(self, rel_path: str | os.PathLike[str]) -> str:
        path = Path(rel_path)
        if path.is_absolute():
            path = Path(relative_image_path(path, self.data_root))
        if ".." in path.parts or not path.parts:
            raise StoreError(f"bad image path {str(rel_path)!r}: give a path inside the dataset folder")
        return path.as_posix()

    def _hash_and_stat(self, rel: str) -> tuple[str, os.stat_result]:
        path = self.image_path(rel)
        try:
            st = path.stat()
        except OSError as exc:
            raise StoreError(f"cannot read the image {path}: {describe_os_error(exc)}") from exc
        image_hash = self.image_hash(rel)
        if image_hash is None:
            raise StoreError(f"cannot read the image {path}")
        return image_hash, st

    def _current_hash(self, rel: str, stored_hash: str, size: int | None, mtime_ns: int | None) -> str | None:
        """The image's hash now; trusts the stored hash while the file's size and mtime are those recorded."""
        path = self.image_path(rel)
        try:
            st = path.stat()
        except OSError:
            return None
        if size == st.st_size and mtime_ns == st.st_mtime_ns:
            return stored_hash
        return self.image_hash(rel)

    def _to_record(self, row: tuple) -> ImageRecord:
        (rel, status, image_hash, image_bytes, mtime_ns, state_json, created_at, updated_at, edited,
         accepted_state_json, accepted_image_hash, mask_file, mask_sha256, mask_w, mask_h, model_id,
         checkpoint_hash, metrics_json, strokes_used, accepted_at) = row
        return ImageRecord(
            rel_path=rel, status=Status(status), image_path=self.image_path(rel), image_hash=image_hash,
            current_hash=self._current_hash(rel, image_hash, image_bytes, mtime_ns),
            annotation_state=_from_json(state_json), updated_at=updated_at,
            accepted_state=_from_json(accepted_state_json), accepted_image_hash=accepted_image_hash,
            mask_path=self.project_dir / mask_file if mask_file else None,
            mask_size=(mask_w, mask_h) if mask_file else None, mask_sha256=mask_sha256, model_id=model_id,
            checkpoint_hash=checkpoint_hash, metrics=_from_json(metrics_json), strokes_used=bool(strokes_used),
            accepted_at=accepted_at, created_at=created_at, edited_since_accept=bool(edited))

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                raise StoreError("the project store is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the project database {self.db_path}: {exc}") from exc

    def _execute(self, sql: str, params: tuple = ()) -> None:
        """One statement in its own transaction, committed (and fsynced) when this returns."""
        with self._lock:
            self._require_writable()
            assert self._conn is not None
            try:
                self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                reason = "the disk is full" if "full" in str(exc) else str(exc)
                raise StoreError(f"cannot write the project database {self.db_path}: {reason}") from exc


# ---------------------------------------------------------------------------------------------------------------
# module helpers


def relative_image_path(image_path: str | os.PathLike[str], data_root: str | os.PathLike[str]) -> str:
    """An image's key in the store: its path inside DATA, POSIX style. The file itself may be a link to a photo
    elsewhere (its name inside DATA counts, the link is not followed); folders on the way are resolved.
    StoreError when the path is not inside DATA."""
    path, root = os.path.abspath(image_path), os.path.abspath(data_root)
    prefix = root.rstrip(os.sep) + os.sep
    if path.startswith(prefix):  # the common case, without touching the disk (10,000 images: milliseconds)
        return Path(path[len(prefix):]).as_posix()
    linked = Path(path)
    try:
        return (linked.parent.resolve() / linked.name).relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        raise StoreError(f"{image_path} is not inside the dataset folder {data_root}") from None

_COLUMNS = ("rel_path, status, image_hash, image_bytes, image_mtime_ns, state_json, created_at, updated_at, "
            "edited_since_accept, accepted_state_json, accepted_image_hash, mask_file, mask_sha256, mask_width, "
            "mask_height, model_id, checkpoint_hash, metrics_json, strokes_used, accepted_at")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    rel_path TEXT PRIMARY KEY,                -- POSIX path relative to the dataset folder
    status TEXT NOT NULL CHECK (status IN ('in progress', 'accepted')),
    image_hash TEXT NOT NULL,                 -- SHA-256 of the image bytes at the last save
    image_bytes INTEGER, image_mtime_ns INTEGER,
    state_json TEXT,                          -- latest annotation state (autosave or accept)
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    edited_since_accept INTEGER NOT NULL DEFAULT 0,
    accepted_state_json TEXT, accepted_image_hash TEXT,
    mask_file TEXT, mask_sha256 TEXT, mask_width INTEGER, mask_height INTEGER,
    model_id TEXT, checkpoint_hash TEXT, metrics_json TEXT, strokes_used INTEGER, accepted_at REAL,
    CHECK (status != 'accepted' OR mask_file IS NOT NULL)
);
"""

def _to_json(value: Any, what: str) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"the {what} cannot be saved as JSON: {exc}") from exc


def _from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
