"""Known SAM checkpoints, where they are cached, and how a model name or a file path becomes a checkpoint.

Three families: SAM v1 ("vit_b", "vit_l", "vit_h"; Meta publishes their MD5, which every download is checked
against), SAM 2.1 ("sam2.1_hiera_tiny", "_small", "_base_plus", "_large"; no checksum is published: a download is
verified by loading it (weights_only) and checking its architecture, and its SHA-256 is recorded then, see
download.py) and SAM 3 ("sam3": the gated Hugging Face repository facebook/sam3, fetched with the user's token by
hub_download.py, verified and recorded the same way).
A registered name maps to an official checkpoint cached in `models_dir()`. An existing file path is accepted anywhere
a name is; its family and architecture are always read from tensor shapes (`checkpoint_family`,
`checkpoint_architecture`), never from its file name. "classic" is the offline OpenCV backend: listed as always
available, it has no checkpoint.
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
    from floodlabel.core.sam2.checkpoint import Sam2Architecture

OFFICIAL_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
OFFICIAL_SAM2_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
BASE_URL_ENV = "FLOODLABEL_MODEL_BASE_URL"
CLASSIC = "classic"
SAM = "sam"
SAM2 = "sam2.1"
SAM3 = "sam3"
FAMILIES = {CLASSIC: "classic (OpenCV)", SAM: "SAM", SAM2: "SAM 2.1", SAM3: "SAM 3"}
SAM3_HF_REPO = "facebook/sam3"  # gated: the user accepts Meta's licence on its page, then downloads with a token


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable SAM checkpoint.

    `architecture` is the architecture name the file must have (SAM: 'vit_b', 'vit_l', 'vit_h' or 'custom'; SAM 2.1:
    'sam2.1_hiera_tiny' etc.); `size_bytes` is approximate (for listings and progress before the server answers);
    `md5` is the published checksum, None where none is published (SAM 2.1); `family` is SAM or SAM2.
    """

    name: str
    filename: str
    url: str
    md5: str | None
    size_bytes: int
    description: str
    architecture: str
    family: str = SAM
    hf_repo: str | None = None
    """Hugging Face repository the file comes from (through huggingface_hub, with the user's token) instead of
    `url`; see hub_download.py."""


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
        # SAM 2.1: sizes are those of a float32 {"model": state_dict} of each size built from sam2 1.1.0's configs
        # (149 / 176 / 308 / 856 MiB), not checked against the published files here (no network)
        *(ModelSpec(f"sam2.1_hiera_{size}", f"sam2.1_hiera_{size}.pt", f"{OFFICIAL_SAM2_BASE_URL}sam2.1_hiera_{size}.pt",
                    None, approx, text, f"sam2.1_hiera_{size}", SAM2)
          for size, approx, text in (
              ("tiny", 156_000_000, "SAM 2.1 Hiera-T: fastest on a CPU (seconds per image)"),
              ("small", 184_000_000, "SAM 2.1 Hiera-S"),
              ("base_plus", 324_000_000, "SAM 2.1 Hiera-B+"),
              ("large", 898_000_000, "SAM 2.1 Hiera-L: largest and most accurate SAM 2.1"),
          )),
        # SAM 3: facebook/sam3's sam3.pt; size = 861 M float32 parameters of the image + tracker model built here
        # (not checked against the published file: no network); gated, so fetched with the user's token
        ModelSpec("sam3", "sam3.pt", f"https://huggingface.co/{SAM3_HF_REPO}/resolve/main/sam3.pt", None,
                  3_450_000_000, "SAM 3: a text prompt ('water') finds every instance; about 0.85 B parameters",
                  "sam3", SAM3, hf_repo=SAM3_HF_REPO),
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
    family: str = SAM


def model_names() -> list[str]:
    """'classic' followed by the registered names (SAM v1, then SAM 2.1)."""
    return [CLASSIC, *MODELS]


def get_spec(name: str) -> ModelSpec:
    """The registered spec for `name`; ModelError naming the known models otherwise."""
    if name in MODELS:
        return MODELS[name]
    if name == CLASSIC:
        raise ModelError(f"{CLASSIC} is the built-in OpenCV backend: it has no checkpoint to download or locate")
    raise ModelError(f"unknown model {name!r}: known models are {', '.join(model_names())}, or pass a .pth / .pt "
                     "file")


