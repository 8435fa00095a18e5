"""Fine-tuning SAM 2.1's mask decoder (core.training's Sam2Family) with the tiny seeded SAM 2.1: the batched decoder
is SAM 2.1's own, validation IoU rises on synthetic scenes, the checkpoint is small and bound to its base (loads
wherever a model path does, refuses another base), and `floodlabel finetune` + `eval` end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_factories import save
from synthetic_scenes import make_flood_scene
from test_finetune import KINDS, cli_commands, write_dataset  # noqa: F401  (cli_commands is a fixture)
from tiny_sam import tiny_sam_checkpoint
from tiny_sam2 import tiny_sam2, tiny_sam2_checkpoint

import floodlabel.cli as cli
from floodlabel.core.annotation.prompts import Prompt
from floodlabel.core.common.errors import ModelError
from floodlabel.core.models.registry import SAM2, checkpoint_architecture, checkpoint_family
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.sam.decoder_checkpoint import read_decoder_checkpoint
from floodlabel.core.sam.loading import load_sam
from floodlabel.core.sam2.loading import load_sam2
from floodlabel.core.training.examples import TrainingItem, make_target
from floodlabel.core.training.finetune import FinetuneSettings, finetune
from floodlabel.core.training.sam2_family import Sam2Family

H, W = 96, 128


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scene_items(folder, n):
    items = []
    for i in range(n):
        image, mask = make_flood_scene(H, W, seed=i, kind=KINDS[i % 3])
        items.append(TrainingItem(save(folder / f"{i}.png", image, "PNG"), mask))
    return items


def test_batched_sam2_decoder_matches_predict_masks():
    """Sam2Family.decode computes SAM 2.1's MaskDecoder.predict_masks (repeat_image=False, high-res maps) for K
    images x one prompt each: masks, IoU and the decoder's gradients (fp32); prompts as SAM2ImagePredictor builds
    them (box corners as points 2/3, then clicks, one padding point)."""
    torch.manual_seed(0)
    model = tiny_sam2(seed=3)
    dec, pe = model.sam_mask_decoder.float(), model.sam_prompt_encoder.float()
    with torch.no_grad():
        for p in dec.parameters():  # away from the initialisation
            p.add_(0.05 * torch.randn_like(p))
    fam = Sam2Family()
    point = (np.array([[300.0, 200.0]], np.float32), np.ones(1, np.int64), None, None)
    box = (None, None, np.array([100, 150, 700, 600], np.float32), None)
    both = (np.array([[300.0, 200.0]], np.float32), np.ones(1, np.int64), np.array([100, 150, 700, 600], np.float32),
            torch.randn(1, 1, 256, 256))
    assert [fam.tokens(p) for p in (point, box, both)] == [2, 3, 4]
    dense_pe = pe.get_dense_pe()
    for prompt in (point, box, both):
        K = 2
        feats = {"image_embed": torch.randn(K, 256, 64, 64), "high_res_feats_0": torch.randn(K, 32, 256, 256),
                 "high_res_feats_1": torch.randn(K, 64, 128, 128)}
        with torch.no_grad():  # the decoder's gradients only
            sparse, dense = zip(*[fam.encode(pe, prompt, "cpu") for _ in range(K)])
        sparse, dense = torch.cat(sparse), torch.cat(dense)
        weight = torch.randn(K, 4, 256, 256)
        dec.zero_grad()
        ref_masks, ref_iou, *_ = dec.predict_masks(feats["image_embed"], dense_pe, sparse, dense, repeat_image=False,
                                                   high_res_features=[feats["high_res_feats_0"],
                                                                      feats["high_res_feats_1"]])
        ((ref_masks * weight).sum() + ref_iou.sum()).backward()
        ref_grads = {n: p.grad.clone() for n, p in dec.named_parameters() if p.grad is not None}
        dec.zero_grad()
        per_image = [{k: v[i: i + 1] for k, v in feats.items()} for i in range(K)]  # as the reader gives them
        masks, iou = fam.decode(dec, dense_pe, fam.batch(per_image), sparse, dense)
        ((masks * weight).sum() + iou.sum()).backward()
        torch.testing.assert_close(masks, ref_masks, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(iou, ref_iou, atol=1e-5, rtol=1e-4)
        grads = {n: p.grad for n, p in dec.named_parameters() if p.grad is not None}
        for name, r in ref_grads.items():
            g = grads.get(name)
            if name.endswith("k_proj.bias"):  # softmax ignores a key bias: its true gradient is 0 (noise in SAM's)
                scale = 1e-3 * float(ref_grads[name.replace("bias", "weight")].norm())
                assert float(r.norm()) < scale and (g is None or float(g.norm()) < scale), name
            else:
                torch.testing.assert_close(g, r, atol=1e-3, rtol=1e-3, msg=name)
        assert set(grads) <= set(ref_grads) and "obj_score_token.weight" in grads


def test_recorded_prompts_reach_sam2s_stretched_frame():
    mask = np.zeros((300, 600), bool)
    mask[100:200, 100:400] = True
    t = make_target(mask, (1024, 1024), [Prompt.point(300, 150).with_box((100, 100, 400, 200))], Sam2Family.to_input)
    coords, _labels, box = t.recorded[0]
    np.testing.assert_allclose(coords, [[300 * 1024 / 600, 150 * 1024 / 300]], rtol=1e-5)
    np.testing.assert_allclose(box, [100 * 1024 / 600, 100 * 1024 / 300, 400 * 1024 / 600, 200 * 1024 / 300],
                               rtol=1e-5)
    assert (t.rows, t.cols) == (256, 256) and t.valid.all()  # the whole low-res frame is image
    assert t.water.sum() == pytest.approx(256 * 256 / 6, rel=0.05)


def test_finetuning_sam2_raises_validation_iou_clearly_above_the_base(tmp_path):
    """Quality: the tiny seeded SAM 2.1 (random weights) fine-tuned on 8 synthetic scenes; the mean IoU on the 4
    held-out scenes after the last of 4 fixed epochs against the base's on the same scenes and prompts (the last
    epoch, not the best one, so nothing is selected on the validation split).

    Measured before the margin was set (scene seeds 0..11, model seed 3, split/prompt seed s, lr 1e-3, batch 4):
        s = 0: base 0.316 -> 0.813 (+0.497 bf16), 0.814 (+0.498 fp32)
        s = 1: base 0.259 -> 0.810 (+0.551 bf16), 0.810 (+0.550 fp32)
        s = 2: base 0.274 -> 0.874 (+0.600 bf16), 0.872 (+0.598 fp32)
    The assertion (seed 0) asks for +0.25, about half the smallest gain seen (+0.497). 41 s in pytest here (shared
    2-core VM, others running), most of it
    the 12 embeddings (hiera tiny encodes the whole 1024x1024 frame); training about 8-10 s.
    """
    items = scene_items(tmp_path, 12)
    session = SegmentationSession.open(tiny_sam2_checkpoint(tmp_path / "tiny2.pt", seed=3))
    result = finetune(items, session, tmp_path / "ft.pt",
                      FinetuneSettings(epochs=4, lr=1e-3, batch_size=4, val_fraction=1 / 3, seed=0))
    assert (result.train_count, result.val_count, result.val_on_train) == (8, 4, False)
    last = result.metrics[-1].val_iou
    assert last >= result.base_val_iou + 0.25, (result.base_val_iou, [m.val_iou for m in result.metrics])


def test_sam2_checkpoint_is_small_bound_to_its_base_and_loads_where_a_model_does(tmp_path):
    items = scene_items(tmp_path, 3)
    base = tiny_sam2_checkpoint(tmp_path / "tiny2.pt", seed=3)
    session = SegmentationSession.open(base)
    result = finetune(items, session, tmp_path / "ft.pt",
                      FinetuneSettings(epochs=1, lr=1e-3, batch_size=2, val_fraction=1 / 3, seed=0))
    out = result.checkpoint
    assert out is not None and out.stat().st_size < 25 * 2**20 < base.stat().st_size  # the decoder only
    ckpt = read_decoder_checkpoint(out)
    assert ckpt.family == SAM2 and ckpt.prompt_encoder is None
    assert ckpt.base.model_id == session.model_id and ckpt.base.architecture == "sam2.1_hiera_tiny"
    assert checkpoint_family(out) == SAM2 and checkpoint_architecture(out).name == "sam2.1_hiera_tiny"

    tuned = SegmentationSession.open(out)  # the base is found by its recorded path and SHA-256
    assert tuned.model_id == session.model_id  # the same embeddings serve both
    assert tuned.segmenter.weights_id != session.segmenter.weights_id
    state = tuned.segmenter.model.sam_mask_decoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ckpt.mask_decoder.items())
    image = items[0].read()[0]
    prompt = Prompt.point(64, 48)
    a = session.predict(session.embedding(image), prompt).low_res_logits
    b = tuned.predict(tuned.embedding(image), prompt).low_res_logits  # the base's cached embedding
    assert a.shape == b.shape and not np.allclose(a, b)

    other = tiny_sam2_checkpoint(tmp_path / "other2.pt", seed=4)  # same size, other weights
    with pytest.raises(ModelError, match="refusing to load it onto other2.pt"):
        load_sam2(out, bases=[other])
    v1 = tiny_sam_checkpoint(tmp_path / "tiny.pth", seed=3)
    with pytest.raises(ModelError, match="refusing"):
        load_sam2(out, bases=[v1])
    with pytest.raises(ModelError, match="fine-tuned sam2.1 decoder"):
        load_sam(out)  # SAM v1's loader never applies it
    # continuing from the fine-tuned model keeps the original base
    again = finetune(items, tuned, tmp_path / "ft2.pt",
                     FinetuneSettings(epochs=1, lr=1e-3, batch_size=2, val_fraction=1 / 3, seed=0))
    assert again.embedded == 0 and read_decoder_checkpoint(again.checkpoint).base == ckpt.base


def test_cli_finetune_sam2_then_eval_comparison(tmp_path, capsys, cli_commands):  # noqa: F811
    data = write_dataset(tmp_path / "data", 4)
    base = tiny_sam2_checkpoint(tmp_path / "tiny2.pt", seed=3)
    out = tmp_path / "ft2.pt"
    code = cli.main(["finetune", str(data), "--model", str(base), "--epochs", "2", "--lr", "1e-3", "--batch", "2",
                     "--val-fraction", "0.25", "--seed", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file(), text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["EPOCH", "TRAIN", "LOSS"])
    assert [lines[header + k].split()[0] for k in (1, 2)] == ["1", "2"] and "Validation IoU: base" in text
    assert read_decoder_checkpoint(out).family == SAM2
    code = cli.main(["eval", str(data), "--model", str(base), "--model", str(out), "--base", str(base),
                     "--prompt", "box", "--no-noc", "--limit", "3", "--csv", str(tmp_path / "cmp.csv")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "Comparison, prompt box: 3 images" in text and "Δ ft2.pt" in text
