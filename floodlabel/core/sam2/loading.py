"""One entry point for a SAM 2.1 checkpoint file (official layout). Fine-tuned SAM 2.1 decoders come later
(issue 15.6); they will be told apart here by the file's content, as core/sam/loading.py does for SAM v1."""

from __future__ import annotations

import os

from floodlabel.core.sam2.checkpoint import LoadedSam2, load_plain_sam2


def load_sam2(path: str | os.PathLike) -> LoadedSam2:
    """Read, validate and build a SAM 2.1 from a checkpoint file. Raises ModelError on any problem."""
    return load_plain_sam2(path)
