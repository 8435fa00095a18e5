"""Export safety: the target is checked before anything is created or deleted, only the export's own temporary files
in folders its manifest owns are removed, links are never followed out, the dataset's folders are refused, and long
image names either export or are skipped up front."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from image_factories import save
from PIL import Image

from floodlabel.cli import main
from floodlabel.core.common import atomic_files
from floodlabel.core.common.atomic_files import remove_temp_files, write_atomic
from floodlabel.core.common.errors import ExportError
from floodlabel.core.export.project_export import EXPORT_TEMP_PREFIX, MANIFEST_NAME, check_export_folder, export_project
from floodlabel.core.store.project_store import ProjectStore

OWN_TEMP = f"{EXPORT_TEMP_PREFIX}0123456789ab"


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FLOODLABEL_DATA_DIR", str(tmp_path_factory.mktemp("userdata")))


@pytest.fixture
def data(tmp_path) -> Path:
    """DATA/Image/{1,2}.jpg, both accepted; the project is DATA/floodlabel-project."""
    data = tmp_path / "DATA"
    for stem in ("1", "2"):
        save(data / "Image" / f"{stem}.jpg", np.full((6, 8, 3), 80, np.uint8), "JPEG")
    with ProjectStore(data) as store:
        for stem in ("1", "2"):
            store.accept(f"Image/{stem}.jpg", np.eye(6, 8, dtype=bool))
    return data


def cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit status 2 and exactly one line on stderr; return it."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def tree(folder: Path) -> set[str]:
    """Everything under `folder`, but SQLite's -wal/-shm files (opening the project makes them)."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.name.endswith(("-wal", "-shm"))}


# ---------------------------------------------------------------------------------------------------------------
# links and foreign files


def test_mask_link_to_outside_leaves_its_files_alone(data, tmp_path, capsys):
    out, elsewhere = tmp_path / "O", tmp_path / "T"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / ".tmp-victim.txt").write_text("x")
    (elsewhere / OWN_TEMP).write_text("even a name of the export's own pattern")
    (out / "Mask").symlink_to(elsewhere, target_is_directory=True)
    line = cli_error(capsys, ["export", str(data), "--out", str(out)])
    assert "leads outside the export folder" in line
    assert tree(elsewhere) == {".tmp-victim.txt", OWN_TEMP}
    assert tree(out) == {"Mask"}  # nothing written, the link itself kept


def test_mask_link_inside_the_folder_refused(data, tmp_path):
    out = tmp_path / "O"
    (out / "real").mkdir(parents=True)
    (out / "Mask").symlink_to(out / "real", target_is_directory=True)
    with ProjectStore(data, read_only=True) as store, pytest.raises(ExportError, match="is a link"):
        export_project(store, out)
    assert tree(out) == {"Mask", "real"}


def test_manifest_link_refused(data, tmp_path):
    out, elsewhere = tmp_path / "O", tmp_path / "T"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "other.json").write_text('{"format": 1, "files": {}, "links": {}}')
    (out / MANIFEST_NAME).symlink_to(elsewhere / "other.json")
    with ProjectStore(data, read_only=True) as store, pytest.raises(ExportError, match="is a link"):
        export_project(store, out)
    assert (elsewhere / "other.json").read_text() == '{"format": 1, "files": {}, "links": {}}'
    assert tree(out) == {MANIFEST_NAME}


def test_manifest_names_leading_outside_are_ignored(data, tmp_path):
    out = tmp_path / "O"
    with ProjectStore(data, read_only=True) as store:
        export_project(store, out)
        victim = tmp_path / "victim.png"
        victim.write_bytes(b"precious")
        digest = hashlib.sha256(b"precious").hexdigest()
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        manifest["files"].update({"Mask/../../victim.png": digest, str(victim): digest, "Mask/": None})
        (out / MANIFEST_NAME).write_text(json.dumps(manifest))
        export_project(store, out)
    assert victim.read_bytes() == b"precious"
    assert set(json.loads((out / MANIFEST_NAME).read_text())["files"]) == {"Mask/1.png", "Mask/2.png", "coco.json"}


