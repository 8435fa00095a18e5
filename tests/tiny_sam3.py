"""A seeded, randomly initialised, reduced SAM 3 for tests: built from Meta's `sam3` classes by the same builder
as the real model (core/sam3/architecture.build_sam3_model), with small widths and depths (TINY3: about 5.6 M
parameters, 3.2 M of them the text vocabulary's embedding; the real one has 861 M). The input frame (1008), the
patch (14) and so the 72x72 grid and the 288 / 144 / 72 pyramid are SAM 3's own. In memory or saved in the
official layout (about 23 MB).

Helper functions for other tests:
    tiny_sam3_segmenter(seed)             -> a Sam3Segmenter (TextSegmenter) on the seeded model, no file
    tiny_sam3_checkpoint(path, seed)      -> an official-layout checkpoint file (`SegmentationSession.open(path)`
                                             and `load_segmenter(path)` accept it, as they accept a real sam3.pt)
"""

from __future__ import annotations

from pathlib import Path

import torch

from floodlabel.core.sam3.architecture import Sam3Architecture, build_sam3_model
from floodlabel.core.sam3.checkpoint import LoadedSam3, save_sam3
from floodlabel.core.sam3.vocabulary import bpe_path

TINY3 = Sam3Architecture(vit_dim=64, vit_depth=4, vit_mlp=128, text_width=64, text_layers=1, d_model=64, ffn=128,
                         encoder_layers=1, decoder_layers=1, num_queries=16, geometry_layers=1, tracker_mem_dim=16)


def tiny_sam3(seed: int = 0):
    """Sam3Image of TINY3 with its interactive predictor (random weights from `seed`), eval mode, float32, CPU."""
    torch.manual_seed(seed)
    return build_sam3_model(TINY3, bpe_path())


def tiny_loaded_sam3(seed: int = 0) -> LoadedSam3:
    """The same model as a LoadedSam3 with no file behind it (weights hash 'seed<seed>')."""
    return LoadedSam3(tiny_sam3(seed), TINY3, f"seed{seed}", None)


def tiny_sam3_segmenter(seed: int = 0, config=None):
    """A Sam3Segmenter on the seeded TINY3 (fp32 unless `config` says otherwise)."""
    from floodlabel.core.sam3.backend import Sam3Segmenter
    from floodlabel.core.segment.compute_config import ComputeConfig

    return Sam3Segmenter(tiny_loaded_sam3(seed), config or ComputeConfig())


def tiny_sam3_checkpoint(path: Path, seed: int = 0) -> Path:
    """Write the seeded TINY3 as an official-layout checkpoint ({"model": {"detector.*", "tracker.*"}})."""
    return save_sam3(tiny_sam3(seed), path)
