"""Shared plumbing with no domain knowledge: errors, cancellation, progress, folders, atomic files, hashing, thread
priority and the background children that hold a core.

May import: the standard library and small third-party packages only (no floodlabel module).
"""
