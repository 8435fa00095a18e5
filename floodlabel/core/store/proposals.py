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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from floodlabel.core.common.atomic_files import TEMP_PREFIX
from floodlabel.core.store.mask_files import read_mask_png, remove_quietly

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
