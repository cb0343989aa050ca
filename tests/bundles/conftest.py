"""Fixtures shared by the bundle tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.evaluation import degrade


@pytest.fixture(scope="module")
def blurred_val_images(cxr14_cache, tmp_path_factory):
    """Four real val radiographs, blurred by the realistic protocol and stored as 8-bit PNG."""
    folder = tmp_path_factory.mktemp("blurred")
    x = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:4])
    y = degrade(x, "realistic", torch.Generator().manual_seed(0))
    for i in range(x.shape[0]):
        Image.fromarray((y[i, 0].numpy() * 255).round().astype(np.uint8)).save(folder / f"val_{i}.png")
    return folder, x, y
