"""Plain SAM checkpoints (the official state-dict format): read safely, infer the architecture from tensor shapes,
build the model. Fine-tuned decoders build on this (decoder_checkpoint); `loading.load_sam` takes either.

The architecture (vit_b / vit_l / vit_h, or a smaller custom one such as the tests' tiny SAM) is read from the
state dict, never from the file name:
- embed_dim   = patch_embed.proj.weight.shape[0]
- depth       = number of image_encoder.blocks.*
- head_dim    = blocks.i.attn.rel_pos_h.shape[1]  -> num_heads = embed_dim // head_dim
- global attn = blocks whose rel_pos_h spans the full 64x64 token grid (2*64-1 rows), not a 14x14 window (27 rows)
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from floodlabel.core.common.atomic_files import atomic_writer
from floodlabel.core.common.errors import ModelError
from floodlabel.core.common.paths import cache_dir

IMAGE_SIZE = 1024  # SAM's input frame: long side resized to 1024, padded to 1024x1024
PATCH_SIZE = 16
EMBED_SIZE = IMAGE_SIZE // PATCH_SIZE  # 64: the embedding grid
PROMPT_DIM = 256


@dataclass(frozen=True)
class SamArchitecture:
    """Image-encoder hyper-parameters; the prompt encoder and mask decoder are the same for every SAM."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int = 14

    @property
    def name(self) -> str:
        """'vit_b', 'vit_l', 'vit_h', or 'custom' (e.g. the tests' tiny SAM)."""
        for name, arch in KNOWN_ARCHITECTURES.items():
            if arch == self:
                return name
        return "custom"


