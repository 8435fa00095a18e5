"""The project on disk: the crash-safe store (SQLite + mask PNGs with sidecars), where it lives, and
recovery. Exporting a project is `floodlabel.core.export` (it imports this package, never the other way round).

Modules: `project_store` (ProjectStore, the one door in: statuses, autosave, accept), its parts `schema`
(tables, statements, opening the database), `records` (Status, ImageRecord), `image_files` (an image's key, hash
and size), `proposals` (a model's proposals awaiting review: ProposalTable, ProposalRecord), `writer_lock` (one
writer per project), `location` (where a project folder is), `mask_files` and `mask_sidecar` (the files in masks/),
`orphan_masks` and `orphan_recovery` (masks no row points to), `resume` (where a reopened project lands),
`recovery` (recover_project after a damaged database).

May import: floodlabel.core.common, .data, .annotation.
"""
