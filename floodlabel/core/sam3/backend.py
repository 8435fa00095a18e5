"""SAM 3 behind the Segmenter and TextSegmenter interfaces: a phrase returns every instance; points and boxes decode
through SAM 3's interactive (SAM-style) predictor.

Frames:
- original: (H, W) image as read; prompts come in here, masks and boxes go out here (or at `output_size`).
- input:    SAM 3's 1008x1008 frame: the image is *resized* to it (aspect not kept, as Sam3Processor does), so a
            point (x, y) becomes (x * 1008 / W, y * 1008 / H). `Embedding.input_size` is (1008, 1008).
- grid:     the ViT's 72x72 tokens (14-pixel patches); the necks make a 288 / 144 / 72 pyramid from it.
- low-res:  mask logits over the whole image, squared: 288x288 from both heads. `Prediction.low_res_logits` is
            resized to the protocol's (256, 256) (clamped to [-32, 32]); a mask_input comes back at 256 and is
            resized to 288.

embed():   the ViT trunk once per image -> `Embedding.features` = {"trunk": (1, C, 72, 72) float32 CPU} (C = 1024:
           10.6 MiB in the disk cache's float16). What the heads need after it is 6x larger (the text path's
           neck: 256 x (288² + 144² + 72²) floats, 111 MB in float32; the click path's: 21 MB), so it is not
           cached on disk: each neck runs on the first use of an embedding by its path and is kept in
           `Embedding.extra` (and so counted by the memory cache's byte bound).
segment_text(): the text encoder (per phrase, memoised), then SAM 3's fusion encoder, decoder and segmentation
           head (`Sam3Image.forward_grounding`, as `Sam3Processor.set_text_prompt` runs it). Score of an instance:
           sigmoid(query logit) x sigmoid(presence logit), as Sam3Processor computes it. Kept: score >=
           SCORE_FLOOR, the MAX_INSTANCES most confident (the masks' memory bound: 384 MB for a 4000x3000 photo).
predict(): SAM 3's interactive predictor (`enable_inst_interactivity`: SAM3InteractiveImagePredictor, the SAM 2
           prompt encoder and mask decoder of its tracker on the second neck), driven directly as
           SAM3InteractiveImagePredictor._predict does, with the upscale done once per shown candidate with cv2.
           Chosen over `Sam3Processor.add_geometric_prompt` (a box as an exemplar of the concept, which returns
           every similar instance, not the one clicked, and takes no points) because a click or a box here means
           "this region".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from floodlabel.core.annotation.prompts import MIN_TEXT_THRESHOLD, Prompt
from floodlabel.core.sam3.architecture import IMAGE_SIZE
from floodlabel.core.sam3.checkpoint import LoadedSam3, load_sam3
from floodlabel.core.sam3.cpu_compat import no_pin_memory
from floodlabel.core.segment.compute_config import ComputeConfig, default_compute_config
from floodlabel.core.segment.mask_resize import unpadded_logits_to_masks
from floodlabel.core.segment.segmenter import LOW_RES, Capabilities, Embedding, Instances, Prediction

LOGIT_CLAMP = 32.0
SCORE_FLOOR = MIN_TEXT_THRESHOLD
"""segment_text leaves out instances scoring below this (of SAM 3's 200 queries most score near 0 with trained
weights). A threshold under it (`--threshold` goes down to 0; the window's slider stops at it) counts what it would at 0.05."""
MAX_INSTANCES = 32
"""segment_text keeps at most this many instances, the most confident: each is an (H, W) bool mask at the output
size (H x W bytes), so the masks take at most 32 x H x W bytes: 384 MB for a 4000x3000 photo at its own size
(`propose`, `eval`), 100 MB at the window's 2048x1536 view size. Without it, 200 queries passing the floor (random
weights do) took 2.4 GB there. Only the kept instances are upscaled, through one int16 (H, W) frame at a time."""
TEXT_MEMO = 16  # phrases whose text encoding is kept

# no Auto (no automatic mask generator for SAM 3 here) and no decoder fine-tuning (core.training knows SAM and
# SAM 2.1's decoders only)
SAM3_CAPABILITIES = Capabilities(cache_embeddings=True, fast_decode=True, auto_masks=False, finetune_decoder=False,
                                 text_prompt=True)


class Sam3Segmenter:
    """One SAM 3 model: embed images, find a phrase's instances, decode clicks and boxes. Thread-safe: one embed
    and one decode (text or geometry) at a time each."""

    def __init__(self, loaded: LoadedSam3, config: ComputeConfig | None = None) -> None:
        from sam3.model.data_misc import FindStage
        from torchvision.transforms import v2

        self.loaded = loaded
        self.config = config or default_compute_config()
        self.device = torch.device(self.config.device)
        self.model = loaded.model.to(self.device).eval()
        self.model_id = loaded.model_id
        self.tracker = self.model.inst_interactive_predictor.model
        self.transform = v2.Compose([  # Sam3Processor's
            v2.Resize(size=(IMAGE_SIZE, IMAGE_SIZE)),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
        ])
        zero = torch.tensor([0], device=self.device, dtype=torch.long)
        self.find_stage = FindStage(img_ids=zero, text_ids=zero, input_boxes=None, input_boxes_mask=None,
                                    input_boxes_label=None, input_points=None, input_points_mask=None)
        self._key = f"sam3-{id(self)}"
        self._embed_lock = threading.Lock()
        self._decode_lock = threading.Lock()
        self._texts: OrderedDict[str, dict] = OrderedDict()

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: ComputeConfig | None = None) -> "Sam3Segmenter":
        return cls(load_sam3(path), config)

    @property
    def architecture(self) -> str:
        return self.loaded.architecture.name

    @property
    def capabilities(self) -> Capabilities:
        return SAM3_CAPABILITIES

    @property
    def weights_id(self) -> str:
        return self.loaded.weights_id

    @property
    def compute_label(self) -> str:
        return self.config.describe()

    @property
    def cache_model_id(self) -> str:
        """model_id plus the encoder's precision and device type (ComputeConfig.encoder_cache_id, as every family)."""
        return self.config.encoder_cache_id(self.model_id)

    # ------------------------------------------------------------------ embedding
    def embed(self, image: np.ndarray, checkpoint: Callable[[], None] | None = None) -> Embedding:
        """image: (H, W, 3) uint8 RGB, original frame -> {"trunk": (1, C, 72, 72)} float32 CPU (module docstring).

        checkpoint: called before the trunk, before each of its blocks (32) and after it; it may raise
        (core.cancel.Cancelled) to abandon the work or block to pause it.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        original_size = (int(image.shape[0]), int(image.shape[1]))
        trunk = self.model.backbone.vision_backbone.trunk
        with self._embed_lock, torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(self.device)
            x = self.transform(x)[None]  # (1, 3, 1008, 1008), in [-1, 1]
            hooks = []
            if checkpoint is not None:
                checkpoint()
                hooks = [b.register_forward_pre_hook(lambda _m, _a: checkpoint()) for b in trunk.blocks]
            try:
                with self.config.encoder_autocast():
                    feats = trunk(x)[-1]
            finally:
                for h in hooks:
                    h.remove()
            if checkpoint is not None:
                checkpoint()
            feats = feats.float().cpu().contiguous()
        return Embedding({"trunk": feats}, original_size, (IMAGE_SIZE, IMAGE_SIZE), self.model_id)

    # ------------------------------------------------------------------ text
    def segment_text(self, embedding: Embedding, phrase: str,
                     output_size: tuple[int, int] | None = None) -> Instances:
        """The instances of `phrase` scoring at least SCORE_FLOOR, most confident first, at most MAX_INSTANCES of
        them: masks (N, H, W) bool and boxes (N, 4) xyxy at output_size (default: the original size), scores (N,)
        float32 in [0, 1]. The same image and phrase give the same instances in the same order at any size."""
        text = " ".join(str(phrase).split())
        if not text:
            raise ValueError("empty phrase: say what to find, e.g. water")
        self._check(embedding)
        H, W = output_size or embedding.original_size
        with self._decode_lock, torch.inference_mode(), no_pin_memory():
            backbone_out = {**self._sam3_neck(embedding), **self._text(text)}
            out = self.model.forward_grounding(backbone_out=backbone_out, find_input=self.find_stage,
                                               find_target=None, geometric_prompt=self.model._get_dummy_prompt())
            presence = out["presence_logit_dec"].float().sigmoid().reshape(-1)  # (1,)
            scores = (out["pred_logits"].float().sigmoid().reshape(-1) * presence).cpu().numpy()  # (Q,)
            keep = np.flatnonzero(scores >= SCORE_FLOOR)
            keep = keep[np.argsort(-scores[keep], kind="stable")][:MAX_INSTANCES]
            logits = out["pred_masks"][0, torch.as_tensor(keep, dtype=torch.long)].float().cpu().numpy()
            cxcywh = out["pred_boxes"][0, torch.as_tensor(keep, dtype=torch.long)].float().cpu().numpy()
        masks = unpadded_logits_to_masks(logits, (H, W)) if len(keep) else np.zeros((0, H, W), bool)
        boxes = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
        boxes = (np.clip(boxes, 0.0, 1.0) * np.array([W, H, W, H], np.float32)).astype(np.float32).reshape(-1, 4)
        return Instances(masks, scores[keep].astype(np.float32), boxes, text)

    def _text(self, phrase: str) -> dict:
        """The text encoder's outputs for one phrase (language_features / _mask / _embeds), memoised."""
        hit = self._texts.get(phrase)
        if hit is None:
            hit = self.model.backbone.forward_text([phrase], device=self.device)
            self._texts[phrase] = hit
            while len(self._texts) > TEXT_MEMO:
                self._texts.popitem(last=False)
        else:
            self._texts.move_to_end(phrase)
        return hit

    def _sam3_neck(self, embedding: Embedding) -> dict:
        """The detector's backbone_out for one image, as SAM3VLBackbone.forward_image makes it (scalp=1: the 0.5x
        level is never used, so never computed): backbone_fpn / vision_pos_enc at 288, 144, 72; vision_features."""
        key = self._key + "-text"
        state = embedding.extra.get(key)
        if state is None:
            neck = self.model.backbone.vision_backbone
            x = self._trunk(embedding)
            fpn = [neck.convs[i](x) for i in range(3)]
            pos = [neck.position_encoding(f).to(f.dtype) for f in fpn]
            state = {"backbone_fpn": fpn, "vision_pos_enc": pos, "vision_features": fpn[-1]}
            embedding.extra[key] = state
        return state

    # ------------------------------------------------------------------ points and boxes
    def predict(
        self,
        embedding: Embedding,
        prompt: Prompt,
        multimask: bool = True,
        output_size: tuple[int, int] | None = None,
        mask_input: np.ndarray | None = None,
    ) -> Prediction:
        """Decode one prompt (original-frame pixels) into C = 3 (multimask) or 1 candidate masks, upscaled lazily.
        Single-mask output follows SAM 2's rule (mask 0, or the best multimask candidate when mask 0 is unstable)."""
        low288, scores = self.predict_low_res(embedding, prompt, multimask, mask_input)
        size = output_size or embedding.original_size
        low256 = np.stack([cv2.resize(m, (LOW_RES, LOW_RES), interpolation=cv2.INTER_LINEAR) for m in low288])
        pred = Prediction.lazy(scores, low256, lambda i: unpadded_logits_to_masks(low288[i: i + 1], size)[0])
        pred.stretched_from = tuple(embedding.original_size)  # the logits are the whole image, squared
        return pred

    def predict_low_res(self, embedding: Embedding, prompt: Prompt, multimask: bool = True,
                        mask_input: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Only the decoder: (C, 288, 288) float32 logits (clamped to [-32, 32]) and (C,) float32 scores."""
        if not prompt.has_geometry and mask_input is None:
            raise ValueError("empty prompt: give at least one point or a box")
        self._check(embedding)
        coords, labels = self._to_input_frame(prompt, embedding.original_size)
        with self._decode_lock, torch.inference_mode():
            state = self._sam2_neck(embedding)
            mask_t = None
            if mask_input is not None:
                side = int(state["image_embed"].shape[-1]) * 4
                m = cv2.resize(np.asarray(mask_input, np.float32).reshape(LOW_RES, LOW_RES), (side, side),
                               interpolation=cv2.INTER_LINEAR)
                mask_t = torch.from_numpy(m).to(self.device).reshape(1, 1, side, side)
            encoder = self.tracker.sam_prompt_encoder
            sparse, dense = encoder(points=(coords, labels) if coords is not None else None, boxes=None,
                                    masks=mask_t)
            low, iou, _, _ = self.tracker.sam_mask_decoder(
                image_embeddings=state["image_embed"], image_pe=encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask,
                repeat_image=False, high_res_features=state["high_res_feats"])
        low = low[0].float().clamp(-LOGIT_CLAMP, LOGIT_CLAMP).cpu().numpy()
        return low, iou[0].float().cpu().numpy()

    def _sam2_neck(self, embedding: Embedding) -> dict:
        """The interactive predictor's features for one image, as Sam3Processor.set_image and
        Sam3Image.predict_inst make them: image_embed (1, d, 72, 72) with no_mem_embed added, high_res_feats
        [(1, d/8, 288, 288), (1, d/4, 144, 144)] through the mask decoder's conv_s0 / conv_s1."""
        key = self._key + "-inst"
        state = embedding.extra.get(key)
        if state is None:
            convs = self.model.backbone.vision_backbone.sam2_convs
            x = self._trunk(embedding)
            fpn = [convs[i](x) for i in range(3)]
            decoder = self.tracker.sam_mask_decoder
            embed = fpn[2] + self.tracker.no_mem_embed.reshape(1, -1, 1, 1)
            state = {"image_embed": embed, "high_res_feats": [decoder.conv_s0(fpn[0]), decoder.conv_s1(fpn[1])]}
            embedding.extra[key] = state
        return state

    def _to_input_frame(self, prompt: Prompt, original_size: tuple[int, int]):
        """Original-frame pixels -> the 1008 frame; a box goes first as two corner points labelled 2 and 3 (as the
        predictor concatenates them). Returns ((1, N, 2) float32, (1, N) int32) tensors, or (None, None)."""
        h, w = original_size
        scale = np.array([IMAGE_SIZE / w, IMAGE_SIZE / h], np.float32)
        pts, lab = [], []
        if prompt.box is not None:
            pts.append(np.asarray(prompt.box, np.float32).reshape(2, 2) * scale)
            lab.append(np.array([2, 3], np.int32))
        if len(prompt.points):
            pts.append(np.asarray(prompt.points, np.float32).reshape(-1, 2) * scale)
            lab.append(np.asarray(prompt.labels, np.int32).reshape(-1))
        if not pts:
            return None, None
        coords = torch.as_tensor(np.concatenate(pts)[None], device=self.device)
        labels = torch.as_tensor(np.concatenate(lab)[None], device=self.device)
        return coords, labels

    # ------------------------------------------------------------------ helpers
    def _check(self, embedding: Embedding) -> None:
        if embedding.model_id != self.model_id:
            raise ValueError(f"embedding of {embedding.model_id} given to {self.model_id}")
        if not isinstance(embedding.features, dict) or "trunk" not in embedding.features:
            raise ValueError("not a SAM 3 embedding (no trunk features)")

    def _trunk(self, embedding: Embedding) -> torch.Tensor:
        t = embedding.features["trunk"]
        t = t if isinstance(t, torch.Tensor) else torch.from_numpy(np.asarray(t))
        return t.to(self.device, torch.float32)
