"""Fast decoder vs SamPredictor on landscape, portrait and square images, and multi-click refinement: each click
feeds the previous prediction's low-res logits back as mask_input, ours to us and SamPredictor's to SamPredictor,
so any difference in the logits we hand back (e.g. in the padding) would compound from click to click."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from segment_anything.utils.transforms import ResizeLongestSide

from floodlabel.core.segment.compute_config import ComputeConfig
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.sam.backend import SamSegmenter
from floodlabel.core.sam.checkpoint import IMAGE_SIZE
from floodlabel.core.sam.loading import load_sam
from floodlabel.core.segment.segmenter import Embedding
from tiny_sam import tiny_sam_checkpoint

FP32 = ComputeConfig("cpu", torch.float32, torch.float32)
BF16 = ComputeConfig("cpu", torch.bfloat16, torch.bfloat16)
# small images: the decoder's cost does not depend on the image size (always the 64x64 embedding grid), only the
# aspect ratio sets the padding; SamPredictor's upscaling to the original size is cheaper on small ones
SHAPES = {"landscape": (180, 300), "portrait": (300, 180), "square": (200, 200)}
CONFIGS = {"fp32": FP32, "bf16": BF16}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pth", seed=3)


@pytest.fixture(scope="module")
def segmenters(checkpoint):
    """One fp32 and one bf16 segmenter for the whole module (loading one costs ~0.4 s)."""
    return {name: SamSegmenter.from_checkpoint(checkpoint, config) for name, config in CONFIGS.items()}


@pytest.fixture(scope="module")
def sam_model(checkpoint):
    """The same weights, as segment_anything's own model, for SamPredictor."""
    return load_sam(checkpoint).model


def _image(h, w):
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (90, 120, 60)
    img[h // 3: h - 20, w // 8: w - w // 8] = (70, 90, 140)
    return np.clip(img + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8)


def _embedding(seg, h, w):
    """Features for an (h, w) image without running the encoder: this compares decoders, and SamPredictor is given
    the same features. Seeded random features (the tiny encoder's are no less random; measured: the same agreement
    as with the encoder's) with the input size SAM's resize gives the image."""
    g = torch.Generator().manual_seed(h * 1000 + w)
    input_size = ResizeLongestSide.get_preprocess_shape(h, w, IMAGE_SIZE)
    return Embedding(torch.randn(1, 256, 64, 64, generator=g), (h, w), input_size, seg.model_id)


def _clicks(h, w):
    """A positive click, then a negative and a positive one: two refinements, each fed the previous logits."""
    points = [(w // 2, 2 * h // 3), (w // 10, h // 10), (w // 3, h - 30)]
    return np.array(points, np.float32), np.array([1, 0, 1])


def _reference(sam_model, emb):
    """A SamPredictor set to our embedding (set_image's state without running the encoder)."""
    predictor = SamPredictor(sam_model)
    predictor.original_size, predictor.input_size = tuple(emb.original_size), tuple(emb.input_size)
    predictor.features = emb.features.clone()
    predictor.is_image_set = True
    return predictor


def _chain(predict, points, labels):
    """Click k (k >= 2) decodes the first k points, multimask off, with click k-1's logits as mask_input."""
    out, logits = [], None
    for k in range(1, len(points) + 1):
        low, scores = predict(points[:k], labels[:k], k == 1, logits)
        best = int(np.argmax(scores))
        logits = low[best: best + 1]
        out.append((low[best], float(scores[best])))
    return out


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("precision", list(CONFIGS))
def test_refinement_chain_matches_sam_predictor(segmenters, sam_model, shape, precision):
    h, w = SHAPES[shape]
    seg = segmenters[precision]
    emb = _embedding(seg, h, w)
    reference = _reference(sam_model, emb)
    points, labels = _clicks(h, w)

    def ours(pts, lab, multimask, mask_input):
        return seg.predict_low_res(emb, Prompt(pts, lab), multimask, None if mask_input is None else mask_input[0])

    def sam(pts, lab, multimask, mask_input):
        with torch.inference_mode():
            _, scores, low = reference.predict(pts, lab, mask_input=mask_input, multimask_output=multimask)
        return low, scores

    a, b = _chain(ours, points, labels), _chain(sam, points, labels)
    rows, cols = -(-emb.input_size[0] // 4), -(-emb.input_size[1] // 4)  # low-res cells the image covers
    for k, ((la, sa), (lb, sb)) in enumerate(zip(a, b), start=1):
        la, lb = la[:rows, :cols], lb[:rows, :cols]
        agree = ((la > 0) == (lb > 0)).mean()
        if precision == "fp32":
            # measured: max |logit difference| ~3e-7 and full agreement on every click, in all three shapes
            assert np.abs(la - lb).max() < 1e-3 * max(1.0, np.abs(lb).max()), (shape, k)
            assert abs(sa - sb) < 1e-4 and agree == 1.0, (shape, k)
        else:
            # bf16 decoder, same features: measured agreement >= 0.997 and |score difference| <= 2e-4 here
            assert agree > 0.99 and abs(sa - sb) < 0.02, (shape, k, agree, sa, sb)


def test_padding_logits_are_sams_when_fed_back(segmenters, sam_model):
    """Our visible logits leave the padding uncomputed; fed back, they are replaced by SAM's full-grid values.
    This one runs the encoder on a real image."""
    seg = segmenters["fp32"]
    emb = seg.embed(_image(180, 300))
    reference = _reference(sam_model, emb)
    prompt = Prompt.point(150, 125)
    low, _ = seg.predict_low_res(emb, prompt, multimask=False)
    with torch.inference_mode():
        _, _, ref_low = reference.predict(prompt.points, prompt.labels, multimask_output=False)
    completed = seg._refinement_input(emb, low[0])[0, 0].numpy()
    np.testing.assert_allclose(completed, ref_low[0], atol=1e-4)
    other = low[0] + 1.0  # not one of our predictions: used as given
    np.testing.assert_array_equal(seg._refinement_input(emb, other)[0, 0].numpy(), other)
