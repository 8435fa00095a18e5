"""Training examples: an image, its water mask, the prompts a person used (if any), and simulated prompts.

Sources:
- a dataset with ground-truth masks: `items_from_dataset` (every complete, size-matched pair);
- the project store's accepted masks with the prompts the user actually clicked: `items_from_store` (one item per
  accepted image; nothing in the training loop knows where an item came from).

Frames. Masks and recorded prompts come in the original frame. For training, a mask becomes a `Target` in SAM's
low-res frame: the mask resized to the 1024 input frame (h, w), padded to 1024x1024 and area-averaged to 256x256
(a soft water fraction per low-res cell), plus the (rows, cols) of low-res cells the image covers; the padding
beyond them never counts in a loss or a score. Prompts handed to the decoder are in the 1024 input frame.

Simulated prompts, drawn afresh at every step (`sample_prompt`), from the mask only:
- "point":      one positive point at a random water cell at least 2 low-res cells inside the water (any water
                cell when the water is thinner); multimask, the best candidate counts (SAM's ambiguity rule).
- "box":        the water's bounding box, each side moved by N(0, 10 % of the box side), at most 20 px (SAM's box
                noise), clipped to the image.
- "correction": a random point as above, the current model's prediction for it (no gradient), then one more
                click at the centre of the largest error region (`click_simulation.next_click`, positive in missed
                water, negative in false water) with the first prediction's logits as mask input, as in the NoC
                protocol that `floodlabel eval` measures.
- "recorded":   one of the item's own prompts (only for items that have them).
Augmentation: none. A flip of the image is not a flip of its embedding (the encoder is not equivariant), so a
flipped example would need a re-encode; the random prompts above are the only variation between epochs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from segment_anything.utils.transforms import ResizeLongestSide

from floodlabel.core.evaluation.auto_prompts import deepest_point
from floodlabel.core.evaluation.click_simulation import next_click
from floodlabel.core.data.datasets import FloodDataset
from floodlabel.core.common.errors import FloodLabelError, ImageReadError
from floodlabel.core.data.images import read_image, read_mask
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.sam.checkpoint import IMAGE_SIZE

LOW_RES = 256
CELL = IMAGE_SIZE // LOW_RES  # 4 input-frame pixels per low-res cell
PROMPT_KINDS = ("point", "box", "correction", "recorded")
BOX_NOISE = 0.1  # std of each box side's shift, as a fraction of the box side (SAM)
BOX_NOISE_MAX = 20.0  # input-frame pixels


@dataclass(frozen=True)
class TrainingItem:
    """One training image.

    image_path: the photo (read with core.images.read_image: EXIF orientation applied, RGB).
    mask:       (H, W) bool water mask in the original frame, the path of a mask file, or a function returning the
                mask (a project store's accepted mask); the last two are read only when the item is.
    prompts:    the prompts (original-frame pixels) that produced the mask, e.g. the user's clicks; may be empty.
    stem:       a name for reports (default: the image file's stem).
    """

    image_path: Path
    mask: np.ndarray | Path | Callable[[], np.ndarray]
    prompts: tuple[Prompt, ...] = ()
    stem: str = ""

    @property
    def name(self) -> str:
        return self.stem or Path(self.image_path).stem

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8 RGB, mask (H, W) bool). Raises ImageReadError (unreadable, sizes differ)."""
        image = read_image(self.image_path)
        h, w = image.shape[:2]
        if isinstance(self.mask, (str, Path)):
            return image, read_mask(self.mask, size=(w, h))
        if isinstance(self.mask, np.ndarray):
            mask = self.mask
        else:
            try:
                mask = self.mask()
            except FloodLabelError as exc:
                raise ImageReadError(self.image_path, f"its mask: {exc}") from exc
        mask = np.asarray(mask).astype(bool, copy=False)
        if mask.shape != (h, w):
            raise ImageReadError(self.image_path, f"mask is {mask.shape[1]}x{mask.shape[0]}, image {w}x{h}")
        return image, mask


def items_from_dataset(dataset: FloodDataset) -> tuple[list[TrainingItem], list]:
    """One item per evaluable image/mask pair (evaluation.plan_pairs), and the skipped entries with reasons."""
    from floodlabel.core.evaluation.evaluate import plan_pairs

    pairs, skipped = plan_pairs(dataset)
    return [TrainingItem(p.image, p.mask, (), p.stem) for p in pairs if p.mask is not None], skipped


def items_from_store(store) -> tuple[list[TrainingItem], list]:
    """One item per accepted image of a ProjectStore, with the prompt the user clicked, and the skipped images.

    mask:    the accepted mask (checked against its stored SHA-256 when read; read per item, not all at once);
    prompts: the accepted annotation state's "prompt" (Prompt.from_dict) when it has points or a box, else none
             (a mask painted with the brush only: the item trains on simulated prompts alone).
    Skipped (evaluation.Skipped: stem = the image's path in the dataset, reason): the image file is missing, its
    bytes changed since the mask was accepted, or the mask file is missing. Masks that are damaged are found when
    read (prepare_embeddings skips them with the reason).
    """
    from floodlabel.core.evaluation.evaluate import Skipped
    from floodlabel.core.store.mask_files import read_mask_png
    from floodlabel.core.store.project_store import Status

    items, skipped = [], []
    for record in store.records(Status.ACCEPTED):
        if record.image_missing:
            skipped.append(Skipped(record.rel_path, "image file is missing"))
        elif record.changed:
            skipped.append(Skipped(record.rel_path, "image changed since its mask was accepted (accept it again)"))
        elif record.mask_path is None or record.mask_missing:
            skipped.append(Skipped(record.rel_path, "accepted mask file is missing (accept the image again)"))
        else:
            state = record.accepted_state or {}
            prompt = Prompt.from_dict(state["prompt"]) if state.get("prompt") else None
            prompts = (prompt,) if prompt is not None and prompt.has_geometry else ()
            mask = partial(read_mask_png, record.mask_path, record.rel_path, record.mask_sha256)
            items.append(TrainingItem(record.image_path, mask, prompts, record.rel_path))
    return items, skipped


@dataclass
class Target:
    """A mask in SAM's low-res frame, and the item's recorded prompts in the input frame.

    gt:       (256, 256) float32 water fraction per cell over the padded 1024 input.
    rows/cols: low-res cells covered by the image (the rest is padding).
    recorded: the item's prompts as (coords (N, 2) | None, labels (N,) | None, box (4,) | None), input frame.
    """

    gt: np.ndarray
    rows: int
    cols: int
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    recorded: list[tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]] = field(default_factory=list)

    @property
    def water(self) -> np.ndarray:
        """(rows, cols) bool: cells that are mostly water."""
        return self.gt[: self.rows, : self.cols] >= 0.5

    @property
    def valid(self) -> np.ndarray:
        """(256, 256) float32: 1 on cells the image covers, 0 on the padding."""
        v = np.zeros((LOW_RES, LOW_RES), np.float32)
        v[: self.rows, : self.cols] = 1.0
        return v


def make_target(mask: np.ndarray, input_size: tuple[int, int], prompts: Sequence[Prompt] = (),
                to_input: Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None = None) -> Target:
    """mask: (H, W) bool, original frame; input_size: (h, w) of the image inside the 1024 input (SAM 2.1: (1024,
    1024), the image stretched to it). to_input(points (N, 2), (H, W)) maps recorded prompts to the input frame
    (the family's, `families.DecoderFamily.to_input`; default SAM v1's ResizeLongestSide)."""
    H, W = mask.shape
    h, w = input_size
    m = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    padded = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    padded[:h, :w] = m
    gt = cv2.resize(padded, (LOW_RES, LOW_RES), interpolation=cv2.INTER_AREA)
    if to_input is None:
        to_input = ResizeLongestSide(IMAGE_SIZE).apply_coords
    recorded = []
    for p in prompts:
        if not p.has_geometry:
            continue
        coords = np.asarray(to_input(p.points.astype(np.float32), (H, W)), np.float32) if len(p.points) else None
        labels = p.labels.astype(np.int64) if len(p.points) else None
        box = (np.asarray(to_input(p.box.reshape(2, 2).astype(np.float32), (H, W)), np.float32).reshape(4)
               if p.box is not None else None)
        recorded.append((coords, labels, box))
    return Target(gt, -(-h // CELL), -(-w // CELL), (H, W), (h, w), recorded)


def mask_digest(mask: np.ndarray) -> str:
    """Content hash of a mask (shape + packed bits), for the data hash of a checkpoint."""
    m = np.ascontiguousarray(mask, bool)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{m.shape}|".encode())
    h.update(np.packbits(m).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# simulated prompts (input frame)


def random_point(target: Target, rng: np.random.Generator) -> np.ndarray:
    """(1, 2) float32 (x, y): a random water cell's centre, preferably 2+ cells inside the water."""
    water = target.water
    inner = cv2.erode(water.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    ys, xs = np.nonzero(inner if inner.any() else water)
    j = int(rng.integers(len(xs)))
    return _cell_centre(xs[j], ys[j])[None]


def jittered_box(target: Target, rng: np.random.Generator) -> np.ndarray:
    """(4,) float32 x0 y0 x1 y1: the water's bounding box with SAM's noise, clipped to the image."""
    ys, xs = np.nonzero(target.water)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32) * CELL
    side = np.array([box[2] - box[0], box[3] - box[1]] * 2, np.float32)
    box += np.clip(rng.normal(0.0, BOX_NOISE * side), -BOX_NOISE_MAX, BOX_NOISE_MAX).astype(np.float32)
    h, w = target.input_size
    box = np.clip(box, 0, [w, h, w, h]).astype(np.float32)
    x0, x1 = sorted((box[0], box[2]))
    y0, y1 = sorted((box[1], box[3]))
    return np.array([x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)], np.float32)


def correction_click(pred: np.ndarray, target: Target, exclude: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The NoC protocol's next click for a low-res prediction, in the input frame.

    pred: (256, 256) bool prediction; exclude: (N, 2) input-frame points already clicked.
    Returns ((1, 2) float32 point, label 1/0), or None when the prediction has no error left.
    """
    cells = np.floor(np.asarray(exclude, np.float32).reshape(-1, 2) / CELL)
    click = next_click(pred[: target.rows, : target.cols], target.water, exclude=cells)
    if click is None:
        return None
    return _cell_centre(click.x, click.y)[None], int(click.positive)


def validation_prompts(target: Target) -> dict[str, tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]]:
    """The fixed validation prompts, as `floodlabel eval` makes them: the water's interior point, its box."""
    x, y, _ = deepest_point(target.water)
    ys, xs = np.nonzero(target.water)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32) * CELL
    return {"point": (_cell_centre(x, y)[None], np.ones(1, np.int64), None), "box": (None, None, box)}


def _cell_centre(x: int, y: int) -> np.ndarray:
    return np.array([x * CELL + CELL / 2, y * CELL + CELL / 2], np.float32)
