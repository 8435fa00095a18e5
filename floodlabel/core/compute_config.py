"""Where and in what precision SAM runs. Chosen once from the hardware; overridable by environment.

FLOODLABEL_DEVICE     cpu | cuda | cuda:N        (default: cuda when available, else cpu)
FLOODLABEL_PRECISION  fp32 | bf16                (default: bf16 on CPUs with native bf16 (avx512_bf16/AMX) and on
                                                  CUDA GPUs that support it; fp32 elsewhere)

bf16 applies to the image encoder (autocast) and the big products of the mask decoder; their effect on masks is
measured in benchmarks/bench_engine.py and bounded in tests/test_sam_backend.py.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache

import torch


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
        names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
        return f"{self.device}, encoder {names[self.encoder_dtype]}, decoder {names[self.decoder_dtype]}"


def default_compute_config() -> ComputeConfig:
    """The fast configuration for this machine, unless the environment says otherwise."""
    device = os.environ.get("FLOODLABEL_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = os.environ.get("FLOODLABEL_PRECISION", "").lower()
    if precision not in ("", "fp32", "bf16"):
        precision = ""
    if not precision:
        precision = "bf16" if native_bf16(device) else "fp32"
    enc = torch.bfloat16 if precision == "bf16" else torch.float32
    # the decoder's bf16 path only pays off on CPUs; on GPUs it is fast enough in fp32
    dec = enc if torch.device(device).type == "cpu" else torch.float32
    return ComputeConfig(device=device, encoder_dtype=enc, decoder_dtype=dec)


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
