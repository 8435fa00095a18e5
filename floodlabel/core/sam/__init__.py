"""SAM v1 (Meta's `segment_anything`): checkpoints (plain and fine-tuned decoder), the fast decoder, the
segmenter behind the `Segmenter` protocol and automatic masks. The shape a second family copies.

May import: floodlabel.core.common, .data, .annotation, .segment.
"""
