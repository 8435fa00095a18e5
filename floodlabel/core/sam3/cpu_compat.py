"""What sam3 0.1.4 needs to run without CUDA (it was written for GPUs; Meta's repository has the same code).

- `SequenceGeometryEncoder._encode_boxes`, which every text prompt runs (with zero boxes), calls
  `Tensor.pin_memory()`, which raises without an NVIDIA driver. Pinned memory only speeds up copies to a GPU, so
  where CUDA is unavailable `no_pin_memory()` makes it return the tensor itself for the duration of a call.
- The builder's precomputed position encodings and box-bias coordinates are made on "cuda": see
  architecture.build_sam3_model, which builds without them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

_lock = threading.Lock()
_depth = 0
_original = torch.Tensor.pin_memory


@contextlib.contextmanager
def no_pin_memory() -> Iterator[None]:
    """While inside (any thread), Tensor.pin_memory() is the identity when CUDA is unavailable; unchanged
    otherwise. Re-entrant; restored when the last user leaves."""
    global _depth
    if torch.cuda.is_available():
        yield
        return
    with _lock:
        _depth += 1
        torch.Tensor.pin_memory = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                torch.Tensor.pin_memory = _original
