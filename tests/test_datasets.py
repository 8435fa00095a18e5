"""open_dataset: layouts, pairing by stem, natural order, problems, lazy sizes, bad folders."""

from __future__ import annotations


import numpy as np
import pytest
from image_factories import make_dataset, save
from PIL import Image

from floodlabel.core.data import datasets
from floodlabel.core.data import images
from floodlabel.core.data.datasets import SizeMismatch, natural_key, open_dataset
from floodlabel.core.common.errors import DatasetError


def test_kaggle_layout_with_metadata(tmp_path):
    root = make_dataset(tmp_path / "flood", images={"10": (8, 6), "2": (8, 6), "1": (8, 6), "7": (8, 6)},
                        masks={"1": (8, 6), "2": (8, 6), "10": (6, 8), "3": (8, 6)}, metadata=True)
    ds = open_dataset(root)
    assert ds.image_dir == (root / "Image").resolve() and ds.mask_dir == (root / "Mask").resolve()
    assert [p.stem for p in ds.pairs] == ["1", "2", "7", "10"]  # numeric stems in numeric order
    assert [p.stem for p in ds.complete_pairs] == ["1", "2", "10"]
    assert [p.name for p in ds.images_without_masks] == ["7.jpg"]
    assert [p.name for p in ds.masks_without_images] == ["3.png"]
    assert [m.name for m in ds.masks] == ["1.png", "2.png", "3.png", "10.png"]
    pair = ds.pairs[0]
    assert pair.image == ds.image_dir / "1.jpg" and pair.mask == ds.mask_dir / "1.png"
    assert ds.pairs[2].mask is None
    assert ds.size_mismatches == [SizeMismatch("10", (8, 6), (6, 8))]
    assert ds.metadata == [("1.jpg", "1.png"), ("2.jpg", "2.png"), ("10.jpg", "10.png"), ("3.jpg", "3.png")]
    assert ds.metadata_problems() == ["7.jpg is not listed"]  # 3.jpg missing is reported as a mask without image


def test_metadata_rows_that_disagree_with_files(tmp_path):
    root = make_dataset(tmp_path, images={"1": (4, 4)}, masks={"1": (4, 4)})
    (root / "METADATA.CSV").write_text("Image,Mask\n1.jpg,2.png\n5.jpg,5.png\n")
    ds = open_dataset(root)
    assert ds.metadata_problems() == ["row 1.jpg,2.png pairs different stems", "row 5.jpg,5.png: neither file exists",
                                      "1.png is not listed"]


def test_metadata_without_the_columns_is_ignored(tmp_path):
    root = make_dataset(tmp_path, images={"1": (4, 4)}, masks={"1": (4, 4)})
    (root / "metadata.csv").write_text("a,b\n1,2\n")
    ds = open_dataset(root)
    assert ds.metadata is None and ds.metadata_problems() == []


def test_webp_named_jpg_gets_its_header_size(tmp_path):
    save(tmp_path / "Image" / "0.jpg", np.zeros((5, 9, 3), np.uint8), "WEBP")
    save(tmp_path / "Mask" / "0.png", np.zeros((5, 9), np.uint8), "PNG")
    ds = open_dataset(tmp_path)
    assert ds.size_mismatches == [] and ds.unreadable == []
    assert ds.image_size(ds.pairs[0].image) == (9, 5)


def test_lowercase_plural_folders_and_upper_case_extensions(tmp_path):
    make_dataset(tmp_path, images={"a": (4, 4), "b": (4, 4)}, masks={"a": (4, 4)}, image_dir="images",
                 mask_dir="MASKS", image_ext=".JPEG")
    (tmp_path / "MASKS" / "a.png").rename(tmp_path / "MASKS" / "a.PNG")
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    (tmp_path / "images" / ".hidden.jpg").write_bytes(b"")
    ds = open_dataset(tmp_path)
    assert [(p.stem, p.image.name, p.mask.name if p.mask else None) for p in ds.pairs] == [
        ("a", "a.JPEG", "a.PNG"), ("b", "b.JPEG", None)]


def test_flat_folder_of_images_without_masks(tmp_path):
    for name in ("x1.png", "x10.webp", "x2.tif", "x3.bmp"):
        save(tmp_path / name, np.zeros((3, 3, 3), np.uint8), {"png": "PNG", "webp": "WEBP", "tif": "TIFF",
                                                                "bmp": "BMP"}[name.split(".")[1]])
    ds = open_dataset(tmp_path)
    assert ds.image_dir == tmp_path.resolve() and ds.mask_dir is None
    assert [p.stem for p in ds.pairs] == ["x1", "x2", "x3", "x10"]
    assert all(p.mask is None for p in ds.pairs) and ds.masks == [] and ds.size_mismatches == []


