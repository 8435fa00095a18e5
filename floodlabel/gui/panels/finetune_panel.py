"""The fine-tune panel (dock "Fine-tune"): train SAM's mask decoder on the project's accepted masks or the dataset's
ground truth, with live loss and validation-IoU curves, progress with ETA, and cancel.

The window calls:
- `set_context(dataset, store, base_model)` when the folder or the model changes (base_model: the --model value,
  a registry name or a .pth path; "classic" cannot be fine-tuned and the panel says so);
- `shutdown()` from its closeEvent: cancels a run and joins the worker thread.
It listens to `checkpoint_ready(path, best_val_iou)`, emitted when a run saved a checkpoint (finished, and also when
cancelled or diverged after at least one epoch: the file then holds the best epoch so far).

Training runs in a child process at a low OS priority with its own torch threads (`core.training.child_trainer`,
the default; a daemon thread of `FinetuneJob` builds the items and relays the child's events), or with
FLOODLABEL_TRAINING=thread (or under 8 GiB of RAM) `core.training.finetune.finetune` in that thread, the session opened
there from `base_model`; either way the window's own session is never shared. A child that dies ends the run with
a message saying how and where the best epoch so far is; the next Start starts a new child. Progress
events cross to the UI thread through the signals of a parentless relay QObject (gui/background.py explains why);
the worker never touches a widget. Plots are redrawn at most every PLOT_INTERVAL_MS, so a fast run cannot flood
the event loop with redraws.

Torch threads: the child sets its own (the cores less one); in a thread the job leaves the process's count alone.

Accepted-masks items use the mask file path (read when its image's turn comes, not all masks in RAM at once) and
the prompt recorded at accept (`accepted_state["prompt"]`, when it has points or a box). Records whose image file
changed or is missing since accept, or whose mask file is missing, are left out (counted in the message).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from floodlabel.gui.panels.finetune_curves import FinetuneCurves
from floodlabel.gui.workers.background import BackgroundJob

CLASSIC = "classic"
CLASSIC_MESSAGE = ("The classic model cannot be fine-tuned: choose a SAM or SAM 2.1 model (sam2.1_hiera_tiny, vit_b, "
                   "…) in the model selector.")
PLOT_INTERVAL_MS = 200
ACCEPTED, DATASET_GT = "accepted", "gt"


class FinetunePanel(QWidget):
    """Fine-tune SAM's decoder from the window. See the module docstring for the API the window uses."""

    checkpoint_ready = Signal(str, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dataset = None
        self.store = None
        self.base_model: str | None = None
        self.config = None
        self.job: FinetuneJob | None = None
        self.result = None  # the last run's FinetuneResult
        self._out_edited = False
        self._busy = False

        self.base_label = QLabel()
        self.base_label.setWordWrap(True)
        self.base_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.accepted_radio = QRadioButton("Accepted masks (with your clicks)")
        self.gt_radio = QRadioButton("Dataset ground-truth masks")
        self.data_group = QButtonGroup(self)
        self.data_group.addButton(self.accepted_radio)
        self.data_group.addButton(self.gt_radio)
        self.accepted_radio.setChecked(True)
        self.accepted_radio.toggled.connect(self._update_controls)
        self.accepted_radio.clicked.connect(self._on_source_clicked)
        self.gt_radio.clicked.connect(self._on_source_clicked)
        self._source_picked = False  # the user chose a source: set_context no longer picks one

        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 1000)
        self.epochs_spin.setValue(10)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setSingleStep(1e-5)
        self.lr_spin.setValue(1e-4)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 64)
        self.batch_spin.setValue(4)
        self.val_spin = QDoubleSpinBox()
        self.val_spin.setDecimals(2)
        self.val_spin.setRange(0.0, 0.9)
        self.val_spin.setSingleStep(0.05)
        self.val_spin.setValue(0.2)
        self.val_spin.setToolTip("Share of the images held out for validation (0: validate on the training images)")
        self.out_edit = QLineEdit()
        self.out_edit.textEdited.connect(self._on_out_edited)
        self.browse_button = QPushButton("…")
        self.browse_button.setToolTip("Choose where to save the fine-tuned checkpoint")
        self.browse_button.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.setContentsMargins(0, 0, 0, 0)
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.browse_button)

        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.phase_label = QLabel("")
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.curves = FinetuneCurves()

        form = QFormLayout()
        form.addRow("Base model", self.base_label)
        form.addRow(self.accepted_radio)
        form.addRow(self.gt_radio)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Batch", self.batch_spin)
        form.addRow("Validation", self.val_spin)
        form.addRow("Save to", out_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.phase_label)
        layout.addWidget(self.message_label)
        layout.addWidget(self.curves.loss_plot, 1)
        layout.addWidget(self.curves.iou_plot, 1)

        self._plot_timer = QTimer(self)
        self._plot_timer.setInterval(PLOT_INTERVAL_MS)
        self._plot_timer.timeout.connect(self.curves.redraw)
        self.set_context(None, None, None)

    # ------------------------------------------------------------------------------------------------- API

    def set_context(self, dataset, store, base_model: str | None, config=None) -> None:
        """The window's dataset (FloodDataset or None), project store (or None) and model (name / path / "classic").

        config: the ComputeConfig to open the training session with (None: the default). A running job keeps
        its own items and session; the new context applies to the next Start.
        """
        self.dataset, self.store, self.config = dataset, store, config
        self.base_model = None if base_model is None else str(base_model)
        if not self._out_edited:
            self.out_edit.setText(str(self.default_out_path()))
        if not self._source_picked and not self.is_running():
            has_gt = dataset is not None and len(dataset.complete_pairs) >= 2
            (self.gt_radio if has_gt and self._accepted_count() < 2 else self.accepted_radio).setChecked(True)
        if not self.is_running():
            if self.base_model == CLASSIC:
                self._show_message(CLASSIC_MESSAGE, error=True)
            elif self.message_label.text() == CLASSIC_MESSAGE:
                self._show_message("")
        self._update_controls()

    def refresh(self) -> None:
        """Recount the accepted masks (call after an accept; also done when the panel is shown)."""
        self._update_controls()

    def start(self) -> bool:
        """Start a run with the panel's settings; False (and a message) when it cannot start."""
        if self.is_running():
            return False
        problem = self.start_problem()
        if problem:
            self._show_message(problem, error=True)
            return False
        from floodlabel.core.training.finetune_settings import FinetuneSettings

        try:
            settings = FinetuneSettings(epochs=self.epochs_spin.value(), lr=self.lr_spin.value(),
                                        batch_size=self.batch_spin.value(), val_fraction=self.val_spin.value())
            settings.validate()
        except ValueError as exc:
            self._show_message(str(exc), error=True)
            return False
        if not self._out_edited:
            self.out_edit.setText(str(self.default_out_path()))  # a fresh timestamp: never overwrite the last run
        out = Path(self.out_edit.text().strip()).expanduser()
        mode = ACCEPTED if self.accepted_radio.isChecked() else DATASET_GT
        self.curves.clear()
        self.result = None
        self._show_message("")
        self.phase_label.setText("Opening the model…")
        self.progress_bar.setRange(0, 0)  # busy until the first event
        self.job = FinetuneJob(mode, self.dataset, self.store, self.base_model, self.config, out, settings)
        self.job.progress.connect(self._on_progress)
        self.job.finished.connect(self._on_finished)
        self.job.failed.connect(self._on_failed)
        self.job.start()
        self._busy = True
        self._plot_timer.start()
        self._update_controls()
        return True

    def cancel(self) -> None:
        """Ask the run to stop after the current step (or image being embedded); the best epoch so far is kept."""
        if self.is_running() and self.job is not None:
            self.job.cancel()
            self.phase_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def shutdown(self, timeout: float | None = 60.0) -> bool:
        """Cancel a run and wait for its thread to end (call from the window's closeEvent). True when no thread is
        left running. Torch work still running in a daemon thread at interpreter exit aborts the process."""
        self._plot_timer.stop()
        if self.job is None:
            return True
        self.job.cancel()
        return self.job.join(timeout)

    def is_running(self) -> bool:
        """A run was started and has not reported its end yet (its thread may still be returning)."""
        return self._busy

    def start_problem(self) -> str:
        """Why Start cannot run now ("" when it can)."""
        if not self.base_model:
            return "No model is loaded."
        if self.base_model == CLASSIC:
            return CLASSIC_MESSAGE
        if self.accepted_radio.isChecked():
            if self.store is None:
                return "No project is open: accept some masks first, or train on the dataset's masks."
            if self._accepted_count() < 2:
                return "Fine-tuning needs at least 2 accepted masks; accept more, or train on the dataset's masks."
        else:
            if self.dataset is None or not self.dataset.complete_pairs:
                return "This dataset has no ground-truth masks: train on the accepted masks."
            if len(self.dataset.complete_pairs) < 2:
                return "Fine-tuning needs at least 2 image/mask pairs."
        return ""

    def default_out_path(self) -> Path:
        """<project>/checkpoints/<base>-ft-<timestamp>.pth, or under the user data folder without a project."""
        if self.store is not None:
            folder = Path(self.store.project_dir) / "checkpoints"
        else:
            from floodlabel.core.common import paths

            folder = paths.data_dir() / "checkpoints"
        return folder / f"{_base_stem(self.base_model)}-ft-{time.strftime('%Y%m%d-%H%M%S')}.pth"

    # ------------------------------------------------------------------------------------------------- slots

    def _on_progress(self, event) -> None:
        phase = event.phase
        if phase == "embedding":
            self.progress_bar.setRange(0, max(event.total, 1))
            self.progress_bar.setValue(event.done)
            self.phase_label.setText(f"Embedding images {event.done}/{event.total}")
        elif phase == "training":
            curves = self.curves
            if curves.base_iou is None and not curves.val_ious and event.val_iou is not None:
                curves.set_base_iou(event.val_iou)  # before epoch 1 the event carries the base's val IoU
            curves.add_step(event.step, event.loss)
            self.progress_bar.setRange(0, max(event.total, 1))
            self.progress_bar.setValue(event.done)
            self.phase_label.setText(f"Epoch {event.epoch}/{event.epochs} · step {event.done}/{event.total} · "
                                     f"loss {event.loss:.4f} · ETA {_duration(event.eta_s)}")
        elif phase == "epoch":
            m = event.epoch_metrics
            self.curves.add_epoch(event.step, m.epoch, m.train_loss, m.val_iou)
            self.progress_bar.setValue(event.done)
            self.phase_label.setText(f"Epoch {m.epoch}/{event.epochs} · val IoU {m.val_iou:.3f} · "
                                     f"ETA {_duration(event.eta_s)}")
            self.curves.redraw()

    def _on_finished(self, result) -> None:
        self._busy = False
        self.result = result
        self._plot_timer.stop()
        if math.isfinite(result.base_val_iou):
            self.curves.set_base_iou(result.base_val_iou)
        self.curves.redraw()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1 if result.stopped is None else 0)
        skipped = f" ({len(result.skipped)} images skipped)" if result.skipped else ""
        if result.stopped is None:
            self.phase_label.setText("Finished")
            self._show_message(f"Best val IoU {result.best_val_iou:.3f} (epoch {result.best_epoch}; base "
                               f"{result.base_val_iou:.3f}){skipped}. Saved to {result.checkpoint}")
        elif result.stopped == "cancelled":
            self.phase_label.setText("Cancelled")
            self._show_message(result.message)
        else:
            self.phase_label.setText("Stopped")
            self._show_message(result.message, error=True)
        self._update_controls()
        if result.checkpoint is not None and result.best_val_iou is not None and Path(result.checkpoint).is_file():
            self.checkpoint_ready.emit(str(result.checkpoint), float(result.best_val_iou))

    def _on_failed(self, message: str) -> None:
        self._busy = False
        self._plot_timer.stop()
        self.curves.redraw()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        cancelled = self.job is not None and self.job.cancel_requested
        self.phase_label.setText("Cancelled" if cancelled else "Failed")
        self._show_message("Cancelled before training started." if cancelled else message, error=not cancelled)
        self._update_controls()

    # ----------------------------------------------------------------------------------------------- helpers

    def _update_controls(self) -> None:
        running = self.is_running()
        base = self.base_model
        if not base:
            self.base_label.setText("no model")
        elif base == CLASSIC:
            self.base_label.setText("classic (cannot be fine-tuned)")
        else:
            self.base_label.setText(_base_display(base))
            self.base_label.setToolTip(base)
        n_acc = self._accepted_count() if self.store is not None else 0
        n_gt = len(self.dataset.complete_pairs) if self.dataset is not None else 0
        self.accepted_radio.setText(f"Accepted masks with your clicks ({n_acc})")
        self.gt_radio.setText(f"Dataset ground-truth masks ({n_gt})")
        self.gt_radio.setEnabled(not running and n_gt > 0)
        self.accepted_radio.setEnabled(not running)
        for w in (self.epochs_spin, self.lr_spin, self.batch_spin, self.val_spin, self.out_edit, self.browse_button):
            w.setEnabled(not running)
        problem = self.start_problem()
        self.start_button.setEnabled(not running and not problem)
        self.start_button.setToolTip(problem)
        self.cancel_button.setEnabled(running and not self.job.cancel_requested)

    def _accepted_count(self) -> int:
        from floodlabel.core.store.project_store import Status

        try:
            return sum(1 for s in self.store.statuses().values() if s is Status.ACCEPTED)
        except Exception:  # noqa: BLE001 - a closed or broken store counts as none
            return 0

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message_label.setText(text)
        self.message_label.setStyleSheet("color: #e06060;" if error and text else "")

    def _on_source_clicked(self) -> None:
        self._source_picked = True

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        self._update_controls()

    def _on_out_edited(self, _text: str) -> None:
        self._out_edited = True

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the fine-tuned checkpoint", self.out_edit.text(),
                                              "PyTorch checkpoints (*.pth)")
        if path:
            self.out_edit.setText(path)
            self._out_edited = True


