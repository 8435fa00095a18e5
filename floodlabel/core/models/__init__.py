"""Model names across families: the registry (what `--model` accepts), downloads, the segmentation
session (a segmenter with its embedding cache) and Auto.

May import: floodlabel.core.common, .data, .annotation, .segment, .classic, .sam.
"""
