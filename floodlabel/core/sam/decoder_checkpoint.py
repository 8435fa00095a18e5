"""The fine-tuned checkpoint: SAM's trained mask decoder (and prompt encoder, if trained) plus its base's identity.

A file written by `save_decoder_checkpoint` is a torch zip archive holding one dict of plain values and tensors
(read back with `torch.load(weights_only=True)`, so it can never run code):

    format          FORMAT ("floodlabel-decoder-v1"); how `is_decoder_checkpoint_file` recognises the file
    family          "sam" (SAM v1; absent in older files) or "sam2.1": which family's loader applies it
                    (`decoder_family`); the SAM v1 loader here refuses the others, core/sam2/loading applies SAM 2.1's
    mask_decoder    state dict of `Sam.mask_decoder` (about 16 MB in float32 for every SAM size: no encoder copy;
                    SAM 2.1: `SAM2Base.sam_mask_decoder`)
    prompt_encoder  state dict of `Sam.prompt_encoder` (SAM 2.1: `sam_prompt_encoder`), only when it was trained
    base            {"model_id", "architecture", "sha256", "file_name", "path", "size"} of the base SAM checkpoint
    settings        the training settings (FinetuneSettings as a dict)
    data            {"train", "val", "hash", ...}: how many items it saw and a hash of them (images, masks, prompts)
    metrics         one dict per epoch: epoch, train_loss, val_iou, val_dice, lr, seconds
    best_epoch, best_val_iou, created (ISO time), floodlabel_version

Its image embeddings are its base's: `load_finetuned` returns a LoadedSam whose `model_id` (the embedding-cache
key) is the base's, so switching between base and fine-tuned never re-encodes, while `weights_id` names the
decoder too (reports and prediction caches tell the two apart).

The base is found by SHA-256: the paths given (`--base`), else the path recorded at training time, else the files
of the same size in `paths.models_dir()`. A base whose SHA-256 differs is refused with a message naming both.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from floodlabel import __version__
from floodlabel.core.common.atomic_files import atomic_writer
from floodlabel.core.common.errors import ModelError
from floodlabel.core.common.hashing import sha256_file_memoised
from floodlabel.core.common.paths import models_dir
from floodlabel.core.sam.checkpoint import (LoadedSam, SamArchitecture, check_checkpoint_file, infer_architecture,
                                            load_plain_sam, read_state_dict)

FORMAT = "floodlabel-decoder-v1"
SAM_FAMILY = "sam"  # the family field's value for SAM v1 (registry.SAM); SAM 2.1 writes "sam2.1" (registry.SAM2)
CHECKPOINT_SUFFIXES = (".pth", ".pt")

_given_bases: list[Path] = []


@dataclass(frozen=True)
class BaseModelInfo:
    """Identity of the SAM checkpoint a decoder was trained on."""

    model_id: str  # the embedding-cache key, e.g. "sam-vit_b-0123456789abcdef"
    architecture: str  # "vit_b", "vit_l", "vit_h" or "custom"
    sha256: str
    file_name: str
    path: str  # where it was at training time (a hint; the hash decides)
    size: int

    @classmethod
    def of(cls, loaded: LoadedSam) -> "BaseModelInfo":
        p = Path(loaded.path)
        return cls(loaded.model_id, loaded.architecture.name, sha256_file_memoised(p), p.name, str(p.resolve()),
                   p.stat().st_size)

    def describe(self) -> str:
        return f"{self.file_name} ({self.model_id}, sha256 {self.sha256[:16]}…)"


@dataclass
class DecoderCheckpoint:
    """What a fine-tuned checkpoint file holds (see the module docstring)."""

    mask_decoder: dict[str, torch.Tensor]
    base: BaseModelInfo
    prompt_encoder: dict[str, torch.Tensor] | None = None
    settings: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_iou: float | None = None
    created: str = ""
    floodlabel_version: str = __version__
    family: str = SAM_FAMILY

    def to_dict(self) -> dict:
        out = {
            "format": FORMAT,
            "family": self.family,
            "mask_decoder": {k: v.detach().cpu().contiguous() for k, v in self.mask_decoder.items()},
            "base": vars(self.base).copy(),
            "settings": _plain(self.settings),
            "data": _plain(self.data),
            "metrics": _plain(self.metrics),
            "best_epoch": self.best_epoch,
            "best_val_iou": self.best_val_iou,
            "created": self.created or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "floodlabel_version": self.floodlabel_version,
        }
        if self.prompt_encoder is not None:
            out["prompt_encoder"] = {k: v.detach().cpu().contiguous() for k, v in self.prompt_encoder.items()}
        return out


def save_decoder_checkpoint(checkpoint: DecoderCheckpoint, path: str | os.PathLike) -> Path:
    """Write atomically and durably (`atomic_files.atomic_writer`). Returns the absolute path."""
    target = Path(path).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(target) as file:
        torch.save(checkpoint.to_dict(), file)
    return target


def is_decoder_checkpoint_file(path: str | os.PathLike) -> bool:
    """True for a file written by `save_decoder_checkpoint`. Reads only the archive's small pickle (no torch)."""
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            return bool(pickles) and FORMAT.encode() in archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile):
        return False


