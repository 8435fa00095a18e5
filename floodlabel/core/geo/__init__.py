"""Maps: georeferenced rasters, water area in m² / ha, polygons with holes, and the GIS and polygon file formats.

What it is for: FloodLabel's masks live in an image's pixel frame; this package ties them to the ground.
- `georef`: `GeoInfo` (CRS, affine transform, size, nodata) of a GeoTIFF, read from its header with rasterio.
- `raster`: a GeoTIFF as a display image: bands to RGB, nodata kept as a validity mask, 16-bit stretched, optionally
  decimated (rasterio reads a reduced overview level when the file has one).
- `area`: a mask's water area: m² / ha from the pixel size (projected CRS) or through an equal-area projection
  (geographic CRS), pixels (and "no CRS") for plain photos.
- `polygons`: mask -> shapely polygons with their holes, one per 4-connected region, in map (or pixel) coordinates;
  and back (rasterize).
- `gis_formats`: GeoTIFF mask, GeoPackage and GeoJSON as bytes (the export writes them atomically).
- `photo_formats`: labelme JSON and YOLO-seg text for plain photos.

Imports: numpy, rasterio, shapely, pyogrio and `floodlabel.core.common` only. No Qt, no torch, nothing from the
rest of core (core.data and core.export import this package, not the other way round).
"""
