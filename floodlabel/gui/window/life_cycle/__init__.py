"""The window's project life cycle: a folder's project opened and the previous one closed off the UI thread (each
closing only after the accepts it still owes are saved), waits that keep the UI alive, and an accept made before
its mask was ready that outlives the image it was made on.

May import: floodlabel.core, floodlabel.gui.workers, and the window's store_link, decode_jobs, mask_composition and
maps.tiled_refine.
"""
