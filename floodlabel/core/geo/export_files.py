"""The per-image files of the map and polygon export formats, as {format: bytes} (the store's export writes them
atomically into its folder and records them in its manifest).

| format   | file (in the export folder)   | georeferenced images                 | plain photos   | holes |
|----------|-------------------------------|--------------------------------------|----------------|-------|
| geotiff  | GeoTIFF/<stem>.tif            | uint8 0/1 mask, map's CRS/transform  | not written    | yes (raster) |
| gpkg     | GeoPackage/<stem>.gpkg        | polygons, map's CRS                  | not written    | yes   |
| geojson  | GeoJSON/<stem>.geojson        | polygons, map's CRS                  | not written    | yes   |
| labelme  | labelme/<stem>.json           | pixel coordinates                    | same           | as "_background_" shapes |
| yolo     | labels/<stem>.txt             | normalised pixel coordinates         | same           | cut into the ring |

Polygons come from `polygons.mask_to_polygons` (one per 4-connected region, holes kept), simplified only when
`simplify` > 0 (map units for the GIS formats, pixels for labelme / YOLO).
"""

from __future__ import annotations

import numpy as np

from floodlabel.core.geo import gis_formats, photo_formats
from floodlabel.core.geo.georef import GeoInfo
from floodlabel.core.geo.polygons import mask_to_polygons, simplified, to_map

GEO_FORMATS = ("geotiff", "gpkg", "geojson")
"""Written only for images with a CRS."""
PHOTO_FORMATS = ("labelme", "yolo")
"""Written for every image (pixel coordinates)."""
FOLDERS = {"geotiff": ("GeoTIFF", ".tif"), "gpkg": ("GeoPackage", ".gpkg"), "geojson": ("GeoJSON", ".geojson"),
           "labelme": ("labelme", ".json"), "yolo": ("labels", ".txt")}
"""format -> (folder in the export, file suffix); the file is named by the image's stem."""


def file_name(fmt: str, stem: str) -> str:
    """The export-relative name ("GeoPackage/<stem>.gpkg") of an image's file in `fmt`."""
    folder, suffix = FOLDERS[fmt]
    return f"{folder}/{stem}{suffix}"


def formats_for(formats: tuple[str, ...], geo: GeoInfo | None) -> tuple[str, ...]:
    """The formats of `formats` written for an image: the geo ones only when it has a CRS."""
    return tuple(f for f in formats if f in PHOTO_FORMATS or (f in GEO_FORMATS and geo is not None
                                                               and geo.georeferenced))


def image_files(mask: np.ndarray, geo: GeoInfo | None, formats: tuple[str, ...], *, image_path_for_labelme: str,
                simplify: float = 0.0) -> dict[str, bytes]:
    """{format: bytes} for one image's (H, W) bool mask. geo: its GeoInfo (None: a plain photo); formats: any of
    GEO_FORMATS + PHOTO_FORMATS (`formats_for` picks those that apply); image_path_for_labelme: the image's path
    relative to the labelme folder."""
    height, width = mask.shape
    chosen = formats_for(formats, geo)
    out: dict[str, bytes] = {}
    if "geotiff" in chosen:
        out["geotiff"] = gis_formats.geotiff_mask_bytes(mask, geo)
    if not any(f in chosen for f in ("gpkg", "geojson", "labelme", "yolo")):
        return out
    exact = mask_to_polygons(mask)  # pixel coordinates, polygonised once for every format
    if "gpkg" in chosen or "geojson" in chosen:
        polygons = simplified(to_map(exact, geo.transform), simplify)
        if "gpkg" in chosen:
            out["gpkg"] = gis_formats.gpkg_bytes(polygons, geo)
        if "geojson" in chosen:
            out["geojson"] = gis_formats.geojson_bytes(polygons, geo)
    if "labelme" in chosen or "yolo" in chosen:
        pixel_polygons = simplified(exact, simplify)
        if "labelme" in chosen:
            out["labelme"] = photo_formats.labelme_json(pixel_polygons, image_path_for_labelme,
                                                        (width, height)).encode()
        if "yolo" in chosen:
            out["yolo"] = photo_formats.yolo_seg_text(pixel_polygons, (width, height)).encode()
    return out
