"""Export: PNG and COCO round trips, native size, the export folder as a dataset, safety refusals, the CLI."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
from image_factories import jpeg_with_orientation, save
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from floodlabel.cli import main
from floodlabel.core.common import atomic_files
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.common.errors import ExportError
from floodlabel.core.export.project_export import MANIFEST_NAME, export_project
from floodlabel.core.data.images import read_mask
from floodlabel.core.store.project_store import PROJECT_DIR_NAME, ProjectStore


def scattered_mask(shape, seed=0) -> np.ndarray:
    """Two blobs, one with a hole, plus isolated pixels: nothing a polygon simplification would keep exactly."""
    rng = np.random.default_rng(seed)
    h, w = shape
    mask = np.zeros(shape, bool)
    mask[2: h // 2, 3: w // 2] = True
    mask[5:8, 6:9] = False
    mask[h // 2 + 3: h - 2, w // 2 + 2: w - 1] = True
    mask ^= rng.random(shape) < 0.03
    return mask


@pytest.fixture
def project(tmp_path):
    """DATA/Image/{1,2,3}.jpg; 1 and 2 accepted (1 is EXIF-rotated: stored 40x30, shown 30x40), 3 in progress."""
    data = tmp_path / "DATA"
    jpeg_with_orientation(data / "Image" / "1.jpg", np.full((30, 40, 3), 80, np.uint8), orientation=6)
    save(data / "Image" / "2.jpg", np.full((30, 40, 3), 90, np.uint8), "JPEG")
    save(data / "Image" / "3.jpg", np.full((30, 40, 3), 100, np.uint8), "JPEG")
    masks = {"Image/1.jpg": scattered_mask((40, 30), 1), "Image/2.jpg": scattered_mask((30, 40), 2)}
    with ProjectStore(data) as store:
        for rel, mask in masks.items():
            store.accept(rel, mask, {"points": [[1, 1, 1]]}, model_id="classic")
        store.save_progress("Image/3.jpg", {"points": []})
    return data, masks


def test_png_export_round_trip_at_native_size(project, tmp_path):
    data, masks = project
    calls = []
    with ProjectStore(data, read_only=True) as store:
        result = export_project(store, tmp_path / "out", formats=["png"],
                                progress=lambda done, total: calls.append((done, total)))
    out = tmp_path / "out"
    assert result.exported == 2 and not result.skipped and result.coco_path is None
    assert sorted(p.name for p in (out / "Mask").iterdir()) == ["1.png", "2.png"]
    assert calls == [(0, 2), (1, 2), (2, 2)]
    for rel, mask in masks.items():
        path = out / "Mask" / (rel.split("/")[-1][0] + ".png")
        with Image.open(path) as png:
            assert png.mode == "L" and png.size == (mask.shape[1], mask.shape[0])
            pixels = np.asarray(png)
        assert set(np.unique(pixels)) == {0, 255}
        assert np.array_equal(pixels == 255, mask)
    # the export folder reads as a dataset: Image -> the photos, Mask/ the masks, sizes agree after EXIF rotation
    dataset = open_dataset(out)
    assert [p.stem for p in dataset.complete_pairs] == ["1", "2"] and dataset.images_without_masks
    assert dataset.size_mismatches == [] and dataset.unreadable == []
    assert np.array_equal(read_mask(dataset.pairs[0].mask, dataset.image_size(dataset.pairs[0].image)),
                          masks["Image/1.jpg"])


def test_coco_rle_decodes_bit_for_bit(project, tmp_path):
    data, masks = project
    with ProjectStore(data) as store:
        result = export_project(store, tmp_path / "out", formats=["coco"])
    assert result.masks == [] and result.coco_path == tmp_path / "out" / "coco.json"
    doc = json.loads(result.coco_path.read_text())
    assert doc["categories"] == [{"id": 1, "name": "water", "supercategory": "water"}]
    assert [im["file_name"] for im in doc["images"]] == ["1.jpg", "2.jpg"]
    assert [(im["width"], im["height"]) for im in doc["images"]] == [(30, 40), (40, 30)]
    coco = COCO()
    coco.dataset = doc
    coco.createIndex()
    for image, ann in zip(doc["images"], doc["annotations"], strict=True):
        mask = masks[image["floodlabel_path"]]
        assert ann["image_id"] == image["id"] and ann["category_id"] == 1
        assert isinstance(ann["segmentation"]["counts"], str)
        decoded = mask_utils.decode({"size": ann["segmentation"]["size"],
                                     "counts": ann["segmentation"]["counts"].encode()})
        assert decoded.dtype == np.uint8 and np.array_equal(decoded.astype(bool), mask)
        assert np.array_equal(coco.annToMask(ann).astype(bool), mask)
        assert ann["area"] == int(mask.sum())
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_empty_mask_exports(tmp_path):
    data = tmp_path / "DATA"
    save(data / "dry.png", np.zeros((8, 9, 3), np.uint8), "PNG")
    with ProjectStore(data) as store:
        store.accept("dry.png", np.zeros((8, 9), bool))
        result = export_project(store, tmp_path / "out")
    ann = json.loads(result.coco_path.read_text())["annotations"][0]
    assert ann["area"] == 0 and not mask_utils.decode({**ann["segmentation"],
                                                        "counts": ann["segmentation"]["counts"].encode()}).any()
    assert not np.asarray(Image.open(result.masks[0])).any()


def test_reexport_replaces_own_files_and_refuses_foreign_ones(project, tmp_path):
    data, masks = project
    out = tmp_path / "out"
    (out / "Mask").mkdir(parents=True)
    (out / "Mask" / "2.png").write_bytes(b"someone else's mask")
    with ProjectStore(data) as store:
        with pytest.raises(ExportError, match=r"refusing to overwrite 1 file\(s\) .*2.png.*--overwrite"):
            export_project(store, out)
        assert (out / "Mask" / "2.png").read_bytes() == b"someone else's mask"
        assert not (out / "Mask" / "1.png").exists()  # refused before writing anything
        export_project(store, out, overwrite=True)
        export_project(store, out)  # its own files: no refusal
        (out / "coco.json").write_text("{}")  # edited by hand since: no longer the export's
        with pytest.raises(ExportError, match="coco.json"):
            export_project(store, out)
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        assert set(manifest["files"]) == {"Mask/1.png", "Mask/2.png", "coco.json"}


def test_never_writes_outside_the_folder(project, tmp_path):
    data, _ = project
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "Mask").symlink_to(elsewhere, target_is_directory=True)
    with ProjectStore(data) as store, pytest.raises(ExportError, match="leads outside the export folder"):
        export_project(store, out, formats=["png"])
    assert list(elsewhere.iterdir()) == []


def test_changed_and_missing_are_skipped_and_stale_masks_removed(project, tmp_path):
    data, masks = project
    out = tmp_path / "out"
    with ProjectStore(data) as store:
        export_project(store, out)
        save(data / "Image" / "2.jpg", np.full((30, 40, 3), 10, np.uint8), "JPEG")  # changed since accept
        result = export_project(store, out)
        assert result.skipped == [("Image/2.jpg", "the image changed since it was accepted; accept it again")]
        assert result.removed == [out / "Mask" / "2.png"] and not (out / "Mask" / "2.png").exists()
        store.record("Image/1.jpg").mask_path.unlink()
        result = export_project(store, out)
        assert result.exported == 0 and {r for r, _ in result.skipped} == {"Image/1.jpg", "Image/2.jpg"}
        assert "deleted outside FloodLabel" in dict(result.skipped)["Image/1.jpg"]


def test_nothing_accepted(tmp_path):
    data = tmp_path / "DATA"
    save(data / "a.png", np.zeros((4, 4, 3), np.uint8), "PNG")
    with ProjectStore(data) as store, pytest.raises(ExportError, match="nothing to export"):
        export_project(store, tmp_path / "out")


def test_stem_clash_refused(tmp_path):
    data = tmp_path / "DATA"
    for folder in ("x", "y"):
        save(data / folder / "1.png", np.zeros((4, 4, 3), np.uint8), "PNG")
    with ProjectStore(data) as store:
        store.accept("x/1.png", np.ones((4, 4), bool))
        store.accept("y/1.png", np.ones((4, 4), bool))
        with pytest.raises(ExportError, match="x/1.png and y/1.png"):
            export_project(store, tmp_path / "out")
        result = export_project(store, tmp_path / "out2", formats=["coco"])  # COCO alone has no name clash
        assert [im["file_name"] for im in json.loads(result.coco_path.read_text())["images"]] == ["x/1.png",
                                                                                                   "y/1.png"]


def test_disk_full_during_export(project, tmp_path, monkeypatch):
    data, masks = project
    out = tmp_path / "out"
    with ProjectStore(data) as store:
        export_project(store, out, formats=["png"])
        new1, new2 = ~masks["Image/1.jpg"], ~masks["Image/2.jpg"]
        store.accept("Image/1.jpg", new1)
        store.accept("Image/2.jpg", new2)
        real_write = atomic_files.os.write
        writes = []

        def filling_write(fd, data):
            writes.append(fd)
            if len(writes) > 2:  # the manifest and the first mask fit, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(atomic_files.os, "write", filling_write)
        with pytest.raises(ExportError, match="cannot write .*2.png: the disk is full"):
            export_project(store, out, formats=["png"])
        monkeypatch.undo()

        def exported(stem):
            return np.asarray(Image.open(out / "Mask" / f"{stem}.png")) == 255

        assert np.array_equal(exported(1), new1)  # written before the disk filled up
        assert np.array_equal(exported(2), masks["Image/2.jpg"])  # the old file, whole
        assert not [p for p in (out / "Mask").iterdir() if p.name.startswith(".tmp")]
        export_project(store, out, formats=["png"])  # the next export carries on over its own files
        assert np.array_equal(exported(2), new2)


# ---------------------------------------------------------------------------------------------------------------
# command line


def test_cli_export_then_stats_and_eval_read_it(project, tmp_path, capsys):
    data, _ = project
    out = tmp_path / "out"
    assert main(["export", str(data), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Exported 2 accepted mask(s)" in printed and "coco.json" in printed
    assert main(["stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["pairs"] == 2 and stats["size_mismatches"] == [] and stats["unreadable"] == []
    assert main(["eval", str(out), "--model", "classic", "--prompt", "box", "--no-noc",
                 "--csv", str(tmp_path / "eval.csv"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "classic" in json.dumps(report)
    # the project folder itself works as the source too, and --format picks formats
    assert main(["export", str(data / PROJECT_DIR_NAME), "--out", str(tmp_path / "o2"), "--format", "coco"]) == 0
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == [MANIFEST_NAME, "coco.json"]


def test_cli_errors_are_one_line_exit_2(project, tmp_path, capsys):
    data, _ = project
    out = tmp_path / "out"
    cases = [
        (["export", str(tmp_path / "nodata"), "--out", str(out)], "is not a folder"),
        (["export", str(data / "Image"), "--out", str(out)], "has no FloodLabel project yet"),
        (["export", str(data), "--out", str(out), "--format", "tiff"], "unknown export format tiff"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    (out / "Mask").mkdir(parents=True)
    (out / "Mask" / "1.png").write_bytes(b"x")
    assert main(["export", str(data), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(data), "--out", str(out), "--overwrite"]) == 0


def test_cli_reports_skipped_images(project, tmp_path, capsys):
    data, _ = project
    with ProjectStore(data) as store:
        store.record("Image/2.jpg").mask_path.unlink()
    assert main(["export", str(data), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "skipped Image/2.jpg" in err and "1 accepted image(s) were not exported" in err


def test_export_beside_an_open_writer(project, tmp_path, capsys):
    data, _ = project
    with ProjectStore(data) as writer:
        assert not writer.read_only
        assert main(["export", str(data), "--out", str(tmp_path / "out")]) == 0
        writer.accept("Image/3.jpg", np.ones((30, 40), bool))
    assert "Exported 2" in capsys.readouterr().out


def test_cli_project_option(tmp_path, capsys):
    data, elsewhere = tmp_path / "DATA", tmp_path / "myproject"
    save(data / "1.png", np.zeros((6, 5, 3), np.uint8), "PNG")
    with ProjectStore(data, elsewhere) as store:
        store.accept("1.png", np.eye(6, 5, dtype=bool))
    assert main(["export", str(data), "--project", str(elsewhere), "--out", str(tmp_path / "out")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "Mask" / "1.png")) == 255, np.eye(6, 5, dtype=bool))
    assert main(["export", str(data), "--out", str(tmp_path / "o2")]) == 2  # not the default location
    assert "no FloodLabel project yet" in capsys.readouterr().err