def read_decoder_checkpoint(path: str | os.PathLike) -> DecoderCheckpoint:
    """Load with weights_only=True and validate. Raises ModelError naming the file and the problem."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"checkpoint not found: {p}")
    check_checkpoint_file(p)
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, or objects other than plain values and tensors
        raise ModelError(f"cannot read fine-tuned checkpoint {p}: {str(exc).strip().splitlines()[0][:200]}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ModelError(f"{p} is not a FloodLabel fine-tuned decoder checkpoint")
    try:
        base = BaseModelInfo(**raw["base"])
        decoder = raw["mask_decoder"]
        if not decoder or not all(isinstance(v, torch.Tensor) for v in decoder.values()):
            raise ValueError("no decoder tensors")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{p} is a damaged fine-tuned checkpoint ({exc})") from None
    return DecoderCheckpoint(
        mask_decoder=decoder, base=base, prompt_encoder=raw.get("prompt_encoder"), settings=raw.get("settings", {}),
        data=raw.get("data", {}), metrics=raw.get("metrics", []), best_epoch=raw.get("best_epoch"),
        best_val_iou=raw.get("best_val_iou"), created=raw.get("created", ""),
        floodlabel_version=raw.get("floodlabel_version", ""), family=str(raw.get("family", SAM_FAMILY)))


def decoder_family(path: str | os.PathLike) -> str:
    """The family a fine-tuned checkpoint file belongs to ("sam" for files written before the field existed).
    Memory-mapped read: only the small pickle is parsed."""
    try:
        raw = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ModelError(f"cannot read fine-tuned checkpoint {path}: {str(exc).strip().splitlines()[0][:200]}") from None
    return str(raw.get("family", SAM_FAMILY)) if isinstance(raw, dict) else SAM_FAMILY


def load_finetuned(path: str | os.PathLike, bases: Sequence[str | os.PathLike] = ()) -> LoadedSam:
    """The base SAM with this checkpoint's decoder weights, ready for SamSegmenter (FastSamDecoder included).

    bases: candidate base files (`--base`; default: those of `use_base_checkpoints`); when given, one of them must
    be the base (else ModelError naming both). Without any: the recorded path, then same-size files in models_dir().
    """
    p = Path(path).expanduser().resolve()
    checkpoint = read_decoder_checkpoint(p)
    check_family(checkpoint, SAM_FAMILY, p)
    base_path = find_base(checkpoint.base, bases, p)
    return apply_checkpoint(load_plain_sam(base_path), checkpoint, p)


def check_family(checkpoint: DecoderCheckpoint, family: str, path: Path) -> None:
    """ModelError when a checkpoint of another family is given to this family's loader."""
    if checkpoint.family != family:
        raise ModelError(f"{path.name} is a fine-tuned {checkpoint.family} decoder (base {checkpoint.base.describe()}), "
                         f"not a {family} one")


def apply_checkpoint(base: LoadedSam, checkpoint: DecoderCheckpoint, path: str | os.PathLike) -> LoadedSam:
    """Load the checkpoint's weights into `base.model` (in place) and return it as a fine-tuned LoadedSam.

    Refuses (ModelError naming both) when `base` is not the checkpoint's base (SHA-256 of the base file).
    """
    p = Path(path)
    check_family(checkpoint, SAM_FAMILY, p)
    model = base.model
    load_weights(checkpoint, p, base, model.mask_decoder, model.prompt_encoder)
    model.eval()
    return LoadedSam(model, base.architecture, base.weights_hash, base.path, decoder_path=p,
                     decoder_hash=sha256_file_memoised(p)[:16])


