"""Linear and iterative baselines against independent computations on real ChestX-ray14 images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xray_restore.baselines import GaussianLMMSE, SpectralGaussian, richardson_lucy, richardson_lucy_skimage, tikhonov
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.measurement import degrade
from xray_restore.metrics import psnr
from xray_restore.operators import GaussianBlur


@pytest.fixture(scope="module")
def images(cxr14_cache):
    """Real images cut to 16×16 (n = 256) so dense n×n reference computations are cheap."""
    train = to_unit_range(load_cxr14_cache(cxr14_cache, "train")["images"][:400, 24:40, 24:40])
    val = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:16, 24:40, 24:40])
    return train.double(), val.double()


@pytest.mark.parametrize("exact", [True, False])
def test_lmmse_matches_the_dense_pixel_space_formula(images, exact):
    train, x = images
    op = GaussianBlur(size=16, sigma=2.0, threshold=3e-3)
    sigma_y, shrink = 0.01, 3e-3
    y = op.H(x) + sigma_y * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = GaussianLMMSE(op, train, shrink, sigma_y, exact=exact)(y)
    # x̂ = μ + C Hᵀ (H C Hᵀ + σ²I)⁻¹ (y − Hμ) with a dense H (of the thresholded operator when not exact)
    n = 256
    eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, 16, 16)
    H = (op.H(eye) if exact else op.H_thresholded(eye)).reshape(n, n).T
    X = train.reshape(-1, n)
    mu = X.mean(0)
    C = torch.cov(X.T) + shrink * torch.eye(n, dtype=torch.float64)
    gain = C @ H.T @ torch.linalg.inv(H @ C @ H.T + (sigma_y**2 + 1e-12) * torch.eye(n, dtype=torch.float64))
    dense = (mu + (y.reshape(-1, n) - mu @ H.T) @ gain.T).reshape(x.shape)
    assert torch.allclose(ours, dense, atol=1e-8)


def test_lmmse_from_shared_moments_equals_a_fresh_fit(images):
    train, x = images
    op = GaussianBlur(size=16, sigma=2.0, threshold=3e-3)
    y = op.H(x) + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    moments = SpectralGaussian(op, train)
    for shrink, sigma_y in ((1e-3, 0.01), (3e-2, 0.05)):
        shared = GaussianLMMSE(op, moments, shrink, sigma_y)(y)
        fresh = GaussianLMMSE(op, train, shrink, sigma_y)(y)
        assert torch.equal(shared, fresh)
    with pytest.raises(ValueError, match="another operator"):
        GaussianLMMSE(GaussianBlur(size=16, sigma=1.0), moments, 1e-3, 0.01)
    with pytest.raises(ValueError, match="train must be"):
        SpectralGaussian(op, train[:1])


def test_flipped_moments_are_those_of_the_train_set_and_its_mirror_images(images):
    """flips=True: μ and C over the 2M images (each one and its left-right mirror), so μ is mirror-symmetric and an
    LMMSE of a mirrored input is the mirror of its LMMSE (the prior has no preferred side)."""
    train, x = images
    op = GaussianBlur(size=16, sigma=2.0, threshold=3e-3)
    flipped = SpectralGaussian(op, train, flips=True)
    both = SpectralGaussian(op, torch.cat([train, train.flip(-1)]))
    assert torch.allclose(flipped.mean, both.mean) and torch.allclose(flipped.cov, both.cov)
    assert torch.allclose(flipped.mean, flipped.mean.flip(-1))
    assert not torch.allclose(SpectralGaussian(op, train).mean, flipped.mean)  # the option does something
    y = op.H(x)
    lmmse = GaussianLMMSE(op, flipped, 1e-3, 0.01)
    assert torch.allclose(lmmse(y.flip(-1)), lmmse(y).flip(-1), atol=1e-8)


def test_tikhonov_is_the_regularised_least_squares_solution(images):
    _, x = images
    op = GaussianBlur(size=16)
    y = op.H(x)
    lam = 1e-2
    est = tikhonov(op, y, lam)
    # normal equations (HᵀH + λI) x̂ = Hᵀ y
    assert torch.allclose(op.Ht(op.H(est)) + lam * est, op.Ht(y), atol=1e-10)
    with pytest.raises(ValueError, match="lam"):
        tikhonov(op, y, 0.0)


def test_richardson_lucy_deblurs_real_images_and_handles_borders(cxr14_cache):
    x = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:8])
    op = GaussianBlur()
    y = degrade(x, "realistic", torch.Generator().manual_seed(0))
    ours = richardson_lucy(op, y, 100)
    assert ours.shape == y.shape and ours.min() >= 0 and ours.max() <= 1
    assert psnr(ours, x).mean() > psnr(y, x).mean() + 4
    # scikit-image's version assumes Hᵀ1 = 1: good in the interior, wrong at the zero-padded borders
    sk = richardson_lucy_skimage(op, y, 10)
    inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    assert psnr(sk[inner], x[inner]).mean() > psnr(y[inner], x[inner]).mean()
    border = F.pad(torch.zeros(1, 1, 40, 40), (12, 12, 12, 12), value=1.0).bool().expand_as(x)
    assert ((sk - x)[border] ** 2).mean() > 4 * ((ours - x)[border] ** 2).mean()
    with pytest.raises(ValueError, match="num_iter"):
        richardson_lucy(op, y, 0)
