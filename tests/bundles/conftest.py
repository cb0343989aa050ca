"""Fixtures shared by the bundle tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.measurement import degrade


@pytest.fixture(scope="module")
def blurred_val_images(cxr14_cache, tmp_path_factory):
    """Four real val radiographs, blurred by the realistic protocol and stored as 8-bit PNG."""
    folder = tmp_path_factory.mktemp("blurred")
    x = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:4])
    y = degrade(x, "realistic", torch.Generator().manual_seed(0))
    for i in range(x.shape[0]):
        Image.fromarray((y[i, 0].numpy() * 255).round().astype(np.uint8)).save(folder / f"val_{i}.png")
    return folder, x, y


@pytest.fixture(scope="module")
def real_blurred_val_images(cxr14_cache, tmp_path_factory):
    """Four real val radiographs blurred as real radiographs are (σ = 2 px, mirrored borders: no dark frame),
    σ_y = 0.01, stored as 8-bit PNG: the physics the DDRM bundle's operator assumes."""
    from xray_restore.operators import GaussianBlur

    folder = tmp_path_factory.mktemp("real_blurred")
    x = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:4])
    y = degrade(x, "realistic", torch.Generator().manual_seed(0), operator=GaussianBlur(64, 2.0, padding="symmetric"))
    for i in range(x.shape[0]):
        Image.fromarray((y[i, 0].numpy() * 255).round().astype(np.uint8)).save(folder / f"val_{i}.png")
    return folder, x, y
