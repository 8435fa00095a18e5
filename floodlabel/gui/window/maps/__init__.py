"""The window on large maps: the full-resolution detail layer when zoomed in, and the tiled full-resolution refine of a
view-level mask (with the accepts that wait for it).

May import: floodlabel.core, floodlabel.gui.canvas, floodlabel.gui.workers and the window's mask_composition.
"""
