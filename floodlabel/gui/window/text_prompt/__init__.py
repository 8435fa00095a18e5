"""The window's concept prompt (SAM 3's text prompt): running it in a worker, the segmentation controller's text
steps, and hooking the Text panel to them.

May import: floodlabel.core, floodlabel.gui.panels, floodlabel.gui.workers and the window's decode_jobs and
mask_composition (the window layer).
"""
