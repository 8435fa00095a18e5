"""Hostile store and export cases (issue 14) not covered elsewhere: every one ends in a clear message and loses nothing.

Covered in other files (see the report of issue 14): damaged/truncated database and WAL (test_store_recovery),
ENOSPC by monkeypatch and read-only by a refused os.open (test_project_store), export targets (test_export_safety),
two windows (test_window_project_notices), symlink loops (test_dataset_links), the pixel limit (test_pixel_limit).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from image_factories import save

from floodlabel.cli import main
from floodlabel.core.common.errors import ExportError, ImageReadError, StoreError
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.data.images import image_size, read_image
from floodlabel.core.export.project_export import export_project
from floodlabel.core.store.project_store import DB_NAME, PROJECT_DIR_NAME, ProjectStore, Status

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def photo(path: Path, value: int, shape=(6, 8)) -> Path:
    return save(path, np.full((*shape, 3), value, np.uint8), "PNG")


def mask(seed: int, shape=(6, 8)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < 0.5


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "DATA"
    for i in range(3):
        photo(root / "Image" / f"{i}.png", 40 * i)
    return root


def masks_in(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "masks").iterdir())


def cli(capsys, argv) -> tuple[int, str, str]:
    rc = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return rc, captured.out, captured.err


# ---------------------------------------------------------------------------------------------------------------
# the database: truncated, then recovered through the CLI


def test_truncated_database_masks_come_back_through_the_cli(data, tmp_path, capsys):
    with ProjectStore(data) as store:
        for i in range(3):
            store.accept(f"Image/{i}.png", mask(i), {"points": [[i, i, 1]]})
    db = data / PROJECT_DIR_NAME / DB_NAME
    with open(db, "r+b") as f:  # close() checkpointed the WAL: cut the file that holds the rows
        f.truncate(db.stat().st_size // 2)
    before = masks_in(data / PROJECT_DIR_NAME)
    rc, _, err = cli(capsys, ["export", str(data), "--out", str(tmp_path / "out")])
    assert rc == 2 and "floodlabel recover" in err
    assert masks_in(data / PROJECT_DIR_NAME) == before
    rc, out, _ = cli(capsys, ["recover", str(data)])
    assert rc == 0 and "restored 3 accepted mask(s)" in out
    with ProjectStore(data) as store:
        for i in range(3):
            assert np.array_equal(store.record(f"Image/{i}.png").load_mask(), mask(i))
    assert cli(capsys, ["export", str(data), "--out", str(tmp_path / "out")])[0] == 0


# ---------------------------------------------------------------------------------------------------------------
# masks and images changed by hand


def test_a_mask_deleted_by_hand_is_reported_at_open_and_by_export(data, tmp_path, capsys):
    with ProjectStore(data) as store:
        gone = store.accept("Image/0.png", mask(0)).mask_path
        store.accept("Image/1.png", mask(1))
    gone.unlink()
    with ProjectStore(data) as store:
        record = store.record("Image/0.png")
        assert record.accepted and record.mask_missing  # accepted, and it says the mask is missing
        assert any("Image/0.png: the accepted mask" in line and "deleted" in line for line in store.problems())
    rc, out, err = cli(capsys, ["export", str(data), "--out", str(tmp_path / "out")])
    assert rc == 2 and "skipped Image/0.png" in err and "deleted outside FloodLabel" in err  # exit 2: not all out
    assert (tmp_path / "out" / "Mask" / "1.png").is_file() and not (tmp_path / "out" / "Mask" / "0.png").exists()


@pytest.mark.parametrize("same_size", [False, True])
def test_an_accepted_photo_replaced_by_another_of_the_same_name(data, tmp_path, capsys, same_size):
    image = data / "Image" / "0.png"
    with ProjectStore(data) as store:
        old_mask = store.accept("Image/0.png", mask(0)).mask_path
    old_bytes = old_mask.read_bytes()
    replacement = photo(tmp_path / "other.png", 200, (6, 8) if same_size else (7, 9))
    if same_size:  # same byte size and the old mtime: only the hash can tell
        size = image.stat().st_size
        body = replacement.read_bytes()
        replacement.write_bytes(body[:size].ljust(size, b"\0") if len(body) >= size else body + b"\0" * (size - len(body)))
        st = image.stat()
        os.replace(replacement, image)
        os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        os.replace(replacement, image)
    with ProjectStore(data) as store:
        record = store.record("Image/0.png")
        assert record.changed and record.accepted
        assert any("Image/0.png: the image changed" in line for line in store.problems())
        result = export_project(store, tmp_path / "out")
        assert result.skipped == [("Image/0.png", "the image changed since it was accepted; accept it again")]
    assert old_mask.read_bytes() == old_bytes  # the old mask is kept
    rc, out, err = cli(capsys, ["export", str(data), "--out", str(tmp_path / "out2")])
    assert "Image/0.png" in out + err and "changed" in out + err


# ---------------------------------------------------------------------------------------------------------------
# read-only projects


def accepted_project(data) -> Path:
    with ProjectStore(data) as store:
        store.accept("Image/0.png", mask(0), {"v": 1})
    return data / PROJECT_DIR_NAME


def assert_opens_read_only_and_keeps_everything(data, project, reason):
    before = masks_in(project)
    with ProjectStore(data) as store:
        assert store.read_only and reason in store.read_only_reason
        assert np.array_equal(store.record("Image/0.png").load_mask(), mask(0))
        with pytest.raises(StoreError, match="read-only"):
            store.accept("Image/1.png", mask(1))
    assert masks_in(project) == before


@pytest.mark.skipif(IS_ROOT, reason="root ignores permission bits: the next test drops to nobody for this case")
def test_a_chmod_read_only_project_opens_read_only(data):
    project = accepted_project(data)
    for path in (project, project / "masks"):
        path.chmod(0o555)
    try:
        assert_opens_read_only_and_keeps_everything(data, project, "not writable")
    finally:
        for path in (project, project / "masks"):
            path.chmod(0o755)


CHMOD_CHILD = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from test_hostile_inputs import mask
from floodlabel.core.common.errors import StoreError
from floodlabel.core.store.project_store import ProjectStore
with ProjectStore(sys.argv[1]) as store:
    print(store.read_only)
    print(store.read_only_reason)
    print(np.array_equal(store.record("Image/0.png").load_mask(), mask(0)))
    try:
        store.accept("Image/1.png", mask(1))
    except StoreError as exc:
        print("refused:", exc)
"""


