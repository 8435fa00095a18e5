"""A seeded, randomly initialised SAM 2.1 for tests: hiera_tiny built from the config that ships in `sam2`
(the same code path as the real weights; random weights time like real ones), in memory or saved in the official
`{"model": state_dict}` layout (about 156 MB)."""

from __future__ import annotations

from pathlib import Path

import torch

from floodlabel.core.sam2.checkpoint import SIZES, LoadedSam2, build_sam2_model, save_sam2

TINY2 = SIZES["tiny"]


def tiny_sam2(seed: int = 0):
    """SAM2Base (hiera_tiny, random weights from `seed`), eval mode, float32, CPU. Builds in about 0.3 s."""
    torch.manual_seed(seed)
    return build_sam2_model(TINY2)


def tiny_loaded_sam2(seed: int = 0) -> LoadedSam2:
    """The same model as a LoadedSam2 with no file behind it (weights hash 'seed<seed>')."""
    return LoadedSam2(tiny_sam2(seed), TINY2, f"seed{seed}", None)


def tiny_sam2_checkpoint(path: Path, seed: int = 0) -> Path:
    """Write the seeded hiera_tiny as an official-layout checkpoint to `path` and return the path."""
    return save_sam2(tiny_sam2(seed), path)
