"""Where FloodLabel keeps its files. FLOODLABEL_CACHE_DIR overrides the platform cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "floodlabel"


def cache_dir() -> Path:
    """Root cache folder (models, embeddings). Created on demand."""
    override = os.environ.get("FLOODLABEL_CACHE_DIR")
    root = Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME))
    root.mkdir(parents=True, exist_ok=True)
    return root


def models_dir() -> Path:
    """Downloaded SAM checkpoints live here."""
    d = cache_dir() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def embeddings_dir() -> Path:
    """The on-disk embedding cache lives here."""
    d = cache_dir() / "embeddings"
    d.mkdir(parents=True, exist_ok=True)
    return d


def data_dir() -> Path:
    """Root folder for user data (projects whose dataset folder is read-only). FLOODLABEL_DATA_DIR overrides it.
    Not created here."""
    override = os.environ.get("FLOODLABEL_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))
