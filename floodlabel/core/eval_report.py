"""An EvaluationResult as text for people, as CSV rows (one per image) and as JSON. Nothing here prints.

CSV columns (CSV_COLUMNS): model, model_id, prompt, stem, iou, dice, precision, recall, score (the model's own
quality estimate), noc85, noc90 (NoC; empty on box rows or without NoC; max_clicks when not reached), reached85,
reached90 (1/0), click_ious (IoU after each simulated click, space-separated). Floats have 6 decimals.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from pathlib import Path

from floodlabel.core.evaluation import FAILURE_IOU, NOC_THRESHOLDS, EvaluationResult, ImageResult, SummaryRow

CSV_COLUMNS = ("model", "model_id", "prompt", "stem", "iou", "dice", "precision", "recall", "score",
               "noc85", "noc90", "reached85", "reached90", "click_ious")


def write_csv(result: EvaluationResult, path: str | os.PathLike) -> Path:
    """Write one row per (model, prompt, image) to `path` atomically (temp file + os.replace). Returns the
    absolute path."""
    target = Path(path).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            writer.writerows(csv_row(result, r) for r in result.rows)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def csv_row(result: EvaluationResult, r: ImageResult) -> list[str]:
    """The CSV cells of one result row, in CSV_COLUMNS order."""
    m = r.metrics
    cells = [r.model, result.model_ids.get(r.model, ""), r.prompt, r.stem,
             *(f"{v:.6f}" for v in (m.iou, m.dice, m.precision, m.recall, r.score))]
    if r.clicks is None:
        cells += ["", "", "", "", ""]
    else:
        cells += [str(r.clicks.noc[t]) for t in NOC_THRESHOLDS]
        cells += [str(int(r.clicks.reached[t])) for t in NOC_THRESHOLDS]
        cells.append(" ".join(f"{v:.6f}" for v in r.clicks.ious))
    return cells


def format_summary(result: EvaluationResult) -> str:
    """The summary table: model, prompt, n, IoU, Dice, precision, recall (mean ± std), NoC@85, NoC@90, failures."""
    header = ("MODEL", "PROMPT", "N", "IoU", "Dice", "Precision", "Recall", "NoC@85", "NoC@90",
              f"IoU<{FAILURE_IOU:g}")
    table = [header] + [_summary_cells(row) for row in result.summary()]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    if result.noc:
        lines.append(f"NoC: mean clicks to reach IoU 0.85 / 0.90 (max {result.max_clicks}; "
                     f"unreached counts {result.max_clicks}), point rows only")
    if result.cancelled:
        lines.append("Cancelled: the table covers only the images done before the cancel.")
    return "\n".join(lines)


def format_failures(result: EvaluationResult) -> str:
    """Rows with IoU < FAILURE_IOU, worst first: model, prompt, stem, IoU."""
    failures = result.failures()
    lines = [f"Failures (IoU < {FAILURE_IOU:g}), worst first: {len(failures)}"]
    if failures:
        table = [(r.model, r.prompt, r.stem, f"{r.iou:.3f}") for r in failures]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3] for row in table]
    return "\n".join(lines)


def format_skipped(result: EvaluationResult) -> str:
    """Entries not evaluated, with reasons."""
    lines = [f"Skipped: {len(result.skipped)}"]
    width = max((len(s.stem) for s in result.skipped), default=0)
    lines += [f"  {s.stem.ljust(width)}  {s.reason}" for s in result.skipped]
    return "\n".join(lines)


def to_json(result: EvaluationResult) -> dict:
    """Summary, failures and skipped entries as JSON-friendly data (NaN -> None)."""
    return {
        "models": [{"name": m, "model_id": result.model_ids.get(m)} for m in result.models],
        "prompts": result.prompt_kinds,
        "noc": result.noc,
        "max_clicks": result.max_clicks,
        "cancelled": result.cancelled,
        "summary": [_summary_json(row) for row in result.summary()],
        "failures": [{"model": r.model, "prompt": r.prompt, "stem": r.stem, "iou": r.iou}
                     for r in result.failures()],
        "skipped": [{"stem": s.stem, "reason": s.reason} for s in result.skipped],
    }


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _summary_cells(row: SummaryRow) -> tuple[str, ...]:
    s = row.metrics
    metrics = [str(getattr(s, name)) if s.count else "-" for name in ("iou", "dice", "precision", "recall")]
    noc = [_noc_cell(row.noc, t) for t in NOC_THRESHOLDS]
    return (row.model, row.prompt, str(s.count), *metrics, *noc, str(row.failures))


def _noc_cell(noc: dict | None, threshold: float) -> str:
    if noc is None or not noc["count"]:
        return "-"
    return f"{noc[f'NoC@{_pct(threshold)}']:.2f}"


def _summary_json(row: SummaryRow) -> dict:
    out = {"model": row.model, "prompt": row.prompt, "n": row.metrics.count, "failures": row.failures}
    for name, (mean, std) in row.metrics.as_dict().items():
        out[name] = {"mean": _finite(mean), "std": _finite(std)}
    if row.noc is not None:
        out["noc"] = {k: _finite(v) if isinstance(v, float) else v for k, v in row.noc.items()}
    return out


def _pct(threshold: float) -> str:
    return f"{round(threshold * 100, 2):g}"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
