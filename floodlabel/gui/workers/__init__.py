"""Threads that run core calls off the UI thread and report through Qt signals.

May import: floodlabel.core, Qt.
"""