def test_foreign_temp_files_without_manifest_are_kept(data, tmp_path):
    out = tmp_path / "O"
    (out / "Mask").mkdir(parents=True)
    for folder in (out, out / "Mask"):
        (folder / ".tmp-foo").write_text("someone's")
        (folder / OWN_TEMP).write_text("no manifest: not the export's folder")
    with ProjectStore(data, read_only=True) as store:
        result = export_project(store, out)
    assert result.exported == 2
    for folder in (out, out / "Mask"):
        assert (folder / ".tmp-foo").read_text() == "someone's"
        assert (folder / OWN_TEMP).exists()


def test_own_leftover_temp_files_in_an_owned_folder_are_removed(data, tmp_path):
    out = tmp_path / "O"
    with ProjectStore(data, read_only=True) as store:
        export_project(store, out)
        kept = [".tmp-foo", f"{EXPORT_TEMP_PREFIX}notes.txt", f"{EXPORT_TEMP_PREFIX}0123456789abc",
                f"{EXPORT_TEMP_PREFIX}0123456789AB"]
        for folder in (out, out / "Mask"):
            (folder / OWN_TEMP).write_bytes(b"half a mask")
            for name in kept:
                (folder / name).write_text("not the export's pattern")
        (out / "Mask" / f"{EXPORT_TEMP_PREFIX}fedcba987654").symlink_to(out / "Image")  # a killed link swap
        export_project(store, out)
    for folder in (out, out / "Mask"):
        assert not (folder / OWN_TEMP).exists()
        assert all((folder / name).exists() for name in kept)
    assert not os.path.lexists(out / "Mask" / f"{EXPORT_TEMP_PREFIX}fedcba987654")
    assert (out / "Image").is_dir()  # the link's target untouched


# ---------------------------------------------------------------------------------------------------------------
# refused targets


def test_out_data_refused_and_nothing_deleted(data, capsys):
    (data / ".tmp-user-notes.txt").write_text("notes")
    (data / "Mask").mkdir()
    (data / "Mask" / ".tmp-keep.txt").write_text("keep")
    before = tree(data)
    line = cli_error(capsys, ["export", str(data), "--out", str(data)])
    assert "the dataset folder" in line
    assert tree(data) == before
    assert (data / ".tmp-user-notes.txt").read_text() == "notes"
    assert (data / "Mask" / ".tmp-keep.txt").read_text() == "keep"


@pytest.mark.parametrize("sub", ["Image", "Image/export", "Mask", "masks", "floodlabel-project",
                                 "floodlabel-project/masks"])
def test_dataset_and_project_folders_refused(data, capsys, sub):
    before = tree(data)
    line = cli_error(capsys, ["export", str(data), "--out", str(data / sub)])
    assert "refusing to export into" in line
    assert tree(data) == before  # no Mask/, coco.json or Image link among the photos, no folder created


def test_refused_through_a_link_to_the_image_folder(data, tmp_path):
    (tmp_path / "photos").symlink_to(data / "Image", target_is_directory=True)
    with ProjectStore(data, read_only=True) as store, pytest.raises(ExportError, match="image folder"):
        check_export_folder(store, tmp_path / "photos")


