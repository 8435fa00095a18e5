"""Exporting a project's accepted masks: PNG masks, COCO JSON, and the map and polygon formats (GeoTIFF, GeoPackage,
GeoJSON, labelme, YOLO-seg), into one chosen folder and nowhere else. It reads the project store; it never writes it.

Modules: `project_export` (export_project, ExportResult, ExportCancelled: writes the files; its docstring holds the
rules of where an export may go and what it may replace), `export_folder` (where an export may go), `export_manifest`
(the names in the export folder and the manifest of the export's own files), `coco` (coco.json).

May import: floodlabel.core.store, .geo (the map formats' bytes and areas), .data, .common. Nothing in core.store
imports this package.
"""
