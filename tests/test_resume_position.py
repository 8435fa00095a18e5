"""Where a reopened project lands (core, no Qt): the image the user was last on, else the first not accepted."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from image_factories import save

from floodlabel.core.store.project_store import ProjectStore
from floodlabel.core.store.resume import LAST_IMAGE_KEY, resume_image

STEMS = ("a", "b", "c", "d", "e")


@pytest.fixture
def data(tmp_path):
    """DATA/Image/{a..e}.png, 20x16 each."""
    root = tmp_path / "DATA"
    for i, stem in enumerate(STEMS):
        save(root / "Image" / f"{stem}.png", np.full((16, 20, 3), 40 * i, np.uint8), "PNG")
    return root


def rels(*stems: str) -> list[str]:
    return [f"Image/{s}.png" for s in (stems or STEMS)]


def accept(store: ProjectStore, *stems: str) -> None:
    for stem in stems:
        store.accept(f"Image/{stem}.png", np.ones((16, 20), bool), {"prompt": {}})


def test_the_rule_without_a_store():
    assert resume_image([], {}, None) is None
    assert resume_image(rels(), {}, None) == "Image/a.png"
    assert resume_image(rels(), {"Image/a.png": "accepted", "Image/b.png": "in progress"}, None) == "Image/b.png"
    assert resume_image(rels("a", "b"), dict.fromkeys(rels("a", "b"), "accepted"), None) == "Image/a.png"
    assert resume_image(rels(), {"Image/a.png": "accepted"}, "Image/d.png") == "Image/d.png"
    assert resume_image(rels(), {"Image/a.png": "accepted"}, "Image/gone.png") == "Image/b.png"


def test_a_first_open_lands_on_the_first_image_not_accepted(data):
    with ProjectStore(data) as store:
        assert store.last_image() is None
        assert store.resume_image(rels()) == "Image/a.png"
        accept(store, "a", "b")  # an earlier project (or the CLI) accepted them; nothing was selected
    with ProjectStore(data) as store:
        assert store.resume_image(rels()) == "Image/c.png"
        accept(store, "c", "d", "e")
        assert store.resume_image(rels()) == "Image/a.png"  # all accepted: the first
        assert store.resume_image([]) is None


def test_reopening_lands_where_the_user_left_off(data):
    with ProjectStore(data) as store:
        accept(store, "a", "b")
        store.remember_image("Image/b.png")
        store.remember_image("Image/d.png")  # then just selected d
    with ProjectStore(data) as store:
        assert store.resume_image(rels()) == "Image/d.png"
        store.remember_image(store.image_path("Image/a.png"))  # an absolute path is the same key
        accept(store, "a")  # back to an accepted image and accepted it again
    with ProjectStore(data) as store:
        assert store.resume_image(rels()) == "Image/a.png"


def test_the_position_is_committed_at_once(data):
    store = ProjectStore(data)
    try:
        store.remember_image("Image/c.png")
        with ProjectStore(data, read_only=True) as reader:  # another process, before this one closes
            assert reader.resume_image(rels()) == "Image/c.png"
    finally:
        store.close()


def test_an_image_gone_from_the_folder_falls_back_to_the_first_not_accepted(data):
    with ProjectStore(data) as store:
        accept(store, "a")
        store.remember_image("Image/e.png")
    (data / "Image" / "e.png").unlink()
    with ProjectStore(data) as store:
        assert store.resume_image(rels("a", "b", "c", "d")) == "Image/b.png"


def test_a_project_without_the_key_still_opens(data):
    with ProjectStore(data) as store:
        accept(store, "a")
        store.remember_image("Image/d.png")
    with sqlite3.connect(store.db_path) as conn:  # as a project made before the key
        conn.execute("DELETE FROM meta WHERE key = ?", (LAST_IMAGE_KEY,))
    conn.close()
    with ProjectStore(data) as store:
        assert store.last_image() is None and store.resume_image(rels()) == "Image/b.png"


def test_a_read_only_store_remembers_in_memory_and_writes_when_it_takes_over(data):
    writer = ProjectStore(data)
    writer.remember_image("Image/b.png")
    second = ProjectStore(data)  # another window: read-only while the first holds the project
    try:
        assert second.read_only and second.resume_image(rels()) == "Image/b.png"
        second.remember_image("Image/e.png")
        assert second.resume_image(rels()) == "Image/e.png"
        with ProjectStore(data, read_only=True) as reader:
            assert reader.last_image() == "Image/b.png"  # nothing written
        writer.close()
        assert second.try_take_writer_lock()
        with ProjectStore(data, read_only=True) as reader:
            assert reader.last_image() == "Image/e.png"  # written on taking over
    finally:
        writer.close()
        second.close()
    with ProjectStore(data, read_only=True) as reader:  # a read-only open reads it
        assert reader.resume_image(rels()) == "Image/e.png"


# ------------------------------------------------------------------------------------------------------------ window
# The window reopens where the user left off (offscreen Qt, the classic backend, generated scenes).


@pytest.fixture
def scenes_folder(tmp_path):
    """Image/ + Mask/ with five synthetic scenes (img0..img4); returns (folder, {stem: mask})."""
    from PIL import Image

    from synthetic_scenes import make_flood_scene

    root = tmp_path / "floods"
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    masks = {}
    for i in range(5):
        image, mask = make_flood_scene(96, 128, seed=i, kind=("lake", "river")[i % 2])
        Image.fromarray(image).save(root / "Image" / f"img{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "Mask" / f"img{i}.png")
        masks[f"img{i}"] = mask
    return root, masks


@pytest.fixture
def classic(tmp_path):
    from floodlabel.core.models.session import SegmentationSession

    return SegmentationSession.open("classic", cache_dir=tmp_path / "cache")


def shown_row(qtbot, w) -> int:
    """The row the window shows once its image and embedding are there; the list's current row is the same one
    and is scrolled into view."""
    qtbot.waitUntil(lambda: w.controller.embedding is not None and w.controller.item is not None, timeout=20000)
    row = w.controller.row
    assert w.image_list.current_row() == row
    assert w.dataset.pairs[row].image.name in w.windowTitle()
    view = w.image_list.view
    rect = view.visualRect(w.image_list.proxy.mapFromSource(w.image_list.model.index(row, 0)))
    assert view.viewport().rect().contains(rect.center()), "the list is not scrolled to the current image"
    return row


def test_reopening_the_window_shows_the_image_the_user_left_off_at(qtbot, window, scenes_folder, classic):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from synthetic_scenes import interior_point
    from test_annotation_window import click, wait_mask

    folder, masks = scenes_folder
    w = window(folder, classic)
    assert shown_row(qtbot, w) == 0
    for n in (1, 2):  # accept images 1 and 2: each accept moves on to the next image
        click(w, *interior_point(masks[f"img{n - 1}"]))
        wait_mask(qtbot, w, timeout=20000)
        QTest.keyClick(w, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: f"Accepted {n} / 5" in w.project_label.text(), timeout=10000)
        qtbot.waitUntil(lambda: w.controller.row == n, timeout=10000)
    w.image_list.select_row(3)  # the user clicks image 4 in the list
    assert shown_row(qtbot, w) == 3
    w.close()

    w2 = window(folder, classic)
    assert shown_row(qtbot, w2) == 3
    assert "Accepted 2 / 5" in w2.project_label.text()


def test_a_first_open_shows_the_first_image_not_accepted(qtbot, window, scenes_folder, classic):
    folder, masks = scenes_folder
    with ProjectStore(folder) as store:  # an earlier project accepted image 1; nothing was selected
        store.accept("Image/img0.png", masks["img0"], {"prompt": {}})
    w = window(folder, classic)
    assert shown_row(qtbot, w) == 1


def test_a_long_list_scrolls_to_the_image_reopened(qtbot, window, tmp_path, classic):
    root = tmp_path / "many"
    for i in range(120):
        save(root / "Image" / f"p{i:03d}.png", np.full((24, 32, 3), i, np.uint8), "PNG")
    with ProjectStore(root) as store:
        store.remember_image("Image/p100.png")
    (root / "Image" / "p100.png").rename(root / "Image" / "gone.bak")  # not an image any more
    w = window(root, classic)
    assert shown_row(qtbot, w) == 0  # the image left off at is gone: the first not accepted
    w.close()
    (root / "Image" / "gone.bak").rename(root / "Image" / "p100.png")
    w2 = window(root, classic)
    assert shown_row(qtbot, w2) == 100
