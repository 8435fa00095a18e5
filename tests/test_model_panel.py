"""The Models panel with both families (offscreen Qt): the recommended download with and without a GPU, the embedding
time measured here, picking any registered model to download (a real SAM 2.1 download against 127.0.0.1), the
backend preference across families, and the window's banner and model selector. No internet."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from tiny_sam2 import tiny_sam2_checkpoint

from floodlabel.core.models import registry as reg
from floodlabel.core.models.download import recorded_sha256
from floodlabel.core.models.model_speed import record_embed_seconds, speed_key
from floodlabel.core.segment.compute_config import default_compute_config
from floodlabel.gui.panels import model_status
from floodlabel.gui.panels.model_panel import HERE, NAME, ModelPanel
from floodlabel.gui.panels.model_status import MachineFacts, choose_backend
from tests.synthetic_scenes import make_flood_scene
from tests.test_model_download import FileServer, _Handler, no_internet, no_retry_wait  # noqa: F401 (fixtures)

TINY2 = "sam2.1_hiera_tiny"


@pytest.fixture
def panel_for(qtbot):
    """make(): a shown ModelPanel whose background facts (GPU, speeds) have arrived."""
    def make(requested: str | None = None) -> ModelPanel:
        panel = ModelPanel(requested)
        qtbot.addWidget(panel)
        panel.show()
        qtbot.waitExposed(panel)
        qtbot.waitUntil(lambda: panel.facts_call is not None and not panel.facts_call.is_running(),
                        timeout=30_000)
        qtbot.wait(50)  # the queued succeeded signal
        return panel

    return make


@pytest.fixture
def cpu(monkeypatch):
    monkeypatch.setenv("FLOODLABEL_DEVICE", "cpu")


def _row(panel: ModelPanel, name: str) -> int:
    return next(i for i in range(panel.table.rowCount()) if panel.table.item(i, NAME).data(Qt.ItemDataRole.UserRole)
                == name)


def _fake(name: str, size: int = 1234) -> None:
    reg.local_path(name).write_bytes(b"x" * size)


# ------------------------------------------------------------------------------------------------ recommendation


def test_without_a_gpu_sam2_tiny_is_recommended_and_why(panel_for, cpu):
    panel = panel_for()
    assert panel.facts.gpu is False and panel.target == TINY2
    text = panel.recommend_label.text()
    assert f"Recommended here: <b>{TINY2}</b>" in text and "no GPU here" in text and "fifth of vit_b" in text
    assert panel.download_button.text() == "Download sam2.1_hiera_tiny (156 MB)"
    assert panel.table.item(_row(panel, TINY2), NAME).font().bold()
    assert not panel.table.item(_row(panel, "vit_b"), NAME).font().bold()
    assert panel.table.item(_row(panel, TINY2) - 1, NAME).text() == "SAM 2.1"  # the family's row above
    assert panel.table.item(_row(panel, "vit_b") - 1, NAME).text() == "SAM"


def test_with_a_gpu_vit_b_stays_recommended(panel_for, monkeypatch):
    monkeypatch.setattr(model_status, "first_guess_gpu", lambda: True)
    monkeypatch.setattr(model_status, "machine_facts", lambda: MachineFacts(True, reg.recommended_download(True)))
    panel = panel_for()
    assert panel.target == "vit_b" and panel.download_button.text() == "Download vit_b (375 MB)"
    assert "Recommended here: <b>vit_b</b>" in panel.recommend_label.text()
    assert "floodlabel models download vit_b" in panel.howto_label.text()


def test_the_measured_answer_replaces_the_first_guess(qtbot, monkeypatch):
    monkeypatch.setattr(model_status, "first_guess_gpu", lambda: True)  # a driver, but torch cannot use it
    monkeypatch.setattr(model_status, "machine_facts", lambda: MachineFacts(False, reg.recommended_download(False)))
    panel = ModelPanel()
    qtbot.addWidget(panel)
    assert panel.target == "vit_b" and panel.facts_call is None  # nothing asked before the panel is shown
    with qtbot.waitSignal(panel.recommendation_changed, timeout=30_000) as changed:
        panel.show()
    assert changed.args[0] == TINY2 and "no GPU" in changed.args[1]
    assert panel.target == TINY2 and "sam2.1_hiera_tiny (156 MB)" in panel.download_button.text()


def test_a_picked_row_is_not_overridden_by_the_measured_answer(qtbot, monkeypatch):
    monkeypatch.setattr(model_status, "first_guess_gpu", lambda: True)
    monkeypatch.setattr(model_status, "machine_facts", lambda: MachineFacts(False, reg.recommended_download(False)))
    panel = ModelPanel()
    qtbot.addWidget(panel)
    panel.select_model("vit_h")
    with qtbot.waitSignal(panel.recommendation_changed, timeout=30_000):
        panel.show()
    assert panel.target == "vit_h"


# ------------------------------------------------------------------------------------------------ speed here


def test_the_embedding_time_measured_here_is_shown(panel_for, cpu):
    _fake("vit_b")
    key = speed_key(reg.local_path("vit_b"), default_compute_config().describe())
    for seconds in (3.6, 3.4, 3.3):
        record_embed_seconds(key, seconds)
    panel = panel_for()
    assert panel.facts.seconds == {"vit_b": 3.4}
    assert panel.table.item(_row(panel, "vit_b"), HERE).text() == "about 3.4 s / image"
    assert panel.table.item(_row(panel, "vit_b"), HERE).toolTip() == "about 3.4 s per image here"
    assert panel.table.item(_row(panel, TINY2), HERE).text() == "not downloaded"
    assert "not run on this machine yet" in panel.detail_label.text()
    panel.select_model("vit_b")
    assert "about 3.4 s per image here" in panel.detail_label.text()


def test_speeds_are_read_again_when_the_panel_is_shown(panel_for, cpu, qtbot):
    _fake(TINY2)
    panel = panel_for()
    assert panel.table.item(_row(panel, TINY2), HERE).text() == "downloaded"
    record_embed_seconds(speed_key(reg.local_path(TINY2), default_compute_config().describe()), 0.78)
    panel.hide()
    panel.show()
    qtbot.waitUntil(lambda: panel.table.item(_row(panel, TINY2), HERE).text() == "about 0.8 s / image",
                    timeout=30_000)


# ------------------------------------------------------------------------------------------------ any model


def test_clicking_a_row_makes_it_the_download_target(panel_for, cpu, qtbot):
    panel = panel_for()
    head = panel.table.visualItemRect(panel.table.item(_row(panel, "vit_b") - 1, NAME))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=head.center())  # the family row
    assert panel.target == TINY2
    rect = panel.table.visualItemRect(panel.table.item(_row(panel, "vit_l"), NAME))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert panel.target == "vit_l"
    assert panel.download_button.text() == "Download vit_l (1.25 GB)" and panel.download_button.isEnabled()
    assert "floodlabel models download vit_l" in panel.howto_label.text()
    assert "SAM ViT-L" in panel.detail_label.text()


def test_a_sam2_download_through_the_panel_against_a_local_server(panel_for, cpu, qtbot, monkeypatch, tmp_path):
    """The real download code (load check, SHA-256 record) for a SAM 2.1 file served by 127.0.0.1."""
    body = tiny_sam2_checkpoint(tmp_path / "t.pt", seed=3).read_bytes()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = FileServer(files={f"/sam/{reg.MODELS[TINY2].filename}": body})
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv(reg.BASE_URL_ENV, f"http://127.0.0.1:{httpd.server_address[1]}/sam/")
    seen = []
    try:
        panel = panel_for()
        panel.progress_bar.valueChanged.connect(seen.append)
        with qtbot.waitSignal(panel.backend_changed, timeout=120_000) as changed:
            qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)
            assert panel.cancel_button.isEnabled() and panel.download_button.text() == f"Downloading {TINY2} …"
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert changed.args[0].model == TINY2 and TINY2 in panel.backend_label.text()
    assert "Downloaded and verified" in panel.status_label.text()
    assert panel.table.item(_row(panel, TINY2), HERE).text() == "downloaded"
    assert panel.download_button.text() == f"{TINY2} downloaded" and not panel.download_button.isEnabled()
    assert seen and seen[-1] == 1000  # progress up to the whole file
    assert recorded_sha256(TINY2) is not None


def test_a_sam2_download_can_be_cancelled(panel_for, cpu, qtbot, monkeypatch):
    gate = threading.Event()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = FileServer(files={f"/sam/{reg.MODELS[TINY2].filename}": b"y" * 3_000_000}, gate=gate)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv(reg.BASE_URL_ENV, f"http://127.0.0.1:{httpd.server_address[1]}/sam/")
    try:
        panel = panel_for()
        panel.start_download()
        qtbot.waitUntil(lambda: bool(httpd.state.requests), timeout=30_000)
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        gate.set()
        qtbot.waitUntil(lambda: panel.task is None, timeout=30_000)
    finally:
        gate.set()
        httpd.shutdown()
        httpd.server_close()
    assert "cancelled" in panel.status_label.text()
    assert not reg.local_path(TINY2).exists() and panel.download_button.isEnabled()


# ------------------------------------------------------------------------------------------------ backend


def test_backend_preference_spans_both_families():
    assert set(model_status.PREFERRED_SAM) == set(reg.MODELS)
    assert choose_backend(None).model == "classic"
    _fake("vit_b")
    assert choose_backend(None).label.startswith("SAM vit_b (")
    _fake(TINY2)
    choice = choose_backend(None)
    assert choice.model == TINY2 and choice.label.startswith(f"{TINY2} (")
    assert choose_backend("vit_b").model == "vit_b"


# ------------------------------------------------------------------------------------------------ window


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    image, _ = make_flood_scene(96, 128, seed=1, kind="lake")
    Image.fromarray(image).save(root / "a.png")
    return root


def test_the_banner_names_the_recommended_model(window, folder, cpu, qtbot):
    w = window(folder, model="classic")
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=20_000)
    assert w.banner.isVisible() and f"floodlabel models download {TINY2}" in w.banner.text()
    assert "no GPU here" in w.banner.text()
    assert w.model_panel.facts_call is None  # the Models tab is behind Dataset: torch not imported for it
    w.show_models_dock()
    qtbot.waitUntil(lambda: w.model_panel.facts_call is not None and not w.model_panel.facts_call.is_running(),
                    timeout=30_000)
    w.models.on_recommendation("vit_b", "SAM ViT-B: the smallest SAM v1, fast on a GPU")
    assert "floodlabel models download vit_b" in w.banner.text() and "375 MB" in w.banner.text()


def test_a_downloaded_sam2_model_is_offered_and_used(window, folder, cpu, qtbot):
    tiny_sam2_checkpoint(reg.local_path(TINY2), seed=2)
    w = window(folder)
    combo = w.model_combo
    i = combo.findData(TINY2)
    assert i >= 0 and combo.itemText(i) == TINY2 and combo.model().item(i).isEnabled()
    j = combo.findData("sam2.1_hiera_small")
    assert combo.itemText(j) == "sam2.1_hiera_small (not downloaded)" and not combo.model().item(j).isEnabled()
    assert w.models.model == TINY2 and combo.currentData() == TINY2  # preferred over classic
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=60_000)
    assert "sam2" in w.controller.session.model_id and not w.banner.isVisible()
    assert np.any([combo.itemData(k) == "classic" for k in range(combo.count())])


def test_without_the_sam2_package_vit_b_is_recommended_instead(panel_for, cpu, monkeypatch):
    real_find_spec = model_status.importlib.util.find_spec
    monkeypatch.setattr(model_status.importlib.util, "find_spec",
                        lambda name, *a: None if name == "sam2" else real_find_spec(name, *a))
    assert model_status.recommended(True)[0] == "vit_b"
    name, reason = model_status.recommended(False)
    assert name == "vit_b" and "sam2 package is not installed" in reason
    panel = panel_for()
    assert panel.target == "vit_b" and "sam2 package is not installed" in panel.recommend_label.text()
