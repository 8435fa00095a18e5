"""Datasets on disk: listing and pairing images with masks, reading images, image items, stats.

May import: floodlabel.core.common.
"""
