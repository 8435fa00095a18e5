"""A tiny, seeded, randomly initialised SAM for tests (same code path as vit_b, smaller encoder)."""

from __future__ import annotations

from pathlib import Path

import torch

from floodlabel.core.sam.checkpoint import SamArchitecture, build_sam, save_sam

TINY = SamArchitecture(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,))


def tiny_sam(seed: int = 0):
    torch.manual_seed(seed)
    return build_sam(TINY)


def tiny_sam_checkpoint(path: Path, seed: int = 0) -> Path:
    """Write a tiny SAM state dict to `path` (about 17 MB) and return the path."""
    return save_sam(tiny_sam(seed), path)
