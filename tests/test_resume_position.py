"""Where a reopened project lands (core, no Qt): the image the user was last on, else the first not accepted."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from image_factories import save

from floodlabel.core.store.project_store import ProjectStore
from floodlabel.core.store.resume import LAST_IMAGE_KEY, resume_image

STEMS = ("a", "b", "c", "d", "e")


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FLOODLABEL_DATA_DIR", str(tmp_path_factory.mktemp("userdata")))


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
