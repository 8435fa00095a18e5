"""Symbolic links in a dataset folder: a photo linked in from outside DATA is an image like any other; a link that
loops or points to nothing is a listed problem (stats, image list), never a crash."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from image_factories import make_dataset, mask_png

from floodlabel.cli import main
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.common.errors import DatasetError, ImageReadError
from floodlabel.core.data.image_item import load_image_item
from floodlabel.core.data.images import image_size, read_image

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")


@pytest.fixture
def linked(tmp_path):
    """DATA/Image: a.jpg (a file), p.jpg -> a photo outside DATA, loop.jpg -> itself, dangling.jpg -> nothing;
    DATA/Mask: a mask for each, p.png being a link to a mask outside DATA too."""
    outside = make_dataset(tmp_path / "elsewhere", images={"photo": (40, 30)}, masks={"photo_mask": (40, 30)})
    data = make_dataset(tmp_path / "DATA", images={"a": (40, 30)}, masks={"a": (40, 30), "loop": (40, 30),
                                                                          "dangling": (40, 30)})
    (data / "Image" / "p.jpg").symlink_to(outside / "Image" / "photo.jpg")
    (data / "Mask" / "p.png").symlink_to(outside / "Mask" / "photo_mask.png")
    (data / "Image" / "loop.jpg").symlink_to("loop.jpg")
    (data / "Image" / "dangling.jpg").symlink_to(tmp_path / "no-such-photo.jpg")
    return data


def test_a_link_to_a_photo_outside_data_is_listed_paired_and_loads(linked):
    ds = open_dataset(linked)
    assert [p.stem for p in ds.pairs] == ["a", "dangling", "loop", "p"]
    p = next(pair for pair in ds.pairs if pair.stem == "p")
    assert p.image == linked.resolve() / "Image" / "p.jpg"  # the link's name, not its target's
    assert p.mask == linked.resolve() / "Mask" / "p.png"
    item = load_image_item(p)
    assert item.image.shape == (30, 40, 3) and item.gt is not None and item.gt_problem is None
    assert ds.size_mismatches == []
    assert sorted(os.path.basename(e.path) for e in ds.unreadable) == ["dangling.jpg", "loop.jpg"]


@pytest.mark.parametrize("stem, reason", [("loop", "a symbolic link that loops"),
                                          ("dangling", "which does not exist")])
def test_a_looping_or_dangling_link_is_unreadable_with_its_reason(linked, stem, reason):
    path = linked / "Image" / f"{stem}.jpg"
    for read in (read_image, image_size):
        with pytest.raises(ImageReadError) as err:
            read(path)
        assert reason in err.value.reason and "Errno" not in err.value.reason
    with pytest.raises(ImageReadError):
        load_image_item(next(p for p in open_dataset(linked).pairs if p.stem == stem))


@pytest.mark.parametrize("quick", [False, True])
def test_stats_exits_0_and_lists_the_two_bad_links_as_problems(linked, capsys, quick):
    argv = ["stats", str(linked), *(["--quick"] if quick else [])]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "unreadable files            2" in out
    assert "loop.jpg: a symbolic link that loops" in out
    assert f"dangling.jpg: a symbolic link to {linked.parent / 'no-such-photo.jpg'}, which does not exist" in out
    assert main([*argv, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["images"] == 4 and stats["pairs"] == 4 and stats["problem_count"] == 2
    assert sorted(os.path.basename(u["path"]) for u in stats["unreadable"]) == ["dangling.jpg", "loop.jpg"]
    assert stats["width_range"] == [40, 40]  # the linked photo is measured


def test_a_broken_link_never_wins_a_stem_clash_and_other_links_are_skipped_quietly(tmp_path):
    data = make_dataset(tmp_path / "DATA", images={"5": (8, 8)}, masks={}, image_ext=".png")
    (data / "Image" / "5.jpg").symlink_to(tmp_path / "gone.jpg")  # .jpg would beat .png if it were a file
    (data / "Image" / "notes.txt").symlink_to("notes.txt")  # a looping non-image: not an image, no crash
    (data / "Image" / "sub").symlink_to(tmp_path)  # a link to a folder: not a file
    ds = open_dataset(data)
    assert [p.image.name for p in ds.pairs] == ["5.png"]
    assert [p.name for p in ds.duplicates] == ["5.jpg"]
    assert [p.name for p in ds.not_images] == []


def test_a_looping_dataset_folder_is_one_readable_error(tmp_path, capsys):
    loop = tmp_path / "DATA"
    loop.symlink_to(loop)
    with pytest.raises(DatasetError, match="symbolic link that loops"):
        open_dataset(loop)
    assert main(["stats", str(loop)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "symbolic link that loops" in err


def test_image_list_shows_the_bad_links_as_red_rows(qtbot, linked):
    from floodlabel.gui.panels.image_list import COL_PROBLEM, COL_SIZE, ImageListDock

    dock = ImageListDock()
    qtbot.addWidget(dock)
    dock.set_dataset(open_dataset(linked))
    qtbot.waitUntil(lambda: not dock.scanning() and "reading" not in dock.summary_label.text(), timeout=10_000)
    text = {r: dock.model.index(r, COL_PROBLEM).data() for r in range(4)}
    assert text[0] == "" and text[3] == ""  # a.jpg, p.jpg (the link)
    assert text[1].startswith("unreadable: a symbolic link to ") and text[1].endswith("which does not exist")
    assert text[2].startswith("unreadable: a symbolic link that loops")
    assert dock.model.index(3, COL_SIZE).data() == "40×30"
    assert dock.summary_label.text() == "4 images · 2 with problems"


def test_the_window_opens_a_folder_with_links_and_shows_the_linked_photo(qtbot, linked, tmp_path):
    from floodlabel.gui.window.annotation_window import AnnotationWindow

    w = AnnotationWindow(linked, model="classic", project=tmp_path / "project")
    qtbot.addWidget(w)
    w.show()
    rows = {p.stem: r for r, p in enumerate(w.dataset.pairs)}
    w.select_image(rows["p"])
    qtbot.waitUntil(lambda: w.controller.item is not None, timeout=20_000)
    assert w.controller.item.image.shape == (30, 40, 3) and w.controller.item.gt is not None
    w.select_image(rows["loop"])
    qtbot.waitUntil(lambda: "symbolic link that loops" in (w.image_list.model.problem(rows["loop"])[0] or ""),
                    timeout=20_000)
    w.close()


def test_masks_linked_in_pair_by_the_links_name(tmp_path):
    outside = tmp_path / "masks-elsewhere"
    mask_png(outside / "m.png", np.full((30, 40), 255, np.uint8))
    data = make_dataset(tmp_path / "DATA", images={"x": (40, 30)}, masks={})
    (data / "Mask").mkdir()
    (data / "Mask" / "x.png").symlink_to(outside / "m.png")
    pair = open_dataset(data).pairs[0]
    assert pair.mask is not None and load_image_item(pair).gt.all()
