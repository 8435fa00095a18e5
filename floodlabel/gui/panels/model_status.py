"""Which segmentation backend the app will use, decided from the cached checkpoints and `--model`, and what this
machine should download (Qt-free).

`choose_backend` loads nothing (no torch): names are resolved to files with `registry.resolve_checkpoint`.
`machine_facts` imports torch (the GPU question and the compute label of the measured speeds): call it off the UI
thread; `first_guess_gpu` answers without torch until then.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from floodlabel.core.common.errors import FloodLabelError, ModelError
from floodlabel.core.models.registry import (CLASSIC, MODELS, SAM, is_downloaded, local_path, recommended_download,
                                             resolve_checkpoint)

PREFERRED_SAM = ("sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "vit_b", "sam2.1_hiera_large",
                 "vit_l", "vit_h", "sam3")
"""Smallest image encoder first (39 M, 46 M, 81 M, 91 M, 224 M, 308 M, 636 M parameters), which is also the order of
the embedding times measured on a 2-core CPU (issue 15, README Speed: SAM 2.1 tiny about a fifth of vit_b's); SAM 3
last (its ViT: 24 s an image against vit_b's 8.5 s, benchmarks/bench_sam3.py): chosen by default only when no other
model is downloaded."""

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


@dataclass(frozen=True)
class MachineFacts:
    """gpu: whether the compute setting here uses a CUDA GPU; recommended: (model name, one-line reason) to download;
    seconds: registered name -> median embedding seconds measured here (only models that ran here)."""

    gpu: bool
    recommended: tuple[str, str]
    seconds: dict[str, float] = field(default_factory=dict)


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
            return BackendChoice(requested, f"{model_label(requested)} ({path})")
        return BackendChoice(str(path), f"SAM checkpoint {path} (architecture read from the file when it loads)")
    for name in PREFERRED_SAM:
        if name in MODELS and is_downloaded(name):
            return BackendChoice(name, f"{model_label(name)} ({local_path(name)})")
    return BackendChoice(CLASSIC, CLASSIC_LABEL)


def model_label(name: str) -> str:
    """'SAM vit_b' for SAM v1 names; SAM 2.1 names already say their family ('sam2.1_hiera_tiny')."""
    spec = MODELS.get(name)
    return f"SAM {name}" if spec is not None and spec.family == SAM else name


def machine_facts() -> MachineFacts:
    """The GPU answer, the recommended download and the embedding times measured here. Imports torch (seconds
    the first time): not on the UI thread."""
    from floodlabel.core.models.model_speed import embed_seconds_here
    from floodlabel.core.segment.compute_config import default_compute_config

    try:
        config = default_compute_config()
        gpu, label = config.device.startswith("cuda"), config.describe()
    except FloodLabelError:  # a bad FLOODLABEL_DEVICE: the session says so; here, what torch sees
        import torch

        gpu, label = torch.cuda.is_available(), None
    seconds = {}
    if label is not None:
        for name in MODELS:
            value = embed_seconds_here(name, label) if is_downloaded(name) else None
            if value is not None:
                seconds[name] = value
    return MachineFacts(gpu, recommended(gpu), seconds)


def recommended(gpu: bool) -> tuple[str, str]:
    """registry.recommended_download(gpu), except that a SAM 2.1 recommendation needs Meta's sam2 package installed
    (without it a SAM 2.1 download is refused before any transfer): vit_b then, with the reason. Imports nothing."""
    name, reason = recommended_download(gpu)
    if MODELS[name].family != SAM and importlib.util.find_spec("sam2") is None:
        return "vit_b", ("SAM 2.1 tiny would encode an image in about a fifth of vit_b's time on this CPU, but "
                         "Meta's sam2 package is not installed (see the README's SAM checkpoints)")
    return name, reason


def first_guess_gpu() -> bool:
    """Whether a CUDA GPU is likely usable, without importing torch: FLOODLABEL_DEVICE when set, else whether an
    NVIDIA driver is present (torch is not asked, even once imported: another thread may be importing it now).
    `machine_facts` gives the real answer."""
    device = os.environ.get("FLOODLABEL_DEVICE", "").strip().lower()
    if device:
        return device.startswith("cuda")
    if sys.platform.startswith("linux"):
        return Path("/proc/driver/nvidia/version").exists()
    if sys.platform == "win32":
        return Path(os.environ.get("SystemRoot", r"C:\Windows"), "System32", "nvcuda.dll").exists()
    return False


def seconds_short(seconds: float | None) -> str:
    """'about 0.8 s', 'about 14 s'; '' when never measured."""
    if seconds is None:
        return ""
    return f"about {seconds:.1f} s" if seconds < 10 else f"about {seconds:.0f} s"


def seconds_text(seconds: float | None) -> str:
    """'about 0.8 s per image here'; '' when never measured."""
    return f"{seconds_short(seconds)} per image here" if seconds is not None else ""
