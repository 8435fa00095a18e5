"""The annotation window: the image list, the canvas (prediction and ground truth side by side), SAM's candidates,
live metrics, tools, and the model and dataset status in docks.

All model work goes through `SegmentationController` (workers, latest request wins); this file lays out widgets,
turns actions into controller calls and renders what the controller emits.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDockWidget, QFileDialog, QFrame, QScrollArea, QHBoxLayout, QLabel, QMainWindow,
                               QMenu, QPushButton, QSlider, QToolBar, QVBoxLayout, QWidget)

from floodlabel.core.annotation import Stroke
from floodlabel.core.datasets import open_dataset
from floodlabel.core.errors import FloodLabelError
from floodlabel.core.model_registry import CLASSIC, MODELS, is_downloaded
from floodlabel.core.paths import data_dir
from floodlabel.gui import recent
from floodlabel.gui.app import sample_dataset_dir
from floodlabel.gui.background import BackgroundCall
from floodlabel.gui.candidate_strip import CandidateStrip
from floodlabel.gui.compare_controller import CompareController
from floodlabel.gui.canvas import MaskCanvas
from floodlabel.gui.dataset_view import DatasetView
from floodlabel.gui.finetune_panel import FinetunePanel
from floodlabel.gui.geometry_probe import install_geometry_probe
from floodlabel.gui.help_dialog import ACTION_KEYS, show_help
from floodlabel.gui.image_list import ImageListDock
from floodlabel.gui.metrics_panel import MetricsPanel
from floodlabel.gui.model_panel import ModelPanel
from floodlabel.gui.model_status import CLASSIC_LABEL, choose_backend
from floodlabel.gui.segmentation_controller import SegmentationController
from floodlabel.gui.store_link import StoreLink

TOOLS = {"prompt": "Points: left click adds water, right click adds not-water; Shift+drag draws a box; "
                   "drag pans, wheel zooms",
         "box": "Box: drag a box around the water; the mask follows while you drag",
         "brush": "Brush: paint water onto the mask ([ and ] change the size)",
         "erase": "Eraser: remove water from the mask ([ and ] change the size)"}
BRUSH_SIZES = (2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
"""Brush radii to step through with [ and ], in original-image pixels."""


class AnnotationWindow(QMainWindow):
    """`data`: a dataset folder (None: the last folder used, else the bundled sample). `model`: --model value."""

    def __init__(self, data: str | Path | None = None, model: str | None = None, icon: QIcon | None = None,
                 session=None, project: str | Path | None = None) -> None:
        super().__init__()
        if icon is not None and not icon.isNull():
            self.setWindowIcon(icon)
        self.settings = QSettings()
        self.controller = SegmentationController(self)
        self.controller.next_row = lambda row: self._neighbour(row, +1)
        self.compare = CompareController(self.controller, self)
        self.compare_combo = QComboBox()
        self.compare_label = QLabel()
        self._compare_call: BackgroundCall | None = None
        self._compare_model = ""
        self.canvas = MaskCanvas()
        self.candidates = CandidateStrip()
        self.metrics_panel = MetricsPanel()
        self.image_list = ImageListDock(self)
        self.dataset_view = DatasetView()
        self.model_panel = ModelPanel(model)
        self.finetune_panel = FinetunePanel()
        self.model_combo = QComboBox()
        self.banner = QLabel()
        self.embed_label = QLabel()
        self.embed_cancel = QPushButton("Cancel")
        self.message_label = QLabel()
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.dataset = None
        self.folder: Path | None = None
        self.tool = "prompt"
        self.brush_radius = 16.0
        self._stroke_points: list[tuple[float, float]] = []
        self._stroke_mode = "paint"
        self._embed_t0 = 0.0
        self._embed_timer = QTimer(self, interval=100)
        self._auto_timer = QTimer(self, interval=200)
        self.auto_label = QLabel()
        self.auto_cancel = QPushButton("Cancel Auto")
        self._requested_model = model
        self._requested_project = project
        self._extra_models: dict[str, str] = {}  # fine-tuned checkpoints made in this session: path -> label
        self.store: StoreLink | None = None
        self.project_label = QLabel()
        self.compute_label = QLabel()
        self._accept_waiting = False
        self._accepted_rows: set[int] = set()
        self._model = ""

        self._build_actions()
        self._build_layout()
        self._connect()
        self._restore_settings()
        self.probe = install_geometry_probe(self, view=self.canvas.main_viewport,
                                            image_to_screen=self._image_to_screen, ready=self._ready)
        if self.probe is not None:  # test hook only: keep the geometry file current through layout changes
            self._probe_timer = QTimer(self, interval=300)
            self._probe_timer.timeout.connect(self.probe.update)
            self._probe_timer.start()
        if session is not None:
            self._model = session.model_id
            self.controller.set_session(session)
        else:
            self.use_model(self._initial_model())
        self.open_folder(recent.startup_folder(data))

    # ------------------------------------------------------------------------------------------------ public

    def open_folder(self, folder: str | Path) -> bool:
        """List `folder` (names only: milliseconds) and show its first image. A bad folder gives a message."""
        try:
            dataset = open_dataset(folder)
        except FloodLabelError as exc:
            self.show_message(f"Cannot open {folder}: {exc}")
            return False
        self.folder = Path(folder)
        self.dataset = dataset
        recent.add_recent_folder(str(folder))
        self._fill_recent_menu()
        self._open_store(dataset.root)
        self.controller.set_dataset(dataset)
        self.image_list.set_dataset(dataset)
        self._show_statuses()
        self._update_finetune_context()
        self.dataset_view.set_dataset(dataset)
        if dataset.pairs:
            self.select_image(0)
        else:
            self.show_message(f"{folder} has no images.")
        return True

    def select_image(self, row: int) -> None:
        if self.dataset is None or not 0 <= row < len(self.dataset.pairs):
            return
        if self.store is not None:
            self.store.flush()  # the previous image's work is written before this one loads
        if self.image_list.current_row() != row:
            self.image_list.select_row(row, emit=False)
        if self.controller.row == row and self.controller.item is not None:
            return
        self.canvas.set_image(None)
        self.canvas.set_mask(None)
        self.canvas.set_gt(None)
        self.candidates.clear()
        self.controller.select(row)
        self._update_title()

    def next_image(self) -> None:
        """The next image in the list's order (so a list sorted by IoU is a review queue)."""
        nxt = self._neighbour(self.controller.row, +1)
        if nxt is not None:
            self.select_image(nxt)

    def previous_image(self) -> None:
        prev = self._neighbour(self.controller.row, -1)
        if prev is not None:
            self.select_image(prev)

    def use_model(self, model: str) -> None:
        """Load `model` in the background; the current image is re-embedded and its prompts kept."""
        self._model = model
        self._select_combo(model)
        self.banner.setVisible(model == CLASSIC)
        self.statusBar().showMessage(f"Loading {model} …")
        self.controller.open_session(model)
        self._update_finetune_context()

    def run_auto(self) -> None:
        """Start automatic mask generation; progress and Cancel appear in the status bar."""
        self.controller.run_auto()
        if self.controller.auto_running:
            self.auto_cancel.setVisible(True)
            self._auto_timer.start()
            self._tick_auto()

    def _tick_auto(self) -> None:
        if self.controller.auto_running:
            self.auto_label.setText(f"Auto: {100 * self.controller.auto_progress:.0f}%")
            return
        self._auto_timer.stop()
        self.auto_label.setText("")
        self.auto_cancel.setVisible(False)

    def accept_mask(self) -> None:
        """Enter: store the mask that would be saved (native size) with its prompts, then the next image."""
        c = self.controller
        if self.store is None or c.item is None or c.annotation is None:
            return
        if self.store.read_only:
            self.show_message(f"This project is read-only: {self.store.store.read_only_reason}")
            return
        if not c.native_ready():
            self._accept_waiting = True  # the full-size mask is on its way from the decoder: accept when it lands
            self.statusBar().showMessage("Preparing the full-size mask …")
            return
        self._accept_waiting = False
        mask = c.native_mask.copy() if c.native_mask is not None else np.zeros(c.item.original_size, bool)
        metrics = c.metrics.as_dict() if c.metrics is not None else None
        rel = self.store.rel_path(c.item.path)
        self.store.accept(rel, mask, c.annotation.to_dict(), c.session.model_id if c.session else None, metrics)
        self.statusBar().showMessage(f"Saving {rel} …", 2000)
        nxt = self._next_unaccepted(c.row)
        if nxt is not None:
            self.select_image(nxt)

    def export_masks(self) -> None:
        if self.store is None:
            return
        from floodlabel.gui.export_dialog import ExportDialog

        self.store.flush()
        self.store.wait_idle()
        ExportDialog(self.store.store, parent=self).open()

    def show_image_with_prompt(self, row: int, prompt) -> None:
        """Open dataset row `row` with `prompt` (a core Prompt, original frame) as its prompts: e.g. the prompt an
        evaluation used, so both compared models predict from it. Replaces that image's unsaved prompts."""
        self.controller.pending_prompt = prompt
        if self.controller.row == row:
            self.controller.row = -1  # load it again so the prompt applies
        self.select_image(row)

    def compare_with(self, model: str | None) -> None:
        """Show model `model` (name or .pth; None or "" = off) beside the current one, on the same prompts."""
        self._compare_model = model or ""
        self.image_list.clear_agreement()  # A↔B values of another B
        if model and self.compare_combo.findData(model) < 0:
            self._extra_models[model] = Path(model).name  # a file not listed yet: list it in both selectors
            self._fill_models()
        self.compare_combo.setCurrentIndex(max(0, self.compare_combo.findData(self._compare_model)))
        if not model:
            self.compare.set_session(None)
            return
        from floodlabel.core.engine import SegmentationSession

        self.compare_label.setText(f"Loading {Path(model).name} …")
        call = BackgroundCall(lambda: SegmentationSession.open(model))
        call.succeeded.connect(self._on_compare_session)
        call.failed.connect(lambda message: self.show_message(f"Cannot compare with {model}: {message}"))
        self._compare_call = call
        call.start()

    def open_compare_dataset(self) -> None:
        """Model → Compare on dataset…: A = this model, B = the compared one (both changeable); non-modal."""
        from floodlabel.gui.compare_dataset import CompareDatasetDialog

        old = getattr(self, "compare_dataset_dialog", None)
        if old is not None and old.dataset is self.dataset:
            old.show()
            old.raise_()
            return
        if self.dataset is None:
            return
        models = [(self.model_combo.itemText(i), self.model_combo.itemData(i)) for i in range(self.model_combo.count())
                  if self.model_combo.model().item(i).isEnabled()]
        dialog = CompareDatasetDialog(self.dataset, models, self._model, self._compare_model or None, parent=self)
        dialog.open_image = lambda row, prompt: self._open_compared(dialog.model_a, dialog.model_b, row, prompt)
        self.compare_dataset_dialog = dialog
        dialog.show()

    def _open_compared(self, a: str, b: str, row: int, prompt) -> None:
        if a != self._model:
            self.use_model(a)
        if b != self._compare_model:
            self.compare_with(b)
        self.show_image_with_prompt(row, prompt)

    def add_model(self, path: str, label: str) -> None:
        """A new checkpoint (a fine-tune just finished): listed in the model and compare selectors."""
        self._extra_models[path] = label
        self._fill_models()

    def _on_finetuned(self, path: str, best_val_iou: float) -> None:
        self.add_model(path, f"{Path(path).stem} (val IoU {best_val_iou:.3f})")
        self.statusBar().showMessage(f"Fine-tuned checkpoint ready: {path} — pick it in Model or Compare with", 8000)

    def _update_finetune_context(self) -> None:
        if not hasattr(self, "finetune_panel"):
            return
        store = self.store.store if self.store is not None else None
        self.finetune_panel.set_context(self.dataset, store, self._model or None)

    def _on_compare_combo(self, index: int) -> None:
        model = self.compare_combo.itemData(index)
        if model != self._compare_model:
            self.compare_with(model)

    def _on_compare_session(self, session) -> None:
        if self.sender() is not (self._compare_call.relay if self._compare_call else None):
            return
        self.compare.set_session(session)

    def _on_compared(self, b_mask, diff, b_metrics) -> None:
        if b_mask is None:
            self.canvas.set_compare(None)
            self.compare_label.setText("")
            return
        a_metrics = self.controller.metrics
        name_a = self.model_combo.currentText()
        name_b = self.compare_combo.currentText()
        iou_a = f" — IoU {a_metrics.iou:.3f}" if a_metrics is not None else ""
        iou_b = f" — IoU {b_metrics.iou:.3f}" if b_metrics is not None else ""
        self.canvas.set_compare(b_mask, diff, (f"A: {name_a}{iou_a}", f"B: {name_b}{iou_b}"))
        if self.compare.result is not None and self.controller.native_mask is not None \
                and self.controller.native_ready():
            from floodlabel.core.metrics import agreement

            self.image_list.set_agreement(self.controller.row, agreement(self.controller.native_mask, b_mask))
        if b_metrics is not None and a_metrics is not None:
            self.compare_label.setText(f"B: IoU {b_metrics.iou:.3f} (A − B: {a_metrics.iou - b_metrics.iou:+.3f}), "
                                       f"Dice {b_metrics.dice:.3f}. Pink: pixels where A and B differ.")
        else:
            self.compare_label.setText("Pink: pixels where A and B differ.")

    def set_tool(self, tool: str) -> None:
        self.tool = tool
        self.canvas.set_tool(tool)
        self.tool_actions[tool].setChecked(True)
        self.statusBar().showMessage(TOOLS[tool])

    def show_message(self, text: str) -> None:
        """A non-modal message line above the canvas (worker errors, bad files); the window stays usable."""
        self.message_label.setText(html.escape(text))
        self.message_label.setVisible(True)

    # ------------------------------------------------------------------------------------------------ controller

    def _on_image_loaded(self, item) -> None:
        self.message_label.setVisible(False)
        self.canvas.set_image(item.image)
        self.canvas.set_gt(item.gt)
        self._update_title()
        pair = self.dataset.pairs[self.controller.row]
        if item.gt is None and pair.mask is not None:
            self.image_list.set_problem(self.controller.row, f"GT unusable: {item.gt_problem}")
        if self.probe:
            self.probe.update()

    def _on_image_failed(self, row: int, message: str) -> None:
        self.image_list.set_problem(row, f"unreadable: {message}")
        self.show_message(f"Cannot show this image: {message}")

    def _on_embedding_started(self) -> None:
        self._embed_t0 = time.perf_counter()
        self._embed_timer.start()
        self._tick_embedding()
        self.embed_cancel.setVisible(True)

    def _tick_embedding(self) -> None:
        self.embed_label.setText(f"Encoding the image with {self.controller.session.model_id.split(':')[0]} … "
                                 f"{time.perf_counter() - self._embed_t0:.1f} s (click already: your clicks apply "
                                 f"when it is ready)")

    def _on_embedding_ready(self, seconds: float) -> None:
        self._embed_timer.stop()
        self.embed_cancel.setVisible(False)
        self.embed_label.setText(f"Ready ({seconds:.1f} s)" if seconds else "Ready (cached)")
        if self.probe:
            self.probe.update()

    def _on_embedding_stopped(self, why: str) -> None:
        self._embed_timer.stop()
        self.embed_cancel.setVisible(False)
        self.embed_label.setText("Encoding cancelled: select the image again to encode it" if why == "cancelled"
                                 else f"Encoding failed: {why}")

    def _on_session_ready(self, model_id: str) -> None:
        self.statusBar().showMessage(f"Model ready: {model_id}", 4000)
        config = getattr(self.controller.session.segmenter, "config", None)
        self.compute_label.setText(f"{model_id.split(':')[0]} · {config.describe()}" if config is not None
                                   else f"{CLASSIC_LABEL}")
        self.auto_action.setEnabled(self.controller.session is not None
                                    and getattr(self.controller.session.segmenter, "cacheable", True))

    def _on_session_failed(self, message: str) -> None:
        self.show_message(f"Cannot load {self._model}: {message}. Using the classic backend.")
        if self._model != CLASSIC:
            self.use_model(CLASSIC)

    def _on_markers(self, points, labels, box, pending: bool) -> None:
        self.canvas.set_markers(points, labels, box, pending)

    def _on_metrics(self, metrics, has_gt: bool) -> None:
        self.metrics_panel.set_metrics(metrics, has_gt)
        self.compare.refresh()
        if has_gt:
            self.image_list.set_iou(self.controller.row, None if metrics is None else metrics.iou)
        ann = self.controller.annotation
        if ann is not None and ann.version > 0 and self.controller.row not in self._accepted_rows:
            self.image_list.set_status(self.controller.row, "in progress")

    def _on_history(self, can_undo: bool, can_redo: bool) -> None:
        """Called after every annotation change: undo/redo state and the in-progress autosave."""
        self.undo_action.setEnabled(can_undo)
        self.redo_action.setEnabled(can_redo)
        ann, item = self.controller.annotation, self.controller.item
        if self.store is not None and ann is not None and item is not None and ann.version > 0:
            self.store.schedule_autosave(self.store.rel_path(item.path), ann.to_dict)

    # ------------------------------------------------------------------------------------------------ canvas

    def _on_point(self, x: float, y: float, positive: bool) -> None:
        if self.tool == "prompt":
            self.controller.add_point(x, y, positive)

    def _on_box_changed(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.canvas.set_markers(*self._markers_with_box((x0, y0, x1, y1)))
        self.controller.preview_box((x0, y0, x1, y1))

    def _on_box_finished(self, x0: float, y0: float, x1: float, y1: float) -> None:
        if abs(x1 - x0) < 2 and abs(y1 - y0) < 2:
            return
        self.controller.set_box((x0, y0, x1, y1))

    def _on_hover(self, x: float, y: float) -> None:
        if self.tool == "prompt":
            self.controller.hover(x, y)

    def _on_stroke_started(self, mode: str, x: float, y: float) -> None:
        self._stroke_mode = mode
        self._stroke_points = [(x, y)]
        self.canvas.draw_stroke_segment(mode, self.brush_radius, (x, y), (x, y))

    def _on_stroke_moved(self, x: float, y: float) -> None:
        if not self._stroke_points:
            return
        self.canvas.draw_stroke_segment(self._stroke_mode, self.brush_radius, self._stroke_points[-1], (x, y))
        self._stroke_points.append((x, y))

    def _on_stroke_finished(self) -> None:
        if self._stroke_points:
            points = np.asarray(self._stroke_points, np.float32)
            self._stroke_points = []
            self.controller.add_stroke(Stroke(self._stroke_mode, self.brush_radius, points))

    # ------------------------------------------------------------------------------------------------ actions

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of flood photos",
                                                  str(self.folder) if self.folder else "")
        if folder:
            self.open_folder(folder)

    def _change_brush(self, step: int) -> None:
        sizes = BRUSH_SIZES
        i = min(range(len(sizes)), key=lambda k: abs(sizes[k] - self.brush_radius))
        self.brush_radius = float(sizes[max(0, min(len(sizes) - 1, i + step))])
        self.canvas.set_brush_radius(self.brush_radius)
        self.statusBar().showMessage(f"Brush radius: {self.brush_radius:g} px", 2000)

    def _on_opacity(self, value: int) -> None:
        self.canvas.set_opacity(value / 100)

    def _on_model_combo(self, index: int) -> None:
        model = self.model_combo.itemData(index)
        if model and model != self._model:
            self.use_model(model)

    def _on_backend_changed(self, choice) -> None:
        self._fill_models()
        if choice.is_sam and self._model == CLASSIC:
            self.use_model(choice.model)  # a download just finished

    def _show_models_dock(self) -> None:
        self.models_dock.show()
        self.models_dock.raise_()

    # ------------------------------------------------------------------------------------------------ Qt events

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("view/opacity", self.opacity_slider.value())
        self.settings.setValue("model/last", self._model)
        self.model_panel.cancel_download()
        self.finetune_panel.shutdown(timeout=60)
        self.controller.shutdown()
        self.compare.shutdown()
        if getattr(self, "compare_dataset_dialog", None) is not None:
            self.compare_dataset_dialog.shutdown()
        if self._compare_call is not None:
            self._compare_call.join(5.0)
        if self.store is not None:
            self.store.close()  # waits for queued writes: an accepted mask is on disk before the window goes
            self.store = None
        super().closeEvent(event)

    # ------------------------------------------------------------------------------------------------ set-up

    def _connect(self) -> None:
        c, v = self.controller, self.canvas
        c.image_loaded.connect(self._on_image_loaded)
        c.image_failed.connect(self._on_image_failed)
        c.embedding_started.connect(self._on_embedding_started)
        c.embedding_ready.connect(self._on_embedding_ready)
        c.embedding_stopped.connect(self._on_embedding_stopped)
        c.session_ready.connect(self._on_session_ready)
        c.session_failed.connect(self._on_session_failed)
        c.markers_changed.connect(self._on_markers)
        c.mask_changed.connect(v.set_mask)
        c.mask_changed.connect(self.compare.update)
        self.compare.changed.connect(self._on_compared)
        self.compare.failed.connect(self.show_message)
        self.compare_combo.activated.connect(self._on_compare_combo)
        c.candidates_changed.connect(self.candidates.set_candidates)
        c.metrics_changed.connect(self._on_metrics)
        c.scored.connect(self.image_list.set_confidence)
        c.metrics_changed.connect(self._on_native_ready)
        c.clicks_changed.connect(self.metrics_panel.set_clicks)
        c.history_changed.connect(self._on_history)
        c.message.connect(self.show_message)
        v.point_clicked.connect(self._on_point)
        v.box_changed.connect(self._on_box_changed)
        v.box_finished.connect(self._on_box_finished)
        v.hovered.connect(self._on_hover)
        v.hover_left.connect(c.hover_left)
        v.stroke_started.connect(self._on_stroke_started)
        v.stroke_moved.connect(self._on_stroke_moved)
        v.stroke_finished.connect(self._on_stroke_finished)
        self.candidates.chosen.connect(c.choose_candidate)
        self.image_list.row_selected.connect(self.select_image)
        self.embed_cancel.clicked.connect(c.cancel_embedding)
        self._embed_timer.timeout.connect(self._tick_embedding)
        self._auto_timer.timeout.connect(self._tick_auto)
        self.auto_cancel.clicked.connect(c.cancel_auto)
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.model_combo.activated.connect(self._on_model_combo)
        self.model_panel.backend_changed.connect(self._on_backend_changed)
        self.finetune_panel.checkpoint_ready.connect(self._on_finetuned)

    def _build_actions(self) -> None:
        def keys(action_id: str) -> list[QKeySequence]:
            return [QKeySequence(k) for k in ACTION_KEYS[action_id]]  # one table for the actions and the help

        def action(text: str, slot, shortcut=None, checkable: bool = False, tip: str = "") -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
            a.setCheckable(checkable)
            if tip:
                a.setStatusTip(tip)
                a.setToolTip(f"{tip} ({a.shortcut().toString()})" if a.shortcut().toString() else tip)
            (a.toggled if checkable else a.triggered).connect(slot)
            self.addAction(a)  # shortcuts work whatever has focus
            return a

        c = self.controller
        self.open_action = action("&Open folder…", self.choose_folder, keys("open_folder"),
                                  tip="Open a folder of flood photos")
        self.next_action = action("&Next image", self.next_image,
                                  keys("next_image"), tip="Next image")
        self.prev_action = action("&Previous image", self.previous_image,
                                  keys("previous_image"), tip="Previous image")
        self.undo_action = action("&Undo", c.undo, keys("undo"), tip="Undo the last step")
        self.redo_action = action("&Redo", c.redo, keys("redo"),
                                  tip="Redo")
        self.drop_action = action("&Drop prompts", c.drop_prompts, keys("drop_prompts"),
                                  tip="Remove the points and the box (brush strokes stay)")
        self.clear_action = action("&Clear mask", c.clear, keys("clear_mask"),
                                   tip="Empty the mask: prompts and strokes (undo brings them back)")
        self.auto_action = action("&Auto", self.run_auto, keys("auto"),
                                  tip="Automatic mask generation: every SAM segment containing a positive point")
        self.fit_action = action("&Fit to window", self.canvas.fit, keys("fit"), tip="Fit the image to the view")
        self.overlay_action = action("Show &mask overlay", self.canvas.set_overlay_visible, keys("toggle_overlay"), checkable=True,
                                     tip="Show or hide the predicted mask")
        self.outline_action = action("Show &GT outline", self.canvas.set_gt_outline_visible, keys("toggle_gt_outline"), checkable=True,
                                     tip="Outline the ground truth on the prediction view")
        self.gt_view_action = action("Show ground-truth &view", self.canvas.set_gt_view_visible, keys("toggle_gt_view"),
                                     checkable=True, tip="Show the ground truth beside the prediction")
        self.hover_action = action("&Hover preview", self._set_hover, keys("toggle_hover_preview"), checkable=True,
                                   tip="Before the first click, show the mask a click would give")
        self.help_action = action("&Keyboard shortcuts…", lambda: show_help(self), keys("help"),
                                  tip="Shortcuts and how the brush works")
        self.models_action = action("&Models…", self._show_models_dock, tip="SAM checkpoints and downloads")
        self.compare_dataset_action = action("&Compare on dataset…", self.open_compare_dataset,
                                             tip="Evaluate two models on this dataset with the same prompts")
        self.quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        action("Smaller brush", lambda: self._change_brush(-1), keys("brush_smaller"))
        action("Larger brush", lambda: self._change_brush(+1), keys("brush_larger"))
        for i in range(3):
            action(f"Candidate {i + 1}", lambda _=False, i=i: c.choose_candidate(i), keys(f"candidate_{i + 1}"))
        self.accept_action = action("&Accept", self.accept_mask, keys("accept"),
                                    tip="Save the mask at the image's size with its prompts, then go to the next "
                                        "image not accepted yet")
        self.accept_action.setEnabled(False)
        self.export_action = action("&Export masks…", self.export_masks, keys("export"),
                                    tip="Write the accepted masks as PNG files and COCO JSON")
        self.export_action.setEnabled(False)

        self.tool_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for tool, (text, key) in {"prompt": ("Points", "prompt_tool"), "box": ("Box", "box_tool"),
                                  "brush": ("Brush", "brush_tool"), "erase": ("Eraser", "eraser_tool")}.items():
            a = action(text, lambda checked, t=tool: checked and self.set_tool(t), keys(key), checkable=True,
                       tip=TOOLS[tool])
            group.addAction(a)
            self.tool_actions[tool] = a
        for a in (self.overlay_action, self.gt_view_action, self.hover_action):
            a.setChecked(True)

    def _build_layout(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = QMenu("Open &recent", self)
        file_menu.addMenu(self.recent_menu)
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit = menu.addMenu("&Edit")
        for a in (self.undo_action, self.redo_action, None, self.drop_action, self.clear_action, None,
                  self.accept_action):
            edit.addSeparator() if a is None else edit.addAction(a)
        tools = menu.addMenu("&Tools")
        for a in (*self.tool_actions.values(), None, self.auto_action, self.hover_action):
            tools.addSeparator() if a is None else tools.addAction(a)
        view = menu.addMenu("&View")
        for a in (self.fit_action, self.overlay_action, self.outline_action, self.gt_view_action):
            view.addAction(a)
        self.view_menu = view
        go = menu.addMenu("&Go")
        go.addAction(self.prev_action)
        go.addAction(self.next_action)
        model_menu = menu.addMenu("&Model")
        model_menu.addAction(self.models_action)
        model_menu.addAction(self.compare_dataset_action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.help_action)

        bar = QToolBar("Tools")
        bar.setObjectName("tools")
        short = {self.open_action: "Open", self.prev_action: "◀ Prev", self.next_action: "Next ▶",
                 self.clear_action: "Clear", self.fit_action: "Fit", self.overlay_action: "Overlay",
                 self.outline_action: "GT outline", self.hover_action: "Hover"}
        for a, text in short.items():
            a.setIconText(text)
        for a in (self.open_action, None, self.prev_action, self.next_action, None, *self.tool_actions.values(),
                  None, self.undo_action, self.redo_action, self.clear_action, self.auto_action, None,
                  self.fit_action, self.overlay_action, self.outline_action, self.hover_action, None,
                  self.accept_action):
            bar.addSeparator() if a is None else bar.addAction(a)
        self.addToolBar(bar)
        self.opacity_slider.setRange(10, 100)
        self.opacity_slider.setValue(50)
        self._fill_models()

        self.banner.setText(
            "<b>No SAM checkpoint yet</b>: using the offline classic backend (OpenCV GrabCut), which is rougher. "
            "Get SAM ViT-B (375 MB) with <a href='models'>Model → Models… → Download</a>, or run "
            "<code>floodlabel models download vit_b</code>, or start with <code>--model path/to/sam.pth</code>.")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #fff4d6; color: #5a4500; padding: 6px; border: 1px solid #e6c66b;")
        self.banner.linkActivated.connect(lambda _: self._show_models_dock())
        self.banner.setVisible(False)
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("background: #fde7e7; color: #8a1c1c; padding: 4px;")
        self.message_label.setVisible(False)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.banner)
        layout.addWidget(self.message_label)
        layout.addWidget(self.canvas, 1)
        self.setCentralWidget(central)

        self.image_list.setObjectName("images")
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.image_list)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        model_row = QHBoxLayout()
        model_row.addWidget(QLabel("Model"))
        model_row.addWidget(self.model_combo, 1)
        side_layout.addLayout(model_row)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(QLabel("Opacity"))
        opacity_row.addWidget(self.opacity_slider, 1)
        side_layout.addLayout(opacity_row)
        side_layout.addWidget(QLabel("<b>SAM's candidates</b> (keys 1 / 2 / 3)"))
        side_layout.addWidget(self.candidates)
        side_layout.addWidget(self.metrics_panel)
        compare_row = QHBoxLayout()
        compare_row.addWidget(QLabel("Compare with"))
        compare_row.addWidget(self.compare_combo, 1)
        side_layout.addLayout(compare_row)
        self.compare_label.setWordWrap(True)
        side_layout.addWidget(self.compare_label)
        side_layout.addStretch(1)
        self.mask_dock = QDockWidget("Mask", self)
        self.mask_dock.setObjectName("mask")
        self.mask_dock.setWidget(side)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.mask_dock)

        self.dataset_dock = QDockWidget("Dataset", self)
        self.dataset_dock.setObjectName("dataset")
        scroll = QScrollArea()
        scroll.setWidget(self.dataset_view)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.dataset_dock.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dataset_dock)
        self.models_dock = QDockWidget("Models", self)
        self.models_dock.setObjectName("models")
        scroll = QScrollArea()
        scroll.setWidget(self.model_panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.models_dock.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.models_dock)
        self.finetune_dock = QDockWidget("Fine-tune", self)
        self.finetune_dock.setObjectName("finetune")
        scroll = QScrollArea()
        scroll.setWidget(self.finetune_panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.finetune_dock.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.finetune_dock)
        self.tabifyDockWidget(self.dataset_dock, self.models_dock)
        self.tabifyDockWidget(self.models_dock, self.finetune_dock)
        self.dataset_dock.raise_()
        self.resizeDocks([self.image_list, self.mask_dock], [250, 330], Qt.Orientation.Horizontal)
        self.resizeDocks([self.mask_dock, self.dataset_dock], [420, 300], Qt.Orientation.Vertical)
        for dock in (self.image_list, self.mask_dock, self.dataset_dock, self.models_dock, self.finetune_dock):
            self.view_menu.addAction(dock.toggleViewAction())

        status = self.statusBar()
        status.addWidget(self.project_label)
        status.addPermanentWidget(self.compute_label)
        status.addPermanentWidget(self.auto_label)
        status.addPermanentWidget(self.auto_cancel)
        self.auto_cancel.setVisible(False)
        status.addPermanentWidget(self.embed_label)
        status.addPermanentWidget(self.embed_cancel)
        self.embed_cancel.setVisible(False)
        self._fill_recent_menu()
        self.set_tool("prompt")
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if screen is not None and screen.width() > 0:
            self.setGeometry(screen.adjusted(0, 0, 0, 0) if screen.width() < 1500 else
                             screen.adjusted(screen.width() // 20, screen.height() // 20,
                                             -screen.width() // 20, -screen.height() // 20))
        else:
            self.resize(1280, 760)

    def _fill_models(self) -> None:
        self.model_combo.clear()
        for name in MODELS:
            self.model_combo.addItem(name if is_downloaded(name) else f"{name} (not downloaded)", name)
            if not is_downloaded(name):
                self.model_combo.model().item(self.model_combo.count() - 1).setEnabled(False)
        if self._requested_model and self._requested_model not in MODELS and self._requested_model != CLASSIC:
            self.model_combo.addItem(Path(self._requested_model).name, self._requested_model)
        self.model_combo.addItem(CLASSIC_LABEL, CLASSIC)
        for path, label in self._extra_models.items():
            self.model_combo.addItem(label, path)
        self._select_combo(self._model)
        self.compare_combo.clear()
        self.compare_combo.addItem("(off)", "")
        for i in range(self.model_combo.count()):
            item = self.model_combo.model().item(i)
            self.compare_combo.addItem(self.model_combo.itemText(i), self.model_combo.itemData(i))
            self.compare_combo.model().item(i + 1).setEnabled(item.isEnabled())
        j = self.compare_combo.findData(self._compare_model)
        self.compare_combo.setCurrentIndex(max(0, j))

    def _select_combo(self, model: str) -> None:
        i = self.model_combo.findData(model)
        if i >= 0:
            self.model_combo.setCurrentIndex(i)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for folder in recent.recent_folders():
            a = self.recent_menu.addAction(folder)
            a.triggered.connect(lambda _=False, f=folder: self.open_folder(f))
        self.recent_menu.setEnabled(bool(self.recent_menu.actions()))

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        opacity = self.settings.value("view/opacity", 50)
        try:
            self.opacity_slider.setValue(int(opacity))
        except (TypeError, ValueError):
            pass
        self._on_opacity(self.opacity_slider.value())

    def _initial_model(self) -> str:
        if self._requested_model:
            choice = choose_backend(self._requested_model)
            if choice.warning:
                self.show_message(choice.warning)
            return choice.model
        last = self.settings.value("model/last", "")
        if isinstance(last, str) and last and choose_backend(last).model == last:
            return last
        return choose_backend(None).model

    def _set_hover(self, on: bool) -> None:
        self.controller.hover_enabled = on

    def _markers_with_box(self, box):
        ann = self.controller.annotation
        if ann is None:
            return np.zeros((0, 2)), np.zeros(0, int), np.asarray(box, float), True
        return ann.prompt.points, ann.prompt.labels, np.asarray(box, float), self.controller.embedding is None

    def _update_title(self) -> None:
        if self.dataset is None or self.controller.row < 0:
            self.setWindowTitle("FloodLabel")
            return
        pair = self.dataset.pairs[self.controller.row]
        self.setWindowTitle(f"{pair.image.name} ({self.controller.row + 1} / {len(self.dataset.pairs)}) — FloodLabel")

    def _open_store(self, root: Path) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self.controller.restore_fn = None
        project = self._requested_project
        if project is None and Path(root).resolve() == sample_dataset_dir().resolve():
            project = data_dir() / "projects" / "bundled-sample"  # never write into the installed package
        try:
            self.store = StoreLink.open(root, project, parent=self)
        except FloodLabelError as exc:
            self.show_message(f"Masks cannot be saved for this folder: {exc}")
            self.project_label.setText("No project: accepting is off")
            self.accept_action.setEnabled(False)
            self.export_action.setEnabled(False)
            return
        self.store.accepted.connect(self._on_accepted)
        self.store.failed.connect(self.show_message)
        self.controller.restore_fn = self.store.restore
        self.accept_action.setEnabled(not self.store.read_only)
        self.export_action.setEnabled(True)
        if self.store.read_only:
            self.show_message(f"Read-only: {self.store.store.read_only_reason}")

    def _show_statuses(self) -> None:
        if self.store is None or self.dataset is None:
            return
        statuses = self.store.statuses()
        self._accepted_rows = set()
        for row, pair in enumerate(self.dataset.pairs):
            status = statuses.get(self.store.rel_path(pair.image))
            if status is not None:
                self.image_list.set_status(row, str(status))
                if str(status) == "accepted":
                    self._accepted_rows.add(row)
        self._update_project_label(statuses)

    def _update_project_label(self, statuses=None) -> None:
        if self.store is None or self.dataset is None:
            return
        statuses = statuses if statuses is not None else self.store.statuses()
        accepted = sum(1 for s in statuses.values() if str(s) == "accepted")
        mode = " (read-only)" if self.store.read_only else ""
        self.project_label.setText(f"Accepted {accepted} / {len(self.dataset.pairs)}   ·   "
                                   f"Project: {self.store.store.project_dir}{mode}")

    def _on_accepted(self, rel: str, record) -> None:
        if self.dataset is None or self.store is None:
            return
        for row, pair in enumerate(self.dataset.pairs):
            if self.store.rel_path(pair.image) == rel:
                self.image_list.set_status(row, "accepted")
                self._accepted_rows.add(row)
        self.statusBar().showMessage(f"Accepted {rel}", 3000)
        self._update_project_label()
        self.finetune_panel.refresh()

    def _on_native_ready(self, *_: object) -> None:
        if self._accept_waiting:
            self.accept_mask()

    def _next_unaccepted(self, row: int) -> int | None:
        order = self.image_list.visible_rows()
        if row not in order:
            return None
        for r in order[order.index(row) + 1:] + order[:order.index(row)]:
            if r not in self._accepted_rows:
                return r
        return None

    def _neighbour(self, row: int, step: int) -> int | None:
        order = self.image_list.visible_rows()
        if not order:
            return None
        i = order.index(row) + step if row in order else 0
        return order[i] if 0 <= i < len(order) else None

    def _ready(self) -> bool:
        return self.controller.embedding is not None

    def _image_to_screen(self):
        item = self.controller.item
        if item is None:
            return []
        h, w = item.original_size
        out = []
        for ix, iy in ((w * 0.25, h * 0.25), (w * 0.75, h * 0.3), (w * 0.5, h * 0.75)):
            p = self.canvas.main_viewport.mapToGlobal(self.canvas.widget_pos(ix, iy))
            out.append([ix, iy, p.x(), p.y()])
        return out
