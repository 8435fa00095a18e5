"""What the store knows about one image: its `Status`, its `ImageRecord`, and the conversion of a database row
(the columns of `schema.COLUMNS`) into a record."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from floodlabel.core.common.errors import StoreError
from floodlabel.core.store.mask_files import read_mask_png


class Status(StrEnum):
    """An image's status. PROPOSED: a model's proposal waits for review (`proposals.py`); it is never accepted work."""

    NEW = "new"
    PROPOSED = "proposed"
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


def record_from_row(row: tuple, *, image_path: Path, project_dir: Path,
                    current_hash: Callable[[str, str, int | None, int | None], str | None]) -> ImageRecord:
    """The record of one row (columns in `schema.COLUMNS` order). image_path: the image's file; current_hash:
    (rel, stored hash, stored size, stored mtime_ns) -> the file's hash now (None: missing)."""
    (rel, status, image_hash, image_bytes, mtime_ns, state_json, created_at, updated_at, edited,
     accepted_state_json, accepted_image_hash, mask_file, mask_sha256, mask_w, mask_h, model_id,
     checkpoint_hash, metrics_json, strokes_used, accepted_at) = row
    return ImageRecord(
        rel_path=rel, status=Status(status), image_path=image_path, image_hash=image_hash,
        current_hash=current_hash(rel, image_hash, image_bytes, mtime_ns),
        annotation_state=from_json(state_json), updated_at=updated_at,
        accepted_state=from_json(accepted_state_json), accepted_image_hash=accepted_image_hash,
        mask_path=project_dir / mask_file if mask_file else None,
        mask_size=(mask_w, mask_h) if mask_file else None, mask_sha256=mask_sha256, model_id=model_id,
        checkpoint_hash=checkpoint_hash, metrics=from_json(metrics_json), strokes_used=bool(strokes_used),
        accepted_at=accepted_at, created_at=created_at, edited_since_accept=bool(edited))


def to_json(value: Any, what: str) -> str | None:
    """`value` as compact JSON for a column (None stays NULL); StoreError naming `what` when it cannot be."""
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"the {what} cannot be saved as JSON: {exc}") from exc


def from_json(text: str | None) -> Any:
    """A JSON column's value (NULL -> None)."""
    return None if text is None else json.loads(text)
