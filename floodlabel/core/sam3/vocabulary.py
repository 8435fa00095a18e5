"""The BPE vocabulary SAM 3's tokenizer needs, without a network call: the copy that `open_clip_torch`'s wheel ships.

`sam3` 0.1.4's wheel leaves out `assets/bpe_simple_vocab_16e6.txt.gz` (its builder looks for it beside the
package); OpenAI's CLIP vocabulary is the same file in both projects. `bpe_path()` checks the packaged copy's
SHA-256 against the one in Meta's sam3 source tree (sam3/assets/bpe_simple_vocab_16e6.txt.gz, 1,356,917 bytes),
so a different vocabulary never tokenizes silently. The hash is checked once per process.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

from floodlabel.core.common.errors import ModelError

FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"  # Meta's sam3 assets/ copy
SIZE_BYTES = 1_356_917
PROVIDER = "open_clip"  # import name of open_clip_torch


@functools.lru_cache(maxsize=1)
def bpe_path() -> str:
    """The verified vocabulary file's path. ModelError when open_clip_torch is not installed or its copy differs."""
    spec = importlib.util.find_spec(PROVIDER)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("SAM 3's tokenizer vocabulary comes from open_clip_torch, which is not installed: "
                         ".venv/bin/pip install --no-deps open_clip_torch (or bash packaging/setup_env.sh)")
    path = Path(next(iter(spec.submodule_search_locations))) / FILE_NAME
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelError(f"SAM 3's tokenizer vocabulary {path} cannot be read: {exc.strerror or exc}") from None
    if digest != SHA256:
        raise ModelError(f"SAM 3's tokenizer vocabulary {path} is not the one sam3 was trained with "
                         f"(SHA-256 {digest[:16]}..., expected {SHA256[:16]}...)")
    return str(path)
