"""Qt-free core: every feature works here first, and the CLI and the gui call it.

Packages by concern, each importing only itself and the packages below it (import-linter holds this in CI):
    training     fine-tuning SAM's mask decoder on cached embeddings
    evaluation   metrics, prompts from ground truth, click simulation and NoC, runners, report, comparison
    cluster      Ray connection, batch embedding
    store        the project store, recovery, export          | models   registry, downloads, session, Auto
    sam          SAM v1                                       | classic  the offline GrabCut family
    segment      the Segmenter protocol, embedding cache, compute settings
    annotation   one image's annotation: prompts, strokes, undo
    data         datasets, images, statistics
    common       errors, cancellation, folders, atomic files, hashing
Never imports Qt, pyqtgraph, floodlabel.gui or floodlabel.commands.
"""
