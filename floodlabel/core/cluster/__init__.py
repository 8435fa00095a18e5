"""Scale-out: the Ray connection and batch embedding of a folder.

May import: floodlabel.core.common, .data, .annotation, .segment, .classic, .sam, .models.
"""
