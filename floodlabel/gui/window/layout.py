"""How the annotation window is put together: its actions (with their shortcuts), menus, toolbar, docks and status
bar. Functions of the window (`w`), called once from AnnotationWindow.__init__: build_actions before the
window's collaborators exist (they are given the actions), build_layout after."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFrame, QHBoxLayout, QLabel, QMenu, QScrollArea, QToolBar, QVBoxLayout,
                               QWidget)

from floodlabel.gui.dialogs.help_dialog import ACTION_KEYS, show_help

TOOLS = {"prompt": "Points: left click adds water, right click adds not-water; Shift+drag draws a box; "
                   "drag pans, wheel zooms",
         "box": "Box: drag a box around the water; the mask follows while you drag",
         "brush": "Brush: paint water onto the mask ([ and ] change the size)",
         "erase": "Eraser: remove water from the mask ([ and ] change the size)"}
"""What each tool does, shown in the status bar when it is picked."""


def build_actions(w) -> None:
    """The window's QActions (shortcuts from help_dialog.ACTION_KEYS: one table for the actions and the help)."""
    def keys(action_id: str) -> list[QKeySequence]:
        return [QKeySequence(k) for k in ACTION_KEYS[action_id]]  # one table for the actions and the help

    def action(text: str, slot, shortcut=None, checkable: bool = False, tip: str = "") -> QAction:
        a = QAction(text, w)
        if shortcut is not None:
            a.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        a.setCheckable(checkable)
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(f"{tip} ({a.shortcut().toString()})" if a.shortcut().toString() else tip)
        (a.toggled if checkable else a.triggered).connect(slot)
        w.addAction(a)  # shortcuts work whatever has focus
        return a

    c = w.controller
    w.open_action = action("&Open folder…", w.choose_folder, keys("open_folder"),
                           tip="Open a folder of flood photos")
    w.next_action = action("&Next image", w.next_image,
                           keys("next_image"), tip="Next image")
    w.prev_action = action("&Previous image", w.previous_image,
                           keys("previous_image"), tip="Previous image")
    w.undo_action = action("&Undo", c.undo, keys("undo"), tip="Undo the last step")
    w.redo_action = action("&Redo", c.redo, keys("redo"),
                           tip="Redo")
    w.drop_action = action("&Drop prompts", c.drop_prompts, keys("drop_prompts"),
                           tip="Remove the points and the box (brush strokes stay)")
    w.clear_action = action("&Clear mask", c.clear, keys("clear_mask"),
                            tip="Empty the mask: prompts and strokes (undo brings them back)")
    w.auto_action = action("&Auto", w.run_auto, keys("auto"),
                           tip="Automatic mask generation: every SAM segment containing a positive point")
    w.fit_action = action("&Fit to window", w.canvas.fit, keys("fit"), tip="Fit the image to the view")
    w.overlay_action = action("Show &mask overlay", w.canvas.set_overlay_visible, keys("toggle_overlay"),
                              checkable=True, tip="Show or hide the predicted mask")
    w.outline_action = action("Show &GT outline", w.canvas.set_gt_outline_visible, keys("toggle_gt_outline"),
                              checkable=True, tip="Outline the ground truth on the prediction view")
    w.gt_view_action = action("Show ground-truth &view", w.canvas.set_gt_view_visible, keys("toggle_gt_view"),
                              checkable=True, tip="Show the ground truth beside the prediction")
    w.hover_action = action("&Hover preview", w._set_hover, keys("toggle_hover_preview"), checkable=True,
                            tip="Before the first click, show the mask a click would give")
    w.help_action = action("&Keyboard shortcuts…", lambda: show_help(w), keys("help"),
                           tip="Shortcuts and how the brush works")
    w.models_action = action("&Models…", w.show_models_dock, tip="SAM checkpoints and downloads")
    w.compare_dataset_action = action("&Compare on dataset…", w.open_compare_dataset,
                                      tip="Evaluate two models on this dataset with the same prompts")
    w.quit_action = action("&Quit", w.close, QKeySequence.StandardKey.Quit)
    action("Smaller brush", lambda: w.canvas_input.change_brush(-1), keys("brush_smaller"))
    action("Larger brush", lambda: w.canvas_input.change_brush(+1), keys("brush_larger"))
    for i in range(3):
        action(f"Candidate {i + 1}", lambda _=False, i=i: c.choose_candidate(i), keys(f"candidate_{i + 1}"))
    w.accept_action = action("&Accept", w.accept_mask, keys("accept"),
                             tip="Save the mask at the image's size with its prompts, then go to the next "
                                 "image not accepted yet")
    w.accept_action.setEnabled(False)
    w.export_action = action("&Export masks…", w.export_masks, keys("export"),
                             tip="Write the accepted masks as PNG files and COCO JSON")
    w.export_action.setEnabled(False)

    w.tool_actions: dict[str, QAction] = {}
    group = QActionGroup(w)
    for tool, (text, key) in {"prompt": ("Points", "prompt_tool"), "box": ("Box", "box_tool"),
                              "brush": ("Brush", "brush_tool"), "erase": ("Eraser", "eraser_tool")}.items():
        a = action(text, lambda checked, t=tool: checked and w.set_tool(t), keys(key), checkable=True,
                   tip=TOOLS[tool])
        group.addAction(a)
        w.tool_actions[tool] = a
    for a in (w.overlay_action, w.gt_view_action, w.hover_action):
        a.setChecked(True)


