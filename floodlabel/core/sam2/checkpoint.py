"""SAM 2.1 checkpoints in the official layout (`{"model": state_dict}`): read safely, tell the size from tensor
shapes, build the model from the config that ships in the `sam2` package.

The size is read from the Hiera trunk, never from the file name:
- embed_dim = image_encoder.trunk.patch_embed.proj.weight.shape[0]   (tiny/small 96, base_plus 112, large 144)
- depth     = number of image_encoder.trunk.blocks.*                  (tiny 12, small 16, base_plus 24, large 48)
SAM 2.1 is told from SAM 2.0 by its `no_obj_embed_spatial` tensor (2.1 added it); a SAM 2.0 file of a known size
loads too, with the 2.0 config, and is named "sam2_hiera_<size>".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from floodlabel.core.common.atomic_files import atomic_writer
from floodlabel.core.common.errors import ModelError
from floodlabel.core.sam.checkpoint import read_state_dict, weights_hash

if TYPE_CHECKING:
    from sam2.modeling.sam2_base import SAM2Base

IMAGE_SIZE = 1024  # SAM 2.1's input frame: the image is resized (not padded) to 1024x1024
INSTALL_HINT = "SAM2_BUILD_CUDA=0 .venv/bin/pip install --no-build-isolation sam2==1.1.0 (or bash packaging/run.sh)"


@dataclass(frozen=True)
class Sam2Architecture:
    """One SAM 2 / 2.1 size: the Hiera trunk's width and depth, and the packaged config that builds it."""

    size: str  # tiny | small | base_plus | large
    embed_dim: int
    depth: int
    config_letter: str  # the config file's suffix: t, s, b+, l
    version: str = "2.1"

    @property
    def name(self) -> str:
        """'sam2.1_hiera_tiny' etc. (the registry's names); 'sam2_hiera_tiny' for a SAM 2.0 file."""
        prefix = "sam2.1" if self.version == "2.1" else "sam2"
        return f"{prefix}_hiera_{self.size}"

    @property
    def config(self) -> str:
        """The hydra config name inside the sam2 package, e.g. 'configs/sam2.1/sam2.1_hiera_t.yaml'."""
        prefix = "sam2.1" if self.version == "2.1" else "sam2"
        return f"configs/{prefix}/{prefix}_hiera_{self.config_letter}.yaml"

    def with_version(self, version: str) -> "Sam2Architecture":
        return Sam2Architecture(self.size, self.embed_dim, self.depth, self.config_letter, version)


SIZES: dict[str, Sam2Architecture] = {
    a.size: a
    for a in (
        Sam2Architecture("tiny", 96, 12, "t"),
        Sam2Architecture("small", 96, 16, "s"),
        Sam2Architecture("base_plus", 112, 24, "b+"),
        Sam2Architecture("large", 144, 48, "l"),
    )
}
KNOWN_ARCHITECTURES: dict[str, Sam2Architecture] = {a.name: a for a in SIZES.values()}

_TRUNK_KEY = "image_encoder.trunk.patch_embed.proj.weight"
_DECODER_KEY = "sam_mask_decoder.iou_token.weight"


@dataclass
class LoadedSam2:
    """A SAM 2.1 model in eval mode, its size, and a short content hash of its weights file.

    A fine-tuned decoder (loading.load_sam2 on a core/sam/decoder_checkpoint file) keeps its base's `path` and
    `weights_hash` (the same embeddings serve both) and sets `decoder_path` / `decoder_hash`, as LoadedSam does.
    """

    model: "SAM2Base"
    architecture: Sam2Architecture
    weights_hash: str
    path: Path | None
    decoder_path: Path | None = None
    decoder_hash: str | None = None

    @property
    def model_id(self) -> str:
        """Keys embedding caches: size name + weights hash, e.g. 'sam2.1_hiera_tiny-0123456789abcdef'."""
        return f"{self.architecture.name}-{self.weights_hash}"

    @property
    def weights_id(self) -> str:
        """model_id, plus the fine-tuned decoder's hash if any."""
        return self.model_id if self.decoder_hash is None else f"{self.model_id}+ft-{self.decoder_hash}"


def is_sam2_state(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict is a SAM 2 / 2.1 model's (a Hiera trunk and SAM 2's mask decoder)."""
    return _TRUNK_KEY in state and _DECODER_KEY in state


def infer_architecture(state: dict[str, torch.Tensor], source: object = "checkpoint") -> Sam2Architecture:
    """The size from the trunk's tensor shapes (module docstring). ModelError for anything else."""
    if not is_sam2_state(state):
        raise ModelError(f"{source} is not a SAM 2.1 checkpoint (no Hiera trunk / SAM 2 mask decoder weights)")
    embed_dim = int(state[_TRUNK_KEY].shape[0])
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))}
    depth = len(blocks)
    version = "2.1" if "no_obj_embed_spatial" in state else "2"
    for arch in SIZES.values():
        if (arch.embed_dim, arch.depth) == (embed_dim, depth):
            return arch.with_version(version)
    raise ModelError(f"{source} is a SAM 2 model of no known size (trunk width {embed_dim}, {depth} blocks); "
                     f"known: {', '.join(f'{a.size} ({a.embed_dim}, {a.depth})' for a in SIZES.values())}")


def build_sam2_model(arch: Sam2Architecture) -> "SAM2Base":
    """A randomly initialised SAM 2.1 of the given size (eval mode, float32, CPU), from the packaged config.

    Built as `sam2.build_sam.build_sam2(config, None)` builds it (its post-processing overrides included: single-mask
    output falls back to the best multimask candidate when unstable), so SAM2ImagePredictor on it is the reference.
    """
    try:
        from sam2.build_sam import build_sam2
    except ImportError:
        raise ModelError(f"SAM 2.1 needs Meta's sam2 package, which is not installed: {INSTALL_HINT}") from None
    return build_sam2(arch.config, None, device="cpu", mode="eval")


def load_plain_sam2(path: str | os.PathLike) -> LoadedSam2:
    """Read (weights_only, memory-mapped), check and build a SAM 2.1 from an official-layout file. ModelError on any
    problem: not a SAM 2.1 file, unknown size, or tensors that do not match the size's model exactly (strict)."""
    p = Path(path)
    state = read_state_dict(p)  # weights_only=True; unwraps {"model": ...}
    arch = infer_architecture(state, p)
    model = build_sam2_model(arch)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise ModelError(f"{p} does not match a {arch.name} model ({len(missing)} missing, {len(unexpected)} "
                         f"unexpected, {len(wrong)} wrongly shaped tensors)")
    model.load_state_dict(state, strict=True)
    return LoadedSam2(model.eval(), arch, weights_hash(p), p)


def save_sam2(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write a model the way the official SAM 2.1 checkpoints are stored: `{"model": state_dict}` (atomic)."""
    p = Path(path)
    with atomic_writer(p, durable=False) as file:  # a test or benchmark model: no fsync
        torch.save({"model": model.state_dict()}, file)
    return p