KNOWN_ARCHITECTURES: dict[str, SamArchitecture] = {
    "vit_b": SamArchitecture(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamArchitecture(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamArchitecture(1280, 32, 16, (7, 15, 23, 31)),
}


@dataclass
class LoadedSam:
    """A SAM model in eval mode, its architecture, and a short content hash of its weights file.

    A fine-tuned decoder (core/sam/decoder_checkpoint.py) loaded onto its base keeps the base's `path` and
    `weights_hash` (so the same embeddings serve both) and sets `decoder_path` / `decoder_hash`.
    """

    model: Sam
    architecture: SamArchitecture
    weights_hash: str
    path: Path
    decoder_path: Path | None = None
    decoder_hash: str | None = None

    @property
    def model_id(self) -> str:
        """Keys embedding caches: architecture name + weights hash (a fine-tuned decoder keeps its base's)."""
        return f"sam-{self.architecture.name}-{self.weights_hash}"

    @property
    def weights_id(self) -> str:
        """Names every weight that shapes a prediction: model_id, plus the fine-tuned decoder's hash if any."""
        return self.model_id if self.decoder_hash is None else f"{self.model_id}+ft-{self.decoder_hash}"


def build_sam(arch: SamArchitecture) -> Sam:
    """A randomly initialised SAM with the given encoder (eval mode, float32, CPU)."""
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.depth,
            embed_dim=arch.embed_dim,
            img_size=IMAGE_SIZE,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=arch.num_heads,
            patch_size=PATCH_SIZE,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=arch.global_attn_indexes,
            window_size=arch.window_size,
            out_chans=PROMPT_DIM,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=PROMPT_DIM,
            image_embedding_size=(EMBED_SIZE, EMBED_SIZE),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=PROMPT_DIM, mlp_dim=2048, num_heads=8),
            transformer_dim=PROMPT_DIM,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """torch.load(weights_only=True, memory-mapped); any failure becomes one ModelError naming file and reason."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"checkpoint not found: {p}")
    if p.stat().st_size == 0:
        raise ModelError(f"checkpoint is empty (0 bytes): {p}")
    zip_format = check_checkpoint_file(p)
    try:
        with warnings.catch_warnings():  # torch warns about unusual pickle protocols before failing cleanly
            warnings.simplefilter("ignore", UserWarning)
            # memory-mapped: tensors are read when used, so checking shapes costs milliseconds even for vit_h
            state = torch.load(p, map_location="cpu", weights_only=True, mmap=zip_format)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise ModelError(f"{p} holds objects other than tensors; refusing to run its code (weights_only)") from None
        raise ModelError(f"cannot read checkpoint {p}: {_first_line(exc)}") from None
    except Exception as exc:  # truncated zip, random bytes, ...
        reason = "truncated or corrupt file" if "zip archive" in str(exc) else _first_line(exc)
        raise ModelError(f"cannot read checkpoint {p}: {reason}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{p} is not a SAM checkpoint (not a state dict of tensors)")
    return state


def check_checkpoint_file(path: str | os.PathLike) -> bool:
    """Cheap validity check without reading the weights: a PyTorch file whose zip directory is intact.

    Catches wrong files and truncated downloads in milliseconds, even for vit_h (2.5 GB). Raises ModelError.
    Returns True for the zip format (which torch.load can memory-map), False for a legacy pickle file.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read checkpoint {p}: {exc.strerror or exc}") from None
    if magic[:1] == b"\x80":  # legacy (non-zip) torch.save pickle: nothing cheap to check
        return False
    if not magic.startswith(b"PK\x03\x04"):
        raise ModelError(f"{p} is not a PyTorch checkpoint file")
    try:
        with zipfile.ZipFile(p) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError):
        raise ModelError(f"cannot read checkpoint {p}: truncated or corrupt file") from None
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def infer_architecture(state: dict[str, torch.Tensor], source: object = "checkpoint") -> SamArchitecture:
    """Read the encoder hyper-parameters from tensor shapes (see module docstring)."""
    key = "image_encoder.patch_embed.proj.weight"
    if key not in state or "mask_decoder.iou_token.weight" not in state:
        raise ModelError(f"{source} is not a SAM checkpoint (no image encoder / mask decoder weights)")
    embed_dim = int(state[key].shape[0])
    block_ids = sorted({int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))})
    if not block_ids or block_ids != list(range(len(block_ids))):
        raise ModelError(f"{source} is not a SAM checkpoint (encoder blocks missing or out of order)")
    rel = [state.get(f"image_encoder.blocks.{i}.attn.rel_pos_h") for i in block_ids]
    if any(r is None for r in rel):
        raise ModelError(f"{source} is not a SAM checkpoint (no relative position tables)")
    head_dim = int(rel[0].shape[1])
    global_rows = 2 * EMBED_SIZE - 1
    global_idx = tuple(i for i, r in zip(block_ids, rel) if r.shape[0] == global_rows)
    windows = {(int(r.shape[0]) + 1) // 2 for r in rel if r.shape[0] != global_rows}
    return SamArchitecture(
        embed_dim=embed_dim,
        depth=len(block_ids),
        num_heads=embed_dim // head_dim,
        global_attn_indexes=global_idx,
        window_size=windows.pop() if len(windows) == 1 else 14,
    )


def load_plain_sam(path: str | os.PathLike) -> LoadedSam:
    """Read, validate and build a SAM from a plain (official-format) state dict file. Raises ModelError.

    A fine-tuned decoder checkpoint is not a plain state dict: `loading.load_sam` tells the two apart.
    """
    p = Path(path)
    state = read_state_dict(p)
    arch = infer_architecture(state, p)
    model = build_sam(arch)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"{p} does not match a SAM {arch.name} model ({len(missing)} missing, {len(unexpected)} unexpected tensors)"
        )
    return LoadedSam(model.eval(), arch, weights_hash(p), p)


def save_sam(model: Sam, path: str | os.PathLike) -> Path:
    """Write a model's state dict the way the official checkpoints are stored (atomic)."""
    p = Path(path)
    with atomic_writer(p, durable=False) as file:  # a test or benchmark model: no fsync, as before
        torch.save(model.state_dict(), file)
    return p


def weights_hash(path: str | os.PathLike) -> str:
    """Short blake2b of a file's bytes, memoised on disk by (path, size, mtime) so big files hash once."""
    p = Path(path).resolve()
    st = p.stat()
    memo_file = cache_dir() / "weights_hashes.json"
    memo_key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if memo_key in memo:
        return memo[memo_key]
    h = hashlib.blake2b(digest_size=8)
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(8 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    memo[memo_key] = digest
    with atomic_writer(memo_file, durable=False) as file:  # a memo: losing it costs one re-hash
        file.write(json.dumps(memo).encode())
    return digest