def base_url() -> str:
    """Download base URL: FLOODLABEL_MODEL_BASE_URL (a mirror, holding every family's files) if set, else SAM v1's
    official one (SAM 2.1's official files are under OFFICIAL_SAM2_BASE_URL; see download_url). Ends with '/'."""
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


def checkpoint_architecture(name_or_path: str | os.PathLike) -> SamArchitecture | Sam2Architecture:
    """Resolve, read (weights_only, memory-mapped) and infer the architecture from tensor shapes: a SamArchitecture
    or a Sam2Architecture (both have `.name`). ModelError on a bad file.

    A fine-tuned decoder checkpoint gives its base's architecture (the base must be found: see decoder_checkpoint).
    """
    from floodlabel.core.sam.checkpoint import infer_architecture, read_state_dict  # torch: import only when needed
    from floodlabel.core.sam.decoder_checkpoint import base_file, is_decoder_checkpoint_file
    from floodlabel.core.sam2.checkpoint import infer_architecture as infer_sam2, is_sam2_state
    from floodlabel.core.sam3.architecture import infer_architecture as infer_sam3
    from floodlabel.core.sam3.checkpoint import is_sam3_file_state, model_state

    path = resolve_checkpoint(name_or_path)
    if is_decoder_checkpoint_file(path):
        path = base_file(path)  # either family's
    state = read_state_dict(path)
    if is_sam2_state(state):
        return infer_sam2(state, path)
    if is_sam3_file_state(state):
        return infer_sam3(model_state(state), path)
    return infer_architecture(state, path)


def checkpoint_family(name_or_path: str | os.PathLike) -> str:
    """CLASSIC, SAM, SAM2 or SAM3 for a model name or file, read from the file's tensors (memory-mapped: ms).
    ModelError for a file that is neither family's."""
    if os.fspath(name_or_path) == CLASSIC:
        return CLASSIC
    from floodlabel.core.sam.checkpoint import read_state_dict
    from floodlabel.core.sam.decoder_checkpoint import decoder_family, is_decoder_checkpoint_file
    from floodlabel.core.sam2.checkpoint import is_sam2_state
    from floodlabel.core.sam3.checkpoint import is_sam3_file_state

    path = resolve_checkpoint(name_or_path)
    if is_decoder_checkpoint_file(path):
        return SAM2 if decoder_family(path) == SAM2 else SAM  # the family field of a fine-tuned decoder
    state = read_state_dict(path)
    if is_sam3_file_state(state):
        return SAM3
    return SAM2 if is_sam2_state(state) else SAM


def recommended_download(gpu: bool | None = None) -> tuple[str, str]:
    """(model name, one-line reason) for a download banner. gpu: whether a CUDA GPU is usable (None: ask torch).

    Without a GPU: sam2.1_hiera_tiny, whose image embedding takes about a fifth of vit_b's on a CPU
    (benchmarks/bench_engine: 0.78 s against 3.50 s on a 2-core VM). With one: vit_b, as before.
    """
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    if gpu:
        return "vit_b", "SAM ViT-B: the smallest SAM v1, fast on a GPU"
    tiny = MODELS["sam2.1_hiera_tiny"]
    return tiny.name, (f"no GPU here: SAM 2.1 tiny ({tiny.size_bytes / 1e6:.0f} MB) encodes an image in about a fifth "
                       "of vit_b's time on a CPU")


def list_models() -> list[ModelRow]:
    """Rows for `floodlabel models list`: "classic" (always available), then each registered SAM."""
    rows = [ModelRow(CLASSIC, 0, True, None, "Classic OpenCV segmentation (offline, no weights)", CLASSIC)]
    for spec in MODELS.values():
        path = local_path(spec.name)
        downloaded = path.is_file()
        size = path.stat().st_size if downloaded else spec.size_bytes
        rows.append(ModelRow(spec.name, size, downloaded, path, spec.description, spec.family))
    return rows


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.startswith("~") or Path(text).suffix.lower() in {".pth", ".pt"}
