"""SAM 2.1 (Meta's `sam2` package, image mode only): checkpoints (`checkpoint`: the official `{"model": state_dict}`
layout, size read from tensor shapes; `loading.load_sam2`), the fast decoder (`fast_decoder`), and the segmenter behind
the `Segmenter` protocol (`backend`). The same rooms as core/sam/, which it sits above: the SAM mask decoder's
two-way transformer is the same network in both families, so `fast_decoder` evaluates it with
core.segment.two_way_decoder (as core.sam.fast_decoder does), and `checkpoint` reuses core.sam's safe state-dict
reader and weights hash.

`sam2` is imported only when a SAM 2.1 model is built or run (it is installed by packaging/setup_env.sh, not by pip
from pyproject.toml); without it, loading a SAM 2.1 file raises ModelError saying how to install it.

May import: floodlabel.core.common, .data, .annotation, .segment, .sam.
"""