def test_flat_folder_with_a_masks_subfolder(tmp_path):
    make_dataset(tmp_path, images={"1": (4, 4)}, masks={"1": (4, 4)}, image_dir=".", mask_dir="labels")
    ds = open_dataset(tmp_path)
    assert ds.image_dir == tmp_path.resolve() and ds.mask_dir == (tmp_path / "labels").resolve()
    assert ds.pairs[0].mask is not None


def test_explicit_folders(tmp_path):
    make_dataset(tmp_path, images={"1": (4, 4), "2": (4, 4)}, masks={"2": (4, 4)}, image_dir="pics", mask_dir="gtx")
    ds = open_dataset(image_dir=tmp_path / "pics", mask_dir=tmp_path / "gtx")
    assert [(p.stem, p.mask is not None) for p in ds.pairs] == [("1", False), ("2", True)]
    assert ds.root == tmp_path.resolve()


def test_same_stem_files_are_reported_not_merged(tmp_path):
    make_dataset(tmp_path, images={"1": (4, 4)}, masks={})
    save(tmp_path / "Image" / "1.png", np.zeros((4, 4, 3), np.uint8), "PNG")
    ds = open_dataset(tmp_path)
    assert [p.image.name for p in ds.pairs] == ["1.jpg"]
    assert [p.name for p in ds.duplicates] == ["1.png"]


def test_unreadable_headers_are_listed_not_raised(tmp_path):
    make_dataset(tmp_path, images={"1": (4, 4), "2": (4, 4)}, masks={"1": (4, 4), "2": (4, 4)})
    (tmp_path / "Mask" / "2.png").write_bytes(b"garbage")
    ds = open_dataset(tmp_path)
    assert ds.size_mismatches == []
    assert [e.path for e in ds.unreadable] == [str(ds.pairs[1].mask)]


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "file.jpg").write_bytes(b"x") and p / "file.jpg", "is not a folder"),
    (lambda p: p, "no images found"),
    (lambda p: (p / "readme.txt").write_text("x") and p, "no images found"),
    (lambda p: (p / "Image").mkdir() or p, "no images found"),
])
def test_bad_folders_raise_dataset_error(tmp_path, setup, message):
    with pytest.raises(DatasetError, match=message):
        open_dataset(setup(tmp_path))


def test_bad_explicit_folders(tmp_path):
    with pytest.raises(DatasetError, match="image folder .* does not exist"):
        open_dataset(image_dir=tmp_path / "nope")
    make_dataset(tmp_path, images={"1": (4, 4)}, masks={})
    with pytest.raises(DatasetError, match="mask folder .* does not exist"):
        open_dataset(tmp_path, mask_dir=tmp_path / "nope")
    with pytest.raises(DatasetError, match="no dataset folder"):
        open_dataset()


def test_listing_a_thousand_images_decodes_nothing(tmp_path, monkeypatch):
    (tmp_path / "Image").mkdir()
    (tmp_path / "Mask").mkdir()
    for i in range(1000):
        (tmp_path / "Image" / f"{i}.jpg").write_bytes(b"not decoded")
        (tmp_path / "Mask" / f"{i}.png").write_bytes(b"not decoded")
    opened = []
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a) or pytest.fail("Image.open called"))
    monkeypatch.setattr(images, "read_image", lambda *a: pytest.fail("read_image called"))
    ds = open_dataset(tmp_path)  # how fast: benchmarks/bench_open_folder.py (timings do not belong in tests)
    assert len(ds.pairs) == 1000 and len(ds.complete_pairs) == 1000 and not opened
    assert [p.stem for p in ds.pairs[:3]] == ["0", "1", "2"] and ds.pairs[-1].stem == "999"


def test_sizes_are_read_lazily_once(tmp_path, monkeypatch):
    make_dataset(tmp_path, images={"1": (4, 4), "2": (4, 4)}, masks={"1": (4, 4), "2": (5, 4)})
    calls = []
    real = datasets.image_size
    monkeypatch.setattr(datasets, "image_size", lambda p: calls.append(p) or real(p))
    ds = open_dataset(tmp_path)
    assert calls == []
    assert ds.size_mismatches == [SizeMismatch("2", (4, 4), (5, 4))]
    assert len(calls) == 4
    ds.size_mismatches
    ds.image_size(ds.pairs[0].image)
    assert len(calls) == 4


def test_natural_key():
    stems = ["img10", "img2", "Img1", "10", "9", "a", "1000", "100b", "100a"]
    assert sorted(stems, key=natural_key) == ["9", "10", "100a", "100b", "1000", "a", "Img1", "img2", "img10"]
