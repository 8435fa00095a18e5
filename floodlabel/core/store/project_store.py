"""The project store: what a user has labelled, kept crash-safe beside (or for) a dataset folder.

A project folder holds `project.sqlite` (SQLite in WAL mode, fsync on every commit) and `masks/`. Per image, keyed
by its path relative to the dataset folder (DATA) and the SHA-256 of its bytes, it keeps:
- the status: new (no row) / proposed (a model's proposal waits for review, `proposals.py`) / in progress
  (autosaved prompts) / accepted;
- the latest annotation state (any JSON-serialisable dict: prompts, chosen candidate, strokes, ...), autosaved;
- at accept: the mask as a PNG at the image's native size after EXIF orientation (0/255, one channel), the
  annotation state that made it, model id and checkpoint hash, metrics against GT, whether brush strokes were used.
The project also keeps the image the user was last on (`remember_image`), where `resume_image` reopens.
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
read raises StoreError (nothing is opened writable); `recovery.recover_project` moves it aside and rebuilds
the project from the masks and their sidecars.

One writer: the store holds an exclusive lock on `project.lock` for its lifetime. A second store on the same project
(another window, another process) opens read-only: `read_only` is True, `read_only_reason` says why, and every write
raises StoreError with that reason. A read-only project folder also opens read-only.

Threads: one store may be used from several threads (calls are serialised on the database). `accept` encodes and
fsyncs a PNG (about 50 ms for 4000x3000): call it off the UI thread. `statuses`, `counts` and `record` read the
database only (`record` also hashes the image file once per file version).

This module is the store's face; its parts: `schema` (tables, statements, opening the database), `records` (Status,
ImageRecord, rows to records), `image_files` (an image's key, hash and size), `proposals` (ProposalTable: the
proposals table and its files), `writer_lock`, `mask_files` and `mask_sidecar` (files in masks/), `orphan_masks` and
`orphan_recovery` (masks no row points to).
"""

from __future__ import annotations

import os
import secrets
import shlex
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from floodlabel.core.common.atomic_files import describe_os_error, write_atomic
from floodlabel.core.common.errors import StoreError
from floodlabel.core.common.hashing import sha256_bytes
from floodlabel.core.store import orphan_recovery, resume, schema
from floodlabel.core.store.image_files import ImageFiles, relative_image_path
from floodlabel.core.store.location import (DB_NAME, MASKS_DIR_NAME, PROJECT_DIR_NAME, default_project_dir,
                                            find_project_dir, is_project_dir)
from floodlabel.core.store.mask_files import (decode_mask_png, encode_mask_png, read_mask_bytes, read_mask_png,
                                              remove_mask_files, remove_quietly)
from floodlabel.core.store.mask_sidecar import MaskSidecar, sidecar_path, write_sidecar
from floodlabel.core.store.orphan_masks import OrphanKind, OrphanMask, RowInfo, newest_per_image, safe_stem
from floodlabel.core.store.proposals import PROPOSALS_DIR_NAME, ProposalRecord, ProposalTable
from floodlabel.core.store.records import ImageRecord, Status, record_from_row, to_json
from floodlabel.core.store.schema import SCHEMA_VERSION
from floodlabel.core.store.writer_lock import HELD_ELSEWHERE, LOCK_NAME, take_writer_lock, try_writer_lock

