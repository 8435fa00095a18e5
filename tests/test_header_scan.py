"""The image list's header scan in a child process (core.data.header_scan): the same rows as the in-thread scan,
sizes cached on the dataset, stop() ends the child, and a child that cannot start or dies leaves the thread to
finish. (The UI stall it removes is measured by benchmarks/bench_open_folder.py, not here.)"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from image_factories import save

from floodlabel.core.data import header_scan
from floodlabel.core.data.datasets import open_dataset
from floodlabel.gui.panels import size_scan


@pytest.fixture
def folder(tmp_path):
    """DATA/Image/{0..29}.png with masks; 7.png is not an image, 11's mask is not one either."""
    root = tmp_path / "DATA"
    for i in range(30):
        h, w = 8 + i, 10 + 2 * i
        save(root / "Image" / f"{i}.png", np.full((h, w, 3), 7 * i, np.uint8), "PNG")
        save(root / "Mask" / f"{i}.png", np.zeros((h, w), np.uint8), "PNG")
    (root / "Image" / "7.png").write_bytes(b"not a png")
    (root / "Mask" / "11.png").write_bytes(b"nor this")
    return root


def run_scan(dataset, monkeypatch, mode: str) -> tuple[dict, bool]:
    """All rows a SizeScanner reports (row -> (image size, mask size, error)) and whether it used a child."""
    monkeypatch.setenv("FLOODLABEL_HEADER_SCAN", mode)
    monkeypatch.setattr(size_scan, "PROCESS_MIN_ROWS", 1)
    scanner = size_scan.SizeScanner(dataset, generation=1)
    rows: dict = {}
    done = threading.Event()
    scanner.relay.sizes.connect(lambda _g, chunk: rows.update({r: rest for r, *rest in chunk}), _direct())
    scanner.relay.done.connect(lambda _g: done.set(), _direct())
    in_process = scanner.in_process
    scanner.start()
    assert done.wait(60), "the scan did not finish"
    return {r: tuple(v) for r, v in rows.items()}, in_process


def _direct():
    from PySide6.QtCore import Qt

    return Qt.ConnectionType.DirectConnection


def test_the_child_reports_what_the_thread_does_and_fills_the_cache(folder, monkeypatch):
    by_thread, used_child = run_scan(open_dataset(folder), monkeypatch, "thread")
    assert not used_child
    dataset = open_dataset(folder)
    by_child, used_child = run_scan(dataset, monkeypatch, "process")
    assert used_child
    assert by_child == by_thread and len(by_child) == 30
    assert by_child[3] == ((16, 11), (16, 11), None)
    assert by_child[7][0] is None and by_child[7][2].startswith("unreadable:")
    assert by_child[11][1] is None and by_child[11][2].startswith("unreadable mask:")
    pair = dataset.pairs[3]
    assert dataset.size_known(pair.image) and dataset.image_size(pair.image) == (16, 11)


def test_rows_whose_sizes_are_known_are_not_sent_to_the_child(folder, monkeypatch):
    dataset = open_dataset(folder)
    for pair in dataset.pairs:
        dataset.image_size(pair.image) if pair.stem != "7" else None
        if pair.mask is not None and pair.stem != "11":
            dataset.image_size(pair.mask)
    scanner = size_scan.SizeScanner(dataset, 1)
    assert sorted(scanner._unknown_rows()) == sorted(
        r for r, p in enumerate(dataset.pairs) if p.stem in ("7", "11"))


def test_a_child_that_cannot_start_leaves_the_thread_to_scan(folder, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(folder / "no-such-python"))
    rows, used_child = run_scan(open_dataset(folder), monkeypatch, "process")
    assert used_child and len(rows) == 30 and rows[3][0] == (16, 11)


def test_a_child_that_dies_midway_leaves_the_rest_to_the_thread(folder, monkeypatch):
    real_popen = size_scan.subprocess.Popen

    def dying(cmd, **kwargs):  # reports the first chunk of 4 rows, then exits 1
        code = ("import json,sys; rows=json.load(sys.stdin)[:4]; "
                "print(json.dumps([[r, [1, 1], None, None] for r, i, m in rows])); sys.exit(1)")
        return real_popen([sys.executable, "-c", code], **kwargs)

    monkeypatch.setattr(size_scan.subprocess, "Popen", dying)
    rows, _ = run_scan(open_dataset(folder), monkeypatch, "process")
    assert len(rows) == 30
    assert sum(1 for v in rows.values() if v[0] == (1, 1)) == 4  # the child's rows are kept
    assert rows[29][0] == (68, 37)  # the rest were read here


def test_stop_ends_the_child(folder, monkeypatch):
    real_popen = size_scan.subprocess.Popen
    started = threading.Event()
    children = []

    def slow(cmd, **kwargs):  # a child that never answers
        child = real_popen([sys.executable, "-c", "import time; time.sleep(60)"], **kwargs)
        children.append(child)
        started.set()
        return child

    monkeypatch.setattr(size_scan.subprocess, "Popen", slow)
    monkeypatch.setattr(size_scan, "PROCESS_MIN_ROWS", 1)
    scanner = size_scan.SizeScanner(open_dataset(folder), 1)
    done = threading.Event()
    scanner.relay.done.connect(lambda _g: done.set(), _direct())
    scanner.start()
    assert started.wait(20)
    scanner.stop()
    scanner._thread.join(20)
    assert not scanner._thread.is_alive() and children[0].poll() is not None
    assert not done.is_set()  # a stopped scan reports nothing more


def test_the_core_rule_without_a_process(folder):
    rows = list(header_scan.scan([(0, folder / "Image" / "0.png", folder / "Mask" / "0.png"),
                                  (1, folder / "Image" / "7.png", None)]))
    assert rows[0] == (0, (10, 8), (10, 8), None)
    assert rows[1][0] == 1 and rows[1][1] is None and rows[1][2] is None
    assert header_scan.parse_chunk('[[5, [3, 2], null, "x"]]') == [(5, (3, 2), None, "x")]


def test_a_map_over_the_pixel_limit_is_not_a_problem_a_photo_is(tmp_path, monkeypatch):
    """A georeferenced TIFF opens at a reduced level whatever its size (core.tiles); a photo that large cannot."""
    from affine import Affine
    from geo_maps import write_map
    from rasterio.crs import CRS

    from floodlabel.core.data import images

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100 * 100)
    write_map(tmp_path / "map.tif", CRS.from_epsg(32633), Affine(0.1, 0, 500000, 0, -0.1, 4000000), (300, 200),
              lambda top, bottom, width: np.zeros((bottom - top, width), bool))
    save(tmp_path / "photo.png", np.zeros((200, 300, 3), np.uint8), "PNG")
    map_row = header_scan.header_row(0, tmp_path / "map.tif", None)
    photo_row = header_scan.header_row(1, tmp_path / "photo.png", None)
    assert map_row == (0, (300, 200), None, None)
    assert photo_row[1] == (300, 200) and "image too large" in photo_row[3]
