"""Shared plumbing with no domain knowledge: errors, cancellation, progress, folders, atomic files, hashing.

May import: the standard library and small third-party packages only (no floodlabel module).
"""
