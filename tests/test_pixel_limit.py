"""The pixel limit (core/images.MAX_IMAGE_PIXELS): an image over it is refused from its header, with its size and
the limit, before anything is decoded: in the reader, `stats` (both modes), the image list and the window's loader.
The limit is monkeypatched small here: no test makes a huge image (benchmarks/bench_huge_image.py does)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from image_factories import make_dataset, save
from PIL import Image, PngImagePlugin

from floodlabel.cli import main
from floodlabel.core.data import images
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.common.errors import ImageReadError
from floodlabel.core.data.image_item import load_image_item
from floodlabel.core.data.images import image_size, pixel_limit_problem, read_image, read_mask

TOO_LARGE = "image too large: 300x200 = 0.06 MP, the limit is 0.05 MP (FLOODLABEL_MAX_MEGAPIXELS=N changes it)"


@pytest.fixture
def limit(monkeypatch):
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 50_000)


@pytest.fixture
def data(tmp_path):
    """Image/: big (300x200, over the 0.05 MP test limit) and small (100x100); Mask/ for both."""
    return make_dataset(tmp_path / "DATA", images={"big": (300, 200), "small": (100, 100)},
                        masks={"big": (300, 200), "small": (100, 100)})


def test_over_the_limit_is_refused_from_the_header_without_decoding(limit, data, monkeypatch):
    def no_decoding(self):
        raise AssertionError("decoded")

    png = save(data / "big.png", np.zeros((200, 300, 3), np.uint8), "PNG")
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    for path, reader in ((png, read_image), (png, read_mask), (data / "Image" / "big.jpg", read_image)):
        with pytest.raises(ImageReadError) as err:
            reader(path)
        assert err.value.reason == TOO_LARGE
    assert image_size(png) == (300, 200)  # the size is still known


def test_the_limit_is_inclusive_and_pixel_limit_problem_says_why(limit):
    assert pixel_limit_problem((250, 200)) is None
    assert pixel_limit_problem((300, 200)) == TOO_LARGE


def test_the_default_is_100_megapixels_and_the_environment_changes_it():
    code = "from floodlabel.core.data import images; print(images.MAX_IMAGE_PIXELS)"
    for value, expected in (("", 100_000_000), ("250", 250_000_000), ("0.5", 500_000), ("lots", 100_000_000),
                            ("-1", 100_000_000), ("inf", 100_000_000)):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"FLOODLABEL_MAX_MEGAPIXELS": value, "PATH": ""}).stdout
        assert int(out) == expected, value
    assert pixel_limit_problem((30000, 30000)) == ("image too large: 30000x30000 = 900 MP, the limit is 100 MP "
                                                   "(FLOODLABEL_MAX_MEGAPIXELS=N changes it)")


@pytest.mark.parametrize("quick", [False, True])
def test_stats_lists_the_image_over_the_limit_and_exits_0(limit, data, capsys, quick):
    argv = ["stats", str(data), "--json", *(["--quick"] if quick else [])]
    assert main(argv) == 0
    stats = json.loads(capsys.readouterr().out)
    assert {(u["path"].rsplit("/", 2)[-2:][0], u["reason"]) for u in stats["unreadable"]} == {
        ("Image", TOO_LARGE), ("Mask", TOO_LARGE)}
    assert stats["problem_count"] == 2
    assert stats["width_range"] == ([100, 300] if quick else [100, 100])  # --quick: the header's size counts
    assert main(argv[:-1] if quick else argv[:2]) == 0  # the table too
    assert TOO_LARGE in capsys.readouterr().out


def test_the_windows_loader_refuses_it_with_the_reason(limit, data):
    big, small = open_dataset(data).pairs
    with pytest.raises(ImageReadError) as err:
        load_image_item(big)
    assert err.value.reason == TOO_LARGE
    assert load_image_item(small).gt is not None


def test_the_image_list_shows_it_as_a_red_row(limit, data, qtbot):
    from floodlabel.gui.panels.image_list import COL_PROBLEM, COL_SIZE, ImageListDock

    dock = ImageListDock()
    qtbot.addWidget(dock)
    dock.set_dataset(open_dataset(data))
    qtbot.waitUntil(lambda: not dock.scanning() and "reading" not in dock.summary_label.text(), timeout=10_000)
    assert dock.model.index(0, COL_PROBLEM).data() == f"unreadable: {TOO_LARGE}"
    assert dock.model.index(0, COL_SIZE).data() == "300×200"
    assert dock.model.index(1, COL_PROBLEM).data() == ""
    assert dock.summary_label.text() == "2 images · 1 with problems"
