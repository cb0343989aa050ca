"""Shared fixtures: real data from ../shared (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CXR14_CACHE = SHARED / "data" / "cxr14_64.npz"
BUNDLE = REPO / "bundles" / "xray_ddrm"
TORCH_HOME = SHARED / "weights" / "torch_home"

# Metric weights (LPIPS squeeze backbone) are read from ../shared/weights; nothing is downloaded.
os.environ.setdefault("TORCH_HOME", str(TORCH_HOME))


@pytest.fixture(scope="session")
def cxr14_cache() -> Path:
    if not CXR14_CACHE.is_file():
        pytest.fail(f"{CXR14_CACHE} is missing: tests read the real ChestX-ray14 cache from ../shared/data")
    return CXR14_CACHE


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield
