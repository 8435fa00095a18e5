"""floodlabel.core.evaluation.evaluate: the protocol (prompts, candidate choice, NoC refinement), skipping, cancellation,
lazy one-at-a-time models, the embedding cache, and the real classic and tiny-SAM backends."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from image_factories import mask_png, save, truncated_copy
from synthetic_scenes import make_flood_scene
from tiny_sam import tiny_sam_checkpoint

import floodlabel.core.evaluation.evaluate as evaluation
from floodlabel.core.classic.backend import ClassicSegmenter
from floodlabel.core.evaluation import worker as eval_worker
from floodlabel.core.evaluation.auto_prompts import box_prompt, point_prompt
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.data.images import read_image
from floodlabel.core.models.session import SegmentationSession
from floodlabel.core.common.errors import DatasetError, ModelError
from floodlabel.core.evaluation.evaluate import FAILURE_IOU, evaluate
from floodlabel.core.evaluation.metrics import mask_metrics
from floodlabel.core.segment.segmenter import Capabilities, Embedding, Prediction

H, W = 160, 240


def write_scenes(root: Path, n: int = 2, kinds=("lake", "river", "scattered")) -> dict[str, np.ndarray]:
    """n synthetic scenes as Image/<i>.png + Mask/<i>.png; returns {stem: gt}."""
    gts = {}
    for i in range(n):
        image, mask = make_flood_scene(H, W, seed=i, kind=kinds[i % len(kinds)])
        save(root / "Image" / f"{i}.png", image, "PNG")
        mask_png(root / "Mask" / f"{i}.png", mask * 255)
        gts[str(i)] = mask
    return gts


# --- a scripted segmenter: predictable masks, every call recorded ------------------------------------------------


class ScriptedSegmenter:
    """Predicts the left half of the image as water, whatever the prompt.

    multimask gives 3 candidates scored (0.2, 0.9, 0.5): only candidate 1 is the left half (0 is empty, 2 is
    everything), so picking by score is observable. low_res_logits are filled with a per-call number so the
    mask_input of the next call can be traced back to the call that produced it.
    """

    model_id = cache_model_id = weights_id = "scripted"
    compute_label = "scripted (test)"
    capabilities = Capabilities()  # nothing beyond embed + predict

    def __init__(self, log: list) -> None:
        self.log = log
        self.calls: list[dict] = []

    def embed(self, image: np.ndarray) -> Embedding:
        self.log.append(("embed", image.shape))
        return Embedding(image, image.shape[:2], image.shape[:2], self.model_id)

    def predict(self, embedding, prompt, multimask=True, output_size=None, mask_input=None) -> Prediction:
        h, w = embedding.original_size
        left = np.zeros((h, w), bool)
        left[:, : w // 2] = True
        n = len(self.calls)
        self.calls.append({"prompt": prompt, "multimask": multimask,
                           "mask_input": None if mask_input is None else float(np.asarray(mask_input).flat[0])})
        if multimask:
            masks = np.stack([np.zeros_like(left), left, np.ones_like(left)])
            scores = np.array([0.2, 0.9, 0.5], np.float32)
            logits = np.stack([np.full((256, 256), n * 10 + c, np.float32) for c in range(3)])
        else:
            masks, scores = left[None], np.array([0.7], np.float32)
            logits = np.full((1, 256, 256), n * 10, np.float32)
        return Prediction(masks, scores, logits)


@pytest.fixture
def scripted(monkeypatch):
    """Makes every model name open a ScriptedSegmenter session; returns (log, segmenters)."""
    log: list = []
    segmenters: list[ScriptedSegmenter] = []

    def fake_open(cls, name, cache_dir=None, config=None):
        log.append(("open", str(name)))
        seg = ScriptedSegmenter(log)
        segmenters.append(seg)
        return cls(seg)

    monkeypatch.setattr(SegmentationSession, "open", classmethod(fake_open))
    monkeypatch.setattr(evaluation, "validate_models", lambda models: None)
    return log, segmenters


def half_masks_dataset(root: Path) -> Path:
    """GTs whose IoU with the scripted left-half prediction is known: a 1.0, b 0.5, c 0.25, d 0.0."""
    cols = {"a": (0, W // 2), "b": (0, W // 4), "c": (W // 4, W), "d": (W // 2, W)}
    for stem, (x0, x1) in cols.items():
        save(root / "Image" / f"{stem}.png", np.full((H, W, 3), 100, np.uint8), "PNG")
        m = np.zeros((H, W), np.uint8)
        m[:, x0:x1] = 255
        mask_png(root / "Mask" / f"{stem}.png", m)
    return root


def test_protocol_metrics_failures_and_summary(tmp_path, scripted):
    _, segs = scripted
    result = evaluate(open_dataset(half_masks_dataset(tmp_path)), ["m"], ["both"], noc=False)
    assert result.prompt_kinds == ["point", "box"]
    ious = {(r.prompt, r.stem): r.iou for r in result.rows}
    for kind in ("point", "box"):  # the point row kept candidate 1 (best score), not 2 (full) or 0 (empty)
        assert ious[(kind, "a")] == 1.0 and ious[(kind, "b")] == 0.5
        assert ious[(kind, "c")] == 0.25
        assert ious[(kind, "d")] == 0.0
    point_calls = [c for c in segs[0].calls if c["prompt"].box is None]
    box_calls = [c for c in segs[0].calls if c["prompt"].box is not None]
    assert all(c["multimask"] for c in point_calls) and not any(c["multimask"] for c in box_calls)
    assert [r.score for r in result.rows if r.prompt == "point"] == pytest.approx([0.9] * 4)

    failures = result.failures()  # IoU < 0.5, worst first; ties in prompt order
    assert [(r.stem, r.prompt) for r in failures] == [("d", "point"), ("d", "box"), ("c", "point"), ("c", "box")]
    assert all(r.iou < FAILURE_IOU for r in failures)
    summary = result.summary()
    assert [(s.model, s.prompt, s.metrics.count, s.failures) for s in summary] == [
        ("m", "point", 4, 2), ("m", "box", 4, 2)]
    assert summary[0].metrics.iou.mean == pytest.approx(np.mean([1.0, 0.5, 0.25, 0.0]))
    assert summary[0].noc is None and not result.noc


def test_noc_refines_previous_logits_and_reuses_the_point_prediction(tmp_path, scripted):
    _, segs = scripted
    result = evaluate(open_dataset(half_masks_dataset(tmp_path)), ["m"], ["point"], max_clicks=4)
    rows = {r.stem: r for r in result.rows}
    assert rows["a"].clicks.noc == {0.85: 1, 0.9: 1} and rows["a"].clicks.ious == (1.0,)
    d = rows["d"].clicks  # the scripted model never improves: 4 predictions, NoC counts max_clicks
    assert d.ious == (0.0,) * 4 and d.noc == {0.85: 4, 0.9: 4} and not any(d.reached.values())
    assert d.ious[0] == rows["d"].iou  # interaction 1 is the point row itself

    calls = segs[0].calls  # a: 1 prediction (reached at once); b, c, d: 1 point prediction + 3 refinements each
    assert len(calls) == 1 + 3 * 4
    first = len(calls) - 4
    session_calls = calls[first:]  # image d; the point prediction is not repeated as interaction 1
    assert [len(c["prompt"].points) for c in session_calls] == [1, 2, 3, 4]
    assert session_calls[0]["multimask"] and session_calls[0]["mask_input"] is None
    assert session_calls[1]["mask_input"] == first * 10 + 1  # best candidate (index 1) of the point prediction
    for k in (2, 3):
        assert not session_calls[k]["multimask"]
        assert session_calls[k]["mask_input"] == (first + k - 1) * 10  # the previous single-mask logits
    summary = result.summary()[0]
    assert summary.noc["count"] == 4 and summary.noc["NoC@85"] == pytest.approx((1 + 4 + 4 + 4) / 4)


def test_box_only_runs_no_noc(tmp_path, scripted):
    result = evaluate(open_dataset(half_masks_dataset(tmp_path)), ["m"], ["box"])
    assert not result.noc and all(r.clicks is None for r in result.rows)
    assert result.summary()[0].noc is None


def test_skips_bad_pairs_with_reasons_and_never_evaluates_them(tmp_path, scripted):
    log, _ = scripted
    half_masks_dataset(tmp_path)
    save(tmp_path / "Image" / "wide.png", np.zeros((H, W + 8, 3), np.uint8), "PNG")  # size mismatch
    mask_png(tmp_path / "Mask" / "wide.png", np.zeros((H, W), np.uint8))
    save(tmp_path / "Image" / "dry.png", np.zeros((H, W, 3), np.uint8), "PNG")  # empty ground truth
    mask_png(tmp_path / "Mask" / "dry.png", np.zeros((H, W), np.uint8))
    save(tmp_path / "Image" / "lonely.png", np.zeros((H, W, 3), np.uint8), "PNG")  # no mask
    mask_png(tmp_path / "Mask" / "orphan.png", np.zeros((H, W), np.uint8))  # no image
    save(tmp_path / "full.jpg", np.full((H, W, 3), 100, np.uint8), "JPEG")
    truncated_copy(tmp_path / "full.jpg", tmp_path / "Image" / "broken.jpg")  # header fine, pixels truncated
    mask_png(tmp_path / "Mask" / "broken.png", np.full((H, W), 255, np.uint8))

    result = evaluate(open_dataset(tmp_path), ["m1", "m2"], ["point"], noc=False)
    reasons = {s.stem: s.reason for s in result.skipped}
    assert set(reasons) == {"wide", "dry", "lonely", "orphan", "broken"}
    assert reasons["wide"] == f"size mismatch: image {W + 8}x{H}, mask {W}x{H}"
    assert "empty" in reasons["dry"] and "no mask" in reasons["lonely"] and "no image" in reasons["orphan"]
    assert "truncated" in reasons["broken"]
    assert len(result.skipped) == 5  # reported once, not once per model
    assert {r.stem for r in result.rows} == {"a", "b", "c", "d"}
    embeds = [e for e in log if e[0] == "embed"]
    assert len(embeds) == 2 * 4  # bad pairs never reach the model


def test_models_load_lazily_one_at_a_time_and_each_image_is_read_once_per_model(tmp_path, scripted, monkeypatch):
    log, _ = scripted
    reads = []
    real_read = eval_worker.read_image
    monkeypatch.setattr(eval_worker, "read_image", lambda p: (reads.append(Path(p).stem), real_read(p))[1])
    result = evaluate(open_dataset(half_masks_dataset(tmp_path)), ["m1", "m2", "m1"], ["both"], max_clicks=3)
    assert result.models == ["m1", "m2"]  # duplicates dropped
    assert sorted(reads) == sorted(["a", "b", "c", "d"] * 2)
    events = [e[0] if e[0] == "embed" else e for e in log]
    assert events == [("open", "m1"), *["embed"] * 4, ("open", "m2"), *["embed"] * 4]
    assert [(s.model, s.prompt) for s in result.summary()] == [
        ("m1", "point"), ("m1", "box"), ("m2", "point"), ("m2", "box")]


def test_limit_and_progress(tmp_path, scripted):
    calls = []
    result = evaluate(open_dataset(half_masks_dataset(tmp_path)), ["m1", "m2"], ["box"], limit=3,
                      progress=lambda done, total: calls.append((done, total)))
    assert {r.stem for r in result.rows} == {"a", "b", "c"}
    assert calls == [(i, 6) for i in range(7)]


def test_cancel_stops_between_images_and_returns_what_was_done(tmp_path, scripted):
    log, _ = scripted
    cancel = threading.Event()

    def progress(done, total):
        if done == 2:
            cancel.set()

    result = evaluate(open_dataset(half_masks_dataset(tmp_path)), ["m1", "m2"], ["point"], noc=False,
                      progress=progress, cancel=cancel)
    assert result.cancelled
    assert [r.stem for r in result.rows] == ["a", "b"]
    assert ("open", "m2") not in log  # the second model was never loaded
    assert result.summary()[0].metrics.count == 2


def test_bad_models_and_datasets_fail_before_any_work(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(SegmentationSession, "open", classmethod(lambda cls, *a, **k: opened.append(a)))
    ds = open_dataset(half_masks_dataset(tmp_path / "data"))
    progress = []
    with pytest.raises(ModelError, match="not found"):
        evaluate(ds, ["classic", str(tmp_path / "missing.pth")], ["point"], progress=lambda *a: progress.append(a))
    with pytest.raises(ModelError, match="not downloaded"):
        evaluate(ds, ["classic", "vit_b"], ["point"])  # isolated cache: nothing downloaded
    with pytest.raises(ModelError, match="unknown model"):
        evaluate(ds, ["nonsense"], ["point"])
    with pytest.raises(ModelError):
        evaluate(ds, [], ["point"])
    save(tmp_path / "nomasks" / "x.png", np.zeros((8, 8, 3), np.uint8), "PNG")
    with pytest.raises(DatasetError, match="no mask folder"):
        evaluate(open_dataset(tmp_path / "nomasks"), ["classic"], ["point"])
    with pytest.raises(ValueError):
        evaluate(ds, ["classic"], ["lasso"])
    assert opened == [] and progress == []


# --- real backends -------------------------------------------------------------------------------------------------


def test_classic_backend_end_to_end(tmp_path):
    gts = write_scenes(tmp_path, n=2)
    result = evaluate(open_dataset(tmp_path), ["classic"], ["both"], max_clicks=3)
    assert result.model_ids == {"classic": ClassicSegmenter.model_id} and not result.skipped
    assert [(r.stem, r.prompt) for r in result.rows] == [("0", "point"), ("0", "box"), ("1", "point"), ("1", "box")]
    # the rows are the scores of exactly what the backend predicts for the automatic prompts
    session = SegmentationSession.open("classic")
    image = read_image(tmp_path / "Image" / "0.png")
    emb = session.embedding(image)
    point = session.predict(emb, point_prompt(gts["0"]), multimask=True)
    box = session.predict(emb, box_prompt(gts["0"]), multimask=False)
    assert result.rows[0].metrics == mask_metrics(point.masks[point.best], gts["0"])
    assert result.rows[1].metrics == mask_metrics(box.masks[0], gts["0"])
    for r in result.rows:
        if r.prompt == "point":
            assert 1 <= len(r.clicks.ious) <= 3 and r.clicks.ious[0] == r.iou
            assert all(1 <= n <= 3 for n in r.clicks.noc.values())
        else:
            assert r.clicks is None
    assert result.rows[1].iou > 0.5  # a box around a synthetic lake: GrabCut gets most of it


def test_tiny_sam_end_to_end_and_second_run_hits_the_disk_cache(tmp_path, monkeypatch):
    from floodlabel.core.sam.backend import SamSegmenter

    checkpoint = tiny_sam_checkpoint(tmp_path / "tiny.pth", seed=1)
    write_scenes(tmp_path / "data", n=1)
    ds = open_dataset(tmp_path / "data")
    encoded = []
    real_embed = SamSegmenter.embed
    monkeypatch.setattr(SamSegmenter, "embed", lambda self, image: (encoded.append(1), real_embed(self, image))[1])

    first = evaluate(ds, [str(checkpoint)], ["point", "box"], max_clicks=2)
    assert len(first.rows) == 2 and all(0.0 <= r.iou <= 1.0 for r in first.rows)
    assert all(r.clicks is not None and len(r.clicks.ious) <= 2 for r in first.rows if r.prompt == "point")
    stats = first.cache_stats[str(checkpoint)]
    assert (stats.misses, stats.disk_hits) == (1, 0) and len(encoded) == 1

    second = evaluate(open_dataset(tmp_path / "data"), [str(checkpoint)], ["point", "box"], max_clicks=2)
    stats = second.cache_stats[str(checkpoint)]
    assert (stats.misses, stats.disk_hits) == (0, 1) and len(encoded) == 1  # the encoder did not run again
    # float16 on disk: the same predictions up to a few boundary pixels
    assert [r.iou for r in second.rows] == pytest.approx([r.iou for r in first.rows], abs=0.02)


def test_truncated_checkpoint_is_rejected_before_any_work(tmp_path):
    from floodlabel.core.common.errors import ModelError
    from floodlabel.core.evaluation.evaluate import validate_models
    from tiny_sam import tiny_sam_checkpoint

    good = tiny_sam_checkpoint(tmp_path / "tiny.pth")
    validate_models(["classic", str(good)])
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:100_000])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        validate_models(["classic", str(cut)])
    import torch

    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3)}, other)
    with pytest.raises(ModelError, match="not a SAM checkpoint"):
        validate_models(["classic", str(other)])
