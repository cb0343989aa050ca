"""The degradation found in one input (:class:`DegradationEstimate`), and the noise floor of its storage.

Made by :class:`~xray_restore.estimation.SpectralDegradationEstimator`; read by the policy's gate
(:mod:`xray_restore.policy`, through the checks of :mod:`xray_restore.checks`) and by the records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .checks import GaussianLimits
from .checks import findings as _findings
from .checks import mismatch as _mismatch

__all__ = ["DegradationEstimate", "quantisation_floor"]


def quantisation_floor(bits_stored: int | None, averaged: float = 1.0) -> float:
    """Std of uniform quantisation noise on ``bits_stored`` bits, in [0, 1] units: ``1/(2^b·√12)`` (0 if None),
    after an area average of ``averaged`` source pixels per output pixel (``/√averaged``; ≤ 1: no average)."""
    if bits_stored is None:
        return 0.0
    if not 1 <= int(bits_stored) <= 32:
        raise ValueError(f"bits_stored must be in [1, 32], got {bits_stored}.")
    if not averaged > 0:
        raise ValueError(f"averaged must be > 0, got {averaged}.")
    return 1.0 / (2 ** int(bits_stored) * math.sqrt(12.0)) / math.sqrt(max(1.0, float(averaged)))


@dataclass(frozen=True)
class DegradationEstimate:
    """The degradation found in one input, at the model scale.

    Attributes:
        blur_sigma: Gaussian blur std in model-scale pixels (0 = no blur), ≥ 0.
        sigma_y: white-noise std in [0, 1] intensity units, ≥ the quantisation floor.
        blur_sigma_std: approximate standard error of ``blur_sigma`` (pixels; curvature of the profile likelihood;
            inf where unknown: no curvature, or the regressor's reading was kept).
        gain: fitted contrast gain ``a`` relative to the training radiographs.
        noise_floor: the quantisation floor that ``sigma_y`` was held above.
        spectral_blur_sigma: the spectral likelihood's own σ̂ (equal to ``blur_sigma`` without a regressor).
        learned_blur_sigma, learned_sigma_y: the learned regressor's reading (None without one).
        method: ``"spectral+learned"`` where the two agreed (the blend), else the one whose smaller blur was kept:
            ``"spectral"`` (also without a regressor) or ``"learned"``.
        blur_misfit: :func:`blur_misfit` of the spectral fit: ≥ 0, below about 2 where a Gaussian blur explains the
            input, larger where none does (a defocus disk, motion); None where the regressor's reading was kept
            (the spectral fit was set aside).
        blur_anisotropy: :func:`blur_anisotropy` of the same fit (≥ 0; median 0.3–0.4 and below about 1.1 for an
            isotropic blur of a chest radiograph, more where the blur acts along one direction: motion); None where
            ``blur_misfit`` is.
        blur_sigma_axes: ``(σ_v, σ_h)`` (px; down the columns, along the rows) where the blur is an axis-aligned
            anisotropic Gaussian (the estimator's ``min_axis_ratio``): the blur DDRM restores with; else None.
            ``blur_sigma`` stays the isotropic estimate (the no-blur gate and the records read it).
        axis_misfit: where ``blur_sigma_axes`` is set, :func:`blur_misfit` of the axis model over cells of
            :data:`MISFIT_RING` rings × :data:`ANISOTROPY_SECTORS` sectors (a streak's side lobes face one way);
            else None.
        axis_anisotropy: likewise, :func:`blur_anisotropy` of the axis model; else None.
        axis_ratio: where the input is restored as an isotropic blur (``blur_sigma_axes`` None) but its axis-aligned
            fit was made: how far apart that fit's axes are (:meth:`SpectralDegradationEstimator.axis_ratio`, ≥ 1).
            Above the noise at which axes are restored (``max_axis_noise``) an isotropic blur reads below about 2
            and a streak along a row or a column 3–8 apart; None where no such fit was made.
        non_gaussian_evidence: how much better (log-likelihood, nats) the best blur that is not Gaussian (a disk or a
            uniform streak, :func:`alternative_kernels`) explains the input than the best Gaussian (isotropic, or
            axis-aligned where the estimator fits axes): below 0 where a Gaussian explains it better, large for a
            defocus or motion blur; None where the spectrum has no alternatives.
        alternative_blur: that best blur that is not Gaussian, in words (None with the evidence).
    """

    blur_sigma: float
    sigma_y: float
    blur_sigma_std: float
    gain: float
    noise_floor: float
    spectral_blur_sigma: float | None = None
    learned_blur_sigma: float | None = None
    learned_sigma_y: float | None = None
    method: str = "spectral"
    blur_misfit: float | None = None
    blur_anisotropy: float | None = None
    blur_sigma_axes: tuple[float, float] | None = None
    axis_misfit: float | None = None
    axis_anisotropy: float | None = None
    axis_ratio: float | None = None
    non_gaussian_evidence: float | None = None
    alternative_blur: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def findings(self, limits: GaussianLimits | None = None, **limit_values: float | None) -> list[str]:
        """What says this input's blur is not the Gaussian the product would restore it with, one line per check
        over its limit (:func:`~xray_restore.checks.findings`; ``limits``, or the limits by name; None: off)."""
        return _findings(self, limits if limits is not None else GaussianLimits(**limit_values))

    def mismatch(self, limits: GaussianLimits | None = None, **limit_values: float | None) -> str | None:
        """Why this input is handed back as a blur that is not Gaussian (:func:`~xray_restore.checks.mismatch`), or
        None where no check is over its limit."""
        return _mismatch(self, limits if limits is not None else GaussianLimits(**limit_values))
