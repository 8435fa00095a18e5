"""`floodlabel export PROJECT_OR_DATA --out DIR [--format png,coco,geotiff,gpkg,geojson,labelme,yolo]
[--simplify TOLERANCE] [--project DIR] [--overwrite]`; the summary gives each image's water area (ha with a CRS,
pixels without) and the total."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export accepted masks as PNG files and COCO JSON",
        description="Write the accepted masks of a project into DIR: DIR/Mask/<image stem>.png (0/255 greyscale, "
                    "the image's native size), DIR/coco.json (RLE segmentations, category 'water') and a link "
                    "DIR/Image to the images, so that `floodlabel stats DIR` and `floodlabel eval DIR` read the "
                    "export as a dataset. Files the export did not write are never deleted, nor "
                    "overwritten without --overwrite. DIR may not be the dataset "
                    "folder, its image or mask folders, the project folder, / or your home folder (a new folder "
                    "inside the dataset folder is fine). Works while the app has the project open.")
    parser.add_argument("source", metavar="PROJECT_OR_DATA",
                        help="a project folder (holds project.sqlite) or the dataset folder whose project to export")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="export folder (created if needed; checked before anything is written)")
    parser.add_argument("--format", default="png,coco", metavar="FORMATS",
                        help="comma-separated: png, coco, geotiff (DIR/GeoTIFF/<stem>.tif, uint8 0/1 with the "
                             "map's CRS), gpkg (DIR/GeoPackage/<stem>.gpkg), geojson (DIR/GeoJSON/<stem>.geojson): "
                             "polygons with holes in the map's CRS, for GeoTIFF images only; labelme "
                             "(DIR/labelme/<stem>.json), yolo (DIR/labels/<stem>.txt): pixel polygons for every "
                             "image (default: png,coco)")
    parser.add_argument("--simplify", type=float, default=0.0, metavar="TOLERANCE",
                        help="simplify the polygons by this tolerance (map units, pixels for labelme/yolo); "
                             "default 0: exact polygons")
    parser.add_argument("--project", metavar="DIR",
                        help="the project folder, when it is not the default one of PROJECT_OR_DATA")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files in DIR that an earlier export did not write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from floodlabel.core.export.project_export import export_project
    from floodlabel.core.store.project_store import ProjectStore

    with _open_store(args.source, args.project) as store:
        if store.orphans:  # masks the database does not list: exported only once recovered
            print(f"floodlabel: warning: {len(store.orphans)} accepted mask(s) in {store.masks_dir} are not in the "
                  f"project database and are not exported; run `floodlabel recover {shlex.quote(str(args.source))}"
                  f"{f' --project {shlex.quote(str(args.project))}' if args.project else ''}` to restore them",
                  file=sys.stderr)
        bar = tqdm(total=0, desc="export", unit="mask", file=sys.stderr, leave=False, disable=None)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            result = export_project(store, args.out, formats=args.format.split(","), overwrite=args.overwrite,
                                    progress=progress, simplify=args.simplify)
        finally:
            bar.close()
        assert isinstance(store, ProjectStore)
    print(f"Exported {result.exported} accepted mask(s) to {result.out_dir}")
    if result.masks:
        print(f"  masks:  {result.out_dir / 'Mask'}")
    if result.coco_path:
        print(f"  COCO:   {result.coco_path}")
    if result.image_link:
        print(f"  images: {result.image_link} -> {result.image_link.readlink()}")
    for fmt, paths in result.files.items():
        print(f"  {fmt + ':':9}{len(paths)} file(s) in {paths[0].parent}")
    _print_areas(result)
    if result.removed:
        print(f"  removed {len(result.removed)} mask(s) of an earlier export whose image is no longer accepted")
    for note in result.notes:
        print(f"floodlabel: note: {note}", file=sys.stderr)
    for rel_path, reason in result.skipped:
        print(f"floodlabel: warning: skipped {rel_path}: {reason}", file=sys.stderr)
    if result.skipped:
        print(f"floodlabel: error: {len(result.skipped)} accepted image(s) were not exported (listed above)",
              file=sys.stderr)
        return 2
    return 0


AREA_LINES = 20
"""Images whose area the summary lists one by one (the totals cover all)."""


def _print_areas(result) -> None:
    """Each image's water area and the totals (ha over the images with a CRS, pixels over those without)."""
    if not result.areas:
        return
    print("  water area:")
    for rel_path, area in result.areas[:AREA_LINES]:
        print(f"    {rel_path}: {area.describe()}")
    if len(result.areas) > AREA_LINES:
        print(f"    ... and {len(result.areas) - AREA_LINES} more image(s)")
    m2, pixels = result.total_area()
    if m2 is not None:
        print(f"  total: {m2 / 10_000:.4f} ha ({m2:,.1f} m²) over the images with a CRS")
    if pixels:
        print(f"  total: {pixels:,} px over the images without a CRS (area in pixels)")


def _open_store(source: str, project: str | None):
    """The project read-only: an export never changes it, and works beside a window that has it open."""
    from floodlabel.core.common.errors import StoreError
    from floodlabel.core.store.project_store import ProjectStore, find_project_dir, is_project_dir

    if project is not None:
        data_root = None if is_project_dir(source) else source
        return ProjectStore(data_root, project, read_only=True)
    if is_project_dir(source):
        return ProjectStore(project_dir=source, read_only=True)
    if not Path(source).is_dir():
        raise StoreError(f"{source} is not a folder")
    found = find_project_dir(source)
    if found is None:
        raise StoreError(f"{source} has no FloodLabel project yet (accept some images in the app first, or pass "
                         "--project DIR)")
    return ProjectStore(source, found, read_only=True)
