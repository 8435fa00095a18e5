"""Known SAM checkpoints, where they are cached, and how a model name or a file path becomes a checkpoint.

A registered name ("vit_b", "vit_l", "vit_h") maps to an official checkpoint cached in `models_dir()`. An existing
file path is accepted anywhere a name is; its architecture is always read from tensor shapes
(`sam_checkpoint.infer_architecture`), never from its file name. "classic" is the offline OpenCV backend: listed as
always available, it has no checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from floodlabel.core.common.errors import ModelError
from floodlabel.core.common.paths import models_dir

if TYPE_CHECKING:
    from floodlabel.core.sam.checkpoint import SamArchitecture

OFFICIAL_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
BASE_URL_ENV = "FLOODLABEL_MODEL_BASE_URL"
CLASSIC = "classic"


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable SAM checkpoint.

    `architecture` is the `SamArchitecture.name` the file must have ('vit_b', 'vit_l', 'vit_h' or 'custom');
    `size_bytes` is approximate (for listings and progress before the server answers).
    """

    name: str
    filename: str
    url: str
    md5: str
    size_bytes: int
    description: str
    architecture: str


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("vit_b", "sam_vit_b_01ec64.pth", OFFICIAL_BASE_URL + "sam_vit_b_01ec64.pth",
                  "01ec64d29a2fca3f0661936605ae66f8", 375_000_000, "SAM ViT-B: smallest and fastest", "vit_b"),
        ModelSpec("vit_l", "sam_vit_l_0b3195.pth", OFFICIAL_BASE_URL + "sam_vit_l_0b3195.pth",
                  "0b3195507c641ddb6910d2bb5adee89c", 1_250_000_000, "SAM ViT-L: middle size", "vit_l"),
        ModelSpec("vit_h", "sam_vit_h_4b8939.pth", OFFICIAL_BASE_URL + "sam_vit_h_4b8939.pth",
                  "4b8939a88964f0f4ff5f5b2642c598a6", 2_560_000_000, "SAM ViT-H: largest and most accurate",
                  "vit_h"),
    )
}


@dataclass(frozen=True)
class ModelRow:
    """One line of `floodlabel models list`. `path` is None for "classic" (no checkpoint)."""

    name: str
    size_bytes: int
    downloaded: bool
    path: Path | None
    description: str


def model_names() -> list[str]:
    """'classic' followed by the registered SAM names."""
    return [CLASSIC, *MODELS]


def get_spec(name: str) -> ModelSpec:
    """The registered spec for `name`; ModelError naming the known models otherwise."""
    if name in MODELS:
        return MODELS[name]
    if name == CLASSIC:
        raise ModelError(f"{CLASSIC} is the built-in OpenCV backend: it has no checkpoint to download or locate")
    raise ModelError(f"unknown model {name!r}: known models are {', '.join(model_names())}, or pass a .pth file")


def base_url() -> str:
    """Download base URL: FLOODLABEL_MODEL_BASE_URL (a mirror) if set, else the official one. Ends with '/'."""
    url = os.environ.get(BASE_URL_ENV, "").strip() or OFFICIAL_BASE_URL
    return url if url.endswith("/") else url + "/"


def download_url(name: str, base: str | None = None) -> str:
    """Where `name` is fetched from: `base` or FLOODLABEL_MODEL_BASE_URL + file name, else the official URL."""
    spec = get_spec(name)
    if base is None and not os.environ.get(BASE_URL_ENV, "").strip():
        return spec.url
    root = base if base is not None else base_url()
    return (root if root.endswith("/") else root + "/") + spec.filename


def local_path(name: str) -> Path:
    """Where the checkpoint of a registered model is (or would be) cached."""
    return models_dir() / get_spec(name).filename


def is_downloaded(name: str) -> bool:
    """True when the cached checkpoint exists (downloads only land there after their checksum matched)."""
    return name == CLASSIC or local_path(name).is_file()


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A registered name -> its cached file; an existing file path -> that path (absolute). Nothing is loaded.

    Raises ModelError for: a registered model that is not downloaded, "classic", a folder, a missing path, or an
    unknown name (the message lists the known names).
    """
    text = os.fspath(name_or_path)
    if text in MODELS:
        path = local_path(text)
        if path.is_file():
            return path
        raise ModelError(
            f"{text} is not downloaded: run `floodlabel models download {text}`, or pass a local .pth file; "
            f"set {BASE_URL_ENV} for a mirror"
        )
    if text == CLASSIC:
        get_spec(text)  # raises the "no checkpoint" error
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        raise ModelError(f"{path} is a folder, not a checkpoint file")
    if _looks_like_path(text):
        raise ModelError(f"checkpoint not found: {path}")
    get_spec(text)  # unknown name: raises with the list of known names
    raise AssertionError("unreachable")


def checkpoint_architecture(name_or_path: str | os.PathLike) -> SamArchitecture:
    """Resolve, read (weights_only) and infer the architecture from tensor shapes. ModelError on a bad file.

    A fine-tuned decoder checkpoint gives its base's architecture (the base must be found: see decoder_checkpoint).
    """
    from floodlabel.core.sam.checkpoint import infer_architecture, read_state_dict  # torch: import only when needed
    from floodlabel.core.sam.decoder_checkpoint import base_architecture, is_decoder_checkpoint_file

    path = resolve_checkpoint(name_or_path)
    if is_decoder_checkpoint_file(path):
        return base_architecture(path)
    return infer_architecture(read_state_dict(path), path)


def list_models() -> list[ModelRow]:
    """Rows for `floodlabel models list`: "classic" (always available), then each registered SAM."""
    rows = [ModelRow(CLASSIC, 0, True, None, "Classic OpenCV segmentation (offline, no weights)")]
    for spec in MODELS.values():
        path = local_path(spec.name)
        downloaded = path.is_file()
        size = path.stat().st_size if downloaded else spec.size_bytes
        rows.append(ModelRow(spec.name, size, downloaded, path, spec.description))
    return rows


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.startswith("~") or Path(text).suffix.lower() in {".pth", ".pt"}
