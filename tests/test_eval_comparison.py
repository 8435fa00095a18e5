"""Two-model comparison of an EvaluationResult: means, Δ, Δ%, failures and their reduction, per-image Δ worst first,
NoC per model, the printed table, the CSV's delta_iou and the JSON."""

from __future__ import annotations

import csv

import pytest

from floodlabel.core.evaluation.click_simulation import ClickResult
from floodlabel.core.evaluation.comparison import compare
from floodlabel.core.evaluation.report import format_comparison, to_json, write_csv
from floodlabel.core.evaluation.evaluate import EvaluationResult, ImageResult
from floodlabel.core.evaluation.metrics import MaskMetrics
from floodlabel.core.annotation.prompts import Prompt

# per image IoU of A and B (point prompt); dice = precision = recall = IoU to keep the arithmetic visible
IOUS = {"1": (0.40, 0.80), "2": (0.90, 0.70), "3": (0.30, 0.45), "10": (0.60, 0.60)}
NOC = {"A": {"1": 5, "2": 1, "3": 20, "10": 3}, "B": {"1": 2, "2": 2, "3": 6, "10": 3}}


def clicks(n: int) -> ClickResult:
    return ClickResult((0.9,), Prompt(), {0.85: n, 0.9: n}, {0.85: n < 20, 0.9: n < 20}, 20)


def make_result() -> EvaluationResult:
    result = EvaluationResult(["A", "path/to/B.pth"], ["point"], model_ids={"A": "a-id", "path/to/B.pth": "b-id"})
    for k, model in enumerate(result.models):
        for stem, ious in IOUS.items():
            m = MaskMetrics(ious[k], ious[k], ious[k], ious[k])
            result.rows.append(ImageResult(model, "point", stem, m, 0.5, clicks(NOC["AB"[k]][stem])))
    return result


def test_comparison_values():
    (c,) = compare(make_result())
    assert c.reference == "A" and c.stems == ["1", "2", "3", "10"]
    mean_a, mean_b = sum(a for a, _ in IOUS.values()) / 4, sum(b for _, b in IOUS.values()) / 4
    assert c.value("A", "iou") == pytest.approx(mean_a) and c.value("path/to/B.pth", "dice") == pytest.approx(mean_b)
    d, pct = c.delta("path/to/B.pth", "iou")
    assert d == pytest.approx(mean_b - mean_a) and pct == pytest.approx(100 * (mean_b - mean_a) / mean_a)
    assert c.columns["A"].failures == 2 and c.columns["path/to/B.pth"].failures == 1  # IoU < 0.5
    assert c.failure_reduction("path/to/B.pth") == 1
    assert c.value("A", "NoC@85") == pytest.approx(29 / 4) and c.value("path/to/B.pth", "NoC@90") == pytest.approx(13 / 4)
    deltas = c.deltas["path/to/B.pth"]
    assert [(x.stem, round(x.delta, 6)) for x in deltas] == [("2", -0.2), ("10", 0.0), ("3", 0.15), ("1", 0.4)]
    assert compare(EvaluationResult(["A"], ["point"])) == []


def test_comparison_table_csv_and_json(tmp_path):
    result = make_result()
    text = format_comparison(result, top=2)
    lines = text.splitlines()
    assert lines[0] == "Comparison, prompt point: 4 images, identical prompts; Δ against A"
    assert lines[1].split() == ["METRIC", "A", "B.pth", "Δ", "B.pth", "Δ%", "B.pth"]
    iou_row = lines[2].split()
    assert iou_row[0] == "IoU" and iou_row[1] == "0.550" and iou_row[4] == "0.637" and iou_row[7] == "+0.087"
    assert iou_row[8] == "+15.9%"
    assert any(line.split()[:3] == ["NoC@85", "7.25", "3.25"] for line in lines)
    assert any(line.split() == ["IoU<0.5", "2", "1", "-1", "-50.0%"] for line in lines)
    assert "Failures (IoU < 0.5): A 2 -> B.pth 1, reduction 1 (50%)" in text
    assert "Per-image Δ IoU (B.pth - A), worst first (2 of 4; all in the CSV):" in text
    worst = lines[lines.index("Per-image Δ IoU (B.pth - A), worst first (2 of 4; all in the CSV):") + 2].split()
    assert worst == ["2", "0.900", "0.700", "-0.200"]
    assert format_comparison(EvaluationResult(["A"], ["point"])) == ""

    path = write_csv(result, tmp_path / "r.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["delta_iou"] for r in rows if r["model"] == "A"} == {""}
    assert {r["stem"]: float(r["delta_iou"]) for r in rows if r["model"] == "path/to/B.pth"} == pytest.approx(
        {"1": 0.4, "2": -0.2, "3": 0.15, "10": 0.0})
    (cmp,) = to_json(result)["comparison"]
    b = cmp["models"]["path/to/B.pth"]
    assert b["failure_reduction"] == 1 and b["per_image_delta_iou"][0]["stem"] == "2"
    assert b["delta"]["iou"]["abs"] == pytest.approx(0.0875)
