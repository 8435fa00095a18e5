"""How many bytes an Embedding holds in memory: its features plus the per-image state backends keep in `extra`.

What the embedding cache's memory bound counts. Counted: torch tensors (their storage, on any device), numpy arrays,
and what dicts, lists, tuples and dataclass instances hold (a backend's per-image decoder state is a dataclass of
tensors). Each distinct buffer is counted once, so views and tensors sharing a numpy array's memory are not counted
twice. Anything else (numbers, strings, other objects) counts nothing, so a state holding a reference to a model is
never charged for the model's weights.

Measured (float32 features, bf16 decoder state): SAM v1 (1, 256, 64, 64) features 4 MiB + fast-decoder state about
8 MiB; SAM 2.1 three maps 16 MiB + state about 14 MiB (fp32 decoder: about 22 MiB).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

from floodlabel.core.segment.segmenter import Embedding

__all__ = ["held_bytes"]

_MAX_DEPTH = 6


def held_bytes(embedding: Embedding) -> int:
    """Bytes of the arrays and tensors `embedding.features` and `embedding.extra` hold, each buffer once."""
    seen: set[tuple[str, int]] = set()
    return _walk(embedding.features, seen, 0) + _walk(embedding.extra, seen, 0)


def _walk(obj: Any, seen: set[tuple[str, int]], depth: int) -> int:
    if isinstance(obj, np.ndarray):
        return _once(seen, "host", int(obj.__array_interface__["data"][0]), int(obj.nbytes))
    torch = sys.modules.get("torch")  # a tensor means torch is loaded
    if torch is not None and isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        place = "host" if obj.device.type == "cpu" else str(obj.device)
        return _once(seen, place, int(storage.data_ptr()), int(storage.nbytes()))
    if depth >= _MAX_DEPTH:
        return 0
    if isinstance(obj, dict):
        return sum(_walk(v, seen, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_walk(v, seen, depth + 1) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(_walk(getattr(obj, f.name), seen, depth + 1) for f in dataclasses.fields(obj))
    return 0


def _once(seen: set[tuple[str, int]], place: str, address: int, nbytes: int) -> int:
    """nbytes the first time a buffer at (place, address) is met, 0 after (a 0 address: an empty buffer)."""
    key = (place, address)
    if address == 0 or key in seen:
        return 0
    seen.add(key)
    return nbytes
