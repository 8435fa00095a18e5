"""SAM v1 (Meta's `segment_anything`): checkpoints (`checkpoint`: plain; `decoder_checkpoint`: fine-tuned decoder on
a plain base; `loading.load_sam`: either), the fast decoder, the segmenter behind the `Segmenter` protocol
(`backend`) and automatic masks. The shape a second family copies.

May import: floodlabel.core.common, .data, .annotation, .segment.
"""
