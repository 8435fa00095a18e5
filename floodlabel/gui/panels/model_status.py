"""Which segmentation backend the app will use, decided from the cached checkpoints and `--model` (Qt-free).

Nothing is loaded here (no torch): names are resolved to files with `model_registry.resolve_checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass

from floodlabel.core.common.errors import ModelError
from floodlabel.core.models.registry import CLASSIC, MODELS, is_downloaded, local_path, resolve_checkpoint

PREFERRED_SAM = ("vit_b", "vit_l", "vit_h")
"""Fastest first: on a 2-core CPU vit_b embeds an image in about 7 s, vit_h in about 45 s."""

CLASSIC_LABEL = "classic (offline, no weights)"


@dataclass(frozen=True)
class BackendChoice:
    """model: what to open the session with ('classic', a registered name, or a checkpoint path);
    label: one line for the window; warning: why the requested `--model` is not used (None when it is)."""

    model: str
    label: str
    warning: str | None = None

    @property
    def is_sam(self) -> bool:
        return self.model != CLASSIC


def choose_backend(requested: str | None = None) -> BackendChoice:
    """`requested` (the --model value) when it resolves; else the first downloaded SAM of PREFERRED_SAM; else classic.

    A requested model that is unknown, not downloaded or not a file falls back with the ModelError text as warning.
    """
    if requested:
        if requested == CLASSIC:
            return BackendChoice(CLASSIC, f"{CLASSIC_LABEL}, as asked by --model")
        try:
            path = resolve_checkpoint(requested)
        except ModelError as exc:
            fallback = choose_backend(None)
            return BackendChoice(fallback.model, fallback.label, f"--model {requested}: {exc}")
        if requested in MODELS:
            return BackendChoice(requested, f"SAM {requested} ({path})")
        return BackendChoice(str(path), f"SAM checkpoint {path} (architecture read from the file when it loads)")
    for name in PREFERRED_SAM:
        if name in MODELS and is_downloaded(name):
            return BackendChoice(name, f"SAM {name} ({local_path(name)})")
    return BackendChoice(CLASSIC, CLASSIC_LABEL)
