"""Metrics: LPIPS (squeeze) and KID with offline weights, and the missing-weights error."""

from __future__ import annotations

import pytest
import torch

from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.metrics import MissingWeightsError, kid, lpips


def test_lpips_identical_is_zero_and_grows_with_noise(cxr14_cache):
    x = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:4])
    g = torch.Generator().manual_seed(0)
    assert torch.allclose(lpips(x, x), torch.zeros(4), atol=1e-6)
    scores = [lpips((x + s * torch.randn(x.shape, generator=g)).clamp(0, 1), x).mean().item() for s in (0.02, 0.1, 0.3)]
    assert 0 < scores[0] < scores[1] < scores[2]


def test_kid_separates_distributions_and_labels_features(cxr14_cache):
    train = to_unit_range(load_cxr14_cache(cxr14_cache, "train")["images"][:60])
    val = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:60])
    same = kid(train, val, subset_size=30, features="squeezenet")
    noisy = kid(train, (val + 0.3 * torch.randn_like(val)).clamp(0, 1), subset_size=30, features="squeezenet")
    assert "squeezenet" in same["features"] and "NOT Inception" in same["features"]
    assert noisy["mean"] > 3 * abs(same["mean"]) + 3 * noisy["std"]


def test_missing_weights_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    x = torch.rand(2, 1, 32, 32)
    with pytest.raises(MissingWeightsError, match="squeezenet1_1-b8a52dc0.pth"):
        lpips(x, x)
    with pytest.raises(MissingWeightsError, match="weights-inception"):
        kid(x, x, features="inception")
