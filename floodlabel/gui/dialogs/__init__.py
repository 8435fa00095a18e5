"""Dialogs: export, help, compare on a dataset.

May import: floodlabel.core, floodlabel.gui.workers.latest_request, Qt.
"""
