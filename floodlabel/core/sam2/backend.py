"""SAM 2.1 (hiera tiny / small / base_plus / large) behind the Segmenter interface.

Frames:
- original: (H, W) image as read; prompts come in here and masks go out here (or at `output_size`).
- input:    SAM 2.1's 1024x1024 frame. The image is *resized* to it (not padded, aspect not kept: SAM2Transforms),
            so a point (x, y) becomes (x * 1024 / W, y * 1024 / H). `Embedding.input_size` is (1024, 1024).
- low-res:  (256, 256) mask logits over the whole image; `Prediction.low_res_logits` is in this frame, clamped to
            [-32, 32] as SAM2ImagePredictor returns them, so they can come back as mask_input unchanged.

embed():   image encoder once per image -> `Embedding.features` = {"image_embed": (1, 256, 64, 64),
           "high_res_feats_0": (1, 32, 256, 256), "high_res_feats_1": (1, 64, 128, 128)}, float32 CPU tensors: what
           SAM2ImagePredictor.set_image keeps (no_mem_embed added, conv_s0 / conv_s1 applied). The embedding cache
           stores the three (float16 on disk: 8 MiB).
predict(): FastSam2Decoder + one bilinear upscale with cv2 of the candidate shown (the others when picked).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.sam2.checkpoint import IMAGE_SIZE, LoadedSam2
from floodlabel.core.sam2.fast_decoder import FastSam2Decoder
from floodlabel.core.sam2.loading import load_sam2
from floodlabel.core.segment.compute_config import ComputeConfig, default_compute_config
from floodlabel.core.segment.mask_resize import unpadded_logits_to_masks
from floodlabel.core.segment.segmenter import Capabilities, Embedding, Prediction

FEATURE_NAMES = ("image_embed", "high_res_feats_0", "high_res_feats_1")
FEATURE_SHAPES = {"image_embed": (1, 256, 64, 64), "high_res_feats_0": (1, 32, 256, 256),
                  "high_res_feats_1": (1, 64, 128, 128)}
LOGIT_CLAMP = 32.0  # SAM2ImagePredictor clamps the low-res logits it returns to [-32, 32]

# Auto: sam2's SAM2AutomaticMaskGenerator on this segmenter's embeddings (core.models.auto_water); decoder
# fine-tuning: core.training's SAM 2.1 family (training/sam2_family.py)
SAM2_CAPABILITIES = Capabilities(cache_embeddings=True, fast_decode=True, auto_masks=True, finetune_decoder=True)

class Sam2Segmenter:
    """One SAM 2.1 model: embed images, decode prompts. Thread-safe for one embed and one predict at a time each."""

    def __init__(self, loaded: LoadedSam2, config: ComputeConfig | None = None) -> None:
        import warnings

        from sam2.utils.transforms import SAM2Transforms

        self.loaded = loaded
        self.config = config or default_compute_config()
        self.device = torch.device(self.config.device)
        self.model = loaded.model.to(self.device).eval()
        self.model_id = loaded.model_id
        with warnings.catch_warnings():  # SAM2Transforms uses torch.jit.script, which torch 2.14 calls deprecated
            warnings.simplefilter("ignore", FutureWarning)
            self.transforms = SAM2Transforms(resolution=IMAGE_SIZE, mask_threshold=0.0)
        self.decoder = FastSam2Decoder(self.model, dtype=self.config.decoder_dtype)
        self._decoder_key = f"fast2-state-{id(self.decoder)}"
        self._embed_lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: ComputeConfig | None = None) -> "Sam2Segmenter":
        return cls(load_sam2(path), config)

    @property
    def architecture(self) -> str:
        return self.loaded.architecture.name

    @property
    def capabilities(self) -> Capabilities:
        return SAM2_CAPABILITIES

    @property
    def weights_id(self) -> str:
        return self.loaded.weights_id

    @property
    def compute_label(self) -> str:
        return self.config.describe()

    @property
    def cache_model_id(self) -> str:
        """model_id plus the encoder's precision and device type, e.g. 'sam2.1_hiera_tiny-0123...@enc-bf16-cpu'
        (the same rule as SAM v1: bf16 and fp32 features differ, so neither is served the other's)."""
        return self.config.encoder_cache_id(self.model_id)

    # ------------------------------------------------------------------ embedding
    def embed(self, image: np.ndarray, checkpoint: Callable[[], None] | None = None) -> Embedding:
        """image: (H, W, 3) uint8 RGB, original frame -> the three feature maps (module docstring), float32 CPU.

        checkpoint: called before the encoder, before each Hiera trunk block (tiny: 12) and after the trunk. It may
        raise (core.cancel.Cancelled) to abandon the work or block to pause it; the features are the same either way.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        original_size = (int(image.shape[0]), int(image.shape[1]))
        model = self.model
        with self._embed_lock, torch.inference_mode():
            x = self.transforms(image)[None].to(self.device)  # (1, 3, 1024, 1024) normalised, fp32
            hooks = []
            if checkpoint is not None:
                checkpoint()
                hooks = [b.register_forward_pre_hook(lambda _m, _a: checkpoint())
                         for b in model.image_encoder.trunk.blocks]
            try:
                with self.config.encoder_autocast():
                    backbone_out = model.forward_image(x)
            finally:
                for h in hooks:
                    h.remove()
            if checkpoint is not None:
                checkpoint()
            _, feats, _, _ = model._prepare_backbone_features(backbone_out)  # (HW, 1, C) per level
            if model.directly_add_no_mem_embed:
                feats[-1] = feats[-1] + model.no_mem_embed
            maps = {}
            for name, feat in zip(("high_res_feats_0", "high_res_feats_1", "image_embed"), feats):
                shape = FEATURE_SHAPES[name]
                maps[name] = feat.permute(1, 2, 0).reshape(shape).float().cpu().contiguous()
        features = {name: maps[name] for name in FEATURE_NAMES}
        return Embedding(features, original_size, (IMAGE_SIZE, IMAGE_SIZE), self.model_id)

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

        Single-mask output follows SAM 2.1: mask 0, or the best multimask candidate when mask 0 is unstable.
        Masks are upscaled lazily, per candidate.
        """
        low_res, scores = self.predict_low_res(embedding, prompt, multimask, mask_input)
        size = output_size or embedding.original_size
        pred = Prediction.lazy(scores, low_res, lambda i: unpadded_logits_to_masks(low_res[i: i + 1], size)[0])
        pred.stretched_from = tuple(embedding.original_size)  # the 256x256 logits are the whole image, squared
        return pred

    def predict_low_res(
        self,
        embedding: Embedding,
        prompt: Prompt,
        multimask: bool = True,
        mask_input: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Only the decoder: (C, 256, 256) float32 logits (clamped to [-32, 32]) and (C,) float32 scores."""
        if not prompt.has_geometry and mask_input is None:
            raise ValueError("empty prompt: give at least one point or a box")
        if embedding.model_id != self.model_id:
            raise ValueError(f"embedding of {embedding.model_id} given to {self.model_id}")
        state = self._image_state(embedding)
        coords, labels, box = self._to_input_frame(prompt, embedding.original_size)
        mask_t = None
        if mask_input is not None:
            mask_t = torch.as_tensor(np.asarray(mask_input, np.float32).reshape(1, 1, 256, 256), device=self.device)
        low_res, iou = self.decoder.decode(state, coords, labels, box, mask_t, multimask)
        low_res = low_res.clamp(-LOGIT_CLAMP, LOGIT_CLAMP).cpu().numpy()
        return low_res, iou.float().cpu().numpy()

    def _image_state(self, embedding: Embedding):
        """Per-image decoder state, kept on the embedding (it belongs to this decoder's weights)."""
        state = embedding.extra.get(self._decoder_key)
        if state is None:
            f = embedding.features
            if not isinstance(f, dict) or set(f) != set(FEATURE_NAMES):
                raise ValueError(f"not a SAM 2.1 embedding: features {type(f).__name__} "
                                 f"{sorted(f) if isinstance(f, dict) else ''}")
            t = {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v))).to(self.device,
                                                                                              torch.float32)
                 for k, v in f.items()}
            state = self.decoder.prepare(t["image_embed"], t["high_res_feats_0"], t["high_res_feats_1"])
            embedding.extra[self._decoder_key] = state
        return state

    def _to_input_frame(self, prompt: Prompt, original_size: tuple[int, int]):
        """Original-frame pixels -> the 1024 input frame (x * 1024 / W, y * 1024 / H), as SAM2Transforms does."""
        h, w = original_size
        scale = np.array([IMAGE_SIZE / w, IMAGE_SIZE / h], np.float32)
        coords = labels = box = None
        if len(prompt.points):
            coords = torch.as_tensor(prompt.points.astype(np.float32) * scale, device=self.device)
            labels = torch.as_tensor(prompt.labels, dtype=torch.int64, device=self.device)
        if prompt.box is not None:
            b = prompt.box.reshape(2, 2).astype(np.float32) * scale
            box = torch.as_tensor(b.reshape(4), device=self.device)
        return coords, labels, box
