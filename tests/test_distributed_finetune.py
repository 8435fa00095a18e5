"""`torchrun --nproc-per-node 2 -m floodlabel finetune ...` (DistributedDataParallel over gloo, CPU) against the same
command in one process, for SAM v1 and SAM 2.1: one checkpoint in the same format, metrics within stated
tolerances."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from image_factories import mask_png, save
from synthetic_scenes import make_flood_scene
from tiny_sam import tiny_sam_checkpoint

import floodlabel.cli as cli
from floodlabel.core.sam.decoder_checkpoint import read_decoder_checkpoint

H, W = 96, 128
KINDS = ("lake", "river", "scattered")


def report(stdout: str) -> dict:
    """The --json result (a message line follows it)."""
    return json.JSONDecoder().raw_decode(stdout[stdout.index("{"):])[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_one_and_two(base, tmp_path, monkeypatch, capsys, images: int = 7, epochs: int = 3,
                    batch: int = 4) -> tuple[dict, dict]:
    """`finetune --from-gt` on `images` synthetic scenes with `base` (a third of them for validation), in this
    process (one.pth) then under torchrun with 2 gloo processes (two.pth), fp32, 1 torch thread each; returns both
    --json reports."""
    root = tmp_path / "data"
    for i in range(images):
        image, mask = make_flood_scene(H, W, seed=i, kind=KINDS[i % 3])
        save(root / "Image" / f"{i}.png", image, "PNG")
        mask_png(root / "Mask" / f"{i}.png", mask * 255)
    monkeypatch.setenv("FLOODLABEL_PRECISION", "fp32")
    args = ["finetune", str(root), "--from-gt", "--model", str(base), "--epochs", str(epochs), "--lr", "1e-3",
            "--batch", str(batch), "--val-fraction", "0.34", "--seed", "1", "--json"]

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main([*args, "--out", str(tmp_path / "one.pth")]) == 0
    finally:
        torch.set_num_threads(before)
    one = report(capsys.readouterr().out)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "FLOODLABEL_DEBUG": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "floodlabel", *args,
         "--out", str(tmp_path / "two.pth")],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = report(proc.stdout)  # rank 0's report only (rank 1 prints nothing)
    assert proc.stdout.count('"checkpoint"') == 1
    return one, two


@pytest.mark.slow
def test_two_process_ddp_finetune_matches_one_process(tmp_path, monkeypatch, capsys):
    """What differs between the runs, and why the tolerances:
    - the same seeded split, epoch order and prompts on both (every rank draws the whole batch's prompts), the same
      starting weights and the same cached float16 embeddings (the one-process run fills the cache, both read it);
    - one process sums a batch's examples' gradients in one backward; two processes each sum their half (rank 0
      has none of the 1-example batch and adds zeros), then gloo averages the two ranks' gradients, so float32
      sums run in another order (~1e-7 relative). Adam divides each gradient by its own running size, so where
      a gradient is within rounding of zero its step (up to lr = 1e-3) can differ: over 6 steps the largest
      single weight differs by < 5e-4 (measured here: 1.2e-4), while the difference of the whole weight vectors
      is < 1% of how far training moved them (measured: 0.0075%); epoch losses agree to 1e-4 relative
      (measured: 1.5e-7 absolute);
    - validation: each rank scores its half of the validation images and the lists are gathered in rank order (the
      one-process order); the decoder runs on other batch groupings, so a logit near 0 can flip a pixel: IoU and
      Dice agree to 2e-3 (measured: identical, the base validation too);
    - fp32 (FLOODLABEL_PRECISION=fp32) on both: bf16 autocast rounds products to ~3 decimals, which would blur
      the comparison.
    """
    base = tiny_sam_checkpoint(tmp_path / "tiny.pth", seed=3)
    # 7 images: 5 training, batch 4: the second step has 1 example, so rank 0 has none
    one, two = run_one_and_two(base, tmp_path, monkeypatch, capsys)
    assert (one["train"], one["val"], len(one["epochs"])) == (5, 2, 3)
    start = {k[len("mask_decoder."):]: v for k, v in torch.load(base, weights_only=True).items()
             if k.startswith("mask_decoder.")}
    worst, share = assert_the_runs_agree(one, two, tmp_path, start)
    assert worst < 5e-4
    assert share < 0.01  # the runs moved the weights alike


@pytest.mark.slow
def test_two_process_ddp_finetune_of_sam2_matches_one_process(tmp_path, monkeypatch, capsys):
    """The same comparison with a tiny seeded SAM 2.1 (hiera_tiny): its decoder (object-score token, high-res maps
    in the mask head, unused conv_s0 / conv_s1 and object-score head) under DistributedDataParallel, its three
    cached maps read from the shared cache. Measured here: the checkpoints' weights identical (a split step sums two
    examples' gradients, which rounds the same in either order); with 5 images and 2 steps an epoch, the largest
    single weight differed by 6.9e-6 and the weight vectors by 6.5e-6 of how far training moved them. About 50 s,
    most of it hiera_tiny's fp32 encoder at 1 thread (the one-process run fills the cache)."""
    from tiny_sam2 import tiny_sam2_checkpoint

    base = tiny_sam2_checkpoint(tmp_path / "tiny2.pt", seed=3)
    # 4 images: 3 training, batch 2: the first step is split across the ranks, the second has 1 example, so rank 0
    # has none; 1 validation image, scored by rank 1 alone. Fewer than the SAM v1 run: hiera_tiny's fp32 encoder at
    # 1 thread takes about 6 s an image here, most of the test's time
    one, two = run_one_and_two(base, tmp_path, monkeypatch, capsys, images=4, epochs=2, batch=2)
    assert (one["train"], one["val"], len(one["epochs"])) == (3, 1, 2)
    model = torch.load(base, weights_only=True)["model"]
    start = {k[len("sam_mask_decoder."):]: v for k, v in model.items() if k.startswith("sam_mask_decoder.")}
    worst, share = assert_the_runs_agree(one, two, tmp_path, start)
    assert read_decoder_checkpoint(tmp_path / "two.pth").family == "sam2.1"
    assert worst < 5e-4
    assert share < 0.01


def assert_the_runs_agree(one: dict, two: dict, tmp_path, start: dict) -> tuple[float, float]:
    """Reports and checkpoints of the one- and two-process runs agree (see the first test for the tolerances);
    returns (the largest single decoder weight difference, the weight vectors' difference / how far training
    moved them from `start`)."""
    assert two["embedded"] == 0  # read from the shared cache the first run filled
    assert (two["train"], two["val"]) == (one["train"], one["val"])
    assert two["base_val_iou"] == pytest.approx(one["base_val_iou"], abs=1e-6)
    assert len(two["epochs"]) == len(one["epochs"])
    for a, b in zip(one["epochs"], two["epochs"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_iou"] == pytest.approx(a["val_iou"], abs=2e-3)
        assert b["val_dice"] == pytest.approx(a["val_dice"], abs=2e-3)
        assert b["lr"] == a["lr"]

    c1, c2 = read_decoder_checkpoint(tmp_path / "one.pth"), read_decoder_checkpoint(tmp_path / "two.pth")
    assert c2.best_epoch == c1.best_epoch and c2.data["hash"] == c1.data["hash"] and c2.base == c1.base
    assert c2.family == c1.family
    assert c2.settings == c1.settings and c2.mask_decoder.keys() == c1.mask_decoder.keys()
    keys = sorted(c1.mask_decoder)
    flat = [torch.cat([c[k].float().reshape(-1) for k in keys]) for c in (c1.mask_decoder, c2.mask_decoder, start)]
    worst = float((flat[0] - flat[1]).abs().max())
    moved = float((flat[0] - flat[2]).norm())
    assert not list(tmp_path.glob("two.pth.*"))  # one writer: no second temp file left
    return worst, float((flat[0] - flat[1]).norm()) / moved
