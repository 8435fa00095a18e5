"""One entry point for any SAM checkpoint file: a plain (official-format) state dict or a fine-tuned decoder.

Imports go one way: checkpoint (plain) <- decoder_checkpoint (fine-tuned, loaded onto a plain base) <- loading
(picks one by the file's content, never its name).
"""

from __future__ import annotations

import os
from pathlib import Path

from floodlabel.core.sam.checkpoint import LoadedSam, load_plain_sam
from floodlabel.core.sam.decoder_checkpoint import is_decoder_checkpoint_file, load_finetuned


def load_sam(path: str | os.PathLike) -> LoadedSam:
    """Read, validate and build a SAM from a checkpoint file. Raises ModelError on any problem.

    A fine-tuned decoder checkpoint is loaded onto its base, found by SHA-256 (`decoder_checkpoint.load_finetuned`,
    honouring `use_base_checkpoints`); any other file is read as a plain SAM state dict (`load_plain_sam`).
    """
    p = Path(path)
    if is_decoder_checkpoint_file(p):
        return load_finetuned(p)
    return load_plain_sam(p)
