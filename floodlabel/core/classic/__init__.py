"""The offline classic family (OpenCV GrabCut behind the `Segmenter` protocol): no weights.

May import: floodlabel.core.common, .data, .annotation, .segment.
"""
