"""The mask that would be saved, at the image's native size (strokes applied), with its metrics against the GT and
its area: composed and scored off the UI thread for an image larger than the view (`native_compose`).

May import: floodlabel.core, floodlabel.gui.workers, and the window's decode_jobs, mask_composition and
text_prompt.text_prompt_jobs.
"""
