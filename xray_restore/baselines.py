"""Linear baselines in the operator's spectral space: Tikhonov and LMMSE with a Gaussian image prior.

All images are ``(B, 1, N, N)`` in [0, 1] intensity units; σ_y is in the same units.
"""

from __future__ import annotations

import numpy as np
import torch

from .operators import GaussianBlur, SeparableSVDOperator

__all__ = ["tikhonov", "SpectralGaussian", "GaussianLMMSE", "richardson_lucy", "richardson_lucy_skimage"]


def tikhonov(operator: SeparableSVDOperator, y: torch.Tensor, lam: float, exact: bool = True) -> torch.Tensor:
    """``argmin ‖Hx − y‖² + λ‖x‖²`` = ``V diag(s/(s²+λ)) Uᵀ y`` (all singular values if ``exact``)."""
    if not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam}.")
    s = (operator.full_singulars() if exact else operator.singulars()).to(torch.float64)
    return operator.V(s / (s**2 + lam) * operator.Ut(y.to(torch.float64))).to(y.dtype)


class SpectralGaussian:
    """Mean and covariance of training images, the covariance in an operator's right singular basis.

    ``cov = Vᵀ C V`` is ``(n, n)`` float64 (n = N²) and depends only on the operator's ``V``, not on the noise
    level or the shrinkage: fit it once per operator and share it between :class:`GaussianLMMSE` instances.

    Args:
        operator: the separable SVD operator whose ``V`` is the basis.
        train: ``(M, 1, N, N)`` training images in [0, 1], M >= 2.
        flips: add the horizontally flipped copy of every training image (2M images): the moments of a
            left-right symmetric population (μ and C over both orientations).
    """

    def __init__(self, operator: SeparableSVDOperator, train: torch.Tensor, flips: bool = False) -> None:
        if train.ndim != 4 or train.shape[1] != 1 or train.shape[0] < 2:
            raise ValueError(f"train must be (M >= 2, 1, N, N), got {tuple(train.shape)}.")
        self.operator = operator
        self.flips = bool(flips)
        x = train.to(torch.float64)
        if self.flips:
            x = torch.cat([x, x.flip(-1)])
        n = x.shape[-1] ** 2
        self.mean = x.mean(dim=0, keepdim=True)
        centred = operator.Vt(x - self.mean).reshape(x.shape[0], n)
        self.cov = centred.T @ centred / (x.shape[0] - 1)


class GaussianLMMSE:
    """The best linear estimator for a Gaussian prior N(μ, C + λI) fitted on training images.

    ``x̂ = μ + C Hᵀ (H C Hᵀ + σ_y² I)⁻¹ (y − Hμ)``, solved in the SVD bases: with ``C̃ = Vᵀ C V`` and
    ``y' = Uᵀ(y − Hμ)`` it is ``μ + V C̃ S (S C̃ S + σ_y² I)⁻¹ y'`` (an ``n × n`` solve, n = N²).

    Args:
        operator: the separable SVD operator the measurements came from.
        train: ``(M, 1, N, N)`` training images in [0, 1], or their :class:`SpectralGaussian` for this operator
            (fitted once, reused across shrinkages and noise levels).
        shrinkage: λ >= 0 added to the covariance diagonal (in [0, 1]² units).
        sigma_y: measurement noise std in [0, 1] units (> 0 unless every singular value is used).
        exact: use every singular value (``H``) rather than the thresholded ones.
    """

    def __init__(
        self,
        operator: SeparableSVDOperator,
        train: torch.Tensor | SpectralGaussian,
        shrinkage: float,
        sigma_y: float,
        exact: bool = True,
    ) -> None:
        if shrinkage < 0 or sigma_y < 0:
            raise ValueError(f"shrinkage and sigma_y must be >= 0, got {shrinkage}, {sigma_y}.")
        moments = train if isinstance(train, SpectralGaussian) else SpectralGaussian(operator, train)
        if moments.operator is not operator:
            raise ValueError("the SpectralGaussian was fitted for another operator (its covariance is in that V).")
        self.operator = operator
        self.mean = moments.mean
        n = moments.cov.shape[0]
        s = (operator.full_singulars() if exact else operator.singulars()).to(torch.float64).reshape(n)
        # S (C̃ + λI) S + σ²I, built in place (an n × n float64 array is 134 MB at 64²: no temporaries)
        system = moments.cov * s[:, None]
        system.mul_(s[None, :]).diagonal().add_(shrinkage * s**2 + (sigma_y**2 + 1e-12))
        # x̂' = C̃ S (S C̃ S + σ²I)⁻¹ y': one Cholesky factorisation here, cheap triangular solves per call
        self.cholesky = torch.linalg.cholesky(system)
        del system
        self.cov_s = moments.cov * s[None, :]  # (C̃ + λI) S
        self.cov_s.diagonal().add_(shrinkage * s)
        self.s = s.reshape(1, 1, *self.mean.shape[-2:])

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """LMMSE estimate for ``y`` ``(B, 1, N, N)`` in [0, 1]."""
        y64 = y.to(torch.float64)
        residual = self.operator.Ut(y64) - self.s * self.operator.Vt(self.mean)
        b = y.shape[0]
        solved = torch.cholesky_solve(residual.reshape(b, -1).T, self.cholesky)
        z = (self.cov_s @ solved).T.reshape(residual.shape)
        return (self.mean + self.operator.V(z)).to(y.dtype)


def richardson_lucy(operator: SeparableSVDOperator, y: torch.Tensor, num_iter: int, eps: float = 1e-12
                    ) -> torch.Tensor:
    """Richardson-Lucy for the operator itself: ``x ← x · Hᵀ(y / Hx) / Hᵀ1``, from a flat start, batched.

    The ``Hᵀ1`` normalisation is what a zero-padded blur needs at the borders (scikit-image's version assumes
    ``Hᵀ1 = 1`` and diverges there, see :func:`richardson_lucy_skimage`). ``y`` ``(B, 1, N, N)`` in [0, 1].
    """
    if num_iter < 1:
        raise ValueError(f"num_iter must be >= 1, got {num_iter}.")
    y64 = y.to(torch.float64).clamp(min=0)
    norm = operator.Ht(torch.ones_like(y64[:1])).clamp(min=eps)
    x = torch.full_like(y64, 0.5)
    for _ in range(num_iter):
        x = x * operator.Ht(y64 / operator.H(x).clamp(min=eps)) / norm
    return x.clamp(0, 1).to(y.dtype)


def richardson_lucy_skimage(operator: GaussianBlur, y: torch.Tensor, num_iter: int) -> torch.Tensor:
    """scikit-image's Richardson-Lucy with the operator's 2-D kernel, per image (its own boundary handling).

    ``y`` ``(B, 1, N, N)`` in [0, 1] (negative values are clipped: RL assumes non-negative data).
    Needs scikit-image (``pip install 'xray_restore[bench]'``).
    """
    if num_iter < 1:
        raise ValueError(f"num_iter must be >= 1, got {num_iter}.")
    try:
        from skimage.restoration import richardson_lucy as skimage_rl
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("richardson_lucy needs scikit-image: pip install 'xray_restore[bench]'") from e
    kernel = operator.kernel.to(torch.float64)
    psf = torch.outer(kernel, kernel).numpy()
    images = y.detach().to(torch.float64).clamp(0, 1).cpu().numpy()
    out = [skimage_rl(image[0], psf, num_iter=num_iter, clip=True) for image in images]
    return torch.from_numpy(np.stack(out))[:, None].to(y.dtype)
