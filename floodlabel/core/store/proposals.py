"""Proposals: masks a model made on its own (`floodlabel propose`: SAM 3's text prompt for a whole folder), waiting for
a person to review them. Kept apart from accepted work so they are never mixed up with it.

A proposal is a row of the `proposals` table (schema version 2) and a PNG in `proposals/` (0/255, one channel, the
image's native size after EXIF orientation, the format of accepted masks). An image's status is "proposed" while it
has a proposal and no row in `images`; autosaved work makes it "in progress" and an accept makes it "accepted" (the
proposal is deleted then). Export, fine-tuning, evaluation and stats read accepted masks only, from `images`: a
proposal never reaches them.

Crash safety: the PNG is written atomically before its row; a PNG no row points to (a process killed between the
two, or an accept killed before the delete) is removed when the project is next opened for writing
(`remove_stray_files`): a proposal can always be made again, an accepted mask never lives here.

`ProposalTable` is the project store's part that reads and writes the table (ProjectStore's `propose`, `proposal`,
`proposals` and `proposal_confidences` call it).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from floodlabel.core.common.atomic_files import TEMP_PREFIX, describe_os_error, write_atomic
from floodlabel.core.common.errors import StoreError
from floodlabel.core.common.hashing import sha256_bytes
from floodlabel.core.store.image_files import ImageFiles
from floodlabel.core.store.mask_files import encode_mask_png, read_mask_png, remove_quietly
from floodlabel.core.store.orphan_masks import safe_stem
from floodlabel.core.store.records import from_json, to_json

PROPOSALS_DIR_NAME = "proposals"

TABLE = """
CREATE TABLE proposals (
    rel_path TEXT PRIMARY KEY,                -- POSIX path relative to the dataset folder
    image_hash TEXT NOT NULL,                 -- SHA-256 of the image bytes the proposal was made on
    image_bytes INTEGER, image_mtime_ns INTEGER,
    mask_file TEXT NOT NULL, mask_sha256 TEXT NOT NULL, mask_width INTEGER NOT NULL, mask_height INTEGER NOT NULL,
    confidence REAL NOT NULL,                 -- in [0, 1]; for a text prompt the mean score of the kept instances
    state_json TEXT,                          -- the annotation state that makes it (phrase, threshold, dropped)
    model_id TEXT, created_at REAL NOT NULL
);
"""

COLUMNS = "rel_path, image_hash, image_bytes, image_mtime_ns, mask_file, mask_sha256, mask_width, mask_height, confidence, state_json, model_id, " \
          "created_at"

INSERT_NEW = (f"INSERT INTO proposals ({COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
              "WHERE NOT EXISTS (SELECT 1 FROM images WHERE rel_path = ?) ON CONFLICT(rel_path) DO NOTHING")
"""A new proposal: written only when the image has neither a proposal nor any work (in progress or accepted)."""


@dataclass(frozen=True)
class ProposalRecord:
    """One stored proposal. mask_size is (width, height); created_at is Unix seconds.

    pending: the image has no work yet (its status is "proposed"); False once it is in progress.
    changed: the image's bytes differ from those the proposal was made on (never matched to the new pixels).
    """

    rel_path: str
    image_hash: str
    mask_path: Path
    mask_sha256: str
    mask_size: tuple[int, int]
    confidence: float
    annotation_state: dict[str, Any] | None
    model_id: str | None
    created_at: float
    pending: bool = True
    current_hash: str | None = None
    _mask_cache: list = field(default_factory=list, repr=False, compare=False)

    @property
    def changed(self) -> bool:
        return self.current_hash is not None and self.current_hash != self.image_hash

    @property
    def phrase(self) -> str | None:
        """The text prompt's phrase the proposal came from, if its state has one."""
        text = ((self.annotation_state or {}).get("prompt") or {}).get("text")
        return text.get("phrase") if isinstance(text, dict) else None

    def load_mask(self) -> np.ndarray:
        """The proposed mask, (H, W) bool at the image's native size, checked against its SHA-256 (StoreError)."""
        if not self._mask_cache:
            self._mask_cache.append(read_mask_png(self.mask_path, self.rel_path, self.mask_sha256))
        return self._mask_cache[0]


