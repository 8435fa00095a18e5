"""The annotation window and its collaborators (project side, model side, segmentation, compare).

May import: floodlabel.core, the other gui packages.
"""