__all__ = ["DB_NAME", "LOCK_NAME", "MASKS_DIR_NAME", "PROJECT_DIR_NAME", "SCHEMA_VERSION", "ImageRecord",
           "OrphanMask", "ProjectStore", "ProposalRecord", "Status", "relative_image_path",
           "decode_mask_png", "default_project_dir", "encode_mask_png", "find_project_dir", "is_project_dir",
           "read_mask_bytes", "read_mask_png"]


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
        self.proposals_dir = self.project_dir / PROPOSALS_DIR_NAME
        self.read_only = read_only
        self.read_only_reason = "opened read-only" if read_only else ""
        self._lock = threading.RLock()
        self._file_lock = None
        self._conn: sqlite3.Connection | None = None
        self._last_image: str | None = None  # remember_image's latest (a read-only store keeps it only here)
        self.created = False
        """True when this open created the database (a new project, or one whose database was missing or empty)."""
        self.orphans: list[OrphanMask] = []
        """Mask PNGs no row points to, kept (see `orphan_masks`): `recover_orphans` restores the recoverable ones."""
        exists = self.db_path.is_file()
        if not exists and (read_only or not create):
            raise StoreError(f"no FloodLabel project at {self.project_dir}")
        if not read_only:
            self._file_lock, reason = take_writer_lock(self.project_dir, self.masks_dir)
            if self._file_lock is None:
                if not exists:
                    raise StoreError(f"cannot create a FloodLabel project at {self.project_dir}: {reason}")
                self.read_only, self.read_only_reason = True, reason
        try:
            self._conn = schema.connect(self.db_path, read_only=self.read_only)
            self.created = schema.check_or_create_schema(self._conn, self.db_path, read_only=self.read_only)
            self.data_root = self._resolve_data_root(data_root)
            self._images = ImageFiles(self.data_root)
            self._proposals = ProposalTable(self.project_dir, self._images, self._query, self._execute)
            self._scan_masks()
            self._proposals.open(read_only=self.read_only)
        except schema.EmptyProjectError as exc:
            self.close()
            kept = sorted(self.masks_dir.glob("*.png")) if self.masks_dir.is_dir() else []
            if not kept:
                raise
            command = shlex.join(["floodlabel", "recover", str(data_root or "DATA"), "--project",
                                  str(self.project_dir)])
            raise StoreError(f"the project database {self.db_path} is empty (lost after a crash?), but "
                             f"{len(kept)} accepted mask(s) are kept in {self.masks_dir}: run `{command}` to restore "
                             "them") from exc
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------------ reading

    def statuses(self) -> dict[str, Status]:
        """{relative path: status} of every image with a row or a pending proposal (images not listed are new).
        Database only."""
        rows = self._query("SELECT rel_path, status FROM images")
        statuses = {rel: Status(status) for rel, status in rows}
        for rel in self._proposals.rel_paths():
            statuses.setdefault(rel, Status.PROPOSED)
        return statuses

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
        rows = self._query(f"SELECT {schema.COLUMNS} FROM images WHERE rel_path = ?", (rel,))
        return self._to_record(rows[0]) if rows else None

    def records(self, status: Status | None = None) -> list[ImageRecord]:
        """Records of every stored image (or those with `status`), sorted by relative path."""
        where, params = ("WHERE status = ?", (str(status),)) if status else ("", ())
        rows = self._query(f"SELECT {schema.COLUMNS} FROM images {where} ORDER BY rel_path", params)
        return [self._to_record(row) for row in rows]

    def proposal(self, rel_path: str | os.PathLike[str]) -> ProposalRecord | None:
        """The image's proposal (None when it has none). Hashes the image file to set `changed`."""
        return self._proposals.record(self._rel(rel_path))

    def proposals(self, *, pending_only: bool = True) -> list[ProposalRecord]:
        """Stored proposals sorted by confidence, least confident first (the review order), then path. pending_only:
        only those whose image has no work yet (status "proposed")."""
        return self._proposals.records(pending_only=pending_only)

    def proposal_confidences(self) -> dict[str, float]:
        """{relative path: confidence} of the pending proposals (status "proposed"). Database only."""
        return self._proposals.confidences()

    def image_path(self, rel_path: str | os.PathLike[str]) -> Path:
        return self._images.path(rel_path)

    def image_hash(self, rel_path: str | os.PathLike[str]) -> str | None:
        """SHA-256 (hex) of the image file's bytes; None when it is missing. Cached per (size, mtime, inode)."""
        return self._images.hash(rel_path)

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

    def last_image(self) -> str | None:
        """The image the user was last on (`remember_image`): this store's latest, else the project's; None."""
        if self._last_image is not None:
            return self._last_image
        rows = self._query("SELECT value FROM meta WHERE key = ?", (resume.LAST_IMAGE_KEY,))
        return rows[0][0] if rows else None

    def resume_image(self, rel_paths: Iterable[str | os.PathLike[str]]) -> str | None:
        """The image to open (relative path): the one the user was last on when it is among `rel_paths` (the
        folder's images, in list order), else the first not accepted, else the first; None for no images."""
        return resume.resume_image([self._rel(p) for p in rel_paths], self.statuses(), self.last_image())

    # ------------------------------------------------------------------------------------------------ writing

    def remember_image(self, rel_path: str | os.PathLike[str]) -> None:
        """Note the image the user is on (selected, edited, accepted) for `resume_image`: one committed statement,
        at once. A read-only store keeps it in memory (written when it takes the writer lock)."""
        rel = self._rel(rel_path)
        self._last_image = rel
        if not self.read_only:
            self._execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (resume.LAST_IMAGE_KEY, rel))

    def save_progress(self, rel_path: str | os.PathLike[str], annotation_state: dict[str, Any] | None) -> None:
        """Autosave the current annotation state. A new image becomes "in progress"; an accepted one stays accepted
        (its accepted mask is kept) and is marked `edited_since_accept`."""
        self._require_writable()
        rel = self._rel(rel_path)
        state = to_json(annotation_state, "annotation state")
        image_hash, st = self._images.hash_and_stat(rel)
        now = time.time()
        self._execute(schema.UPSERT_PROGRESS,
                      (rel, str(Status.IN_PROGRESS), image_hash, st.st_size, st.st_mtime_ns, state, now, now))

    def propose(self, rel_path: str | os.PathLike[str], mask: np.ndarray, confidence: float,
                annotation_state: dict[str, Any] | None = None, *, model_id: str | None = None) -> bool:
        """Store a model's proposal for an image that has none and no work: `mask` ((H, W) bool, the image's native
        size after EXIF orientation), its confidence in [0, 1] and the annotation state that makes it. True when it
        was stored; False (nothing written) when the image already has a proposal, work in progress or an accepted
        mask: a proposal never replaces anything. Durable when it returns. Raises StoreError (read-only, wrong size,
        disk full, an older database opened read-only)."""
        self._require_writable()
        return self._proposals.propose(self._rel(rel_path), mask, confidence, annotation_state, model_id)

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
        mask, width, height = self._images.checked_mask(rel, mask, "accept")
        state = to_json(annotation_state, "annotation state")
        metrics_json = to_json(metrics, "metrics")
        if strokes_used is None:
            strokes_used = bool(isinstance(annotation_state, dict) and annotation_state.get("strokes"))
        image_hash, st = self._images.hash_and_stat(rel)

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
            remove_quietly(sidecar_path(self.masks_dir / name))
            raise StoreError(f"cannot save the mask of {rel} in {self.masks_dir}: {describe_os_error(exc)}; "
                             "the previously accepted mask is unchanged") from exc
        try:
            with self._lock:
                old = self._query("SELECT mask_file FROM images WHERE rel_path = ?", (rel,))
                self._execute(
                    schema.UPSERT_ACCEPTED,
                    (rel, str(Status.ACCEPTED), image_hash, st.st_size, st.st_mtime_ns, state, now, now, state,
                     image_hash, f"{MASKS_DIR_NAME}/{name}", sha256_bytes(png), width, height,
                     model_id, checkpoint_hash, metrics_json, int(strokes_used), now))
        except BaseException:
            remove_mask_files(self.masks_dir / name)
            raise
        if old and old[0][0] and old[0][0] != f"{MASKS_DIR_NAME}/{name}":
            # the committed row says the old mask is superseded (a crash here leaves it for the next open)
            remove_mask_files(self.project_dir / old[0][0])
        self._proposals.drop(rel)  # accepted now: the proposal is history (a crash here: removed at the next open)
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
                rels = [self._rel(rel) for rel in image_rel_paths]
                for rel, png in sorted(orphan_recovery.legacy_matches(legacy, rels, rows, restored).items()):
                    sidecar = orphan_recovery.legacy_sidecar(rel, png, self.image_path(rel), self._images.hash_and_stat)
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
        if self._file_lock is not None or self.read_only_reason != HELD_ELSEWHERE:
            return False
        lock = try_writer_lock(self.project_dir)
        if lock is None:
            return False
        with self._lock:
            try:
                conn = schema.connect_writable(self.db_path)
            except sqlite3.Error:
                lock.release()
                return False
            try:
                schema.migrate(conn)
            except sqlite3.Error:
                conn.close()
                lock.release()
                return False
            if self._conn is not None:
                self._conn.close()
            self._conn, self._file_lock = conn, lock
            self.read_only, self.read_only_reason = False, ""
            self._scan_masks()
            self._proposals.open(read_only=False)
            if self._last_image is not None:
                try:
                    self.remember_image(self._last_image)
                except StoreError:
                    pass  # only where to reopen; the next selection writes it again
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
        """Set `orphans`; when writable, delete what a killed process left (`orphan_recovery.scan_masks`)."""
        self.orphans = orphan_recovery.scan_masks(self.masks_dir, self._row_infos(), read_only=self.read_only)

    def _row_infos(self) -> dict[str, RowInfo]:
        return orphan_recovery.row_infos(self._query(orphan_recovery.ROW_INFO_QUERY), self.project_dir)

    def _restore_row(self, sidecar: MaskSidecar, mask_name: str) -> None:
        """Insert (or replace) an image's row as it was when `sidecar` was written; newer in-progress work stays."""
        current = self._query(orphan_recovery.CURRENT_ROW_QUERY, (sidecar.rel_path,))
        self._execute(schema.INSERT_ROW, orphan_recovery.restored_row(sidecar, mask_name,
                                                                      current[0] if current else None))

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"the project {self.project_dir} is read-only: {self.read_only_reason}")
        if self._conn is None:
            raise StoreError("the project store is closed")

    def _rel(self, rel_path: str | os.PathLike[str]) -> str:
        return self._images.rel(rel_path)

    def _to_record(self, row: tuple) -> ImageRecord:
        def current_hash(rel: str, stored: str, size: int | None, mtime_ns: int | None) -> str | None:
            return self._images.current_hash(rel, stored, size, mtime_ns, recorded_at=row[7])  # row[7]: updated_at

        return record_from_row(row, image_path=self.image_path(row[0]), project_dir=self.project_dir,
                               current_hash=current_hash)

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                raise StoreError("the project store is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the project database {self.db_path}: {exc}") from exc

    def _execute(self, sql: str, params: tuple = ()) -> int:
        """One statement in its own transaction, committed (and fsynced) when this returns; the rows it changed."""
        with self._lock:
            self._require_writable()
            assert self._conn is not None
            try:
                return self._conn.execute(sql, params).rowcount
            except sqlite3.Error as exc:
                reason = "the disk is full" if "full" in str(exc) else str(exc)
                raise StoreError(f"cannot write the project database {self.db_path}: {reason}") from exc