def build_layout(w) -> None:
    """Menus, the toolbar, the central canvas with its banners, the docks and the status bar."""
    menu = w.menuBar()
    file_menu = menu.addMenu("&File")
    file_menu.addAction(w.open_action)
    w.recent_menu = QMenu("Open &recent", w)
    file_menu.addMenu(w.recent_menu)
    file_menu.addAction(w.export_action)
    file_menu.addSeparator()
    file_menu.addAction(w.quit_action)
    edit = menu.addMenu("&Edit")
    for a in (w.undo_action, w.redo_action, None, w.drop_action, w.clear_action, None,
              w.accept_action):
        edit.addSeparator() if a is None else edit.addAction(a)
    tools = menu.addMenu("&Tools")
    for a in (*w.tool_actions.values(), None, w.auto_action, w.hover_action):
        tools.addSeparator() if a is None else tools.addAction(a)
    view = menu.addMenu("&View")
    for a in (w.fit_action, w.overlay_action, w.outline_action, w.gt_view_action):
        view.addAction(a)
    w.view_menu = view
    go = menu.addMenu("&Go")
    go.addAction(w.prev_action)
    go.addAction(w.next_action)
    model_menu = menu.addMenu("&Model")
    model_menu.addAction(w.models_action)
    model_menu.addAction(w.compare_dataset_action)
    help_menu = menu.addMenu("&Help")
    help_menu.addAction(w.help_action)

    bar = QToolBar("Tools")
    bar.setObjectName("tools")
    short = {w.open_action: "Open", w.prev_action: "◀ Prev", w.next_action: "Next ▶",
             w.clear_action: "Clear", w.fit_action: "Fit", w.overlay_action: "Overlay",
             w.outline_action: "GT outline", w.hover_action: "Hover"}
    for a, text in short.items():
        a.setIconText(text)
    for a in (w.open_action, None, w.prev_action, w.next_action, None, *w.tool_actions.values(),
              None, w.undo_action, w.redo_action, w.clear_action, w.auto_action, None,
              w.fit_action, w.overlay_action, w.outline_action, w.hover_action, None,
              w.accept_action):
        bar.addSeparator() if a is None else bar.addAction(a)
    w.addToolBar(bar)
    w.opacity_slider.setRange(10, 100)
    w.opacity_slider.setValue(50)

    w.banner.setText(
        "<b>No SAM checkpoint yet</b>: using the offline classic backend (OpenCV GrabCut), which is rougher. "
        "Get a SAM model (sam2.1_hiera_tiny without a GPU, vit_b with one) with <a href='models'>Model → Models… → "
        "Download</a>, or run <code>floodlabel models download NAME</code>, or start with <code>--model "
        "path/to/checkpoint</code>.")
    w.banner.setWordWrap(True)
    w.banner.setStyleSheet("background: #fff4d6; color: #5a4500; padding: 6px; border: 1px solid #e6c66b;")
    w.banner.linkActivated.connect(lambda _: w.show_models_dock())
    w.banner.setVisible(False)
    w.message_label.setWordWrap(True)
    w.message_label.setStyleSheet("background: #fde7e7; color: #8a1c1c; padding: 4px;")
    w.message_label.setVisible(False)

    central = QWidget()
    layout = QVBoxLayout(central)
    layout.setContentsMargins(2, 2, 2, 2)
    layout.addWidget(w.banner)
    layout.addWidget(w.project_notice)
    layout.addWidget(w.message_label)
    layout.addWidget(w.canvas, 1)
    w.setCentralWidget(central)

    w.image_list.setObjectName("images")
    w.image_list.setMinimumWidth(w.image_list.preferred_width())  # every column whole, never scrolled sideways
    w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, w.image_list)

    side = QWidget()
    side_layout = QVBoxLayout(side)
    model_row = QHBoxLayout()
    model_row.addWidget(QLabel("Model"))
    model_row.addWidget(w.model_combo, 1)
    side_layout.addLayout(model_row)
    opacity_row = QHBoxLayout()
    opacity_row.addWidget(QLabel("Opacity"))
    opacity_row.addWidget(w.opacity_slider, 1)
    side_layout.addLayout(opacity_row)
    side_layout.addWidget(w.text_panel)  # the text prompt (SAM 3): enabled for a model that takes one
    side_layout.addWidget(QLabel("<b>SAM's candidates</b> (keys 1 / 2 / 3)"))
    side_layout.addWidget(w.candidates)
    side_layout.addWidget(w.metrics_panel)
    compare_row = QHBoxLayout()
    compare_row.addWidget(QLabel("Compare with"))
    compare_row.addWidget(w.compare_combo, 1)
    side_layout.addLayout(compare_row)
    w.compare_label.setWordWrap(True)
    side_layout.addWidget(w.compare_label)
    side_layout.addStretch(1)
    w.mask_dock = _right_dock(w, "Mask", "mask", side, scroll=False)
    w.dataset_dock = _right_dock(w, "Dataset", "dataset", w.dataset_view)
    w.models_dock = _right_dock(w, "Models", "models", w.model_panel)
    w.finetune_dock = _right_dock(w, "Fine-tune", "finetune", w.finetune_panel)
    w.tabifyDockWidget(w.dataset_dock, w.models_dock)
    w.tabifyDockWidget(w.models_dock, w.finetune_dock)
    w.dataset_dock.raise_()
    w.resizeDocks([w.image_list, w.mask_dock], [w.image_list.preferred_width(), 300], Qt.Orientation.Horizontal)
    w.resizeDocks([w.mask_dock, w.dataset_dock], [420, 300], Qt.Orientation.Vertical)
    for dock in (w.image_list, w.mask_dock, w.dataset_dock, w.models_dock, w.finetune_dock):
        w.view_menu.addAction(dock.toggleViewAction())

    status = w.statusBar()
    status.addWidget(w.project_label)
    status.addPermanentWidget(w.compute_label)
    status.addPermanentWidget(w.auto_label)
    status.addPermanentWidget(w.auto_cancel)
    w.auto_cancel.setVisible(False)
    status.addPermanentWidget(w.embed_label)
    status.addPermanentWidget(w.embed_cancel)
    w.embed_cancel.setVisible(False)
    w._fill_recent_menu()
    w.set_tool("prompt")
    screen = w.screen().availableGeometry() if w.screen() is not None else None
    if screen is not None and screen.width() > 0:
        w.setGeometry(screen.adjusted(0, 0, 0, 0) if screen.width() < 1500 else
                         screen.adjusted(screen.width() // 20, screen.height() // 20,
                                         -screen.width() // 20, -screen.height() // 20))
    else:
        w.resize(1280, 760)


def _right_dock(w, title: str, name: str, widget: QWidget, scroll: bool = True) -> QDockWidget:
    """A dock on the right named `name` (saved with the window state); `scroll`: inside a scroll area, so a tall
    panel never pushes the window past a 768-px screen."""
    dock = QDockWidget(title, w)
    dock.setObjectName(name)
    if scroll:
        area = QScrollArea()
        area.setWidget(widget)
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        widget = area
    dock.setWidget(widget)
    w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    return dock