class FinetuneJob:
    """One fine-tuning run in a daemon thread: builds the items, opens the session, runs finetune().

    Signals (on `relay`, also attributes): progress(TrainingProgress), finished(FinetuneResult),
    failed(one-line message). Exactly one of finished / failed is emitted.
    """

    def __init__(self, mode: str, dataset, store, base_model: str, config, out: Path, settings) -> None:
        self.mode, self.dataset, self.store = mode, dataset, store
        self.base_model, self.config, self.out, self.settings = base_model, config, out, settings
        self.left_out: list[tuple[str, str]] = []
        self.child = None  # the run's ChildTraining (its pid once started), None when it trains in this process
        self._job = BackgroundJob(self._train, "finetune")
        self.relay = self._job.relay
        self.progress, self.finished, self.failed = self._job.progress, self._job.finished, self._job.failed
        self._cancel = self._job.cancel_event
        self.start, self.cancel, self.is_running, self.join = (self._job.start, self._job.cancel,
                                                               self._job.is_running, self._job.join)

    @property
    def cancel_requested(self) -> bool:
        return self._job.cancel_requested

    def _train(self, progress, cancel) -> Any:
        from floodlabel.core.models.session import SegmentationSession
        from floodlabel.core.training.child_trainer import ChildTraining, use_child_process
        from floodlabel.core.training.embeddings import TrainingError
        from floodlabel.core.training.finetune import finetune

        items = self.items()
        if len(items) < 2:
            raise TrainingError(f"fine-tuning needs at least 2 usable masks, found {len(items)}"
                             + (f" ({len(self.left_out)} left out: {self.left_out[0][1]})" if self.left_out else ""))
        if use_child_process():  # the default: a low-priority child process (core.training.child_trainer)
            self.child = ChildTraining(items, self.base_model, self.config, self.out, self.settings)
            result = self.child.run(progress, cancel)
            result.skipped = list(self.left_out) + list(result.skipped)
            return result
        session = SegmentationSession.open(self.base_model, config=self.config)
        if not session.segmenter.capabilities.finetune_decoder:
            raise TrainingError(f"{self.base_model} is not a SAM model: only SAM's decoder can be fine-tuned")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        result = finetune(items, session, self.out, self.settings, progress=progress, cancel=cancel)
        result.skipped = list(self.left_out) + list(result.skipped)
        return result

    def items(self) -> list:
        """The training items of the chosen source (read in this thread: headers and the database only)."""
        from floodlabel.core.training.examples import (
            items_from_dataset,
            items_from_store,
        )

        if self.mode == DATASET_GT:
            items, skipped = items_from_dataset(self.dataset)
            self.left_out = [(s.stem, s.reason) for s in skipped if "has no mask" not in s.reason
                             and "has no image" not in s.reason]
            return items
        items, skipped = items_from_store(self.store)  # the user's accepted masks and the prompts they clicked
        self.left_out.extend((s.stem, s.reason) for s in skipped)
        return items


def _base_stem(base: str | None) -> str:
    if not base:
        return "model"
    p = Path(base)
    stem = p.stem if p.suffix.lower() in (".pth", ".pt") else p.name or base
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in stem) or "model"


def _base_display(base: str) -> str:
    p = Path(base)
    return p.name if p.suffix.lower() in (".pth", ".pt") else base


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "…"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
