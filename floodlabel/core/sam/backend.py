"""SAM (vit_b / vit_l / vit_h, or any SAM-shaped checkpoint) behind the Segmenter interface.

Frames:
- original: (H, W) image as read; prompts come in here and masks go out here (or at `output_size`).
- input:    the 1024 frame. `ResizeLongestSide(1024)` scales the image to (h, w) with max(h, w) = 1024, then
            SAM pads it to 1024x1024. Prompt coordinates are scaled by the same factor.
- low-res:  (256, 256) mask logits over the padded 1024 input; `Prediction.low_res_logits` is in this frame.

embed():   image encoder, once per image; returns features (1, 256, 64, 64) float32.
predict(): FastSamDecoder (same network, reordered; see sam_fast_decoder.py) + one-pass cv2 upscaling.

Refinement: the fast decoder leaves the padding of the low-res logits uncomputed (copies of the nearest computed
values), which no mask shows but which SAM's prompt encoder reads when the logits come back as mask_input. So every
returned candidate's logits are remembered (content digest -> the mask head's input, last REFINE_MEMORY
predictions per image); a mask_input equal to one of them is replaced by SAM's full-grid logits for it before
decoding. Refinement from our own predictions thus sees exactly what SamPredictor's would.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from segment_anything.utils.transforms import ResizeLongestSide

from floodlabel.core.segment.compute_config import ComputeConfig, default_compute_config
from floodlabel.core.segment.mask_resize import logits_to_masks
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.sam.checkpoint import IMAGE_SIZE, LoadedSam
from floodlabel.core.sam.loading import load_sam
from floodlabel.core.sam.fast_decoder import FastSamDecoder
from floodlabel.core.segment.segmenter import Capabilities, Embedding, Prediction

REFINE_MEMORY = 4
"""Predictions per image whose full-grid logits can be completed when fed back as mask_input."""

SAM_CAPABILITIES = Capabilities(cache_embeddings=True, fast_decode=True, auto_masks=True, finetune_decoder=True)

class SamSegmenter:
    """One SAM model: embed images, decode prompts. Thread-safe for one embed and one predict at a time each."""

    def __init__(self, loaded: LoadedSam, config: ComputeConfig | None = None) -> None:
        self.loaded = loaded
        self.config = config or default_compute_config()
        self.device = torch.device(self.config.device)
        self.model = loaded.model.to(self.device).eval()
        self.model_id = loaded.model_id
        self.transform = ResizeLongestSide(IMAGE_SIZE)
        self.decoder = FastSamDecoder(self.model, dtype=self.config.decoder_dtype)
        self._decoder_key = f"fast-state-{id(self.decoder)}"
        self._refine_key = f"refine-{id(self.decoder)}"
        self._embed_lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: ComputeConfig | None = None) -> "SamSegmenter":
        return cls(load_sam(path), config)

    @property
    def architecture(self) -> str:
        return self.loaded.architecture.name

    @property
    def capabilities(self) -> Capabilities:
        return SAM_CAPABILITIES

    @property
    def weights_id(self) -> str:
        """The fine-tuned decoder's own id where one is loaded, else model_id."""
        return self.loaded.weights_id

    @property
    def compute_label(self) -> str:
        return self.config.describe()

    @property
    def cache_model_id(self) -> str:
        """Keys the embedding cache: model_id plus what changes the encoder's features (its precision and the
        device type), e.g. "sam-vit_b-0123456789abcdef@enc-bf16-cpu". bf16 and fp32 features differ (by ~0.007 on
        average), so an fp32 session is never served a bf16 run's embeddings, nor the other way round."""
        return self.config.encoder_cache_id(self.model_id)

    # ------------------------------------------------------------------ embedding
    def embed(self, image: np.ndarray, checkpoint: Callable[[], None] | None = None) -> Embedding:
        """image: (H, W, 3) uint8 RGB, original frame -> features (1, 256, 64, 64) float32 on the CPU.

        checkpoint: called before the encoder and between its transformer blocks (vit_b: 14 calls). It may raise
        (core.cancel.Cancelled) to abandon the work, or block to pause it; the features are the same either way.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        original_size = (int(image.shape[0]), int(image.shape[1]))
        resized = self.transform.apply_image(image)  # (h, w, 3) uint8, long side 1024
        input_size = (int(resized.shape[0]), int(resized.shape[1]))
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        with self._embed_lock, torch.inference_mode():
            x = self.model.preprocess(x.float())  # normalise and pad to 1024x1024
            with self.config.encoder_autocast():
                features = self._encode(x, checkpoint)
            features = features.float().cpu()
        return Embedding(features, original_size, input_size, self.model_id)

    def _encode(self, x: torch.Tensor, checkpoint: Callable[[], None] | None) -> torch.Tensor:
        """image_encoder(x) for x (1, 3, 1024, 1024), run block by block when there is a checkpoint to call.

        The steps are ImageEncoderViT.forward's, in its order, so the result is identical (tests check it).
        """
        encoder = self.model.image_encoder
        if checkpoint is None or not hasattr(encoder, "blocks"):
            return encoder(x)
        checkpoint()
        x = encoder.patch_embed(x)  # (1, 64, 64, C)
        if encoder.pos_embed is not None:
            x = x + encoder.pos_embed
        for block in encoder.blocks:
            checkpoint()
            x = block(x)
        checkpoint()
        return encoder.neck(x.permute(0, 3, 1, 2))  # (1, 256, 64, 64)

    # ------------------------------------------------------------------ decoding
    def predict(
        self,
        embedding: Embedding,
        prompt: Prompt,
        multimask: bool = True,
        output_size: tuple[int, int] | None = None,
        mask_input: np.ndarray | None = None,
    ) -> Prediction:
        """Decode one prompt (original-frame pixels) into C = 3 (multimask) or 1 candidate masks.

        Masks are upscaled lazily, per candidate: showing the best one costs one upscale, not three.
        """
        low_res, scores = self.predict_low_res(embedding, prompt, multimask, mask_input)
        size = output_size or embedding.original_size
        return Prediction.lazy(
            scores, low_res, lambda i: logits_to_masks(low_res[i: i + 1], embedding.input_size, size)[0]
        )

    def predict_low_res(
        self,
        embedding: Embedding,
        prompt: Prompt,
        multimask: bool = True,
        mask_input: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Only the decoder: (C, 256, 256) float32 logits and (C,) float32 scores, no upscaling."""
        if not prompt.has_geometry and mask_input is None:
            raise ValueError("empty prompt: give at least one point or a box")
        if embedding.model_id != self.model_id:
            raise ValueError(f"embedding of {embedding.model_id} given to {self.model_id}")
        state = self._image_state(embedding)
        coords, labels, box = self._to_input_frame(prompt, embedding.original_size)
        mask_t = None
        if mask_input is not None:
            mask_t = self._refinement_input(embedding, np.asarray(mask_input, np.float32).reshape(256, 256))
        low_res, iou, head = self.decoder.decode_with_head_input(state, coords, labels, box, mask_t, multimask,
                                                                 embedding.input_size)
        low_res = low_res.float().cpu().numpy()
        if tuple(embedding.input_size) != (IMAGE_SIZE, IMAGE_SIZE):  # padding was left uncomputed: remember
            memory = embedding.extra.setdefault(self._refine_key, OrderedDict())
            for i in range(len(low_res)):
                memory[_digest(low_res[i])] = (head, i)
            while len(memory) > REFINE_MEMORY * 3:
                memory.popitem(last=False)
        return low_res, iou.float().cpu().numpy()

    def _refinement_input(self, embedding: Embedding, logits: np.ndarray) -> torch.Tensor:
        """mask_input as a (1, 1, 256, 256) tensor; SAM's full-grid logits when it is one of our predictions."""
        known = embedding.extra.get(self._refine_key, {}).get(_digest(logits))
        if known is not None:
            head, index = known
            return self.decoder.complete(head, index).float()[None, None]
        return torch.as_tensor(logits, device=self.device)[None, None]

    def _image_state(self, embedding: Embedding):
        """Per-image decoder state, kept on the embedding (it belongs to this decoder's weights)."""
        state = embedding.extra.get(self._decoder_key)
        if state is None:
            features = embedding.features
            if not isinstance(features, torch.Tensor):
                features = torch.from_numpy(np.asarray(features))
            state = self.decoder.prepare(features.to(self.device, torch.float32))
            embedding.extra[self._decoder_key] = state
        return state

    def _to_input_frame(self, prompt: Prompt, original_size: tuple[int, int]):
        coords = labels = box = None
        if len(prompt.points):
            c = self.transform.apply_coords(prompt.points.astype(np.float32), original_size)
            coords = torch.as_tensor(c, dtype=torch.float32, device=self.device)
            labels = torch.as_tensor(prompt.labels, dtype=torch.int64, device=self.device)
        if prompt.box is not None:
            b = self.transform.apply_boxes(prompt.box.reshape(1, 4).astype(np.float32), original_size)
            box = torch.as_tensor(b[0], dtype=torch.float32, device=self.device)
        return coords, labels, box


def _digest(logits: np.ndarray) -> bytes:
    """Content digest of (256, 256) float32 logits (about 0.1 ms)."""
    return hashlib.blake2b(np.ascontiguousarray(logits, np.float32).tobytes(), digest_size=16).digest()
