"""FloodLabel: label flood water in photos with Segment Anything."""

__version__ = "0.1.0"
