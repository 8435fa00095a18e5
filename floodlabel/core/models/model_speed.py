"""How long an image embedding takes on this machine, per model file and compute setting: what "about N s per image
here" in a model list needs (issue 15.7). Sessions opened by name or path record every embedding they compute
(`SegmentationSession.open`); the Models panel can ask `embed_seconds_here(name)` before a model is loaded again.

Kept in `<cache>/embed_speeds.json`: {key: [the last MAX_SAMPLES seconds]}, key = "<checkpoint path>|<compute label>"
(the label names device and precisions, which change the time). Written atomically, last writer wins: a lost sample
from a concurrent process costs nothing. Any read or write problem is ignored (the figure is a hint, not data).
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from floodlabel.core.common.atomic_files import atomic_writer
from floodlabel.core.common.paths import cache_dir

MAX_SAMPLES = 5
FILE_NAME = "embed_speeds.json"


def speed_key(checkpoint: str | os.PathLike, compute_label: str) -> str:
    return f"{Path(checkpoint).resolve()}|{compute_label}"


def record_embed_seconds(key: str, seconds: float) -> None:
    """Add one measured embedding time (seconds of encoder work, pauses excluded) under `key`."""
    if not (seconds > 0):
        return
    data = _read()
    samples = [*data.get(key, []), round(float(seconds), 4)][-MAX_SAMPLES:]
    data[key] = samples
    try:
        with atomic_writer(cache_dir() / FILE_NAME, durable=False) as f:
            f.write(json.dumps(data).encode())
    except OSError:
        pass


def embed_seconds(key: str) -> float | None:
    """The median of the recent embedding times under `key`, or None when none was measured."""
    samples = [s for s in _read().get(key, []) if isinstance(s, (int, float)) and s > 0]
    return float(statistics.median(samples)) if samples else None


def embed_seconds_here(name_or_path: str | os.PathLike, compute_label: str | None = None) -> float | None:
    """embed_seconds for a registered name or checkpoint file with this machine's default compute setting (or the
    given label); None when it is not downloaded or was never run here."""
    from floodlabel.core.common.errors import FloodLabelError
    from floodlabel.core.models.registry import resolve_checkpoint

    try:
        path = resolve_checkpoint(name_or_path)
        if compute_label is None:
            from floodlabel.core.segment.compute_config import default_compute_config

            compute_label = default_compute_config().describe()
    except FloodLabelError:
        return None
    return embed_seconds(speed_key(path, compute_label))


REFERENCE_SECONDS: dict[str, tuple[float, str]] = {
    # benchmarks/bench_sam3.py, 2026-12-02, 893x551, bf16 encoder, random weights: 24.0 s ViT trunk + 7.2 s first
    # text prompt (neck included); vit_b's embedding 8.5 s in the same run
    "sam3": (31.2, "measured on a 2-core VM without a GPU (benchmarks/bench_sam3.py: embedding 24 s + first text "
                   "prompt 7 s; vit_b's embedding 8.5 s in the same run)"),
}
"""Figures measured elsewhere, for a model not run here yet: name -> (seconds from an image to its result, where
it was measured). Filled below from benchmarks/bench_sam3.py."""


def reference_seconds(name: str) -> tuple[float, str] | None:
    """(seconds, where measured) for a registered model whose time here is not known yet, or None."""
    return REFERENCE_SECONDS.get(name)


def _read() -> dict[str, list]:
    try:
        data = json.loads((cache_dir() / FILE_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
