"""`floodlabel stats DIR [--json]` end to end through floodlabel.cli.main, and compute_stats directly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from image_factories import make_dataset, mask_png, save, truncated_copy, water_mask

from PIL import Image

from floodlabel.cli import main
from floodlabel.core.data.dataset_stats import compute_stats
from floodlabel.core.data.datasets import open_dataset


@pytest.fixture
def flood(tmp_path):
    """Kaggle layout: pairs 1 (10x10, 30% water), 2 (20x10, 75% water), 3 (size mismatch), 4 (no mask), and a blank
    mask without image 9 (10x10, 0% water). Anti-aliased edge values (<= 127) are not water. (A mask with only
    values <= 127 that is neither blank nor 0/1 is ambiguous: see test_zero_one_and_ambiguous_masks.)"""
    root = make_dataset(tmp_path / "flood", images={"1": (10, 10), "2": (20, 10), "3": (12, 8), "4": (10, 10)},
                        masks={"3": (8, 12)}, metadata=False)
    mask_png(root / "Mask" / "1.png", water_mask(10, 10, water_pixels=30, soft_pixels=10))
    mask_png(root / "Mask" / "2.png", water_mask(10, 20, water_pixels=150, soft_pixels=20))
    mask_png(root / "Mask" / "9.png", np.zeros((10, 10), np.uint8))
    return root


def _run(capsys, *argv):
    code = main(["stats", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _water(fractions_and_sizes):
    fractions = [w / n for w, n in fractions_and_sizes]
    pooled = sum(w for w, _ in fractions_and_sizes) / sum(n for _, n in fractions_and_sizes)
    return float(np.mean(fractions)), pooled


# masks 1, 2, 3 (mask 3 is 8x12 with its top half water: 48 of 96) and 9; all masks count, paired or not
EXPECTED_MEAN, EXPECTED_POOLED = _water([(30, 100), (150, 200), (48, 96), (0, 100)])


def test_json_output(flood, capsys):
    code, out, err = _run(capsys, flood, "--json")
    assert code == 0 and err == ""  # no progress bar when stderr is not a terminal
    data = json.loads(out)
    assert (data["images"], data["masks"], data["pairs"]) == (4, 4, 3)
    assert data["images_without_masks"] == ["4"] and data["masks_without_images"] == ["9"]
    assert data["size_mismatches"] == [{"stem": "3", "image_size": [12, 8], "mask_size": [8, 12]}]
    assert data["unreadable"] == [] and data["problem_count"] == 3
    assert data["unique_image_sizes"] == 3
    assert data["width_range"] == [10, 20] and data["height_range"] == [8, 10]
    assert data["masks_measured"] == 4 and data["water_scope"] == "all readable masks"
    assert data["water_ratio_mean"] == pytest.approx(EXPECTED_MEAN)
    assert data["water_ratio_pooled"] == pytest.approx(EXPECTED_POOLED)
    assert data["water_ratio_min"] == 0.0 and data["water_ratio_max"] == pytest.approx(0.75)


def test_table_output(flood, capsys):
    code, out, err = _run(capsys, flood)
    assert code == 0 and err == ""
    assert "pairs            3" in out
    assert "images without masks        1:  4" in out
    assert "masks without images        1:  9" in out
    assert "size mismatches             1" in out
    assert "3            image        12x8   mask        8x12" in out
    assert "unique sizes   3" in out
    assert "width          10 - 20 px" in out and "height         8 - 10 px" in out
    assert "over all readable masks: 4" in out
    assert f"mean of per-mask ratios   {100 * EXPECTED_MEAN:6.2f}%" in out
    assert f"pooled over all pixels    {100 * EXPECTED_POOLED:6.2f}%" in out


def test_unreadable_files_are_problems_not_crashes(flood, capsys):
    (flood / "Mask" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (flood / "Image" / "4.jpg").write_bytes(b"")
    code, out, err = _run(capsys, flood, "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    reasons = {p["path"].rsplit("/", 1)[-1]: p["reason"] for p in data["unreadable"]}
    assert set(reasons) == {"2.png", "4.jpg"} and "empty" in reasons["4.jpg"]
    assert data["masks_measured"] == 3
    assert data["water_ratio_mean"] == pytest.approx(_water([(30, 100), (48, 96), (0, 100)])[0])


def test_folder_of_images_without_masks(tmp_path, capsys):
    save(tmp_path / "a.png", np.zeros((4, 6, 3), np.uint8), "PNG")
    code, out, _ = _run(capsys, tmp_path)
    assert code == 0 and "no masks to measure" in out and "images without masks        0" in out
    data = json.loads(_run(capsys, tmp_path, "--json")[1])
    assert data["mask_dir"] is None and data["water_ratio_mean"] is None and data["problem_count"] == 0


def test_explicit_mask_folder(tmp_path, capsys):
    make_dataset(tmp_path, images={"1": (4, 4)}, masks={"1": (4, 4)}, image_dir="pics", mask_dir="truth")
    data = json.loads(_run(capsys, tmp_path / "pics", "--masks", tmp_path / "truth", "--json")[1])
    assert data["pairs"] == 1 and data["water_ratio_mean"] == pytest.approx(0.5)


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "f.jpg").write_bytes(b"x") and p / "f.jpg", "is not a folder"),
    (lambda p: p, "no images found"),
])
def test_bad_input_exits_nonzero_with_one_line(tmp_path, capsys, setup, message):
    code, out, err = _run(capsys, setup(tmp_path))
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_compute_stats_reports_progress(flood):
    seen = []

    def progress(items, total, description):
        seen.append((description, total))
        return items

    stats = compute_stats(open_dataset(flood), progress=progress)
    assert seen == [("images", 4), ("masks", 4)]
    assert stats.masks_measured == 4
    seen.clear()
    stats = compute_stats(open_dataset(flood), progress=progress, decode=False)
    assert seen == [("image headers", 4), ("mask headers", 1)]
    assert stats.masks_measured == 0 and stats.water_ratio_mean is None


def test_zero_one_and_ambiguous_masks(tmp_path, capsys):
    """A 0/1 mask and a 0/1 palette mask are read with 1 = water and counted apart; a {0, 1, 2} mask is reported
    as ambiguous, not measured."""
    root = make_dataset(tmp_path / "flood", images={"a": (10, 10), "b": (10, 10), "c": (10, 10), "d": (10, 10)},
                        masks={}, metadata=False)
    mask_png(root / "Mask" / "a.png", water_mask(10, 10, water_pixels=40))  # ordinary 0/255: 40%
    zero_one = np.zeros((10, 10), np.uint8)
    zero_one.flat[:25] = 1
    mask_png(root / "Mask" / "b.png", zero_one)  # 0/1: 25%
    palette = Image.fromarray(np.where(np.arange(100).reshape(10, 10) < 60, 1, 0).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 1, 1, 1])
    save(root / "Mask" / "c.png", palette, "PNG")  # 0/1 palette indices: 60%
    classes = np.zeros((10, 10), np.uint8)
    classes[:3], classes[3:5] = 1, 2
    mask_png(root / "Mask" / "d.png", classes)  # {0, 1, 2}: ambiguous
    data = json.loads(_run(capsys, root, "--json")[1])
    assert data["masks_0_1"] == ["b", "c"]
    assert [(p["path"].rsplit("/", 1)[-1], p["reason"]) for p in data["ambiguous_masks"]] == [
        ("d.png", "ambiguous mask: its values {0, 1, 2} are neither 0/1 nor 0/255 (class indices?), "
                  "so which one is water cannot be told")]
    assert data["unreadable"] == [] and data["problem_count"] == 1
    assert data["masks_measured"] == 3
    assert data["water_ratio_mean"] == pytest.approx((0.40 + 0.25 + 0.60) / 3)
    assert data["water_ratio_min"] == pytest.approx(0.25) and data["water_ratio_max"] == pytest.approx(0.60)
    out = _run(capsys, root)[1]
    assert "0/1 masks (1 = water)       2:  b, c" in out
    assert "ambiguous masks             1" in out


def test_truncated_files_fail_by_default_and_pass_quick(flood, capsys):
    """A truncated JPEG and a truncated PNG mask have readable headers: only decoding finds them."""
    photo = flood / "Image" / "1.jpg"
    save(photo, np.random.default_rng(0).integers(0, 256, (10, 10, 3), dtype=np.uint8), "JPEG", quality=95)
    truncated_copy(photo, photo, keep=0.8)  # the header survives, the scan data does not
    mask = flood / "Mask" / "2.png"
    noisy = (np.random.default_rng(1).random((10, 20)) > 0.5).astype(np.uint8) * 255
    mask_png(mask, noisy)
    truncated_copy(mask, mask, keep=0.7)
    data = json.loads(_run(capsys, flood, "--json")[1])
    reasons = {p["path"].rsplit("/", 1)[-1]: p["reason"] for p in data["unreadable"]}
    assert set(reasons) == {"1.jpg", "2.png"}
    assert all("truncated" in r for r in reasons.values()), reasons
    assert data["decoded"] is True and data["problem_count"] == 5
    assert data["masks_measured"] == 3  # 1, 3, 9 (2 is truncated)
    assert data["unique_image_sizes"] == 3  # over the decoded photos 2 (20x10), 3 (12x8), 4 (10x10)
    assert data["width_range"] == [10, 20] and data["height_range"] == [8, 10]
    quick = json.loads(_run(capsys, flood, "--json", "--quick")[1])
    assert quick["decoded"] is False and quick["unreadable"] == [] and quick["problem_count"] == 3
    assert quick["masks_measured"] == 0 and quick["water_ratio_mean"] is None
    assert quick["unique_image_sizes"] == 3 and quick["width_range"] == [10, 20]
    out = _run(capsys, flood, "--quick")[1]
    assert "Water ratio: not measured (--quick reads file headers only" in out


def test_formats_frames_and_files_that_are_not_images(tmp_path, capsys):
    """GIF, animated GIF (first frame), multi-page TIFF (first page), BMP and WEBP photos are listed and decoded;
    a text file named .png is unreadable; notes.txt is "not an image"; hidden files are ignored."""
    root = tmp_path / "flood"
    rng = np.random.default_rng(0)

    def photo(w, h):
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))

    save(root / "Image" / "gif.gif", photo(12, 10).quantize(64), "GIF")
    frames = [photo(14, 10).quantize(64), photo(14, 10).quantize(64)]
    frames[0].save(root / "Image" / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    pages = [photo(16, 10), photo(30, 20)]  # the first page is 16x10; the second's size is never reported
    pages[0].save(root / "Image" / "pages.tif", save_all=True, append_images=pages[1:])
    save(root / "Image" / "bmp.bmp", photo(18, 10), "BMP")
    save(root / "Image" / "webp.webp", photo(20, 10), "WEBP", lossless=True)
    (root / "Image" / "text.png").write_text("this is not a PNG\n")
    (root / "Image" / "notes.txt").write_text("shot on 2023-05-01\n")
    (root / "Image" / ".hidden.jpg").write_bytes(b"junk")
    (root / "Image" / ".DS_Store").write_bytes(b"junk")
    for stem, w in (("gif", 12), ("anim", 14), ("pages", 16), ("bmp", 18), ("webp", 20), ("text", 10)):
        mask = np.zeros((10, w), np.uint8)
        mask[:, : w // 2] = 255
        mask_png(root / "Mask" / f"{stem}.png", mask)
    gif_mask = Image.fromarray((np.arange(12)[None, :].repeat(10, 0) < 3).astype(np.uint8), "P")
    gif_mask.putpalette([0, 0, 0, 255, 255, 255])
    save(root / "Mask" / "gif.gif", gif_mask, "GIF")  # a GIF mask beside gif.png: the PNG wins the stem clash
    (root / "Mask" / ".hidden.png").write_bytes(b"junk")

    data = json.loads(_run(capsys, root, "--json")[1])
    assert (data["images"], data["masks"], data["pairs"]) == (6, 6, 6)
    assert data["masks_without_images"] == [] and data["images_without_masks"] == []
    assert [p.rsplit("/", 1)[-1] for p in data["not_images"]] == ["notes.txt"]
    assert [p.rsplit("/", 1)[-1] for p in data["duplicates"]] == ["gif.gif"]
    assert [(p["path"].rsplit("/", 1)[-1], p["reason"]) for p in data["unreadable"]] == [
        ("text.png", "not an image file, or a format Pillow cannot read")]
    assert data["size_mismatches"] == []
    assert data["problem_count"] == 3  # text.png unreadable, notes.txt, gif.gif skipped
    assert data["unique_image_sizes"] == 5 and data["width_range"] == [12, 20] and data["height_range"] == [10, 10]
    assert data["masks_measured"] == 6 and data["water_ratio_mean"] == pytest.approx(0.5)
    out = _run(capsys, root)[1]
    assert "not an image                1:  notes.txt" in out


def test_read_image_takes_the_first_frame(tmp_path):
    from floodlabel.core.data.images import read_image
    first = np.zeros((10, 14, 3), np.uint8)
    first[:, :7] = 255
    second = np.full((10, 14, 3), 128, np.uint8)
    frames = [Image.fromarray(first), Image.fromarray(second)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    np.testing.assert_array_equal(read_image(tmp_path / "anim.gif"), first)
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    np.testing.assert_array_equal(read_image(tmp_path / "pages.tif"), first)


def test_a_folder_named_like_an_option_gets_a_hint(flood, tmp_path, capsys, monkeypatch):
    """argparse reads `-data` as an option and says DIR is missing; the extra line says how to pass it."""
    import shutil

    shutil.copytree(flood, tmp_path / "-data")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["stats", "-data"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "required: DIR" in err and "'-data' is a path" in err and "floodlabel stats -- -data" in err
    assert main(["stats", "--json", "--", "-data"]) == 0  # the way the hint gives works
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["stats", "--bogus"])
    assert "hint" not in capsys.readouterr().err  # no path: no hint
