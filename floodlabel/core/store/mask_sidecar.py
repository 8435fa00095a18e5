"""The small JSON file written beside every accepted mask PNG: enough to rebuild the mask's database row.

`masks/<stem>-<12 hex>.png` gets `masks/<stem>-<12 hex>.json` with the image's relative path and hash, the annotation
state (prompts, strokes), model, metrics and the mask's SHA-256. The project database stays the source of truth;
the sidecar is what recovery (`floodlabel recover`) reads when the database was damaged, emptied or moved away.
It is written atomically before the PNG, so every PNG of this format has its sidecar.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from floodlabel.core.common.atomic_files import write_atomic

SIDECAR_FORMAT = 1
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class MaskSidecar:
    """What a mask's row holds at accept. Sizes in pixels of the image's native size after EXIF orientation;
    times are Unix seconds; hashes are SHA-256 hex."""

    rel_path: str
    image_hash: str
    image_bytes: int | None
    image_mtime_ns: int | None
    mask_sha256: str
    mask_width: int
    mask_height: int
    accepted_at: float
    state: dict[str, Any] | None = None
    model_id: str | None = None
    checkpoint_hash: str | None = None
    metrics: dict[str, Any] | None = None
    strokes_used: bool = False

    def to_bytes(self) -> bytes:
        return json.dumps({"format": SIDECAR_FORMAT, **asdict(self)}, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")


def sidecar_path(png: Path) -> Path:
    """The sidecar of a mask PNG: the same name with `.json`."""
    return png.with_suffix(SIDECAR_SUFFIX)


def write_sidecar(png: Path, sidecar: MaskSidecar) -> None:
    """Write the sidecar of `png` atomically and durably. Raises OSError."""
    write_atomic(sidecar_path(png), sidecar.to_bytes())


def read_sidecar(png: Path) -> MaskSidecar | None:
    """The sidecar of `png`; None when it is missing, unreadable or not one this version understands."""
    try:
        data = json.loads(sidecar_path(png).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.pop("format", None) != SIDECAR_FORMAT:
            return None
        sidecar = MaskSidecar(**data)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(sidecar.rel_path, str) or not sidecar.rel_path or ".." in Path(sidecar.rel_path).parts \
            or os.path.isabs(sidecar.rel_path):
        return None
    return sidecar
