"""The annotation window: the image list, the canvas (prediction and ground truth side by side), SAM's candidates,
live metrics, tools, and the model and dataset status in docks.

All model work goes through `SegmentationController` (workers, latest request wins); this file lays out widgets,
turns actions into controller calls and renders what the controller emits. The canvas's mouse becomes controller
steps in `canvas_input`.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import QComboBox, QFileDialog, QLabel, QMainWindow, QPushButton, QSlider

from floodlabel.core.data.datasets import FloodDataset, open_dataset
from floodlabel.core.common.errors import FloodLabelError
from floodlabel.core.models.registry import CLASSIC
from floodlabel.gui.window import recent
from floodlabel.gui.window.canvas_input import CanvasInput
from floodlabel.gui.panels.candidate_strip import CandidateStrip
from floodlabel.gui.window.compare_controller import CompareController
from floodlabel.gui.canvas.after_paint import AfterPaint
from floodlabel.gui.canvas.mask_canvas import MaskCanvas
from floodlabel.gui.canvas.nodata import display_image
from floodlabel.gui.panels.dataset_view import DatasetView
from floodlabel.gui.panels.finetune_panel import FinetunePanel
from floodlabel.gui.window.geometry_probe import install_geometry_probe
from floodlabel.gui.panels.image_list import ImageListDock
from floodlabel.gui.panels.metrics_panel import MetricsPanel
from floodlabel.gui.panels.model_panel import ModelPanel
from floodlabel.gui.panels.project_notice import ProjectNotice
from floodlabel.gui.panels.text_prompt_panel import TextPromptPanel
from floodlabel.gui.window.segmentation_controller import SegmentationController
from floodlabel.gui.window.store_link import StoreLink
from floodlabel.gui.window.layout import TOOLS, build_actions, build_layout
from floodlabel.gui.window.maps.map_detail import MapDetail
from floodlabel.gui.window.model_actions import ModelActions
from floodlabel.gui.window.project_actions import ProjectActions
from floodlabel.gui.window.text_prompt.text_prompt_actions import TextPromptActions


class AnnotationWindow(QMainWindow):
    """`data`: a dataset folder (None: the last folder used, else the bundled sample). `model`: --model value.

    `project` (the store, Accept, export, recovery) and `models` (the model selector, compare mode) are the
    window's collaborators; the methods below that only delegate to them are the window's public entry points.
    """

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
        self.canvas = MaskCanvas()
        self.candidates = CandidateStrip()
        self.metrics_panel = MetricsPanel()
        self.image_list = ImageListDock(self)
        self.dataset_view = DatasetView()
        self.model_panel = ModelPanel(model)
        self.finetune_panel = FinetunePanel()
        self.text_panel = TextPromptPanel()
        self.model_combo = QComboBox()
        self.banner = QLabel()
        self.embed_label = QLabel()
        self.embed_cancel = QPushButton("Cancel")
        self.message_label = QLabel()
        self.project_notice = ProjectNotice()
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.dataset: FloodDataset | None = None
        self.folder: Path | None = None
        self._embed_t0 = 0.0
        self._embed_timer = QTimer(self, interval=100)
        self._auto_timer = QTimer(self, interval=200)
        self.auto_label = QLabel()
        self.auto_cancel = QPushButton("Cancel Auto")
        self.project_label = QLabel()
        self.compute_label = QLabel()
        # the canvas's clicks, boxes, hover and strokes as controller steps (the text prompt takes its clicks first)
        self.canvas_input = CanvasInput(self.canvas, self.controller,
                                        lambda x, y, positive: self.text_prompt.handle_click(x, y, positive),
                                        lambda text, ms: self.statusBar().showMessage(text, ms))

        build_actions(self)
        self.project = ProjectActions(self.controller, self.image_list, self.project_notice, self.finetune_panel,
                                      self.project_label, self.statusBar(), self.accept_action, self.export_action,
                                      self.select_image, self.show_message, project, parent=self)
        self.models = ModelActions(self.controller, self.compare, self.canvas, self.image_list, self.model_combo,
                                   self.compare_combo, self.compare_label, self.banner, self.statusBar(),
                                   self.settings, self.select_image, self.show_message, model, parent=self)
        self.models.fill_models()
        build_layout(self)
        self._connect()
        self.text_prompt = TextPromptActions(self.controller, self.text_panel, self.settings, self.show_message,
                                             parent=self)
        self.map_detail = MapDetail(self.controller, self.canvas, self)  # a map zoomed in: read at full resolution
        self._restore_settings()
        self.probe = install_geometry_probe(self, view=self.canvas.main_viewport,
                                            image_to_screen=self._image_to_screen, ready=self._ready)
        if self.probe is not None:  # test hook only: keep the geometry file current through layout changes
            self._probe_timer = QTimer(self, interval=300)
            self._probe_timer.timeout.connect(self.probe.update)
            self._probe_timer.start()
        if session is not None:
            self.models.model = session.model_id
            self.controller.set_session(session)
        else:
            self.use_model(self.models.initial_model())
        self._row_after_open: int | None = None  # a row the user picked while the project opened
        self._listed: FloodDataset | None = None  # the dataset the image list shows
        self._first_folder = True  # opened before the window is shown: its project on the spot
        self.open_folder(recent.startup_folder(data))
        self._first_folder = False

    # ------------------------------------------------------------------------------------------------ public

    @property
    def store(self) -> StoreLink | None:
        """The open project (None: accepting is off)."""
        return self.project.store

    def accept_mask(self) -> None:
        """Enter: save the current mask with its prompts, then show the next image not accepted yet."""
        self.project.accept_mask()

    def export_masks(self) -> None:
        self.project.export_masks()

    def use_model(self, model: str) -> None:
        """Load `model` in the background; the current image is re-embedded and its prompts kept."""
        self.models.use_model(model)

    def compare_with(self, model: str | None) -> None:
        """Show model `model` (name or .pth; None or "" = off) beside the current one, on the same prompts."""
        self.models.compare_with(model)

    def show_image_with_prompt(self, row: int, prompt) -> None:
        """Open dataset row `row` with `prompt` (a core Prompt, original frame) as its prompts."""
        self.models.show_image_with_prompt(row, prompt)

    def open_compare_dataset(self) -> None:
        """Model → Compare on dataset… (non-modal)."""
        self.models.open_compare_dataset()

    @property
    def compare_dataset_dialog(self):
        """The Compare on dataset dialog once opened, else None."""
        return self.models.compare_dataset_dialog

    def show_models_dock(self) -> None:
        self.models_dock.show()
        self.models_dock.raise_()

    def open_folder(self, folder: str | Path) -> bool:
        """List `folder` (names only: milliseconds) and show the image the user left off at (else the first not
        accepted) once its project is open: the project opens, and the previous one closes, off the UI thread
        (`ProjectActions.open_store`). A bad folder gives a message."""
        try:
            dataset = open_dataset(folder)
        except FloodLabelError as exc:
            self.show_message(f"Cannot open {folder}: {exc}")
            return False
        self.folder = Path(folder)
        self.dataset = dataset
        recent.add_recent_folder(str(folder))
        self._fill_recent_menu()
        self.project.leave_image()  # before the list changes: an accept waiting for its mask is saved for its image
        self.canvas.set_image(None)
        self.canvas.set_mask(None)
        self.canvas.set_gt(None)
        self.candidates.clear()
        self.controller.set_dataset(dataset)
        self.text_prompt.set_folder(folder)
        self._row_after_open = None
        self.project.open_store(dataset, wait=self._first_folder)  # -> _on_project_opened
        if not dataset.pairs:
            self.show_message(f"{folder} has no images.")
        return True

    def _on_project_opened(self) -> None:
        """The folder's project is open (or could not be): its statuses, then where the user left off (else the
        first not accepted), or the row picked meanwhile. The list fills now: its header scan (threads) would
        contend with the project's open for the interpreter, and stall the UI thread with it."""
        if self.dataset is not None and self._listed is not self.dataset:
            self._listed = self.dataset
            self.image_list.set_dataset(self.dataset)
            self.dataset_view.set_dataset(self.dataset)
        self.project.show_statuses()
        self._update_finetune_context()
        if self.dataset is None or not self.dataset.pairs or self.controller.row >= 0:
            return  # (a recovery reopened the project of the image on screen)
        row, self._row_after_open = self._row_after_open, None
        if row is not None:
            self.select_image(row)
        else:  # opening is not the user's choice: not remembered
            self.select_image(self.project.resume_row(), remember=False)

    def select_image(self, row: int, remember: bool = True) -> None:
        """Show dataset row `row`; `remember`: the project reopens there (the user chose it)."""
        if self.dataset is None or not 0 <= row < len(self.dataset.pairs):
            return
        if self.project.opening:  # shown once the project is open (its saved work is restored then)
            self._row_after_open = row
            return
        if remember:
            self.project.remember(row)
        self.project.flush()  # the previous image's work is written before this one loads
        if self.image_list.current_row() != row:
            self.image_list.select_row(row, emit=False)
        if self.controller.row == row and self.controller.item is not None:
            return
        self.project.leave_image()  # an accept waiting for its mask is saved for the image it was made on
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

    def set_tool(self, tool: str) -> None:
        """"prompt" | "box" | "brush" | "erase": what a click or drag on the canvas does."""
        self.canvas_input.tool = tool
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
        self.canvas.set_image(display_image(item.image, item.valid), item.original_size)  # no-data drawn as such
        self.canvas.set_gt(item.gt)
        self._update_title()
        pair = self.dataset.pairs[self.controller.row]
        if item.gt is None and pair.mask is not None:
            self.image_list.set_problem(self.controller.row, f"GT unusable: {item.gt_problem}")
        if self.controller.restore_problem:  # a failed save of this image, a damaged or changed stored mask
            self.show_message(f"{pair.image.name}: {self.controller.restore_problem}")
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
        segmenter = self.controller.session.segmenter
        self.compute_label.setText(f"{model_id.split(':')[0]} · {segmenter.compute_label}")
        self.auto_action.setEnabled(segmenter.capabilities.auto_masks)

    def _on_session_failed(self, message: str) -> None:
        self.show_message(f"Cannot load {self.models.model}: {message}. Using the classic backend.")
        if self.models.model != CLASSIC:
            self.use_model(CLASSIC)

    def _on_markers(self, points, labels, box, pending: bool) -> None:
        self.canvas.set_markers(points, labels, box, pending)

    def _on_metrics(self, metrics, has_gt: bool) -> None:
        self.metrics_panel.set_metrics(metrics, has_gt)
        self.compare.refresh()
        if has_gt:
            self.image_list.set_iou(self.controller.row, None if metrics is None else metrics.iou)
        self.project.mark_in_progress()

    def _on_history(self, can_undo: bool, can_redo: bool) -> None:
        """Called after every annotation change: undo/redo state and the in-progress autosave."""
        self.undo_action.setEnabled(can_undo)
        self.redo_action.setEnabled(can_redo)
        self.project.annotation_changed()

    # ------------------------------------------------------------------------------------------------ actions

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of flood photos",
                                                  str(self.folder) if self.folder else "")
        if folder:
            self.open_folder(folder)

    def _on_opacity(self, value: int) -> None:
        self.canvas.set_opacity(value / 100)

    # ------------------------------------------------------------------------------------------------ Qt events

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        QTimer.singleShot(0, self, self._reshow_status_message)

    def _reshow_status_message(self) -> None:
        """A message shown before the window was (Loading …) left the project label visible under it: QStatusBar
        hides only the widgets that are visible when a message comes. Show it again now that they are."""
        status = self.statusBar()
        message = status.currentMessage()
        if message:  # (showMessage ignores the message it already shows)
            status.clearMessage()
            status.showMessage(message)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        if not self.project.may_close():  # edits that failed to save would be lost: the user chose to stay
            event.ignore()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("view/opacity", self.opacity_slider.value())
        self.settings.setValue("model/last", self.models.model)
        self.model_panel.cancel_download()
        self.project.finish_pending()  # masks still owed (a map's full resolution): saved first, bounded, UI alive
        self.finetune_panel.shutdown(timeout=60)
        self.controller.shutdown()
        self.map_detail.shutdown()
        self.compare.shutdown()
        self.models.shutdown()
        self.project.close()  # closes off the UI thread and waits (bounded, UI alive): writes land, then the lock goes
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
        c.panels.after = AfterPaint(v.main_viewport).call  # a click's overlay is painted before the side panels
        c.mask_changed.connect(self.compare.update)
        self.compare.changed.connect(self.models.on_compared)
        self.compare.failed.connect(self.show_message)
        self.compare_combo.activated.connect(self.models.on_compare_combo)
        c.candidates_changed.connect(self.candidates.set_candidates)
        c.metrics_changed.connect(self._on_metrics)
        c.scored.connect(self.image_list.set_confidence)
        c.metrics_changed.connect(self.project.on_native_ready)
        c.clicks_changed.connect(self.metrics_panel.set_clicks)
        c.area_changed.connect(self.metrics_panel.set_area)
        c.refiner.progress.connect(self.statusBar().showMessage)  # a map's full-resolution refine
        c.history_changed.connect(self._on_history)
        c.message.connect(self.show_message)
        self.candidates.chosen.connect(c.choose_candidate)
        self.image_list.row_selected.connect(self.select_image)
        self.embed_cancel.clicked.connect(c.cancel_embedding)
        self._embed_timer.timeout.connect(self._tick_embedding)
        self._auto_timer.timeout.connect(self._tick_auto)
        self.auto_cancel.clicked.connect(c.cancel_auto)
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.model_combo.activated.connect(self.models.on_model_combo)
        self.model_panel.backend_changed.connect(self.models.on_backend_changed)
        self.model_panel.recommendation_changed.connect(self.models.on_recommendation)
        self.finetune_panel.checkpoint_ready.connect(self.models.on_finetuned)
        self.models.model_changed.connect(self._update_finetune_context)
        self.project.opened.connect(self._on_project_opened)

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

    def _update_finetune_context(self) -> None:
        self.finetune_panel.set_context(self.dataset, self.project.project_store, self.models.model or None)

    def _set_hover(self, on: bool) -> None:
        self.controller.hover_enabled = on

    def _update_title(self) -> None:
        if self.dataset is None or self.controller.row < 0:
            self.setWindowTitle("FloodLabel")
            return
        pair = self.dataset.pairs[self.controller.row]
        self.setWindowTitle(f"{pair.image.name} ({self.controller.row + 1} / {len(self.dataset.pairs)}) — FloodLabel")

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
