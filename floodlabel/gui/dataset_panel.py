"""The "Dataset" panel: open a folder and see how its images and masks pair up (listing and headers only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout,
                               QWidget)

from floodlabel.core.data.datasets import open_dataset
from floodlabel.gui.workers.background import BackgroundCall

MAX_EXAMPLES = 3


@dataclass(frozen=True)
class DatasetSummary:
    """Counts shown for a dataset folder. `has_mask_folder` is False for a folder of images only.
    `mismatch_examples` are "stem: WxH image, WxH mask" lines (at most MAX_EXAMPLES)."""

    root: Path
    image_dir: Path
    mask_dir: Path | None
    pairs: int
    images: int
    images_without_masks: int
    masks_without_images: int
    size_mismatches: int
    mismatch_examples: tuple[str, ...]
    unreadable: int
    duplicates: int
    metadata_problems: int

    @property
    def has_mask_folder(self) -> bool:
        return self.mask_dir is not None


def summarize_dataset(folder: str | Path) -> DatasetSummary:
    """Open `folder` with `core.datasets.open_dataset` and count; reads image headers only. Raises DatasetError."""
    ds = open_dataset(folder)
    mismatches = ds.size_mismatches
    examples = tuple(f"{m.stem}: {m.image_size[0]}×{m.image_size[1]} image, {m.mask_size[0]}×{m.mask_size[1]} mask"
                     for m in mismatches[:MAX_EXAMPLES])
    return DatasetSummary(
        root=ds.root, image_dir=ds.image_dir, mask_dir=ds.mask_dir, pairs=len(ds.complete_pairs),
        images=len(ds.pairs), images_without_masks=len(ds.images_without_masks),
        masks_without_images=len(ds.masks_without_images), size_mismatches=len(mismatches),
        mismatch_examples=examples, unreadable=len(ds.unreadable), duplicates=len(ds.duplicates),
        metadata_problems=len(ds.metadata_problems()),
    )


class DatasetPanel(QGroupBox):
    """"Open folder…" (or `open_folder(path)`), then the pairing counts; a bad folder shows `error_label`.

    Emits `summary_ready(DatasetSummary)` and `failed(message)`. Only the latest opened folder is shown.
    """

    summary_ready = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Dataset", parent)
        self.summary: DatasetSummary | None = None
        self._call: BackgroundCall | None = None
        self._folder = ""

        self.open_button = QPushButton("Open folder…")
        self.path_label = QLabel("No folder opened.")
        self.hint_label = QLabel("Layouts: Image/ + Mask/ (Kaggle, with metadata.csv), images/ + masks/, "
                                 "or a folder of images (with an optional masks/ folder inside).")
        self.values: dict[str, QLabel] = {key: QLabel("–") for key in _ROWS}
        self.examples_label = QLabel()
        self.error_label = QLabel()

        self._build()
        self.open_button.clicked.connect(self.choose_folder)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a dataset folder",
                                                  str(self.summary.root) if self.summary else "")
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> None:
        """List `folder` in the background; the counts (or the error) appear when it is done."""
        self._folder = str(folder)
        self.path_label.setText(f"Opening {folder} …")
        self.error_label.setVisible(False)
        call = BackgroundCall(lambda: summarize_dataset(folder))
        # bound methods of this widget, so the slots run on the UI thread (queued), never in the worker
        call.succeeded.connect(self._show)
        call.failed.connect(self._show_error)
        self._call = call
        call.start()

    def _show(self, summary: DatasetSummary) -> None:
        if self._call is None or self.sender() is not self._call.relay:
            return  # a later folder was opened meanwhile
        self.summary = summary
        where = str(summary.root)
        if summary.mask_dir is not None:
            where += f"  (images: {summary.image_dir.name}/, masks: {summary.mask_dir.name}/)"
        self.path_label.setText(where)
        counts = {
            "pairs": f"{summary.pairs} of {summary.images} images",
            "images_without_masks": (str(summary.images_without_masks) if summary.has_mask_folder
                                     else f"{summary.images} (no mask folder found)"),
            "masks_without_images": str(summary.masks_without_images),
            "size_mismatches": str(summary.size_mismatches),
            "other": _other_problems(summary),
        }
        for key, text in counts.items():
            self.values[key].setText(text)
            problem = text != ("none" if key == "other" else "0") and key != "pairs"
            self.values[key].setStyleSheet("color: #b35900; font-weight: bold;" if problem else "")
        examples = list(summary.mismatch_examples)
        if summary.size_mismatches > len(examples):
            examples.append(f"… and {summary.size_mismatches - len(examples)} more: "
                            f"`floodlabel stats {summary.root}` lists them all")
        self.examples_label.setText("\n".join(examples))
        self.examples_label.setVisible(bool(summary.mismatch_examples))
        self.summary_ready.emit(summary)

    def _show_error(self, message: str) -> None:
        if self._call is None or self.sender() is not self._call.relay:
            return
        self.summary = None
        self.path_label.setText(self._folder)
        for label in self.values.values():
            label.setText("–")
            label.setStyleSheet("")
        self.examples_label.setVisible(False)
        self.error_label.setText(f"Cannot open this folder: {message}")
        self.error_label.setVisible(True)
        self.failed.emit(message)

    def _build(self) -> None:
        for label in (self.path_label, self.hint_label, self.examples_label, self.error_label):
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hint_label.setStyleSheet("color: gray;")
        self.error_label.setStyleSheet("color: #c62828;")
        self.error_label.setVisible(False)
        self.examples_label.setVisible(False)

        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.path_label, 1)
        form = QFormLayout()
        for key, title in _ROWS.items():
            form.addRow(title, self.values[key])

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.hint_label)
        layout.addLayout(form)
        layout.addWidget(self.examples_label)
        layout.addWidget(self.error_label)
        layout.addStretch(1)


# ----------------------------------------------------------------------------------------------------- helpers

_ROWS = {
    "pairs": "Image–mask pairs:",
    "images_without_masks": "Images without masks:",
    "masks_without_images": "Masks without images:",
    "size_mismatches": "Size mismatches:",
    "other": "Other problems:",
}


def _other_problems(summary: DatasetSummary) -> str:
    parts = [f"{n} {what}" for n, what in ((summary.unreadable, "unreadable files"),
                                          (summary.duplicates, "duplicate stems skipped"),
                                          (summary.metadata_problems, "metadata.csv disagreements")) if n]
    return ", ".join(parts) or "none"
