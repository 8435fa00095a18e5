"""SAM 3 checkpoints in the official layout (facebook/sam3's `sam3.pt`): read safely, tell the size from tensor
shapes, build the model and load the weights.

The file holds one state dict (optionally under "model") of the image-and-video model: the detector's tensors under
"detector." and the tracker's under "tracker."; `sam3.model_builder._load_checkpoint` maps them onto the image model
as "<name>" and "inst_interactive_predictor.model.<name>", and so does `model_state` here. Unlike Meta's loader
(strict=False, missing keys printed), a file whose tensors do not fit is refused with one line, and so is one that
leaves more than a few of the model's tensors unset (`MAX_MISSING`); which ones were missing is kept on LoadedSam3.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from floodlabel.core.common.atomic_files import atomic_writer
from floodlabel.core.common.errors import ModelError
from floodlabel.core.sam.checkpoint import read_state_dict, weights_hash
from floodlabel.core.sam3.architecture import Sam3Architecture, build_sam3_model, infer_architecture
from floodlabel.core.sam3.vocabulary import bpe_path

if TYPE_CHECKING:
    from sam3.model.sam3_image import Sam3Image

DETECTOR, TRACKER = "detector.", "tracker."
INTERACTIVE = "inst_interactive_predictor.model."
MAX_MISSING = 8  # a few buffers may be absent from a file; more means it is not this model's


@dataclass
class LoadedSam3:
    """A SAM 3 image model (with its interactive predictor) in eval mode, its sizes, and its weights' hash.

    missing: the model's tensors the file did not set (kept at their initial values), at most MAX_MISSING.
    """

    model: "Sam3Image"
    architecture: Sam3Architecture
    weights_hash: str
    path: Path | None
    missing: list[str] = field(default_factory=list)

    @property
    def model_id(self) -> str:
        """Keys embedding caches: 'sam3-<weights hash>' (a reduced test model: 'sam3-custom-<hash>')."""
        return f"{self.architecture.name}-{self.weights_hash}"

    @property
    def weights_id(self) -> str:
        return self.model_id


def is_sam3_file_state(state: dict[str, torch.Tensor]) -> bool:
    """Whether a file's state dict is SAM 3's official layout (a "detector." ViT trunk)."""
    return f"{DETECTOR}backbone.vision_backbone.trunk.patch_embed.proj.weight" in state


def model_state(file_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official file's keys -> the image model's (as sam3.model_builder._load_checkpoint maps them)."""
    out = {k[len(DETECTOR):]: v for k, v in file_state.items() if k.startswith(DETECTOR)}
    out.update({INTERACTIVE + k[len(TRACKER):]: v for k, v in file_state.items() if k.startswith(TRACKER)})
    return out


def file_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The inverse of model_state: an image model's state dict in the official file's layout."""
    out = {}
    for k, v in model.state_dict().items():
        out[TRACKER + k[len(INTERACTIVE):] if k.startswith(INTERACTIVE) else DETECTOR + k] = v
    return out


def load_sam3(path: str | os.PathLike) -> LoadedSam3:
    """Read (weights_only, memory-mapped), check and build a SAM 3 from an official-layout file. ModelError on any
    problem: unreadable or truncated, not SAM 3's, sizes no builder knows, wrongly shaped or too many missing
    tensors, or the sam3 package / tokenizer vocabulary missing."""
    p = Path(path)
    raw = read_state_dict(p)
    if not is_sam3_file_state(raw):
        raise ModelError(f"{p} is not a SAM 3 checkpoint (no detector.backbone ViT weights)")
    state = model_state(raw)
    arch = infer_architecture(state, p)
    model = build_sam3_model(arch, bpe_path())
    own = model.state_dict()
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if wrong or unexpected or len(missing) > MAX_MISSING:
        raise ModelError(f"{p} does not match a {arch.name} model ({len(missing)} missing, {len(unexpected)} "
                         f"unexpected, {len(wrong)} wrongly shaped tensors)")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # e.g. a truncated tensor in a memory-mapped file
        raise ModelError(f"cannot load {p}: {str(exc).splitlines()[0][:200]}") from None
    return LoadedSam3(model.eval(), arch, weights_hash(p), p, missing)


def save_sam3(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write an image model in the official layout ({"model": {"detector.*", "tracker.*"}}), atomically."""
    p = Path(path)
    with atomic_writer(p, durable=False) as file:  # a test or benchmark model: no fsync
        torch.save({"model": file_state(model)}, file)
    return p
