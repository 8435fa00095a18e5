"""Guards for the dependency pins: headless OpenCV (no second Qt) and a torchvision that matches torch."""

from __future__ import annotations

import subprocess
import sys


def test_opencv_is_headless_and_loads_no_qt():
    """opencv-python (not -headless) sets QT_QPA_PLATFORM_PLUGIN_PATH and loads its own Qt 5 beside PySide6."""
    code = (
        "import os, cv2; maps = open('/proc/self/maps').read();"
        "print(os.environ.get('QT_QPA_PLATFORM_PLUGIN_PATH'), 'libQt5' in maps)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["None", "False"]


def test_torchvision_operators_match_torch():
    """PyPI's torchvision beside a mismatched torch fails with 'operator torchvision::nms does not exist'."""
    import torch
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]
