"""The export dialog (pytest-qt, offscreen): export from the dialog, a refusal shown without writing, cancel; and the
cancel hook of core.export.export_project it relies on."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from image_factories import save
from PIL import Image
from PySide6.QtCore import Qt

from floodlabel.core.export import project_export as export_module
from floodlabel.core.export.project_export import MANIFEST_NAME, ExportCancelled, export_project
from floodlabel.core.store.project_store import ProjectStore
from floodlabel.gui.dialogs.export_dialog import DEFAULT_FOLDER_NAME, OVERWRITE_TEXT, ExportDialog


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FLOODLABEL_DATA_DIR", str(tmp_path_factory.mktemp("userdata")))


def _mask(seed: int) -> np.ndarray:
    mask = np.zeros((30, 40), bool)
    mask[3:20, 5:25] = True
    mask[8:11, 9:12] = False  # a hole
    mask ^= np.random.default_rng(seed).random(mask.shape) < 0.03  # scattered pixels
    return mask


@pytest.fixture
def store(tmp_path):
    """DATA/Image/{1,2,3}.jpg with 1 and 2 accepted; the writable store a window would hold."""
    data = tmp_path / "DATA"
    for stem, grey in (("1", 80), ("2", 90), ("3", 100)):
        save(data / "Image" / f"{stem}.jpg", np.full((30, 40, 3), grey, np.uint8), "JPEG")
    with ProjectStore(data) as store:
        for seed, rel in enumerate(("Image/1.jpg", "Image/2.jpg"), 1):
            store.accept(rel, _mask(seed), {"points": [[1, 1, 1]]}, model_id="classic")
        yield store


def _dialog(qtbot, store, out) -> ExportDialog:
    dialog = ExportDialog(store)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.folder_edit.setText(str(out))
    return dialog


def test_export_from_the_dialog_writes_pngs_and_coco_and_shows_the_counts(qtbot, store, tmp_path):
    dialog = ExportDialog(store)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.folder_edit.text() == str(store.data_root / DEFAULT_FOLDER_NAME)
    assert dialog.count_label.text().startswith("2 accepted image(s)")
    assert dialog.png_check.isChecked() and dialog.coco_check.isChecked() and not dialog.overwrite_check.isChecked()
    out = tmp_path / "out"
    dialog.folder_edit.setText(str(out))

    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert dialog.is_running() or dialog.last_result is not None
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=5000)

    assert dialog.last_result is not None and dialog.last_result.exported == 2
    assert sorted(p.name for p in (out / "Mask").iterdir()) == ["1.png", "2.png"]
    for seed, stem in enumerate(("1", "2"), 1):
        with Image.open(out / "Mask" / f"{stem}.png") as png:
            assert np.array_equal(np.asarray(png) == 255, _mask(seed))
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 2
    text = dialog.status_label.text()
    assert "Exported 2 mask(s)" in text and "2 PNG mask(s)" in text and "coco.json" in text
    assert f'href="{out.resolve().as_uri()}"' in text  # the folder as a clickable link
    assert dialog.progress_bar.value() == dialog.progress_bar.maximum() == 2
    assert dialog.export_button.isEnabled() and not dialog.cancel_button.isVisible() and dialog.isVisible()

    # PNG only, into the same folder: its own files are replaced without "overwrite"
    dialog.coco_check.setChecked(False)
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=5000)
    assert dialog.last_result.coco_path is None and "Exported 2 mask(s)" in dialog.status_label.text()
    dialog.png_check.setChecked(False)
    assert not dialog.export_button.isEnabled()  # no format chosen
    dialog.grab().save(str(tmp_path / "export_dialog.png"))


def test_refusal_shows_one_line_error_writes_nothing_and_keeps_the_dialog_open(qtbot, store, tmp_path):
    out = tmp_path / "out"
    (out / "Mask").mkdir(parents=True)
    (out / "Mask" / "2.png").write_bytes(b"someone else's file")
    dialog = _dialog(qtbot, store, out)

    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=5000)

    text = dialog.status_label.text()
    assert "Export failed: refusing to overwrite 1 file(s)" in text and OVERWRITE_TEXT in text
    assert "--overwrite" not in text and "<br>" not in text
    assert dialog.isVisible() and dialog.last_result is None and not dialog.progress_bar.isVisible()
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["Mask", "Mask/2.png"]
    assert (out / "Mask" / "2.png").read_bytes() == b"someone else's file"

    dialog.overwrite_check.setChecked(True)
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=5000)
    assert dialog.last_result is not None and dialog.last_result.exported == 2
    assert (out / "Mask" / "2.png").read_bytes() != b"someone else's file"


def test_no_accepted_image_disables_export(qtbot, tmp_path):
    data = tmp_path / "DATA"
    save(data / "Image" / "1.jpg", np.full((30, 40, 3), 80, np.uint8), "JPEG")
    with ProjectStore(data) as store:
        dialog = ExportDialog(store)
        qtbot.addWidget(dialog)
        assert not dialog.export_button.isEnabled() and "No image is accepted" in dialog.count_label.text()


def _hold_writes(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Make export's file writes wait for `release`; `started` is set when the first write begins."""
    started, release = threading.Event(), threading.Event()
    original = export_module._write

    def held_write(*args, **kwargs):
        started.set()
        assert release.wait(5)
        return original(*args, **kwargs)

    monkeypatch.setattr(export_module, "_write", held_write)
    return started, release


def test_cancel_stops_the_export_and_keeps_the_ui_free(qtbot, store, tmp_path, monkeypatch):
    started, release = _hold_writes(monkeypatch)
    out = tmp_path / "out"
    dialog = _dialog(qtbot, store, out)
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert started.wait(5)  # the first write is held in the worker; the UI thread is free
    assert dialog.is_running() and dialog.cancel_button.isVisible() and not dialog.export_button.isEnabled()
    assert not dialog.folder_edit.isEnabled()
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert "Cancelling" in dialog.status_label.text()
    release.set()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=5000)

    assert "Export cancelled after 1 of 2 mask(s)" in dialog.status_label.text()
    assert [p.name for p in (out / "Mask").iterdir()] == ["1.png"] and not (out / "coco.json").exists()
    assert dialog.export_button.isEnabled() and dialog.isVisible()


def test_closing_while_exporting_cancels_then_closes(qtbot, store, tmp_path, monkeypatch):
    started, release = _hold_writes(monkeypatch)
    dialog = _dialog(qtbot, store, tmp_path / "out")
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert started.wait(5)
    dialog.reject()  # Escape / Close
    assert dialog.isVisible()  # stays until the export has stopped
    release.set()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=5000)
    assert not dialog.is_running() and dialog.result() == ExportDialog.DialogCode.Rejected


def test_export_project_cancel_hook(store, tmp_path):
    out = tmp_path / "out"
    cancel = threading.Event()

    def progress(done, total):
        if done == 1:
            cancel.set()

    with pytest.raises(ExportCancelled, match="after 1 of 2"):
        export_project(store, out, progress=progress, cancel=cancel)
    assert [p.name for p in (out / "Mask").iterdir()] == ["1.png"] and not (out / "coco.json").exists()
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert list(manifest["files"]) == ["Mask/1.png"] and manifest["files"]["Mask/1.png"]  # complete, hashed

    result = export_project(store, out, cancel=threading.Event())  # finishes without --overwrite: its own files
    assert result.exported == 2 and result.coco_path is not None
