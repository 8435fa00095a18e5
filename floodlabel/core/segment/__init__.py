"""What every model family shares: the `Segmenter` protocol, the embedding cache, compute settings,
mask resizing, candidate thumbnails, and SAM's mask-decoder network evaluated per prompt (`two_way_decoder`, used by
SAM v1 and SAM 2.1).

May import: floodlabel.core.common, .data, .annotation.
"""