def load_weights(checkpoint: DecoderCheckpoint, path: Path, base, decoder: torch.nn.Module,
                 prompt_encoder: torch.nn.Module) -> None:
    """Check that `base` (a LoadedSam or LoadedSam2 with a file) is the checkpoint's base (SHA-256; ModelError naming
    both), then load the decoder (and prompt-encoder) weights into the given modules in place (strict)."""
    if base.path is None:
        raise ModelError(f"{path.name} needs its base file; the model given has none")
    digest = sha256_file_memoised(base.path)
    if digest != checkpoint.base.sha256:
        raise ModelError(
            f"{path.name} was fine-tuned on {checkpoint.base.describe()}; refusing to load it onto "
            f"{Path(base.path).name} ({base.model_id}, sha256 {digest[:16]}…)")
    _load_into(decoder, checkpoint.mask_decoder, path, "mask decoder")
    if checkpoint.prompt_encoder is not None:
        _load_into(prompt_encoder, checkpoint.prompt_encoder, path, "prompt encoder")
    decoder.eval()
    prompt_encoder.eval()


def find_base(info: BaseModelInfo, bases: Sequence[str | os.PathLike] = (), checkpoint_path: Path | None = None) -> Path:
    """The file whose SHA-256 is info.sha256 (see `load_finetuned` for the search order). ModelError if none."""
    name = checkpoint_path.name if checkpoint_path is not None else "this checkpoint"
    explicit = [Path(b).expanduser() for b in (bases or _given_bases)]
    if explicit:
        for b in explicit:
            if not b.is_file():
                raise ModelError(f"base checkpoint not found: {b}")
            if sha256_file_memoised(b) == info.sha256:
                return b.resolve()
        others = ", ".join(f"{b.name} (sha256 {sha256_file_memoised(b)[:16]}…)" for b in explicit)
        raise ModelError(f"{name} was fine-tuned on {info.describe()}; refusing to load it onto {others}")
    candidates = [Path(info.path)] + _same_size_files(models_dir(), info.size)
    for c in candidates:
        try:
            if c.is_file() and c.stat().st_size == info.size and sha256_file_memoised(c) == info.sha256:
                return c.resolve()
        except OSError:
            continue
    raise ModelError(f"the base model of {name} is not here: it was fine-tuned on {info.describe()}; put that "
                     f"file in {models_dir()} or pass --base PATH")


def base_architecture(path: str | os.PathLike, bases: Sequence[str | os.PathLike] = ()) -> SamArchitecture:
    """The SAM architecture of a fine-tuned checkpoint's base (memory-mapped shape read; the base must be found)."""
    base = base_file(path, bases)
    return infer_architecture(read_state_dict(base), base)


def base_file(path: str | os.PathLike, bases: Sequence[str | os.PathLike] = ()) -> Path:
    """The base file of a fine-tuned checkpoint of any family (found by SHA-256, see `find_base`)."""
    p = Path(path)
    return find_base(read_decoder_checkpoint(p).base, bases, p)


@contextmanager
def given_bases(paths: Sequence[str | os.PathLike]) -> Iterator[None]:
    """`use_base_checkpoints(paths)` for the duration of a `with` block (a CLI command), then the previous ones."""
    previous = list(_given_bases)
    use_base_checkpoints(paths)
    try:
        yield
    finally:
        _given_bases[:] = previous


def use_base_checkpoints(paths: Sequence[str | os.PathLike]) -> None:
    """Process-wide `bases` for loads that cannot pass them (the CLI's --base: `floodlabel eval --model ft.pth`
    goes through loading.load_sam). Given bases are binding: a fine-tuned checkpoint whose base is not among them
    is refused. An empty list restores the search."""
    _given_bases[:] = [Path(p).expanduser() for p in paths]


def base_checkpoints() -> list[Path]:
    """The process-wide bases set by `use_base_checkpoints` (a copy; [] while the search is used)."""
    return list(_given_bases)


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0]
        raise ModelError(f"{path.name}: its {what} weights do not fit the base model ({reason})") from None


def _same_size_files(folder: Path, size: int) -> list[Path]:
    try:
        return sorted(e for e in folder.iterdir() if e.suffix.lower() in CHECKPOINT_SUFFIXES and e.is_file()
                      and e.stat().st_size == size)
    except OSError:
        return []


def _plain(value):
    """JSON-round-tripped copy: only plain values survive (weights_only=True loads nothing else)."""
    return json.loads(json.dumps(value, default=str))
