"""Scale-out: the Ray connection, batch embedding of a folder and batch proposals (`batch_propose`: a text prompt on
every image, stored as proposals).

May import: floodlabel.core.common, .data, .annotation, .segment, .classic, .sam, .models, .store.
"""
