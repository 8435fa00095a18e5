"""Large images worked on through a small view and full-resolution tiles, behind the `Segmenter` protocol.

What it is for (issue 17): a drone map of 10,000-50,000 px cannot be decoded whole into the window, and SAM sees any
image through its 1024 px input. This package holds the Qt-free parts the window uses for such images:
- `map_item`: a large GeoTIFF opened as a `MapItem` (an `ImageItem` whose `image` is the map at view size, from
  `core.geo.pyramid.open_map`, while `original_size`, `geo` and every mask are the full map's).
- `view_frame`: `ViewFrameSession`, a session adapter that decodes prompts given in the full-resolution frame on an
  embedding of the view image, and upscales the mask to the full size when asked.
- `tiled`: the tiled decode: per-tile embeddings (cached per image key + tile origin), a prompt decoded on every
  tile it touches, stitched at full resolution with the one-owner seam rule of `core.geo.pyramid.tile_windows`.
- `detail`: the full-resolution window to read (and the mask crop to draw) when the window is zoomed in past the
  view image's own resolution.

Imports: numpy, cv2, `core.segment` (the Segmenter protocol, Prediction), `core.annotation` (Prompt), `core.data`
(ImageItem), `core.geo` and `core.common`. Never Qt, torch or a model family's package (sam, sam2, classic): a
backend reaches this package only as a `Segmenter` / `SegmentationSession` object.
"""
