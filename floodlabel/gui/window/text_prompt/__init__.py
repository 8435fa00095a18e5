"""The window's concept prompt (SAM 3's text prompt): running it in a worker and hooking the Text panel to the
controller.

May import: floodlabel.core, floodlabel.gui.panels, floodlabel.gui.workers (the window layer).
"""
