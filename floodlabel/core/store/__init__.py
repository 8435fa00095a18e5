"""The project on disk: the crash-safe store (SQLite + mask PNGs with sidecars), where it lives,
recovery, and export.

May import: floodlabel.core.common, .data, .annotation.
"""
