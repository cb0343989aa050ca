"""The training statistics of the degradation estimator, and their file: what a sharp chest radiograph's spectrum is.

:func:`fit_spectrum` learns ``E[Y_k² | σ]``, the second moments of the tapered interior-window DCT-II of sharp training
radiographs blurred by each σ of a grid (and, :func:`fit_alternatives`, under blurs that are not Gaussian: a disk, a
uniform streak); the bundle ships them as ``models/degradation_spectrum.pt`` (:func:`save_spectrum`,
:func:`load_spectrum`). :class:`~xray_restore.estimation.SpectralDegradationEstimator` reads each input against them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .operators import gaussian_kernel_1d

#: The Tukey taper of the interior window (1: Hann).
TAPER_ALPHA = 1.0
#: The blurs that are not Gaussian which :func:`fit_spectrum` learns the moments of (the alternatives of
#: ``non_gaussian_evidence``): a disk and a uniform streak (:func:`~xray_restore.measurement.non_gaussian_kernel`)
#: of each std (px, a geometric grid 1.25× apart) ...
ALTERNATIVE_SIZES = tuple(round(0.6 * 1.25**i, 4) for i in range(9))
#: ... the streak at each of these angles (degrees from the rows; an angle and its mirror image, 180° − angle, have
#: the same DCT moments once the training images are read with their mirror images too).
ALTERNATIVE_ANGLES = (0, 15, 30, 45, 60, 75, 90)

__all__ = [
    "TAPER_ALPHA",
    "alternative_kernels",
    "dct2",
    "dct_matrix",
    "fit_alternatives",
    "fit_spectrum",
    "interior_window",
    "load_spectrum",
    "mirrored_blur",
    "save_spectrum",
    "taper",
]


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` (``n × n``, float64): coefficients of ``X`` are ``D X Dᵀ``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    m = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (m + 0.5) * k / n) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def taper(length: int, alpha: float = TAPER_ALPHA) -> torch.Tensor:
    """A Tukey (tapered cosine) window of ``length`` samples, float64; ``alpha = 1`` is Hann, 0 is flat."""
    n = torch.arange(length, dtype=torch.float64)
    if alpha <= 0:
        return torch.ones(length, dtype=torch.float64)
    x = (n + 0.5) / length  # in (0, 1)
    edge = alpha / 2
    w = torch.ones(length, dtype=torch.float64)
    lo, hi = x < edge, x > 1 - edge
    w[lo] = 0.5 * (1 - torch.cos(math.pi * x[lo] / edge))
    w[hi] = 0.5 * (1 - torch.cos(math.pi * (1 - x[hi]) / edge))
    return w


def interior_window(images: torch.Tensor, margin: int, alpha: float = 1.0) -> torch.Tensor:
    """The interior ``(L, L)`` window of ``(B, 1, N, N)`` images, tapered to 0 at its edges (float64)."""
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be (B, 1, N, N), got {tuple(images.shape)}.")
    n = images.shape[-1]
    if not 0 <= margin < n // 2 - 2:
        raise ValueError(f"margin {margin} leaves no interior window in a {n}x{n} image.")
    inner = images[..., margin : n - margin, margin : n - margin].to(torch.float64)
    w = taper(inner.shape[-1], alpha)
    return inner * torch.outer(w, w)


def dct2(window: torch.Tensor) -> torch.Tensor:
    """The orthonormal 2-D DCT-II of ``(..., L, L)`` windows (float64)."""
    d = dct_matrix(window.shape[-1])
    return d @ window @ d.T


def mirrored_blur(images: torch.Tensor, sigma: float, padding: str = "symmetric") -> torch.Tensor:
    """The operator's Gaussian (same sampled kernel) with mirrored borders (``"symmetric"`` or ``"reflect"``, see
    :func:`~xray_restore.operators.convolution_matrix`), as a blur of a larger scene looks inside an image;
    ``(B, 1, N, N)`` float64. σ = 0: unchanged."""
    from .operators import convolution_matrix

    x = images.to(torch.float64)
    if sigma <= 0:
        return x
    matrix = convolution_matrix(gaussian_kernel_1d(sigma, math.ceil(3 * sigma)), x.shape[-1], padding)
    return matrix @ x @ matrix.T


def fit_spectrum(images: torch.Tensor, size: int = 64, margin: int = 8, alpha: float = TAPER_ALPHA,
                 sigma_max: float = 4.0, sigma_step: float = 0.2, padding: str = "symmetric",
                 alternatives: bool = True) -> dict:
    """Second moments of the tapered interior-window DCT of training images, blurred by each σ of a grid.

    Learning ``E[Y_k² | σ]`` directly (rather than a sharp spectrum times a transfer function) keeps the window's
    own effects (taper, finite support) out of the blur estimate.

    Args:
        images: ``(M, 1, N, N)`` in [0, 1] (sharp, at the model scale ``N = size``).
        margin: pixels left out at every edge (≥ 3σ of the largest blur, so zero-padded blurs stay outside).
        sigma_max, sigma_step: the σ grid (model-scale pixels), from 0 (no blur).
        padding: the borders of the training blurs (as the restoring operator's).
        alternatives: also learn the moments under blurs that are not Gaussian (:func:`fit_alternatives`).

    Returns:
        ``{"power": (S, L, L) float64, "sigmas": (S,), "size", "margin", "alpha", "num_images"}``, ``L = N − 2·margin``,
        and ``"alternatives"`` (:func:`fit_alternatives`).
    """
    if images.shape[-1] != size:
        raise ValueError(f"images are {images.shape[-1]}x{images.shape[-1]}, expected {size}x{size}.")
    if not sigma_max > 0 or not 0 < sigma_step <= sigma_max:
        raise ValueError(f"need sigma_max > 0 and 0 < sigma_step <= sigma_max, got {sigma_max}, {sigma_step}.")
    sigmas = torch.arange(0.0, sigma_max + 1e-9, sigma_step, dtype=torch.float64)
    power = []
    for sigma in sigmas.tolist():
        coeffs = dct2(interior_window(mirrored_blur(images, sigma, padding), margin, alpha))
        power.append((coeffs**2).mean(dim=(0, 1)))
    spectrum = {"power": torch.stack(power), "sigmas": sigmas, "size": int(size), "margin": int(margin),
                "alpha": float(alpha), "num_images": int(images.shape[0]), "padding": padding}
    if alternatives:
        spectrum["alternatives"] = fit_alternatives(images, margin, alpha)
    return spectrum


def alternative_kernels(sizes: Sequence[float] = ALTERNATIVE_SIZES,
                        angles: Sequence[float] = ALTERNATIVE_ANGLES) -> list[tuple[str, float, float]]:
    """The blurs that are not Gaussian that an input's fit is compared with: ``(kind, std px, angle °)`` per
    kernel, size-major: a disk (angle 0) and a streak at each angle, for each size."""
    return [(kind, float(size), float(angle)) for size in sizes
            for kind, kind_angles in (("disk", (0,)), ("streak", angles)) for angle in kind_angles]


def fit_alternatives(images: torch.Tensor, margin: int = 8, alpha: float = TAPER_ALPHA,
                     sizes: Sequence[float] = ALTERNATIVE_SIZES, angles: Sequence[float] = ALTERNATIVE_ANGLES,
                     chunk: int = 256) -> dict:
    """``E[Y_k²]`` of training images ``(M, 1, N, N)`` (and their left-right mirror images) blurred by each kernel of
    :func:`alternative_kernels` (mirrored borders), on the same window as :func:`fit_spectrum`.

    Returns ``{"power": (A, L, L) float64, "kernels": [(kind, std, angle), ...]}``.
    """
    from .measurement import convolve_mirrored, non_gaussian_kernel

    kernels = alternative_kernels(sizes, angles)
    power = []
    for kind, size, angle in kernels:
        kernel = non_gaussian_kernel("disk" if kind == "disk" else "motion", size, math.radians(angle))
        total = torch.zeros(images.shape[-1] - 2 * margin, images.shape[-1] - 2 * margin, dtype=torch.float64)
        for start in range(0, images.shape[0], chunk):
            part = images[start : start + chunk]
            for view in (part, part.flip(-1)):
                total += (dct2(interior_window(convolve_mirrored(view, kernel), margin, alpha)) ** 2).sum(dim=(0, 1))
        power.append(total / (2 * images.shape[0]))
    return {"power": torch.stack(power), "kernels": [list(k) for k in kernels]}


def save_spectrum(spectrum: dict, path: str | os.PathLike) -> None:
    """Write a spectrum from :func:`fit_spectrum` (``weights_only``-loadable, temp name then rename)."""
    from .training import atomic_save

    atomic_save({k: (v.clone() if torch.is_tensor(v) else v) for k, v in spectrum.items()}, path)


def load_spectrum(path: str | os.PathLike) -> dict:
    """Read a spectrum written by :func:`save_spectrum`; a clear error names the file when it is unusable."""
    from .errors import InputError
    from .networks import read_state_file

    path = Path(path)
    spectrum = read_state_file(path, "degradation spectrum")
    if not isinstance(spectrum, dict) or not {"power", "sigmas", "margin", "size", "alpha"} <= set(spectrum):
        raise InputError(path, "not a degradation spectrum (expected keys 'power', 'sigmas', 'margin', 'size', "
                               "'alpha')")
    return spectrum
