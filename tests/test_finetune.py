"""Decoder fine-tuning with the tiny SAM on synthetic scenes: the loss falls, the best epoch is saved, progress
events, cancel, a NaN loss, the encoder never runs in the loop, and `floodlabel finetune` + `eval` end to end."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest
import torch
from image_factories import mask_png, save
from synthetic_scenes import make_flood_scene
from tiny_sam import tiny_sam_checkpoint

import floodlabel.cli as cli
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.training import losses
from floodlabel.core.sam.decoder_checkpoint import read_decoder_checkpoint
from floodlabel.core.training.embeddings import TrainingError
from floodlabel.core.training.examples import TrainingItem, items_from_dataset, make_target
from floodlabel.core.training.finetune import FinetuneSettings, finetune

H, W = 96, 128
KINDS = ("lake", "river", "scattered")
FAST = dict(lr=1e-3, batch_size=2)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on the shared 2-core machine a second thread mostly waits for a time slice."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_dataset(root, n):
    for i in range(n):
        image, mask = make_flood_scene(H, W, seed=i, kind=KINDS[i % 3])
        save(root / "Image" / f"{i}.png", image, "PNG")
        mask_png(root / "Mask" / f"{i}.png", mask * 255)
    return root


@pytest.fixture
def setup(tmp_path):
    """A 5-image dataset, the tiny SAM checkpoint, and a session on it (the test's isolated cache)."""
    data = write_dataset(tmp_path / "data", 5)
    ckpt = tiny_sam_checkpoint(tmp_path / "tiny.pth", seed=3)
    items, skipped = items_from_dataset(open_dataset(data))
    assert len(items) == 5 and not skipped
    return items, SegmentationSession.open(ckpt), tmp_path


def test_training_lowers_the_loss_and_saves_the_best_epoch(setup):
    items, session, tmp = setup
    events = []
    encoder_calls = []
    session.segmenter.model.image_encoder.register_forward_hook(lambda *a: encoder_calls.append(1))
    result = finetune(items, session, tmp / "ft.pth", FinetuneSettings(epochs=3, val_fraction=0.4, **FAST),
                      progress=events.append)
    assert result.stopped is None and result.train_count == 3 and result.val_count == 2
    assert len(encoder_calls) == 5 == result.embedded  # each image encoded once, before training; never in the loop
    losses_ = [m.train_loss for m in result.metrics]
    assert len(losses_) == 3 and losses_[-1] < losses_[0]
    assert result.best_val_iou == max(m.val_iou for m in result.metrics)
    assert [m.lr for m in result.metrics] == [1e-3] * 3
    ckpt = read_decoder_checkpoint(result.checkpoint)
    assert ckpt.best_epoch == result.best_epoch and len(ckpt.metrics) == 3
    assert ckpt.base.model_id == session.model_id and ckpt.data["train"] == 3 and len(ckpt.data["hash"]) == 32
    assert ckpt.settings["lr"] == 1e-3 and ckpt.prompt_encoder is None
    phases = [e.phase for e in events]
    assert phases[:5] == ["embedding"] * 5 and phases[-1] == "done" and phases.count("epoch") == 3
    steps = [e for e in events if e.phase == "training"]
    assert [e.step for e in steps] == list(range(1, 7)) and steps[-1].total == 6
    assert all(np.isfinite(e.loss) and e.eta_s is not None for e in steps)
    assert [e.epoch_metrics.epoch for e in events if e.phase == "epoch"] == [1, 2, 3]
    # a second run with the same seed reads every embedding from the cache and repeats the first
    again = finetune(items, SegmentationSession.open(session.segmenter.loaded.path), tmp / "again.pth",
                     FinetuneSettings(epochs=1, val_fraction=0.4, **FAST))
    assert again.embedded == 0 and again.metrics[0].train_loss == pytest.approx(losses_[0], rel=1e-4)


def test_cancel_mid_epoch_keeps_the_best_checkpoint(setup):
    items, session, tmp = setup
    cancel = threading.Event()
    saved = {}

    def progress(event):
        if event.phase == "epoch":
            saved["decoder"] = read_decoder_checkpoint(tmp / "ft.pth").mask_decoder
        if event.phase == "training" and event.epoch == 2:
            cancel.set()  # after the first step of epoch 2

    result = finetune(items, session, tmp / "ft.pth", FinetuneSettings(epochs=3, val_fraction=0.2, **FAST),
                      progress=progress, cancel=cancel)
    assert result.stopped == "cancelled" and len(result.metrics) == 1 and "cancelled at epoch 2" in result.message
    ckpt = read_decoder_checkpoint(tmp / "ft.pth")
    assert ckpt.best_epoch == 1 and all(torch.equal(ckpt.mask_decoder[k], v) for k, v in saved["decoder"].items())


def test_nan_loss_stops_with_a_message_and_leaves_the_checkpoint(setup, monkeypatch):
    items, session, tmp = setup
    real = losses.mask_loss
    calls = {"n": 0, "bytes": None}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        return out * float("nan") if calls["n"] > 4 else out  # epoch 1 (2 steps x 2 examples) is fine

    monkeypatch.setattr(losses, "mask_loss", poisoned)

    def progress(event):
        if event.phase == "epoch":
            calls["bytes"] = (tmp / "ft.pth").read_bytes()

    result = finetune(items, session, tmp / "ft.pth", FinetuneSettings(epochs=3, val_fraction=0.2, **FAST),
                      progress=progress)
    assert result.stopped == "diverged" and len(result.metrics) == 1
    assert "epoch 2" in result.message and "not a number" in result.message and "is intact" in result.message
    assert (tmp / "ft.pth").read_bytes() == calls["bytes"]  # untouched since epoch 1


def test_cancel_while_embedding_and_too_few_items(setup):
    items, session, tmp = setup
    cancel = threading.Event()
    result = finetune(items, session, tmp / "x.pth", FinetuneSettings(epochs=1),
                      progress=lambda e: cancel.set(), cancel=cancel)
    assert result.stopped == "cancelled" and result.checkpoint is None and not (tmp / "x.pth").exists()
    with pytest.raises(TrainingError, match="at least 2"):
        finetune(items[:1], session, tmp / "x.pth", FinetuneSettings(epochs=1))


def test_recorded_prompts_reach_the_input_frame():
    mask = np.zeros((300, 600), bool)
    mask[100:200, 100:400] = True
    from floodlabel.core.annotation.prompts import Prompt

    t = make_target(mask, (512, 1024), [Prompt.point(300, 150).with_box((100, 100, 400, 200))])
    coords, labels, box = t.recorded[0]
    np.testing.assert_allclose(coords, [[300 * 1024 / 600, 150 * 1024 / 600]], rtol=1e-3)
    np.testing.assert_allclose(box, np.array([100, 100, 400, 200]) * 1024 / 600, rtol=1e-3)
    assert (t.rows, t.cols) == (128, 256) and t.water.sum() == pytest.approx(100 * 300 * (256 / 600) ** 2, rel=0.05)
    item = TrainingItem("x.png", mask, (Prompt.point(1, 1),))
    assert item.name == "x"


@pytest.fixture
def cli_commands(monkeypatch):
    """cli.py imports every command module; some may not exist in this checkout."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", tuple(
        m for m in dict.fromkeys(cli.COMMAND_MODULES + ("finetune",))
        if importlib.util.find_spec(f"floodlabel.commands.{m}_command") is not None))


def test_cli_finetune_then_eval_comparison(tmp_path, capsys, cli_commands):
    data = write_dataset(tmp_path / "data", 4)
    base = tiny_sam_checkpoint(tmp_path / "tiny.pth", seed=3)
    out = tmp_path / "ft.pth"
    code = cli.main(["finetune", str(data), "--model", str(base), "--epochs", "2", "--lr", "1e-3", "--batch", "2",
                     "--val-fraction", "0.25", "--seed", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file()
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["EPOCH", "TRAIN", "LOSS"])
    assert [lines[header + k].split()[0] for k in (1, 2)] == ["1", "2"] and "Validation IoU: base" in text
    code = cli.main(["eval", str(data), "--model", str(base), "--model", str(out), "--base", str(base),
                     "--prompt", "box", "--no-noc", "--limit", "3", "--csv", str(tmp_path / "cmp.csv")])
    text = capsys.readouterr().out
    assert code == 0
    assert "Comparison, prompt box: 3 images" in text and "Δ ft.pth" in text
    assert "Per-image Δ IoU (ft.pth - tiny.pth), worst first (3 of 3" in text
    assert "reduction" in text


def test_batched_decoder_matches_segment_anything_per_prompt():
    """The trainer's batched, re-associated decoder computes what MaskDecoder.forward computes per prompt (fp32),
    masks, IoU and gradients; the mask head cropped to the image's grid cells gives the same cells."""
    from tiny_sam import tiny_sam

    from floodlabel.core.training import batched_decoder
    from floodlabel.core.training.trainer import prompt_groups

    torch.manual_seed(0)
    sam = tiny_sam(seed=3)
    dec, pe = sam.mask_decoder.float(), sam.prompt_encoder.float()
    with torch.no_grad():
        for p in dec.parameters():  # away from the initialisation (zero biases, unit norms)
            p.add_(0.05 * torch.randn_like(p))
    point = (np.array([[300.0, 200.0]], np.float32), np.ones(1, np.int64), None, None)
    box = (None, None, np.array([100, 150, 700, 600], np.float32), None)
    two = (np.array([[300.0, 200.0], [50.0, 60.0]], np.float32), np.array([1, 0]), None,
           torch.randn(1, 1, 256, 256))
    assert prompt_groups([point, box, two, point]) == [[0, 1, 3], [2]]
    for prompts in ([point, box, point], [two, two]):
        K = len(prompts)
        features = torch.randn(K, 256, 64, 64)
        with torch.no_grad():
            enc = [pe(points=None if c is None else (torch.as_tensor(c)[None], torch.as_tensor(lab)[None]),
                      boxes=None if b is None else torch.as_tensor(b)[None], masks=m) for c, lab, b, m in prompts]
            dense_pe = pe.get_dense_pe()
        sparse, dense = torch.cat([s for s, _ in enc]), torch.cat([d for _, d in enc])
        weight = torch.randn(K, 4, 256, 256)
        dec.zero_grad()
        ref = [dec.predict_masks(features[k: k + 1], dense_pe, sparse[k: k + 1], dense[k: k + 1]) for k in range(K)]
        ref_masks, ref_iou = torch.cat([m for m, _ in ref]), torch.cat([i for _, i in ref])
        ((ref_masks * weight).sum() + ref_iou.sum()).backward()
        ref_grads = {n: p.grad.clone() for n, p in dec.named_parameters()}
        dec.zero_grad()
        masks, iou = batched_decoder.decode(dec, dense_pe, features, sparse, dense)
        ((masks * weight).sum() + iou.sum()).backward()
        torch.testing.assert_close(masks, ref_masks, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(iou, ref_iou, atol=1e-5, rtol=1e-4)
        for name, p in dec.named_parameters():
            g, r = p.grad, ref_grads[name]
            if name.endswith("k_proj.bias"):  # softmax ignores a key bias: its true gradient is 0, both have noise
                scale = 1e-3 * float(ref_grads[name.replace("bias", "weight")].norm())
                assert float(r.norm()) < scale and (g is None or float(g.norm()) < scale), name
            else:
                assert float((g - r).norm()) <= 1e-3 * float(r.norm()) + 1e-6, name
        with torch.no_grad():
            cropped, _ = batched_decoder.decode(dec, dense_pe, features, sparse, dense, grid=(40, 50))
        torch.testing.assert_close(cropped, ref_masks[:, :, :160, :200].detach(), atol=1e-4, rtol=1e-4)


def test_finetuning_raises_validation_iou_clearly_above_the_base(tmp_path):
    """Quality: the tiny seeded SAM (random weights) fine-tuned on 12 synthetic water scenes; the mean IoU on the 6
    held-out scenes (the validation split, never trained on) after the last of 4 fixed epochs, against the base
    model's on the same scenes and prompts. The last epoch, not the best one, so nothing is selected on the
    validation split.

    Measured before the margin was set (scene seeds 100*s + i, split/prompt seed s, lr 1e-3, batch 4):
        s = 0: base 0.168 -> 0.719 (+0.551 bf16), 0.719 (+0.551 fp32)
        s = 1: base 0.151 -> 0.768 (+0.618 bf16), 0.754 (+0.604 fp32)
        s = 2: base 0.146 -> 0.694 (+0.549 bf16), 0.667 (+0.521 fp32)
    The assertion (seed 0) asks for +0.25, less than half the smallest gain seen (+0.521). About 10-20 s here.
    """
    items = []
    for i in range(18):
        image, mask = make_flood_scene(H, W, seed=i, kind=KINDS[i % 3])
        items.append(TrainingItem(save(tmp_path / f"{i}.png", image, "PNG"), mask))
    session = SegmentationSession.open(tiny_sam_checkpoint(tmp_path / "tiny.pth", seed=3))
    result = finetune(items, session, tmp_path / "ft.pth",
                      FinetuneSettings(epochs=4, lr=1e-3, batch_size=4, val_fraction=1 / 3, seed=0))
    assert (result.train_count, result.val_count, result.val_on_train) == (12, 6, False)
    last = result.metrics[-1].val_iou
    assert last >= result.base_val_iou + 0.25, (result.base_val_iou, [m.val_iou for m in result.metrics])


@pytest.fixture
def project(tmp_path, monkeypatch):
    """DATA with 5 scenes and GT masks, and a project in which 0..3 are accepted with masks that differ from the GT
    (the user's): 0 with two clicks, 1 with a box, 2 brushed only (no prompt), 3 accepted and then the photo was
    replaced (skipped); 4 only in progress."""
    from floodlabel.core.store.project_store import ProjectStore
    from floodlabel.core.annotation.prompts import Prompt

    monkeypatch.setenv("FLOODLABEL_DATA_DIR", str(tmp_path / "userdata"))
    data = write_dataset(tmp_path / "data", 5)
    accepted = {}
    states = [Prompt.point(40, 30).with_point(100, 80, positive=False), Prompt().with_box((10, 20, 90, 70)), Prompt(),
              Prompt.point(5, 5)]
    with ProjectStore(data) as store:
        for i, prompt in enumerate(states):
            _, gt = make_flood_scene(H, W, seed=i, kind=KINDS[i % 3])
            accepted[f"Image/{i}.png"] = mask = np.roll(gt, 3, axis=1)  # not the GT
            store.accept(f"Image/{i}.png", mask, {"prompt": prompt.to_dict(), "strokes": []}, model_id="tiny")
        store.save_progress("Image/4.png", {"prompt": Prompt.point(1, 1).to_dict()})
    image, _ = make_flood_scene(H, W, seed=99)
    save(data / "Image" / "3.png", image, "PNG")
    return data, accepted


def test_items_from_store_use_the_accepted_masks_and_the_clicked_prompts(project):
    from floodlabel.core.store.project_store import ProjectStore
    from floodlabel.core.training.examples import items_from_store

    data, accepted = project
    with ProjectStore(data, read_only=True) as store:
        items, skipped = items_from_store(store)
    assert [i.name for i in items] == ["Image/0.png", "Image/1.png", "Image/2.png"]
    assert [(s.stem, "changed" in s.reason) for s in skipped] == [("Image/3.png", True)]
    for item in items:
        image, mask = item.read()  # read now, not when the items were made
        assert image.shape == (H, W, 3) and np.array_equal(mask, accepted[item.name])
    (p0,), (p1,), () = (i.prompts for i in items)
    assert p0.points.tolist() == [[40, 30], [100, 80]] and p0.labels.tolist() == [1, 0] and p0.box is None
    assert p1.box.tolist() == [10, 20, 90, 70] and len(p1.points) == 0
    target = make_target(items[0].read()[1], (768, 1024), items[0].prompts)  # 96x128 -> 768x1024: x8
    np.testing.assert_allclose(target.recorded[0][0], [[320, 240], [800, 640]])


def test_cli_finetune_uses_the_project_unless_from_gt(project, tmp_path, capsys, cli_commands):
    data, _ = project
    base = tiny_sam_checkpoint(tmp_path / "tiny.pth", seed=3)
    common = ["--model", str(base), "--epochs", "1", "--lr", "1e-3", "--batch", "2", "--val-fraction", "0.34",
              "--json"]
    assert cli.main(["finetune", str(data), "--out", str(tmp_path / "a.pth"), *common]) == 0
    out = capsys.readouterr().out
    ckpt = read_decoder_checkpoint(tmp_path / "a.pth")
    assert sorted(ckpt.data["train_items"] + ckpt.data["val_items"]) == ["Image/0.png", "Image/1.png", "Image/2.png"]
    assert '"train": 2' in out and '"val": 1' in out
    project_dir = data / "floodlabel-project"
    assert cli.main(["finetune", str(project_dir), "--out", str(tmp_path / "b.pth"), *common[:-1]]) == 0
    out = capsys.readouterr().out
    assert "Training on 3 accepted masks of the project" in out and "(2 with the user's prompts)" in out
    assert "skipped Image/3.png: image changed" in out
    assert cli.main(["finetune", str(project_dir), "--from-gt", "--out", str(tmp_path / "c.pth"), *common[:-1]]) == 0
    out = capsys.readouterr().out
    assert "Training on the ground-truth masks of" in out and "(5 pairs)" in out
    gt = read_decoder_checkpoint(tmp_path / "c.pth").data
    assert sorted(gt["train_items"] + gt["val_items"]) == ["0", "1", "2", "3", "4"]
