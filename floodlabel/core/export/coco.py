"""The COCO instances file of an export (OUT/coco.json): the images, one category "water", and one annotation per
accepted image with an RLE `segmentation` made by pycocotools (counts as a string), its `area` and `bbox`."""

from __future__ import annotations

import json
import time

import numpy as np

from floodlabel.core.store.records import ImageRecord

WATER_CATEGORY = {"id": 1, "name": "water", "supercategory": "water"}


class CocoBuilder:
    """The COCO instances of an export: one image and one RLE annotation (category "water") per mask added."""

    def __init__(self) -> None:
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, rec: ImageRecord, mask: np.ndarray, file_name: str) -> None:
        """Add the image of `rec` (`file_name`: its path in the COCO file) with its (H, W) bool `mask`."""
        from pycocotools import mask as mask_utils

        height, width = mask.shape
        rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "width": width, "height": height,
                            "floodlabel_path": rec.rel_path})
        self.annotations.append({
            "id": image_id, "image_id": image_id, "category_id": WATER_CATEGORY["id"],
            "segmentation": {"size": [int(rle["size"][0]), int(rle["size"][1])],
                             "counts": rle["counts"].decode("ascii")},
            "area": int(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0})

    def to_json(self) -> str:
        """The COCO JSON text: info, the images, their annotations and the one category."""
        info = {"description": "FloodLabel export", "date_created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        return json.dumps({"info": info, "licenses": [], "images": self.images, "annotations": self.annotations,
                           "categories": [WATER_CATEGORY]})
