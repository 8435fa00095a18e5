"""Qt widgets and the threads behind them. Calls floodlabel.core; holds no model math.

Layers (import-linter holds them): app (the QApplication and the window factory, the only module the CLI imports)
> window (the annotation window and its collaborators) > dialogs | panels | canvas > workers (core calls off the
UI thread, reported through signals). resources, qt_platform and quit_signals are small helpers any layer may use.
"""