def test_root_and_home_refused(data, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with ProjectStore(data, read_only=True) as store:
        with pytest.raises(ExportError, match="file system root"):
            check_export_folder(store, "/")
        with pytest.raises(ExportError, match="home folder"):
            check_export_folder(store, "~")
        assert check_export_folder(store, "~/exports") == home / "exports"  # a folder inside home is fine
    assert list(home.iterdir()) == []  # checking creates nothing


def test_a_dedicated_folder_inside_data_is_allowed(data):
    with ProjectStore(data, read_only=True) as store:
        result = export_project(store, data / "floodlabel-export")
    assert result.exported == 2 and (data / "floodlabel-export" / "Mask" / "1.png").is_file()
    assert (data / "floodlabel-export" / "Image").resolve() == data / "Image"


def test_flat_dataset_allows_a_subfolder_but_not_data(tmp_path):
    data = tmp_path / "FLAT"
    save(data / "1.png", np.zeros((4, 5, 3), np.uint8), "PNG")
    with ProjectStore(data) as store:
        store.accept("1.png", np.ones((4, 5), bool))
        with pytest.raises(ExportError, match="the dataset folder"):
            export_project(store, data)
        with pytest.raises(ExportError, match="mask folder"):
            export_project(store, data / "labels")  # would be read as the dataset's mask folder
        assert export_project(store, data / "export").exported == 1
    assert sorted(p.name for p in data.iterdir()) == ["1.png", "export", "floodlabel-project"]


# ---------------------------------------------------------------------------------------------------------------
# long names and failures mid-way


def test_a_244_character_name_exports(tmp_path):
    data = tmp_path / "DATA"
    names = [f"{i}" + "a" * 239 + ".jpg" for i in range(3)]  # 244 characters each
    for name in names:
        save(data / "Image" / name, np.zeros((4, 5, 3), np.uint8), "JPEG")
    with ProjectStore(data) as store:
        for name in names:
            store.accept(f"Image/{name}", np.ones((4, 5), bool))
        result = export_project(store, tmp_path / "out")
    assert result.exported == 3 and not result.skipped
    assert sorted(p.name for p in result.masks) == [n[:-4] + ".png" for n in names]
    assert len(json.loads(result.coco_path.read_text())["images"]) == 3
    assert not [p for p in (tmp_path / "out" / "Mask").iterdir() if p.name.startswith(".")]


def test_a_mask_name_over_name_max_is_skipped_up_front(tmp_path, capsys):
    data = tmp_path / "DATA"
    long_image = "b" * 252 + ".im"  # 255 bytes: fits; its mask name would be 256 bytes
    (data / "Image").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(data / "Image" / long_image, "IM")
    save(data / "Image" / "1.png", np.zeros((4, 5, 3), np.uint8), "PNG")
    with ProjectStore(data) as store:
        store.accept(f"Image/{long_image}", np.ones((4, 5), bool))
        store.accept("Image/1.png", np.ones((4, 5), bool))
        result = export_project(store, tmp_path / "out")
        assert result.exported == 1 and [p.name for p in result.masks] == ["1.png"]
        (rel, reason), = result.skipped
        assert rel == f"Image/{long_image}" and "256 bytes" in reason and "255" in reason
        assert [im["floodlabel_path"] for im in json.loads(result.coco_path.read_text())["images"]] == ["Image/1.png"]
        coco_only = export_project(store, tmp_path / "coco", formats=["coco"])  # no mask file: nothing to skip
        assert coco_only.exported == 2 and not coco_only.skipped
    assert main(["export", str(data), "--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert f"skipped Image/{long_image}" in err and "1 accepted image(s) were not exported" in err


def failing_after(monkeypatch, n_writes: int, *, once: bool = False) -> None:
    """os.write in atomic_files fails with ENOSPC after `n_writes` successful calls (once: only that call)."""
    real_write = atomic_files.os.write
    calls = []

    def write(fd, data):
        calls.append(fd)
        if len(calls) == n_writes + 1 or (len(calls) > n_writes and not once):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(atomic_files.os, "write", write)


def test_a_failed_write_says_how_many_masks_are_complete(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    failing_after(monkeypatch, 2, once=True)  # the manifest and the first mask; then room for the manifest
    line = cli_error(capsys, ["export", str(data), "--out", str(out)])
    assert "cannot write" in line and "2.png: the disk is full" in line
    assert f"1 of 2 mask(s) were written and are listed in {out / MANIFEST_NAME}" in line
    monkeypatch.undo()
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["files"] == {"Mask/1.png": hashlib.sha256((out / "Mask" / "1.png").read_bytes()).hexdigest()}
    assert tree(out) == {MANIFEST_NAME, "Mask", "Mask/1.png"}  # no temporary file left
    assert main(["export", str(data), "--out", str(out)]) == 0  # the next export finishes it


def test_a_failed_coco_write_says_the_masks_are_complete(data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    failing_after(monkeypatch, 3)  # the manifest and both masks
    with ProjectStore(data, read_only=True) as store, pytest.raises(ExportError) as caught:
        export_project(store, out)
    assert "coco.json" in str(caught.value) and "2 of 2 mask(s) were written" in str(caught.value)
    monkeypatch.undo()
    # the disk stayed full, so the manifest is the one saved before the first mask: every target pending (ours)
    assert set(json.loads((out / MANIFEST_NAME).read_text())["files"]) == {"Mask/1.png", "Mask/2.png", "coco.json"}
    assert tree(out) == {MANIFEST_NAME, "Mask", "Mask/1.png", "Mask/2.png"}


# ---------------------------------------------------------------------------------------------------------------
# atomic_files: the export's own temporary names


def test_write_atomic_prefix_names_a_short_temp_file(tmp_path, monkeypatch):
    seen = []
    real_open = atomic_files.os.open

    def spy(path, *args, **kwargs):
        seen.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(atomic_files.os, "open", spy)
    target = tmp_path / ("c" * 251 + ".png")  # 255 bytes: no room for a name derived from it
    write_atomic(target, b"data", prefix=EXPORT_TEMP_PREFIX, sync_dir=False)
    assert target.read_bytes() == b"data"
    assert len(seen) == 1 and seen[0].startswith(EXPORT_TEMP_PREFIX) and len(seen[0]) == len(OWN_TEMP)
    write_atomic(tmp_path / "x.txt", b"y", sync_dir=False)  # the default name is unchanged
    assert seen[-1].startswith(".tmp-") and seen[-1].endswith("-x.txt")


def test_remove_temp_files_matches_strictly_and_never_follows_a_link(tmp_path):
    folder, elsewhere = tmp_path / "f", tmp_path / "e"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / OWN_TEMP).write_text("x")
    (folder / f"{EXPORT_TEMP_PREFIX}0123456789ab.png").write_text("x")
    (folder / f"{EXPORT_TEMP_PREFIX}0123456789ab-").mkdir()
    (elsewhere / OWN_TEMP).write_text("x")
    (tmp_path / "link").symlink_to(elsewhere, target_is_directory=True)
    assert remove_temp_files(folder, EXPORT_TEMP_PREFIX) == 1
    assert sorted(p.name for p in folder.iterdir()) == [f"{EXPORT_TEMP_PREFIX}0123456789ab-",
                                                       f"{EXPORT_TEMP_PREFIX}0123456789ab.png"]
    assert remove_temp_files(tmp_path / "link", EXPORT_TEMP_PREFIX) == 0
    assert (elsewhere / OWN_TEMP).exists()
    assert remove_temp_files(tmp_path / "missing", EXPORT_TEMP_PREFIX) == 0


def test_a_non_empty_unrelated_folder_keeps_its_files(data, tmp_path):
    out = tmp_path / "notes"
    (out / "sub").mkdir(parents=True)
    (out / "todo.txt").write_text("mine")
    (out / "sub" / "x.jpg").write_bytes(b"a photo")
    with ProjectStore(data) as store:
        export_project(store, out)
        export_project(store, out)  # again: only its own files are replaced
    assert (out / "todo.txt").read_text() == "mine" and (out / "sub" / "x.jpg").read_bytes() == b"a photo"
    assert sorted(p.name for p in (out / "Mask").iterdir()) == ["1.png", "2.png"]


def test_onto_a_file_refused_and_the_file_kept(data, tmp_path, capsys):
    target = tmp_path / "report.pdf"
    target.write_bytes(b"%PDF")
    line = cli_error(capsys, ["export", str(data), "--out", str(target)])
    assert "is not a folder" in line and target.read_bytes() == b"%PDF"
    line = cli_error(capsys, ["export", str(data), "--out", str(target / "sub")])
    assert target.read_bytes() == b"%PDF" and "Traceback" not in line
