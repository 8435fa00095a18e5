"""Fine-tuning in a low-priority child process (core.training.child_trainer, issue 16.1): the Fine-tune panel's
default path. A run trains and saves in the child (niced, its own torch threads), an error comes back as one line,
a child killed with SIGKILL mid-training is reported in the panel without taking it down, and the next Start runs a
new child that cancel reaches."""

from __future__ import annotations

import os
import signal

import pytest
from image_factories import mask_png, save
from synthetic_scenes import make_flood_scene
from tiny_sam import tiny_sam_checkpoint

from floodlabel.core.common import background_work
from floodlabel.core.data.datasets import open_dataset
from floodlabel.core.sam.decoder_checkpoint import read_decoder_checkpoint
from floodlabel.core.training.child_trainer import TRAINING_NICE, ChildTraining, training_threads
from floodlabel.core.training.embeddings import TrainingError
from floodlabel.core.training.examples import items_from_dataset
from floodlabel.core.training.finetune_settings import FinetuneSettings
from floodlabel.gui.panels.finetune_panel import FinetunePanel

pytestmark = pytest.mark.slow  # each run starts a Python with torch (about 3-6 s)

H, W = 96, 128


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("sam") / "tiny.pth", seed=3)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "floods"
    for i in range(4):
        image, mask = make_flood_scene(H, W, seed=i, kind=("lake", "river")[i % 2])
        save(root / "Image" / f"{i}.png", image, "PNG")
        mask_png(root / "Mask" / f"{i}.png", mask * 255)
    return root


@pytest.fixture
def child_mode(monkeypatch):
    monkeypatch.setenv("FLOODLABEL_TRAINING", "process")  # conftest's default is the thread


def test_a_run_in_the_child_trains_niced_with_its_own_threads_and_saves(folder, checkpoint, tmp_path):
    items, _ = items_from_dataset(open_dataset(folder))
    events = []
    run = ChildTraining(items, str(checkpoint), None, tmp_path / "ft.pth",
                        FinetuneSettings(epochs=2, batch_size=2, lr=1e-3, val_fraction=0.5), threads=1)
    busy = []
    result = run.run(progress=lambda e: (events.append(e), busy.append(background_work.busy())))
    assert all(busy) and not background_work.busy()  # the window decodes with 1 torch thread while it runs
    assert run.pid is not None and run.pid != os.getpid()
    assert run.started == {"pid": run.pid, "nice": os.getpriority(os.PRIO_PROCESS, 0) + TRAINING_NICE,
                           "threads": 1}
    assert result.stopped is None and len(result.metrics) == 2 and result.checkpoint == tmp_path / "ft.pth"
    assert len(read_decoder_checkpoint(tmp_path / "ft.pth").metrics) == 2
    phases = [e.phase for e in events]
    assert phases.count("training") == 2 and phases.count("epoch") == 2 and "embedding" in phases
    assert training_threads(2) == 1 and training_threads(1) == 1 and training_threads(16) == 15


def test_a_child_error_is_one_line(folder, tmp_path):
    items, _ = items_from_dataset(open_dataset(folder))
    with pytest.raises(TrainingError, match="cannot|No such|not found|does not exist") as err:
        ChildTraining(items, str(tmp_path / "missing.pth"), None, tmp_path / "ft.pth", FinetuneSettings()).run()
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)


def test_the_panel_survives_a_killed_child_and_the_next_start_runs_a_new_one(qtbot, child_mode, folder,
                                                                             checkpoint, tmp_path):
    p = FinetunePanel()
    qtbot.addWidget(p)
    p.show()
    p.set_context(open_dataset(folder), None, str(checkpoint))
    p.epochs_spin.setValue(500)  # runs until killed, then until cancelled
    p.batch_spin.setValue(2)
    p.out_edit.setText(str(tmp_path / "ft.pth"))
    p._out_edited = True
    try:
        assert p.start()
        qtbot.waitUntil(lambda: len(p.curves.steps) >= 1, timeout=60000)  # training in the child
        first = p.job.child.pid
        assert first is not None and first != os.getpid()
        os.kill(first, signal.SIGKILL)
        qtbot.waitUntil(lambda: not p.is_running(), timeout=30000)
        text = p.message_label.text()
        assert p.phase_label.text() == "Failed" and "killed by signal 9" in text and "Start again" in text
        assert p.start_button.isEnabled()

        assert p.start()  # a new child; cancel reaches it and it reports the run so far
        qtbot.waitUntil(lambda: len(p.curves.steps) >= 1, timeout=60000)
        assert p.job.child.pid not in (None, first)
        p.cancel()
        qtbot.waitUntil(lambda: p.result is not None, timeout=60000)
        assert p.result.stopped == "cancelled" and len(p.result.metrics) < 500
        assert p.phase_label.text() == "Cancelled" and p.start_button.isEnabled()
    finally:
        assert p.shutdown(30)
