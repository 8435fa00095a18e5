"""What every model family shares: the `Segmenter` protocol, the embedding cache, compute settings,
mask resizing and candidate thumbnails.

May import: floodlabel.core.common, .data, .annotation.
"""
