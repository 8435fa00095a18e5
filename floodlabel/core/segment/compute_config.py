"""Where and in what precision SAM runs. Chosen once from the hardware; overridable by environment.

FLOODLABEL_DEVICE     cpu | cuda | cuda:N        (default: cuda when available, else cpu)
FLOODLABEL_PRECISION  fp32 | bf16                (default: bf16 on CPUs with native bf16 (avx512_bf16/AMX) and on
                                                  CUDA GPUs that support it; fp32 elsewhere)

Any other value of either variable raises ComputeConfigError (one line naming the accepted values); the CLI prints
it and exits with status 2.

bf16 applies to the image encoder (autocast) and the big products of the mask decoder; their effect on masks is
measured in benchmarks/bench_engine.py and bounded in tests/test_sam_backend.py.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache

import torch

from floodlabel.core.common.errors import FloodLabelError

PRECISIONS = ("fp32", "bf16")
_DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


class ComputeConfigError(FloodLabelError):
    """FLOODLABEL_DEVICE or FLOODLABEL_PRECISION has a value that is not accepted."""


@dataclass(frozen=True)
class ComputeConfig:
    device: str = "cpu"
    encoder_dtype: torch.dtype = torch.float32
    decoder_dtype: torch.dtype = torch.float32

    def encoder_autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for the image encoder (a no-op in fp32)."""
        if self.encoder_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.encoder_dtype)

    def describe(self) -> str:
        return f"{self.device}, encoder {_dtype_name(self.encoder_dtype)}, decoder {_dtype_name(self.decoder_dtype)}"

    def encoder_cache_id(self, model_id: str) -> str:
        """The embedding cache's model key: `model_id` plus what changes the encoder's features, its precision and
        the device type, e.g. "sam-vit_b-0123456789abcdef@enc-bf16-cpu". bf16 and fp32 features differ (by ~0.007
        on average), so an fp32 session is never served a bf16 run's embeddings, nor the other way round."""
        return f"{model_id}@enc-{_dtype_name(self.encoder_dtype)}-{torch.device(self.device).type}"


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def environment_overrides() -> tuple[str | None, str | None]:
    """(device, precision) from FLOODLABEL_DEVICE / FLOODLABEL_PRECISION, None where unset or empty.

    Raises ComputeConfigError for any other value than cpu | cuda | cuda:N and fp32 | bf16 (case and surrounding
    spaces ignored). Reads only the environment: no torch call, no device check.
    """
    device = os.environ.get("FLOODLABEL_DEVICE", "").strip().lower() or None
    precision = os.environ.get("FLOODLABEL_PRECISION", "").strip().lower() or None
    if device is not None and not _DEVICE_PATTERN.fullmatch(device):
        raise ComputeConfigError(f"FLOODLABEL_DEVICE={os.environ['FLOODLABEL_DEVICE']!r} is not accepted: "
                                 "use cpu, cuda or cuda:N (N = GPU index), or leave it unset")
    if precision is not None and precision not in PRECISIONS:
        raise ComputeConfigError(f"FLOODLABEL_PRECISION={os.environ['FLOODLABEL_PRECISION']!r} is not accepted: "
                                 f"use {' or '.join(PRECISIONS)}, or leave it unset")
    return device, precision


def default_compute_config() -> ComputeConfig:
    """The fast configuration for this machine, unless the environment says otherwise (ComputeConfigError for a
    value that is not accepted, or a CUDA device torch cannot see)."""
    device, precision = environment_overrides()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            seen = torch.cuda.device_count() if torch.cuda.is_available() else 0
            raise ComputeConfigError(f"FLOODLABEL_DEVICE={device} but torch sees {seen} CUDA GPU(s): "
                                     "use cpu, or a GPU that is there")
    if not precision:
        precision = "bf16" if native_bf16(device) else "fp32"
    enc = torch.bfloat16 if precision == "bf16" else torch.float32
    # the decoder's bf16 path only pays off on CPUs; on GPUs it is fast enough in fp32
    dec = enc if torch.device(device).type == "cpu" else torch.float32
    return ComputeConfig(device=device, encoder_dtype=enc, decoder_dtype=dec)


PROCESS_THREADS = torch.get_num_threads()
"""torch's intra-op threads of this process as it started (what `threads_here(None)` goes back to)."""


def threads_here(n: int | None) -> None:
    """Set torch's intra-op threads for the calling thread only (OpenMP keeps the count per thread); None: the
    process's own count. The window's decode thread uses 1 beside a child that holds the other core and cannot be
    stopped (`core.common.background_work`): with 2, each decode's OpenMP barrier waited on the core the child was
    on (decode 52 -> 724 ms, 1 thread: 32 ms; benchmarks/bench_prefetch.py)."""
    want = PROCESS_THREADS if n is None else max(1, int(n))
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)


@lru_cache(maxsize=None)
def native_bf16(device: str = "cpu") -> bool:
    """True where bf16 matmuls run natively (CPU: avx512_bf16 / AMX via oneDNN; CUDA: Ampere or newer)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:  # not Linux: stay with fp32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