@pytest.mark.skipif(not IS_ROOT or shutil.which("setpriv") is None, reason="needs root and setpriv(1)")
def test_a_chmod_read_only_project_opens_read_only_for_a_user_who_is_not_root(tmp_path):
    """As root (who ignores permission bits) the chmod case runs in a child that drops to nobody."""
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="floodlabel-chmod-", dir="/tmp"))
    try:
        data = top / "DATA"
        for i in range(2):
            photo(data / "Image" / f"{i}.png", 40 * i)
        project = accepted_project(data)
        before = masks_in(project)
        (top / "userdata").mkdir()
        subprocess.run(["chown", "-R", "65534:65534", str(top)], check=True)
        top.chmod(0o755)
        subprocess.run(["chmod", "-R", "a-w", str(project)], check=True)
        env = {**os.environ, "FLOODLABEL_DATA_DIR": str(top / "userdata"), "HOME": str(top / "userdata"),
               "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                               CHMOD_CHILD, str(data), os.path.dirname(__file__)],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        read_only, reason, same, refused = done.stdout.splitlines()
        assert read_only == "True" and "not writable" in reason, done.stdout
        assert same == "True" and refused.startswith("refused:") and "read-only" in refused
        assert masks_in(project) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(top)], check=False)
        shutil.rmtree(top, ignore_errors=True)


def unmount(path: Path) -> None:
    done = subprocess.run(["umount", str(path)], capture_output=True, text=True)
    if done.returncode:  # busy: detach it now, the kernel drops it once unused
        subprocess.run(["umount", "-l", str(path)], check=True)


def mount_or_skip(*args: str) -> None:
    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip("mounting needs root and mount(8)")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"mount not allowed here (no CAP_SYS_ADMIN?): {done.stderr.strip()}")


def test_a_read_only_bind_mount_opens_read_only(data, tmp_path):
    project = accepted_project(data)
    view = tmp_path / "view"
    shutil.copytree(data, view / "DATA", symlinks=True)
    ro = tmp_path / "ro"
    ro.mkdir()
    mount_or_skip("--bind", str(view), str(ro))
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        assert_opens_read_only_and_keeps_everything(ro / "DATA", ro / "DATA" / PROJECT_DIR_NAME, "not writable")
    finally:
        unmount(ro)
    assert masks_in(view / "DATA" / PROJECT_DIR_NAME) == masks_in(project)


