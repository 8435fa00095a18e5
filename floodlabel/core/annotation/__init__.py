"""One image's annotation as a Qt-free object: prompts, the chosen candidate, brush strokes and
undo/redo. The window renders it; the store saves it.

May import: floodlabel.core.common.
"""
