"""DeepInverse interop: our operator as DecomposablePhysics, our ε-UNet as a deepinv denoiser, deepinv's DDRM."""

from __future__ import annotations

import pytest
import torch

from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.ddrm import DDRMInferer, ddrm_timesteps
from xray_restore.deepinv_bridge import as_decomposable_physics, as_deepinv_denoiser, deepinv_ddrm, deepinv_sigmas
from xray_restore.networks import build_scheduler
from xray_restore.operators import GaussianBlur


class OracleEpsilon(torch.nn.Module):
    """The exact ε of x_t for a known clean batch x0 in [-1, 1]: a perfect denoiser, to check the conventions."""

    def __init__(self, x0: torch.Tensor, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.x0, self.abar = x0, alphas_cumprod

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].view(-1, 1, 1, 1).to(x_t.dtype)
        return (x_t - a.sqrt() * self.x0) / (1 - a).sqrt()


@pytest.fixture(scope="module")
def x(cxr14_cache):
    return to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:2, 16:48, 16:48])


def test_physics_is_our_operator(x):
    op = GaussianBlur(size=32)
    physics = as_decomposable_physics(op, 0.01)
    assert torch.allclose(physics.A(x), op.H_thresholded(x), atol=1e-6)
    assert torch.allclose(physics.A_adjoint(x), op.V(op.singulars().to(x.dtype) * op.Ut(x)), atol=1e-6)
    assert physics.noise_model.sigma.item() == pytest.approx(0.01)


def test_denoiser_wrapper_maps_noise_levels_to_our_timesteps(x):
    abar = build_scheduler().alphas_cumprod
    denoiser = as_deepinv_denoiser(OracleEpsilon(2 * x - 1, abar), abar)
    for t in (50, 400, 900):
        sigma01 = float(((1 - abar[t]) / abar[t]).sqrt() / 2)  # deepinv's noise level, [0, 1] units
        noisy = x + sigma01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(t))
        # with a perfect ε the wrapper must return the clean image exactly when σ hits the table entry
        assert torch.allclose(denoiser(noisy, sigma01), x, atol=1e-4), t
    sigmas = deepinv_sigmas(abar, 20)
    assert len(sigmas) == 20 and sigmas == sorted(sigmas, reverse=True)
    assert sigmas[-1] == pytest.approx(float(((1 - abar[0]) / abar[0]).sqrt() / 2))
    assert ddrm_timesteps(1000, 20, "quadratic")[-1] == 950


def test_deepinv_ddrm_and_ours_agree_with_an_oracle_network(x):
    """Both samplers, same operator SVD and the same (perfect) network, recover the image from a mild blur."""
    op = GaussianBlur(size=32)
    scheduler = build_scheduler()
    y = op.H(x) + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    oracle = OracleEpsilon(2 * x - 1, scheduler.alphas_cumprod)
    torch.manual_seed(0)
    with torch.inference_mode():
        peer = deepinv_ddrm(oracle, scheduler.alphas_cumprod, num_steps=10)(y, as_decomposable_physics(op, 0.01))
    ours = DDRMInferer(op, scheduler, num_steps=10, sigma_y=0.01, num_samples=1)(  # one sample, as DeepInverse's
        inputs=y, network=oracle, generator=torch.Generator().manual_seed(0))
    for estimate in (peer, ours):
        assert (estimate - x).abs().max() < 2e-2
