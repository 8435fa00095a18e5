"""The image canvas: prediction and ground truth side by side, prompts, box and brush input.

May import: floodlabel.core (annotation), Qt, pyqtgraph.
"""
