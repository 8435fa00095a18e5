"""Dock panels and small widgets: image list, candidates, metrics, models, fine-tuning, dataset.

May import: floodlabel.core, floodlabel.gui.workers.latest_request, Qt.
"""
