"""An EvaluationResult as text for people, as CSV rows (one per image) and as JSON. Nothing here prints.

CSV columns (CSV_COLUMNS): model, model_id, prompt, stem, iou, dice, precision, recall, score (the model's own
quality estimate), noc85, noc90 (NoC; empty on box rows or without NoC; max_clicks when not reached), reached85,
reached90 (1/0), click_ious (IoU after each simulated click, space-separated), delta_iou (this row's IoU minus the
first model's on the same image and prompt; empty for the first model). Floats have 6 decimals.

With two or more models, `format_comparison` prints the comparison of `comparison`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from floodlabel.core.common.atomic_files import write_atomic
from floodlabel.core.evaluation.comparison import compare
from floodlabel.core.evaluation.noc import NOC_THRESHOLDS
from floodlabel.core.evaluation.results import FAILURE_IOU, EvaluationResult, ImageResult, SummaryRow

_PCTS = tuple(f"{round(t * 100, 2):g}" for t in NOC_THRESHOLDS)  # "85", "90"
CSV_COLUMNS = ("model", "model_id", "prompt", "stem", "iou", "dice", "precision", "recall", "score",
               *(f"noc{p}" for p in _PCTS), *(f"reached{p}" for p in _PCTS), "click_ious", "delta_iou")


def write_csv(result: EvaluationResult, path: str | os.PathLike) -> Path:
    """Write one row per (model, prompt, image) to `path` atomically (`common.atomic_files.write_atomic`: the old
    file or the complete new one, never half). Returns the absolute path. Raises OSError."""
    target = Path(path).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    reference = _reference_ious(result)
    writer.writerows(csv_row(result, r, reference) for r in result.rows)
    write_atomic(target, text.getvalue().encode("utf-8"))
    return target


def csv_row(result: EvaluationResult, r: ImageResult, reference: dict[tuple[str, str], float] | None = None
            ) -> list[str]:
    """The CSV cells of one result row, in CSV_COLUMNS order. reference: {(prompt, stem): first model's IoU}."""
    m = r.metrics
    cells = [r.model, result.model_ids.get(r.model, ""), r.prompt, r.stem,
             *(f"{v:.6f}" for v in (m.iou, m.dice, m.precision, m.recall, r.score))]
    if r.clicks is None:
        cells += [""] * (2 * len(NOC_THRESHOLDS) + 1)
    else:
        cells += [str(r.clicks.noc[t]) for t in NOC_THRESHOLDS]
        cells += [str(int(r.clicks.reached[t])) for t in NOC_THRESHOLDS]
        cells.append(" ".join(f"{v:.6f}" for v in r.clicks.ious))
    ref = None if reference is None or r.model == result.models[0] else reference.get((r.prompt, r.stem))
    cells.append("" if ref is None else f"{r.iou - ref:.6f}")
    return cells


def format_summary(result: EvaluationResult) -> str:
    """The summary table: model, prompt, n, IoU, Dice, precision, recall (mean ± std), NoC@85, NoC@90, failures."""
    header = ("MODEL", "PROMPT", "N", "IoU", "Dice", "Precision", "Recall", *(f"NoC@{p}" for p in _PCTS),
              f"IoU<{FAILURE_IOU:g}")
    table = [header] + [_summary_cells(row) for row in result.summary()]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    if result.noc:
        reach = " / ".join(f"{t:.2f}" for t in NOC_THRESHOLDS)
        lines.append(f"NoC: mean clicks to reach IoU {reach} (max {result.max_clicks}; "
                     f"unreached counts {result.max_clicks}), point rows only")
    if result.cancelled:
        lines.append("Cancelled: the table covers only the images done before the cancel.")
    return "\n".join(lines)


def format_comparison(result: EvaluationResult, top: int = 10) -> str:
    """Two or more models: per prompt kind, mean ± std per metric and model, Δ and Δ% against the first model,
    NoC@85/90, failures (IoU < FAILURE_IOU) and their reduction, and the `top` worst per-image Δ IoU. "" for one
    model."""
    blocks = []
    labels = _labels(result.models)
    for c in compare(result):
        ref = labels[c.reference]
        others = c.models[1:]
        header = ["METRIC", ref]
        for m in others:
            header += [labels[m], f"Δ {labels[m]}", f"Δ% {labels[m]}"]
        rows = []
        names = [("IoU", "iou"), ("Dice", "dice"), ("Precision", "precision"), ("Recall", "recall")]
        if any(col.noc is not None for col in c.columns.values()):
            names += [(f"NoC@{_pct(t)}", f"NoC@{_pct(t)}") for t in NOC_THRESHOLDS]
        names.append((f"IoU<{FAILURE_IOU:g}", "failures"))
        for title, key in names:
            row = [title, value_cell(c, c.reference, key)]
            for m in others:
                d, pct = c.delta(m, key)
                row += [value_cell(c, m, key), signed_cell(d, key), "-" if not math.isfinite(pct) else f"{pct:+.1f}%"]
            rows.append(row)
        lines = [f"Comparison, prompt {c.prompt}: {len(c.stems)} images, identical prompts; Δ against {ref}"]
        lines += _table([header] + rows)
        for m in others:
            n_ref, n_m = c.columns[c.reference].failures, c.columns[m].failures
            share = f" ({100.0 * c.failure_reduction(m) / n_ref:.0f}%)" if n_ref else ""
            lines.append(f"Failures (IoU < {FAILURE_IOU:g}): {ref} {n_ref} -> {labels[m]} {n_m}, "
                         f"reduction {c.failure_reduction(m)}{share}")
        for m in others:
            deltas = c.deltas[m]
            lines.append(f"Per-image Δ IoU ({labels[m]} - {ref}), worst first ({min(top, len(deltas))} of "
                         f"{len(deltas)}; all in the CSV):")
            table = [("IMAGE", ref, labels[m], "Δ IoU")]
            table += [(d.stem, f"{d.reference_iou:.3f}", f"{d.iou:.3f}", f"{d.delta:+.3f}") for d in deltas[:top]]
            lines += ["  " + line for line in _table(table)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


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
        "comparison": _comparison_json(result),
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


def _reference_ious(result: EvaluationResult) -> dict[tuple[str, str], float]:
    first = result.models[0] if result.models else None
    return {(r.prompt, r.stem): r.iou for r in result.rows if r.model == first}


def _labels(models: list[str]) -> dict[str, str]:
    """Short column names: a checkpoint path's file name, unless two models would share it."""
    short = {m: (Path(m).name if ("/" in m or os.sep in m) else m) for m in models}
    return short if len(set(short.values())) == len(short) else {m: m for m in models}


def value_cell(c, model: str, key: str, missing: str = "-") -> str:
    """One comparison cell: mean ± std of a metric, the failure count, or a NoC figure (`missing` when undefined)."""
    col = c.columns[model]
    if key == "failures":
        return str(col.failures)
    if key.startswith("NoC@"):
        v = c.value(model, key)
        return missing if not math.isfinite(v) else f"{v:.2f}"
    return str(getattr(col.metrics, key)) if col.metrics.count else missing


def signed_cell(d: float, key: str, missing: str = "-") -> str:
    """A difference against the reference model, with its sign, in the precision of `key`."""
    if not math.isfinite(d):
        return missing
    if key == "failures":
        return f"{int(d):+d}"
    return f"{d:+.2f}" if key.startswith("NoC@") else f"{d:+.3f}"


def _table(rows: list) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def _comparison_json(result: EvaluationResult) -> list[dict]:
    out = []
    for c in compare(result):
        models = {}
        for m in c.models:
            col = c.columns[m]
            entry = {"failures": col.failures, "n": col.metrics.count}
            for name, (mean, std) in col.metrics.as_dict().items():
                entry[name] = {"mean": _finite(mean), "std": _finite(std)}
            if col.noc is not None:
                entry["noc"] = {k: _finite(v) if isinstance(v, float) else v for k, v in col.noc.items()}
            if m != c.reference:
                entry["delta"] = {k: {"abs": _finite(c.delta(m, k)[0]), "pct": _finite(c.delta(m, k)[1])}
                                  for k in ("iou", "dice", "precision", "recall", "failures")}
                entry["failure_reduction"] = c.failure_reduction(m)
                entry["per_image_delta_iou"] = [{"stem": d.stem, "delta": d.delta} for d in c.deltas[m]]
            models[m] = entry
        out.append({"prompt": c.prompt, "reference": c.reference, "images": len(c.stems), "models": models})
    return out
