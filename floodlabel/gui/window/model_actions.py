"""The annotation window's model side: the model selector, compare mode (a second model on the same prompts),
compare on dataset, and checkpoints from the Fine-tune panel. A collaborator of AnnotationWindow, given the window
parts it uses."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QStatusBar, QWidget

import html

from floodlabel.core.models.registry import CLASSIC, MODELS, is_downloaded
from floodlabel.gui.canvas.mask_canvas import MaskCanvas
from floodlabel.gui.dialogs.compare_dataset import CompareDatasetDialog
from floodlabel.gui.panels.image_list import ImageListDock
from floodlabel.gui.panels.model_status import CLASSIC_LABEL, choose_backend, first_guess_gpu, recommended
from floodlabel.gui.window.compare_controller import CompareController
from floodlabel.gui.window.segmentation_controller import SegmentationController
from floodlabel.gui.workers.background import BackgroundCall


class ModelActions(QObject):
    """Which model segments (`model`), which one it is compared with (`compare_model`, "" = off), and the
    checkpoints a fine-tune adds. Emits `model_changed()` when `use_model` picks another model.

    `select_image(row)` shows an image; `show_message(text)` is the window's message line; `requested_model` the
    --model value.
    """

    model_changed = Signal()

    def __init__(self, controller: SegmentationController, compare: CompareController, canvas: MaskCanvas,
                 image_list: ImageListDock, model_combo: QComboBox, compare_combo: QComboBox, compare_label: QLabel,
                 banner: QLabel, status_bar: QStatusBar, settings: QSettings, select_image: Callable[[int], None],
                 show_message: Callable[[str], None], requested_model: str | None, parent: QWidget) -> None:
        super().__init__(parent)
        self.controller = controller
        self.compare = compare
        self.canvas = canvas
        self.image_list = image_list
        self.model_combo = model_combo
        self.compare_combo = compare_combo
        self.compare_label = compare_label
        self.banner = banner
        self.status_bar = status_bar
        self.settings = settings
        self.select_image = select_image
        self.show_message = show_message
        self.requested_model = requested_model
        self.window = parent
        self.model = ""
        self.compare_model = ""
        self.extra_models: dict[str, str] = {}  # fine-tuned checkpoints made in this session: path -> label
        self.compare_call: BackgroundCall | None = None
        self.agreement_call: BackgroundCall | None = None  # A<->B agreement of a large image (`_measure_agreement`)
        self.compare_dataset_dialog: CompareDatasetDialog | None = None
        self.recommended = recommended(first_guess_gpu())  # torch-free; the Models panel confirms it

    def use_model(self, model: str) -> None:
        """Load `model` in the background; the current image is re-embedded and its prompts kept."""
        self.model = model
        self._select_combo(model)
        if model == CLASSIC:
            self.banner.setText(banner_html(*self.recommended))
        self.banner.setVisible(model == CLASSIC)
        self.status_bar.showMessage(f"Loading {model} …")
        self.controller.open_session(model)
        self.model_changed.emit()

    def show_image_with_prompt(self, row: int, prompt) -> None:
        """Open dataset row `row` with `prompt` (a core Prompt, original frame) as its prompts: e.g. the prompt an
        evaluation used, so both compared models predict from it. Replaces that image's unsaved prompts."""
        self.controller.pending_prompt = prompt
        if self.controller.row == row:
            self.controller.row = -1  # load it again so the prompt applies
        self.select_image(row)

    def compare_with(self, model: str | None) -> None:
        """Show model `model` (name or .pth; None or "" = off) beside the current one, on the same prompts."""
        self.compare_model = model or ""
        self.image_list.clear_agreement()  # A↔B values of another B
        if model and self.compare_combo.findData(model) < 0:
            self.extra_models[model] = Path(model).name  # a file not listed yet: list it in both selectors
            self.fill_models()
        self.compare_combo.setCurrentIndex(max(0, self.compare_combo.findData(self.compare_model)))
        if not model:
            self.compare.set_session(None)
            return
        from floodlabel.core.models.session import SegmentationSession

        self.compare_label.setText(f"Loading {Path(model).name} …")
        call = BackgroundCall(lambda: SegmentationSession.open(model))
        call.succeeded.connect(self._on_compare_session)
        call.failed.connect(lambda message: self.show_message(f"Cannot compare with {model}: {message}"))
        self.compare_call = call
        call.start()

    def open_compare_dataset(self) -> None:
        """Model → Compare on dataset…: A = this model, B = the compared one (both changeable); non-modal."""
        dataset = self.controller.dataset
        old = self.compare_dataset_dialog
        if old is not None and old.dataset is dataset:
            old.show()
            old.raise_()
            return
        if dataset is None:
            return
        models = [(self.model_combo.itemText(i), self.model_combo.itemData(i)) for i in range(self.model_combo.count())
                  if self.model_combo.model().item(i).isEnabled()]
        dialog = CompareDatasetDialog(dataset, models, self.model, self.compare_model or None, parent=self.window)
        dialog.open_image = lambda row, prompt: self._open_compared(dialog.model_a, dialog.model_b, row, prompt)
        self.compare_dataset_dialog = dialog
        dialog.show()

    def add_model(self, path: str, label: str) -> None:
        """A new checkpoint (a fine-tune just finished): listed in the model and compare selectors."""
        self.extra_models[path] = label
        self.fill_models()

    def on_finetuned(self, path: str, best_val_iou: float) -> None:
        self.add_model(path, f"{Path(path).stem} (val IoU {best_val_iou:.3f})")
        self.status_bar.showMessage(f"Fine-tuned checkpoint ready: {path} — pick it in Model or Compare with", 8000)

    def on_compare_combo(self, index: int) -> None:
        model = self.compare_combo.itemData(index)
        if model != self.compare_model:
            self.compare_with(model)

    def on_compared(self, b_mask, diff, b_metrics) -> None:
        """The compared model's mask arrived (None: compare is off): the canvas, the labels and A↔B agreement."""
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
            self._measure_agreement(self.controller.row, self.controller.native_mask, b_mask)
        if b_metrics is not None and a_metrics is not None:
            self.compare_label.setText(f"B: IoU {b_metrics.iou:.3f} (A − B: {a_metrics.iou - b_metrics.iou:+.3f}), "
                                       f"Dice {b_metrics.dice:.3f}. Pink: pixels where A and B differ.")
        else:
            self.compare_label.setText("Pink: pixels where A and B differ.")

    def _measure_agreement(self, row: int, a_mask, b_mask) -> None:
        """The list's A<->B agreement of `row`: here when both masks are the same size, else in a worker (B's view
        mask is resized to A's native size first: 0.4 GB at 20,000^2, about half a second)."""
        from floodlabel.core.evaluation.metrics import agreement

        if a_mask.shape == b_mask.shape:
            self.image_list.set_agreement(row, agreement(a_mask, b_mask))
            return
        call = BackgroundCall(lambda: (row, a_mask, agreement(a_mask, b_mask)))
        call.succeeded.connect(self._on_agreement)
        self.agreement_call = call
        call.start()

    def _on_agreement(self, result) -> None:
        row, a_mask, value = result
        if row == self.controller.row and a_mask is self.controller.native_mask:  # still the mask on screen
            self.image_list.set_agreement(row, value)

    def on_model_combo(self, index: int) -> None:
        model = self.model_combo.itemData(index)
        if model and model != self.model:
            self.use_model(model)

    def on_recommendation(self, name: str, reason: str) -> None:
        """The Models panel knows what this machine should download (GPU or not): the classic banner says it."""
        self.recommended = (name, reason)
        self.banner.setText(banner_html(name, reason))

    def on_backend_changed(self, choice) -> None:
        """The Models panel's backend changed (a download just finished): list it, and use it instead of classic."""
        self.fill_models()
        if choice.is_sam and self.model == CLASSIC:
            self.use_model(choice.model)

    def fill_models(self) -> None:
        """List every model in the model selector (not downloaded ones greyed out) and in Compare with."""
        self.model_combo.clear()
        for name in MODELS:
            self.model_combo.addItem(name if is_downloaded(name) else f"{name} (not downloaded)", name)
            if not is_downloaded(name):
                self.model_combo.model().item(self.model_combo.count() - 1).setEnabled(False)
        if self.requested_model and self.requested_model not in MODELS and self.requested_model != CLASSIC:
            self.model_combo.addItem(Path(self.requested_model).name, self.requested_model)
        self.model_combo.addItem(CLASSIC_LABEL, CLASSIC)
        for path, label in self.extra_models.items():
            self.model_combo.addItem(label, path)
        self._select_combo(self.model)
        self.compare_combo.clear()
        self.compare_combo.addItem("(off)", "")
        for i in range(self.model_combo.count()):
            item = self.model_combo.model().item(i)
            self.compare_combo.addItem(self.model_combo.itemText(i), self.model_combo.itemData(i))
            self.compare_combo.model().item(i + 1).setEnabled(item.isEnabled())
        j = self.compare_combo.findData(self.compare_model)
        self.compare_combo.setCurrentIndex(max(0, j))

    def initial_model(self) -> str:
        """The model to start with: --model (a warning if it cannot be used), else the last one, else the default."""
        if self.requested_model:
            choice = choose_backend(self.requested_model)
            if choice.warning:
                self.show_message(choice.warning)
            return choice.model
        last = self.settings.value("model/last", "")
        if isinstance(last, str) and last and choose_backend(last).model == last:
            return last
        return choose_backend(None).model

    def shutdown(self) -> None:
        """Stop the compare-on-dataset run and wait briefly for a compared model still loading."""
        if self.compare_dataset_dialog is not None:
            self.compare_dataset_dialog.shutdown()
        if self.compare_call is not None:
            self.compare_call.join(5.0)

    # ------------------------------------------------------------------------------------------------ helpers

    def _open_compared(self, a: str, b: str, row: int, prompt) -> None:
        if a != self.model:
            self.use_model(a)
        if b != self.compare_model:
            self.compare_with(b)
        self.show_image_with_prompt(row, prompt)

    def _on_compare_session(self, session) -> None:
        if self.sender() is not (self.compare_call.relay if self.compare_call else None):
            return
        self.compare.set_session(session)

    def _select_combo(self, model: str) -> None:
        i = self.model_combo.findData(model)
        if i >= 0:
            self.model_combo.setCurrentIndex(i)


def banner_html(name: str, reason: str) -> str:
    """The banner above the canvas while the classic backend is used: which model to get here, why, and how."""
    size = f"{MODELS[name].size_bytes / 1e6:.0f} MB"
    why = reason if size in reason else f"{size}; {reason}"
    return (f"<b>No SAM checkpoint yet</b>: using the offline classic backend (OpenCV GrabCut), which is rougher. "
            f"Get <b>{html.escape(name)}</b> ({html.escape(why)}) with "
            f"<a href='models'>Model → Models… → Download</a>, or run <code>floodlabel models download "
            f"{html.escape(name)}</code>, or start with <code>--model path/to/checkpoint</code>.")
