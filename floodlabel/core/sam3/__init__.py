"""SAM 3 (Meta's `sam3` 0.1.4, image model only): the text-prompt family. Its sizes and builder (`architecture`),
the tokenizer's vocabulary from a package that ships it (`vocabulary`), checkpoints in the official facebook/sam3
layout (`checkpoint`), the few CUDA-only calls sam3 makes worked around on a CPU (`cpu_compat`), and the segmenter
behind the `Segmenter` and `TextSegmenter` protocols (`backend`): a phrase returns every instance; points and boxes
go through SAM 3's interactive predictor.

`sam3` is imported only when a SAM 3 model is built or run (packaging/setup_env.sh installs it with --no-deps: its
numpy<2.4 pin is not needed); without it, loading a SAM 3 file raises ModelError saying how to install it.

May import: floodlabel.core.common, .data, .annotation, .segment, .sam (its safe state-dict reader and weights hash).
"""
