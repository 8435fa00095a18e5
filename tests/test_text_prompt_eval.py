"""`eval --prompt text`: the concept prompt scored like the others, beside point and box in one report. Fast part with
the text-prompt TEST DOUBLE (tests/text_segmenter_double) through the per-pair worker; the CLI end to end with the
random tiny SAM 3 (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from synthetic_scenes import make_flood_scene
from text_segmenter_double import TextSegmenterDouble

from floodlabel.cli import main
from floodlabel.core.annotation.prompts import TextPrompt
from floodlabel.core.common.hashing import image_key
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.data.images import read_image
from floodlabel.core.evaluation.results import EvaluationResult
from floodlabel.core.evaluation.worker import EvalContext, evaluate_pair
from floodlabel.core.models.session import SegmentationSession


def kaggle(root, n=3):
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    for i in range(n):
        image, gt = make_flood_scene(60, 80, seed=20 + i, kind="scattered")
        Image.fromarray(image).save(root / "Image" / f"{i}.png")
        Image.fromarray(gt.astype(np.uint8) * 255).save(root / "Mask" / f"{i}.png")
    return root


def test_text_rows_beside_point_and_box(tmp_path):
    data = kaggle(tmp_path / "DATA")
    dataset = open_dataset(data)
    water = {}
    for pair in dataset.complete_pairs:
        gt = np.asarray(Image.open(pair.mask)) > 0
        water[image_key(read_image(pair.image))] = gt
    double = SegmentationSession(TextSegmenterDouble(water, scores=(0.9, 0.6, 0.3)))
    result = EvaluationResult(["double", "classic"], ["point", "box", "text"], noc=False)
    ctx = EvalContext("double", ("point", "box", "text"), False, 3, text=TextPrompt("flood water", 0.2))
    classic = SegmentationSession.open("classic", cache_dir=tmp_path / "cache")
    for pair in dataset.complete_pairs:
        result.add_outcome("double", pair.stem, evaluate_pair(double, ctx, pair), set())
    for pair in dataset.complete_pairs:
        result.add_outcome("classic", pair.stem, evaluate_pair(classic, EvalContext("classic", ctx.kinds, False, 3),
                                                               pair), set())
    text_rows = [r for r in result.rows if r.prompt == "text"]
    assert len(text_rows) == 3 and {r.model for r in text_rows} == {"double"}
    for r in text_rows:  # threshold 0.2 keeps every component of the given water: the GT itself
        assert r.iou == pytest.approx(1.0) and 0.3 <= r.score <= 0.9
        assert r.used_prompt.text == TextPrompt("flood water", 0.2) and not r.used_prompt.has_geometry
    summary = [(s.model, s.prompt) for s in result.summary()]
    assert summary == [("double", "point"), ("double", "box"), ("double", "text"), ("classic", "point"),
                       ("classic", "box")]  # no empty text row for a model without a text prompt


def test_cli_refuses_an_empty_phrase_in_one_line(tmp_path, capsys):
    data = kaggle(tmp_path / "DATA", n=1)
    assert main(["eval", str(data), "--model", "classic", "--prompt", "text", "--text", " ", "--csv",
                 str(tmp_path / "e.csv")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_eval_prompt_text_with_tiny_sam3(tmp_path, capsys):
    from tiny_sam3 import tiny_sam3_checkpoint

    data = kaggle(tmp_path / "DATA", n=2)
    sam3 = tiny_sam3_checkpoint(tmp_path / "tiny_sam3.pt")
    assert main(["eval", str(data), "--model", str(sam3), "--model", "classic", "--prompt", "both", "--prompt",
                 "text", "--text", "flood water", "--threshold", "0.0", "--no-noc", "--json", "--csv",
                 str(tmp_path / "e.csv")]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(r["model"], r["prompt"]): r for r in out["summary"]}
    assert set(rows) == {(str(sam3), "point"), (str(sam3), "box"), (str(sam3), "text"), ("classic", "point"),
                         ("classic", "box")}
    assert rows[(str(sam3), "text")]["n"] == 2
    csv = (tmp_path / "e.csv").read_text().splitlines()
    assert sum(",text," in line for line in csv) == 2
