"""DeepInverse interop: our operator as a ``DecomposablePhysics`` and our ε-UNet as a deepinv denoiser.

Lets the benchmark run DeepInverse's own ``deepinv.sampling.DDRM`` with the same network and the same SVD as our
:class:`~xray_restore.ddrm.DDRMInferer`. Needs the optional extra: ``pip install 'xray_restore[bench]'``.
DeepInverse works on [0, 1] images with noise levels σ in [0, 1] units; our DDPM (``x_t = √ᾱ x₀ + √(1−ᾱ) ε`` on
[-1, 1] data) is the variance-preserving schedule ``s_t = √ᾱ_t``, ``σ_t = √((1−ᾱ_t)/ᾱ_t)`` in [-1, 1] units.
"""

from __future__ import annotations

import torch
from torch import nn

from ._compat import bf16_autocast
from .ddrm import TimestepSpacing, ddrm_timesteps
from .operators import SVDOperator

__all__ = ["import_deepinv", "as_decomposable_physics", "as_deepinv_denoiser", "deepinv_sigmas", "deepinv_ddrm"]


def import_deepinv():
    """``import deepinv`` (after the torchvision shim, which ``xray_restore`` applies on import)."""
    try:
        import deepinv
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("DeepInverse is an optional extra: pip install 'xray_restore[bench]'") from e
    return deepinv


def as_decomposable_physics(operator: SVDOperator, sigma_y: float):
    """``deepinv.physics.DecomposablePhysics`` with our ``U, Uᵀ, V, Vᵀ`` and kept singular values as its mask."""
    dinv = import_deepinv()
    return dinv.physics.DecomposablePhysics(
        U=operator.U, U_adjoint=operator.Ut, V=operator.V, V_adjoint=operator.Vt,
        mask=operator.singulars().float(), noise_model=dinv.physics.GaussianNoise(sigma=float(sigma_y)),
    )


class _Autocast(nn.Module):
    """Runs a network under bf16 autocast on its input's device and returns float32 (as our inferer does)."""

    def __init__(self, network: nn.Module, enabled: bool) -> None:
        super().__init__()
        self.network = network
        self.enabled = enabled

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        with bf16_autocast(x.device.type, enabled=self.enabled):
            return self.network(x, timesteps).float()


def as_deepinv_denoiser(network: nn.Module, alphas_cumprod: torch.Tensor, autocast: bool = False):
    """Our ε-prediction UNet (integer timesteps, [-1, 1] data) as a ``deepinv.models.ScoreModelWrapper``."""
    dinv = import_deepinv()
    abar = alphas_cumprod.double()
    return dinv.models.ScoreModelWrapper(
        score_model=_Autocast(network.eval(), autocast), prediction_type="epsilon", clip_output=True,
        sigma_t=((1 - abar) / abar).sqrt().float(), scale_t=abar.sqrt().float(), takes_integer_time=True,
        n_timesteps=len(abar), T=1.0, _was_trained_on_minus_one_one=True,
    )


def deepinv_sigmas(alphas_cumprod: torch.Tensor, num_steps: int,
                   spacing: TimestepSpacing = "quadratic") -> list[float]:
    """DeepInverse noise levels ([0, 1] units, decreasing) at our DDRM grid's timesteps (:func:`ddrm_timesteps`)."""
    abar = alphas_cumprod.double()
    steps = ddrm_timesteps(len(abar), num_steps, spacing)[::-1]
    return [float(((1 - abar[t]) / abar[t]).sqrt() / 2) for t in steps]


def deepinv_ddrm(network: nn.Module, alphas_cumprod: torch.Tensor, num_steps: int = 20, eta: float = 0.85,
                 eta_b: float = 1.0, autocast: bool = False, spacing: TimestepSpacing = "quadratic"):
    """``deepinv.sampling.DDRM`` over our network on our timestep grid; call it as ``ddrm(y, physics)``."""
    dinv = import_deepinv()
    denoiser = as_deepinv_denoiser(network, alphas_cumprod, autocast=autocast)
    sigmas = deepinv_sigmas(alphas_cumprod, num_steps, spacing)
    return dinv.sampling.DDRM(denoiser=denoiser, sigmas=sigmas, eta=eta, etab=eta_b)
