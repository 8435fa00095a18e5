"""`eval --jobs N` (worker processes, identical results), `--prompt auto|all` (AMG scored by the GT) and the plain
progress lines eval prints when stderr is not a terminal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from image_factories import mask_png, save
from synthetic_scenes import make_flood_scene
from tiny_sam import tiny_sam, tiny_sam_checkpoint

import floodlabel.cli as cli
from floodlabel.core.classic.backend import ClassicSegmenter
from floodlabel.core.evaluation import auto as eval_auto
from floodlabel.core.evaluation import parallel as eval_parallel
from floodlabel.core.evaluation import worker as eval_worker
from floodlabel.core.evaluation.worker import EvalContext
from floodlabel.core.sam.auto_mask import generate_segments, water_mask_from_segments
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.evaluation.evaluate import _expand_kinds, evaluate
from floodlabel.core.data.images import read_image, read_mask
from floodlabel.core.evaluation.metrics import mask_metrics

H, W = 96, 144
SMALL_GRID = {"points_per_side": 4, "points_per_batch": 16}


def _scenes(root: Path, n: int) -> Path:
    kinds = ("lake", "river", "scattered")
    for i in range(n):
        image, mask = make_flood_scene(H, W, seed=i, kind=kinds[i % 3])
        save(root / "Image" / f"{i}.png", image, "PNG")
        mask_png(root / "Mask" / f"{i}.png", mask * 255)
    save(root / "Image" / "dry.png", np.zeros((H, W, 3), np.uint8), "PNG")  # empty GT: skipped in both runs
    mask_png(root / "Mask" / "dry.png", np.zeros((H, W), np.uint8))
    return root


def test_jobs_2_equals_jobs_1_for_classic(tmp_path):
    data = open_dataset(_scenes(tmp_path / "data", 4))
    progress: dict[int, list] = {1: [], 2: []}
    runs = {jobs: evaluate(data, ["classic"], ["both"], max_clicks=3, jobs=jobs,
                           progress=lambda d, t, j=jobs: progress[j].append((d, t)))
            for jobs in (1, 2)}
    serial, parallel = runs[1], runs[2]
    assert len(serial.rows) == 8  # 4 images x (point, box)
    assert _plain(parallel.rows) == _plain(serial.rows)  # every metric, score and click, bit for bit, same order
    assert parallel.skipped == serial.skipped and [s.stem for s in serial.skipped] == ["dry"]
    assert parallel.model_ids == serial.model_ids == {"classic": ClassicSegmenter.model_id}
    assert progress[1] == progress[2] == [(i, 5) for i in range(6)]


def _plain(rows):
    """Rows as comparable tuples (a Prompt holds numpy arrays, which == cannot compare)."""
    out = []
    for r in rows:
        clicks = None
        if r.clicks is not None:
            c = r.clicks
            clicks = (c.ious, c.noc, c.reached, c.max_clicks, c.prompt.points.tolist(), c.prompt.labels.tolist())
        out.append((r.model, r.prompt, r.stem, r.metrics, r.score, clicks))
    return out


def test_a_worker_process_evaluates_pairs_as_the_serial_loop(tmp_path):
    data = open_dataset(_scenes(tmp_path / "data", 1))
    ctx = EvalContext("classic", ("point", "box"), noc=True, max_clicks=3)
    with pytest.raises(RuntimeError, match="init_worker"):
        eval_worker.evaluate_in_worker(data.complete_pairs[0])
    threads = (torch.get_num_threads(), max(1, cv2.getNumThreads()))
    try:
        eval_worker.init_worker(ctx)  # here, in this process: what a --jobs or Ray worker does first
        assert eval_worker.worker_context() == ctx
        outcomes = [eval_worker.evaluate_in_worker(p) for p in data.complete_pairs]
    finally:
        eval_worker.reset_worker()
        eval_worker.set_threads(*threads)  # init_worker set 1 thread: give this test process its own back
    serial = evaluate(data, ["classic"], ["both"], max_clicks=3, jobs=1)
    assert [p.stem for p in data.complete_pairs] == ["0", "dry"]
    (rows, problem, model_id), (dry_rows, dry_problem, _) = outcomes
    assert _plain(rows) == _plain(serial.rows) and problem is None and model_id == ClassicSegmenter.model_id
    assert dry_rows == [] and dry_problem == serial.skipped[0]


def test_default_jobs():
    cores = eval_parallel.available_cores()
    assert eval_parallel.default_jobs("classic") == cores
    assert eval_parallel.default_jobs("classic", pairs=3) == max(1, min(cores, 1))
    assert eval_parallel.default_jobs("classic", pairs=1000) == cores
    assert eval_parallel.default_jobs("vit_b", pairs=1000) == 1


def test_prompt_groups():
    assert _expand_kinds(["both"]) == ["point", "box"]
    assert _expand_kinds(["all"]) == ["point", "box", "auto", "text"]  # text rows: text models only
    assert _expand_kinds(["auto"]) == ["auto"]
    with pytest.raises(ValueError, match="'auto', 'text', 'both' or 'all'"):
        _expand_kinds(["lasso"])


@pytest.fixture(scope="module")
def tiny_pth(tmp_path_factory) -> Path:
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.pth")


def test_auto_prompt_end_to_end_on_tiny_sam(tmp_path, tiny_pth, capsys, monkeypatch):
    """eval --prompt all: point, box and auto rows for the SAM, no auto row for classic; the auto row's metrics
    are those of AMG's segments chosen by the GT, computed here independently (segment_anything's own AMG)."""
    monkeypatch.setattr(eval_auto, "AMG_KWARGS", SMALL_GRID)  # 4 x 4 points: one decoder batch per image
    data = _scenes(tmp_path / "data", 2)
    out_csv = tmp_path / "out.csv"
    code = cli.main(["eval", str(data), "--model", str(tiny_pth), "--model", "classic", "--prompt", "all",
                     "--no-noc", "--json", "--csv", str(out_csv)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert [(s["model"], s["prompt"], s["n"]) for s in report["summary"]] == [
        (str(tiny_pth), "point", 2), (str(tiny_pth), "box", 2), (str(tiny_pth), "auto", 2),
        ("classic", "point", 2), ("classic", "box", 2)]
    # plain progress lines, as stderr is not a terminal here (3 pairs, one with an empty GT, x 2 models)
    assert captured.err.startswith("eval: 0/6 images (0%), 0s elapsed\n")
    assert "eval: 6/6 images (100%)" in captured.err.splitlines()[-1]

    with open(out_csv, newline="", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["prompt"] == "auto" and r["stem"] == "1")
    image, gt = read_image(data / "Image" / "1.png"), read_mask(data / "Mask" / "1.png")
    segments = generate_segments(tiny_sam(0), image, **SMALL_GRID)
    expected = mask_metrics(water_mask_from_segments(segments, gt.shape, gt=gt, min_overlap=0.5), gt)
    # eval reuses its own embedding (encoder precision, float16 cache): a few pixels may differ from AMG's run
    assert float(row["iou"]) == pytest.approx(expected.iou, abs=0.02)
    assert float(row["recall"]) == pytest.approx(expected.recall, abs=0.02)
    assert 0.0 <= float(row["score"]) <= 1.5


def test_progress_lines_every_few_images(monkeypatch, capsys):
    from floodlabel.commands.eval_command import _ProgressLines

    clock = iter([0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 45.0, 46.0, 100.0])
    monkeypatch.setattr("floodlabel.commands.eval_command.time.monotonic", lambda: next(clock))
    lines = _ProgressLines()
    for done in range(9):
        lines(done, 8)
    err = capsys.readouterr().err.splitlines()
    assert err == ["eval: 0/8 images (0%), 0s elapsed",
                   "eval: 5/8 images (62%), 5s elapsed, about 3s left",  # 5 images since the last line
                   "eval: 6/8 images (75%), 45s elapsed, about 15s left",  # 30 s since the last line
                   "eval: 8/8 images (100%), 1m40s elapsed"]
