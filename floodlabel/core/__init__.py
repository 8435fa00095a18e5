"""Qt-free core: every feature works here first, and the CLI and the gui call it.

Packages by concern, each importing only itself and the packages below it (import-linter holds this in CI):
    training     fine-tuning a model's mask decoder on cached embeddings
    evaluation   metrics, prompts from ground truth, click simulation and NoC, runners, report, comparison
    cluster      Ray connection, batch embedding and proposals
    export       a project's masks as PNG, COCO, polygons and GIS layers
    store        the project store, proposals, recovery            | models   registry, downloads, session, Auto
    sam2         SAM 2.1                                           | sam3     SAM 3 (text prompts)
    sam          SAM v1                                            | classic  the offline GrabCut family
    tiles        large images: a view plus full-resolution tiles behind the Segmenter protocol
    segment      the Segmenter protocol, embedding cache, compute settings, the shared decoder network
    annotation   one image's annotation: prompts (points, boxes, text), strokes, undo
    data         datasets, images, statistics
    geo          maps: GeoTIFF reading, areas, polygons with holes, GIS writers
    common       errors, cancellation, folders, atomic files, hashing
Never imports Qt, pyqtgraph, floodlabel.gui or floodlabel.commands.
"""
