"""Write the bundled sample dataset, resources/sample/, from the synthetic flood scenes of tests/synthetic_scenes.py.

    .venv/bin/python packaging/make_sample.py

The scenes are SYNTHETIC (drawn by code, seeded), not photos: the sample lets the app open something without any
download and shows the Kaggle layout (Image/*.jpg, Mask/*.png; 255 = water). Rerunning it rewrites the
same scenes (byte-identical with the same Pillow).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "resources" / "sample"
JPEG_QUALITY = 90
MAX_TOTAL_BYTES = 1_000_000

SCENES = (  # (stem, kind, width, height, seed)
    ("1", "lake", 640, 480, 11),
    ("2", "river", 800, 533, 12),
    ("3", "scattered", 480, 640, 13),  # portrait
    ("4", "river", 1024, 683, 14),
    ("5", "lake", 640, 480, 15),
)

README = """FloodLabel sample dataset: SYNTHETIC scenes, NOT real photos.

Every image here was drawn by packaging/make_sample.py from the seeded generator in tests/synthetic_scenes.py:
grass, soil, buildings and trees, with a flat muddy "water" region (kinds: lake, river, scattered puddles).
The masks are exact because the same code drew the water. Use the sample to try the app without downloading
anything; do not use it to judge a model on real floods.

Layout (like the Kaggle "Flood Area Segmentation" dataset):
  Image/<n>.jpg   RGB photo-like scene, JPEG quality {quality}
  Mask/<n>.png    8-bit mask, 255 = water, 0 = not water

Scenes:
{scenes}
"""


def main() -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic_scenes import make_flood_scene

    images, masks = SAMPLE_DIR / "Image", SAMPLE_DIR / "Mask"
    for folder in (images, masks):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
    lines = []
    for stem, kind, width, height, seed in SCENES:
        rgb, water = make_flood_scene(height, width, seed=seed, kind=kind)
        Image.fromarray(rgb).save(images / f"{stem}.jpg", quality=JPEG_QUALITY, optimize=True)
        Image.fromarray(np.where(water, 255, 0).astype(np.uint8)).save(masks / f"{stem}.png", optimize=True)
        lines.append(f"  {stem}: {kind:<9} {width}x{height}  water {100 * water.mean():.1f} %  (seed {seed})")
    scenes = "\n".join(lines)
    (SAMPLE_DIR / "README.txt").write_text(README.format(quality=JPEG_QUALITY, scenes=scenes))
    total = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    print(f"wrote {len(SCENES)} synthetic scenes to {SAMPLE_DIR} ({total / 1e3:.0f} kB)")
    if total > MAX_TOTAL_BYTES:
        print(f"the sample is over {MAX_TOTAL_BYTES / 1e6:.0f} MB: lower JPEG_QUALITY or the sizes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
