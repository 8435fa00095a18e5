"""The project on disk: the crash-safe store (SQLite + mask PNGs with sidecars), where it lives,
recovery, and export.

Modules: `project_store` (ProjectStore, the one door in: statuses, autosave, accept), its parts `schema`
(tables, statements, opening the database), `records` (Status, ImageRecord), `writer_lock` (one writer per
project), `location` (where a project folder is), `mask_files` and `mask_sidecar` (the files in masks/),
`orphan_masks` and `orphan_recovery` (masks no row points to), `resume` (where a reopened project lands),
`recovery` (recover_project after a damaged database); `export` (export_project) with `export_folder` (where an export may go), `export_manifest` (the
export's own files) and `coco` (coco.json).

May import: floodlabel.core.common, .data, .annotation.
"""