class ProposalTable:
    """The proposals of one project, read and written through the store's database calls.

    query / execute: the store's (serialised on its connection; execute commits, fsynced, and returns the rows it
    changed). The caller checks that the store is writable before `propose`, `drop` and `open(read_only=False)`.
    """

    def __init__(self, project_dir: Path, images: ImageFiles, query: Callable[[str, tuple], list[tuple]],
                 execute: Callable[[str, tuple], int]) -> None:
        self.project_dir = project_dir
        self.folder = project_dir / PROPOSALS_DIR_NAME
        self.available = False  # the database has the table (an older one opened read-only has not)
        self._images = images
        self._query = query
        self._execute = execute

    def open(self, *, read_only: bool) -> None:
        """Note whether the table exists; when writable, delete proposal files no row names."""
        self.available = bool(self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                          ("proposals",)))
        if self.available and not read_only:
            referenced = {Path(f).name for (f,) in self._query("SELECT mask_file FROM proposals", ())}
            remove_stray_files(self.folder, referenced)

    def rel_paths(self) -> list[str]:
        """Every image with a proposal, pending or not. Database only."""
        return [rel for (rel,) in self._query("SELECT rel_path FROM proposals", ())] if self.available else []

    def record(self, rel: str) -> ProposalRecord | None:
        """The image's proposal (None when it has none). Hashes the image file to set `changed`."""
        found = self._rows("WHERE p.rel_path = ?", (rel,))
        return found[0] if found else None

    def records(self, *, pending_only: bool = True) -> list[ProposalRecord]:
        """Stored proposals, least confident first (the review order), then path; pending_only: status "proposed"."""
        found = self._rows("WHERE i.rel_path IS NULL" if pending_only else "", ())
        return sorted(found, key=lambda p: (p.confidence, p.rel_path))

    def confidences(self) -> dict[str, float]:
        """{relative path: confidence} of the pending proposals (status "proposed"). Database only."""
        if not self.available:
            return {}
        return dict(self._query("SELECT p.rel_path, p.confidence FROM proposals p LEFT JOIN images i "
                                "ON i.rel_path = p.rel_path WHERE i.rel_path IS NULL", ()))

    def propose(self, rel: str, mask: np.ndarray, confidence: float, annotation_state: dict[str, Any] | None,
                model_id: str | None) -> bool:
        """Store a proposal for an image with none and no work (ProjectStore.propose says more); True when stored."""
        confidence = float(confidence)
        if not 0.0 <= confidence <= 1.0:
            raise StoreError(f"a proposal's confidence must be in [0, 1], not {confidence}")
        if self._query("SELECT 1 FROM images WHERE rel_path = ? UNION ALL SELECT 1 FROM proposals WHERE rel_path = ?",
                       (rel, rel)):
            return False
        mask, width, height = self._images.checked_mask(rel, mask, "propose")
        state = to_json(annotation_state, "annotation state")
        image_hash, st = self._images.hash_and_stat(rel)
        png = encode_mask_png(mask)
        name = f"{safe_stem(rel)}-{secrets.token_hex(6)}.png"
        try:
            self.folder.mkdir(exist_ok=True)
            write_atomic(self.folder / name, png)
        except OSError as exc:
            raise StoreError(f"cannot save the proposal of {rel} in {self.folder}: {describe_os_error(exc)}") from exc
        try:
            added = self._execute(INSERT_NEW, (
                rel, image_hash, st.st_size, st.st_mtime_ns, f"{PROPOSALS_DIR_NAME}/{name}", sha256_bytes(png), width,
                height, confidence, state, model_id, time.time(), rel))
        except BaseException:
            remove_quietly(self.folder / name)
            raise
        if not added:
            remove_quietly(self.folder / name)
        return bool(added)

    def drop(self, rel: str) -> None:
        """Delete the image's proposal, row first, then its file (a crash between: removed at the next open)."""
        if not self.available:
            return
        rows = self._query("SELECT mask_file FROM proposals WHERE rel_path = ?", (rel,))
        if rows:
            self._execute("DELETE FROM proposals WHERE rel_path = ?", (rel,))
            remove_quietly(self.project_dir / rows[0][0])

    def _rows(self, where: str, params: tuple) -> list[ProposalRecord]:
        if not self.available:
            return []
        cols = ", ".join(f"p.{c.strip()}" for c in COLUMNS.split(","))
        rows = self._query(f"SELECT {cols}, i.rel_path IS NULL FROM proposals p "
                           f"LEFT JOIN images i ON i.rel_path = p.rel_path {where}", params)
        out = []
        for rel, image_hash, size, mtime_ns, mask_file, sha, w, h, conf, state_json, model_id, created, pending \
                in rows:
            current = self._images.current_hash(rel, image_hash, size, mtime_ns, recorded_at=created)
            out.append(ProposalRecord(rel, image_hash, self.project_dir / mask_file, sha, (w, h), float(conf),
                                      from_json(state_json), model_id, created, bool(pending), current))
        return out


def remove_stray_files(folder: Path, referenced: set[str]) -> list[Path]:
    """Delete the PNGs (and temporary files) in `folder` no proposal row names (`referenced`: file names); returns
    what was deleted. Only for a writable store holding the writer lock."""
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        if path.is_file() and (path.name.startswith(TEMP_PREFIX)
                               or (path.suffix == ".png" and path.name not in referenced)):
            remove_quietly(path)
            removed.append(path)
    return removed