def test_a_tmpfs_remounted_read_only_opens_read_only(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mount_or_skip("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk))
    try:
        data = disk / "DATA"
        photo(data / "Image" / "0.png", 0)
        photo(data / "Image" / "1.png", 40)
        project = accepted_project(data)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        assert_opens_read_only_and_keeps_everything(data, project, "not writable")
    finally:
        unmount(disk)


# ---------------------------------------------------------------------------------------------------------------
# a disk that fills up mid-accept


def test_a_tiny_tmpfs_fills_up_mid_accept(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mount_or_skip("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    try:
        data = disk / "DATA"
        photo(data / "Image" / "big.png", 0, (300, 400))
        with ProjectStore(data) as store:
            first = store.accept("Image/big.png", np.zeros((300, 400), bool), {"v": 1})
            filler = disk / "filler"
            try:  # leave too little room for another (noisy, incompressible) mask
                with open(filler, "wb", buffering=0) as f:
                    while True:
                        f.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            before = masks_in(store.project_dir)
            noisy = mask(5, (300, 400))
            with pytest.raises(StoreError, match="the disk is full"):
                store.accept("Image/big.png", noisy, {"v": 2})
            assert masks_in(store.project_dir) == before  # no half-written files
            record = store.record("Image/big.png")
            assert record.accepted_state == {"v": 1} and record.mask_path == first.mask_path
            assert not record.load_mask().any()
            filler.unlink()
            assert np.array_equal(store.accept("Image/big.png", noisy, {"v": 2}).load_mask(), noisy)  # retry works
    finally:
        unmount(disk)


# ---------------------------------------------------------------------------------------------------------------
# names


def test_same_stem_images_one_listed_one_reported_masks_and_export_do_not_collide(tmp_path, capsys):
    data = tmp_path / "DATA"
    photo(data / "Image" / "a.jpg", 10)
    photo(data / "Image" / "a.png", 20)
    dataset = open_dataset(data)
    assert [p.image.name for p in dataset.pairs] == ["a.jpg"]
    assert [p.name for p in dataset.duplicates] == ["a.png"]  # reported, not silently dropped
    rc, out, _ = cli(capsys, ["stats", str(data)])
    assert "a.png" in out
    with ProjectStore(data) as store:
        one = store.accept("Image/a.jpg", mask(1)).mask_path
        two = store.accept("Image/a.png", mask(2)).mask_path
        assert one != two
        assert np.array_equal(store.record("Image/a.jpg").load_mask(), mask(1))
        assert np.array_equal(store.record("Image/a.png").load_mask(), mask(2))
        with pytest.raises(ExportError, match="Image/a.jpg and Image/a.png"):
            export_project(store, tmp_path / "out")
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))


ODD_NAMES = {"newline": "a\nb", "dash": "-lead", "long": "x" * 196, "emoji": "flood 🌊 ü"}


@pytest.mark.parametrize("kind", sorted(ODD_NAMES))
def test_odd_names_list_accept_and_export(tmp_path, capsys, kind, monkeypatch):
    stem = ODD_NAMES[kind]
    data = tmp_path / "-data"
    photo(data / "Image" / f"{stem}.png", 90)
    photo(data / "Mask" / f"{stem}.png", 0)
    dataset = open_dataset(data)
    assert [p.stem for p in dataset.pairs] == [stem]
    rel = f"Image/{stem}.png"
    with ProjectStore(data) as store:
        store.accept(rel, mask(3))
    with ProjectStore(data) as store:
        assert store.statuses() == {rel: Status.ACCEPTED}
        assert np.array_equal(store.record(rel).load_mask(), mask(3))
    monkeypatch.chdir(tmp_path)
    rc, out, err = cli(capsys, ["export", "./-data", "--out", "./-out"])
    assert rc == 0, err
    exported = tmp_path / "-out" / "Mask" / f"{stem}.png"
    assert np.array_equal(np.asarray(__import__("PIL.Image").Image.open(exported)) > 127, mask(3))
    coco = json.loads((tmp_path / "-out" / "coco.json").read_text(encoding="utf-8"))
    assert [im["file_name"] for im in coco["images"]] == [f"{stem}.png"] or \
        [im["file_name"] for im in coco["images"]] == [rel]
    assert cli(capsys, ["stats", "--", "-data"])[0] == 0
    assert cli(capsys, ["stats", "--quick", "./-out"])[0] == 0
    if kind == "dash":  # a folder name that looks like an option: after `--`, or as ./-data
        rc, out, err = cli(capsys, ["eval", "-m", "classic", "--prompt", "box", "--no-noc", "--csv", "e.csv",
                                    "--", "-data"])
        assert rc == 0, err
        assert cli(capsys, ["export", "--out=-out2", "--", "-data"])[0] == 0


# ---------------------------------------------------------------------------------------------------------------
# odd image sizes


@pytest.mark.parametrize("shape", [(1, 1), (1, 20000), (20000, 1)])
def test_thin_and_tiny_images_read_accept_and_export(tmp_path, shape):
    data = tmp_path / "DATA"
    photo(data / "Image" / "thin.png", 120, shape)
    assert image_size(data / "Image" / "thin.png") == (shape[1], shape[0])
    assert read_image(data / "Image" / "thin.png").shape == (*shape, 3)
    m = np.ones(shape, bool)
    with ProjectStore(data) as store:
        store.accept("Image/thin.png", m)
        result = export_project(store, tmp_path / "out")
    assert result.exported == 1
    assert (tmp_path / "out" / "Mask" / "thin.png").is_file()


def test_a_30000_square_png_is_refused_from_its_header(tmp_path, monkeypatch, capsys):
    from benchmarks.huge_png import write_flat_png

    path = write_flat_png(tmp_path / "DATA" / "Image" / "huge.png", 30000, 30000, bands=2)
    assert path.stat().st_size < 20 << 20

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a 900 MP image")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)
    with pytest.raises(ImageReadError, match=r"image too large: 30000x30000 = 900 MP, the limit is 100 MP"):
        read_image(path)
    rc, out, err = cli(capsys, ["stats", "--quick", str(tmp_path / "DATA")])
    assert rc == 0 and "image too large: 30000x30000" in out + err
