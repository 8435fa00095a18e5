"""One entry point for a SAM 2.1 checkpoint file: the official layout, or a fine-tuned decoder on such a base.

A fine-tuned decoder is core/sam/decoder_checkpoint's format with family "sam2.1" (told apart by the file's
content, as core/sam/loading.py does for SAM v1): its base is found by SHA-256 (`--base`, the recorded path, the
models folder) and refused when the hash differs; the decoder (and prompt-encoder) weights replace the base's.
"""

from __future__ import annotations

import os
from pathlib import Path

from floodlabel.core.sam.decoder_checkpoint import (DecoderCheckpoint, check_family, find_base,
                                                    is_decoder_checkpoint_file, load_weights, read_decoder_checkpoint)
from floodlabel.core.common.hashing import sha256_file_memoised
from floodlabel.core.sam2.checkpoint import LoadedSam2, load_plain_sam2

SAM2_FAMILY = "sam2.1"  # a fine-tuned checkpoint's family field (registry.SAM2)


def load_sam2(path: str | os.PathLike, bases=()) -> LoadedSam2:
    """Read, validate and build a SAM 2.1 from a checkpoint file (plain or fine-tuned). ModelError on any problem.

    bases: candidate base files for a fine-tuned decoder (default: decoder_checkpoint.use_base_checkpoints')."""
    p = Path(path)
    if is_decoder_checkpoint_file(p):
        p = p.expanduser().resolve()
        checkpoint = read_decoder_checkpoint(p)
        check_family(checkpoint, SAM2_FAMILY, p)
        return apply_sam2_checkpoint(load_plain_sam2(find_base(checkpoint.base, bases, p)), checkpoint, p)
    return load_plain_sam2(p)


def apply_sam2_checkpoint(base: LoadedSam2, checkpoint: DecoderCheckpoint, path: Path) -> LoadedSam2:
    """The checkpoint's weights loaded into `base.model` (in place), returned as a fine-tuned LoadedSam2.
    ModelError when `base` is not the checkpoint's base (SHA-256 of its file) or the weights do not fit."""
    check_family(checkpoint, SAM2_FAMILY, path)
    model = base.model
    load_weights(checkpoint, path, base, model.sam_mask_decoder, model.sam_prompt_encoder)
    model.eval()
    return LoadedSam2(model, base.architecture, base.weights_hash, base.path, decoder_path=path,
                      decoder_hash=sha256_file_memoised(path)[:16])
