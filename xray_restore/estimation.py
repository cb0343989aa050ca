"""Blur and noise of each input, estimated from the input itself (before any restoration).

Model (at the 64×64 model scale, intensities in [0, 1]): ``y = h_σ * x + n`` with ``x`` a chest radiograph,
``h_σ`` an isotropic Gaussian of std σ pixels (σ = 0: no blur) and ``n`` white noise of std σ_y. On an interior
window (``margin`` pixels from every edge, so zero-padded blurs and padded borders do not enter) the orthonormal
DCT-II nearly diagonalises both the blur and the image statistics, which gives a spectral (Whittle) likelihood:

    Y_k ~ N(0, a · |ĥ_σ(k)|² · P_k + σ_y²)

``P_k`` is the second moment of the DCT coefficients of sharp training radiographs (:func:`fit_spectrum`, shipped in
the bundle as ``models/degradation_spectrum.pt``, 40×40 float64 numbers) and ``a`` a free contrast gain (windowing
differs between sources). For each σ on a grid the gain and the noise are fitted by Fisher scoring; σ̂ maximises
the profile likelihood: first on the spectrum's grid, then on a grid 8× finer around the best point (the moments
between grid points interpolated log-linearly in σ², exact for a Gaussian transfer function), then by parabolic
refinement. σ_y is never reported below the quantisation floor of the source's bits stored ``b`` as it reaches the
model scale: ``1/(2^b·√12)`` divided by the square root of the number of source pixels area-averaged into one model
pixel (white quantisation noise averages down like any other white noise).

The DC coefficient is left out (it carries the mean, not the blur). The confidence of σ̂ is the curvature of the
profile log-likelihood (an approximate standard error, in pixels).

Whether a Gaussian blur explains the input at all is checked on the same fit (:func:`blur_misfit`): a defocus disk
or a motion streak has a transfer function with zeros and sign-flipped side lobes, which leave more power in rings
of the spectrum than any Gaussian blur of the training spectrum would, and restoring such an input as a Gaussian
blur amplifies the flipped lobes into ringing (the output is worse than its input). The misfit is the excess power
over the best Gaussian model, in rings of :data:`MISFIT_RING` DCT indices, as a mean one-sided χ² per ring. A
motion streak, whose lobes are weak at the model scale, shows more clearly in its direction: it takes power from the
frequencies along the streak only, which no isotropic blur does (:func:`blur_anisotropy`: the spread of the same
power ratio over :data:`ANISOTROPY_SECTORS` angular sectors).

A blur need not be the same along both image axes (a CR plate is read out more sharply along its scan lines than
across them). The same likelihood with ``ĥ`` an axis-aligned Gaussian of stds ``(σ_v, σ_h)`` is profiled on a 2-D
grid: a coefficient ``k = (k_v, k_h)`` is blurred as an isotropic Gaussian of
``σ_k² = (k_v² σ_v² + k_h² σ_h²) / |k|²`` would blur it, so the learned moments serve both models. Where its axes
differ by ``min_axis_ratio`` or more
(``max(σ_v, σ_h) / max(min(σ_v, σ_h), AXES_RATIO_FLOOR)``) and the noise is low enough to tell (``max_axis_noise``),
the estimate carries that anisotropic blur (``blur_sigma_axes``, and the noise of that fit), which DDRM restores
with. ``blur_sigma`` and the no-blur gate still read the isotropic fit (the anatomy of a sharp study can read as two
axes apart). Such an input is checked against its axis model instead of the isotropic one: an axis-aligned Gaussian
that is strongly anisotropic departs from every isotropic model by direction (its ``blur_anisotropy`` is large), but
not from its own. Two axes also fit a motion streak better than one, yet not well: its side lobes leave excess power
in the sectors facing the streak, which the misfit over rings *and* sectors of the axis model sees
(``axis_misfit``), as the anisotropy of the axis model's residual (``axis_anisotropy``) sees a streak at an angle.

The shape checks above measure how far the best Gaussian falls short; they do not ask what explains the input
better. The same likelihood answers that too: :func:`fit_spectrum` also learns the moments of the training images
under blurs that are not Gaussian (a uniform disk: defocus, a uniform focal spot; a uniform streak: motion; a grid of
sizes and streak angles, :func:`alternative_kernels`), and ``non_gaussian_evidence`` is the log-likelihood (nats) by
which the best of them beats the best Gaussian, isotropic or axis-aligned, of the same input: a likelihood-ratio
test against named alternatives, which sees a disk's zeros and a streak's direction where the noise would hide them
from the ring-by-ring misfit.

Second-order statistics cannot tell an image whose own spectrum is a little steeper than average from a slightly
blurred one, nor fine texture of a sharp image from noise. With a ``regressor``
(:class:`~xray_restore.blur_regressor.DegradationRegressor`, trained on the training pool: it reads edges and
texture), the estimate where the two agree to within ``max_disagreement`` px is ``w·σ_learned + (1 − w)·σ_spectral``
and σ_y combines the regressor's (the noise before storage) with the quantisation floor in quadrature; where they
disagree (one of them misread the image: on val mostly the spectral fit of a high-noise input) the smaller blur is
kept, with its own σ_y — an under-restored image is the lesser harm, and a sharp input stays "no blur". ``w`` =
``learned_weight`` and ``max_disagreement`` were chosen on val.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from .operators import gaussian_kernel_1d

TAPER_ALPHA = 1.0
#: Width of the spectral rings :func:`blur_misfit` sums over (DCT indices of the interior window).
MISFIT_RING = 3
#: Angular sectors of the DCT quadrant (0°–90°, equal angles) :func:`blur_anisotropy` compares.
ANISOTROPY_SECTORS = 3
#: The radial band :func:`blur_anisotropy` reads, in DCT indices of the interior window: from this index ...
ANISOTROPY_BAND_FROM = 3
#: ... to this fraction of the window's side (beyond it, noise dominates any blur the product restores).
ANISOTROPY_BAND_TO = 0.7
#: The axis-aligned fit: a coarse grid (px per axis; Fisher steps per point), then a fine grid of ± 3 steps.
AXES_STEP, AXES_COARSE_ITERATIONS, AXES_FINE_STEP, AXES_FINE_SPAN = 0.4, 4, 0.1, 3
#: The smaller axis counts as at least this (px) in the axis ratio: a sharp axis makes no ratio by itself.
AXES_RATIO_FLOOR = 0.5
#: The blurs that are not Gaussian which :func:`fit_spectrum` learns the moments of (the alternatives of
#: ``non_gaussian_evidence``): a disk and a uniform streak (:func:`~xray_restore.measurement.non_gaussian_kernel`)
#: of each std (px, a geometric grid 1.25× apart) ...
ALTERNATIVE_SIZES = tuple(round(0.6 * 1.25**i, 4) for i in range(9))
#: ... the streak at each of these angles (degrees from the rows; an angle and its mirror image, 180° − angle, have
#: the same DCT moments once the training images are read with their mirror images too).
ALTERNATIVE_ANGLES = (0, 15, 30, 45, 60, 75, 90)
#: The limits of the checks that say a blur is not the Gaussian the product restores, as
#: :meth:`DegradationEstimate.findings` takes them (an inferer's ``gaussian_limits`` holds those it has).
GAUSSIAN_LIMITS = ("max_blur_misfit", "max_blur_anisotropy", "max_axis_misfit", "max_axis_anisotropy",
                   "max_axis_ratio", "max_non_gaussian_evidence")

__all__ = [
    "GAUSSIAN_LIMITS",
    "AxisReading",
    "DegradationEstimate",
    "SpectralDegradationEstimator",
    "blur_anisotropy",
    "blur_misfit",
    "check_limits",
    "dct_matrix",
    "fit_spectrum",
    "fit_alternatives",
    "alternative_kernels",
    "save_spectrum",
    "load_spectrum",
    "quantisation_floor",
]


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


def blur_misfit(power: torch.Tensor, model: torch.Tensor, rings: torch.Tensor) -> torch.Tensor:
    """How far a fitted blur model falls short of an input's spectrum: ``(B,)``, ≥ 0.

    ``power`` ``(B, K)``: squared DCT coefficients of each input; ``model`` ``(B, K)``: their expected values under
    the fitted model; ``rings`` ``(K,)``: each coefficient's ring index. Per ring r with ``c_r`` coefficients,
    ``m_r = mean(power / model)``; the misfit is ``Σ_r c_r · max(0, log m_r)² / (2 · rings)``, the mean over rings
    of a one-sided χ²₁-like term: below about 2 where the model holds (an image's own texture departs a little from
    the training spectrum), large where some ring carries more power than the model allows. Only excess counts:
    less power than expected (a weaker texture, a stronger blur) makes a Gaussian deconvolution under-restore, which
    is harmless.
    """
    count = torch.bincount(rings).to(power.dtype)
    ratio = torch.zeros(power.shape[0], len(count), dtype=power.dtype).index_add_(1, rings, power / model) / count
    excess = ratio.clamp_min(1e-30).log().clamp_min(0.0)
    return (count * excess**2).sum(dim=1) / (2 * len(count))


def blur_anisotropy(power: torch.Tensor, model: torch.Tensor, sectors: torch.Tensor) -> torch.Tensor:
    """How unevenly, by direction, an input's spectrum departs from its fitted isotropic blur model: ``(B,)``, ≥ 0.

    ``power`` and ``model`` ``(B, K)`` as for :func:`blur_misfit`; ``sectors`` ``(K,)``: each coefficient's angular
    sector (``-1``: not read). Per sector s, ``m_s = log mean(power / model)``; the anisotropy is
    ``max_s m_s − min_s m_s``. An isotropic blur (any σ: the model is fitted) or a wrong contrast or noise level
    shifts every ``m_s`` alike; a blur that acts along one direction (motion) lowers the sectors facing it.
    """
    read = sectors >= 0
    index = sectors[read]
    count = torch.bincount(index).to(power.dtype)
    ratio = torch.zeros(power.shape[0], len(count), dtype=power.dtype).index_add_(
        1, index, (power / model)[:, read]) / count
    m = ratio.clamp_min(1e-30).log()
    return m.amax(dim=1) - m.amin(dim=1)


def check_limits(**limits: float | None) -> dict[str, float | None]:
    """The check limits (``max_blur_misfit=…``, ``max_blur_anisotropy=…``, names from :data:`GAUSSIAN_LIMITS`) as
    floats, None kept (off), in the order given; an unknown name, or a limit neither None nor > 0, is refused."""
    for name, value in limits.items():
        if name not in GAUSSIAN_LIMITS:
            raise TypeError(f"unknown check limit {name!r}; the limits are {', '.join(GAUSSIAN_LIMITS)}.")
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{name} must be None or > 0, got {value!r}.")
    return {name: None if value is None else float(value) for name, value in limits.items()}


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


def _window(images: torch.Tensor, margin: int, alpha: float = 1.0) -> torch.Tensor:
    """The interior ``(L, L)`` window of ``(B, 1, N, N)`` images, tapered to 0 at its edges (float64)."""
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be (B, 1, N, N), got {tuple(images.shape)}.")
    n = images.shape[-1]
    if not 0 <= margin < n // 2 - 2:
        raise ValueError(f"margin {margin} leaves no interior window in a {n}x{n} image.")
    inner = images[..., margin : n - margin, margin : n - margin].to(torch.float64)
    w = taper(inner.shape[-1], alpha)
    return inner * torch.outer(w, w)


def _dct2(window: torch.Tensor) -> torch.Tensor:
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
        coeffs = _dct2(_window(mirrored_blur(images, sigma, padding), margin, alpha))
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
                total += (_dct2(_window(convolve_mirrored(view, kernel), margin, alpha)) ** 2).sum(dim=(0, 1))
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


class AxisReading(NamedTuple):
    """An input's axis-aligned blur fit: its axes ``(σ_v, σ_h)`` (px), that fit's noise variance (DCT units), the
    misfit and anisotropy of the input against its own axis model (what a streak's lobes and angle show), and that
    model's negative log-likelihood."""

    axes: tuple[float, float]
    noise: float
    misfit: float
    anisotropy: float
    nll: float


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

    def findings(self, max_blur_misfit: float | None = None, max_blur_anisotropy: float | None = None,
                 max_axis_misfit: float | None = None, max_axis_anisotropy: float | None = None,
                 max_axis_ratio: float | None = None, max_non_gaussian_evidence: float | None = None) -> list[str]:
        """What says this input's blur is not the Gaussian the product would restore it with, one line per check
        over its limit (None: that check is off; empty: nothing does). An input restored with its axes
        (``blur_sigma_axes``) is checked against that axis model (``axis_misfit``, ``axis_anisotropy``), any other
        against the isotropic fit (``blur_misfit``, ``blur_anisotropy``) and the spread of its axis-aligned fit
        (``axis_ratio``: a blur along a row or a column, too noisy to restore as one); both against the best blur
        that is not Gaussian (``non_gaussian_evidence``)."""
        if self.blur_sigma_axes is not None:
            checks = [(self.axis_misfit, max_axis_misfit, "misfit of its axis-aligned model", "a streak?"),
                      (self.axis_anisotropy, max_axis_anisotropy, "anisotropy beyond its axis-aligned model",
                       "a streak at an angle?")]
        else:
            checks = [(self.blur_misfit, max_blur_misfit, "spectral misfit", "a defocus or motion blur?"),
                      (self.blur_anisotropy, max_blur_anisotropy, "anisotropy", "a blur along one direction, motion?"),
                      (self.axis_ratio, max_axis_ratio, "axis ratio",
                       "a blur along a row or a column, too noisy to restore as one?")]
        checks.append((self.non_gaussian_evidence, max_non_gaussian_evidence,
                       "evidence for a blur that is not Gaussian", f"{self.alternative_blur} explains it better"))
        return [f"{name} {value:.2f} > {limit:g}: {hint}" for value, limit, name, hint in checks
                if limit is not None and value is not None and value > limit]

    def not_gaussian(self, **limits: float | None) -> bool:
        """Whether this input's blur is not the Gaussian the product restores (any of :meth:`findings`, with the
        same keyword limits)."""
        return bool(self.findings(**limits))

    def mismatch(self, **limits: float | None) -> str | None:
        """Why this input is handed back as a blur that is not Gaussian (a sentence naming each check over its
        limit, :meth:`findings`), or None where none is."""
        found = self.findings(**limits)
        return (f"the blur is not Gaussian ({'; '.join(found)}), and restoring it as one would make it worse"
                if found else None)


class SpectralDegradationEstimator:
    """Per-image maximum (Whittle) likelihood of the blur σ and noise σ_y, batched.

    Args:
        spectrum: from :func:`fit_spectrum` / :func:`load_spectrum` (or a path to it); its σ grid (from 0 to
            the largest blur considered, model-scale pixels) is searched, then refined 8× finer and parabolically.
        iterations: Fisher-scoring iterations for the gain and noise at each σ.
        max_tilt: bound on the spectral tilt β an image may have relative to the training average (0: no tilt fitted).
        regressor: a :class:`~xray_restore.blur_regressor.DegradationRegressor` (or a path to its weights): the
            learned second opinion; None: the spectral estimate alone.
        learned_weight, max_disagreement: the blend of the two opinions (required with a regressor; their home is
            the bundle's ``inference.json`` ``estimator``).
        learned_flips: average the regressor's readings of the image and its left-right mirror.
        min_axis_ratio, max_axis_noise: from which axis ratio (:meth:`axis_ratio`), and up to which noise σ_y, a
            blur is estimated as an axis-aligned anisotropic Gaussian (:meth:`anisotropic`; their home: the bundle's
            ``inference.json`` ``estimator``); ``min_axis_ratio`` None: isotropic only.
        model_error_floor: the least noise std ([0, 1] units) an input is read with, whatever its Bits Stored: a
            source area-resized to the model grid is blurred a little differently from the model's blur of the
            resized image (aliasing), so a noise-free high-bit input does not fit any blur to within its
            quantisation noise alone (0: the quantisation floor only; its home: the bundle's ``inference.json``).

    Example:
        >>> import torch
        >>> from xray_restore.operators import GaussianBlur
        >>> g = torch.Generator().manual_seed(0)
        >>> train = torch.rand(32, 1, 64, 64, generator=g)
        >>> estimator = SpectralDegradationEstimator(fit_spectrum(train))
        >>> y = GaussianBlur(64, 2.0).H(train[:2].double()).float()
        >>> [round(e.blur_sigma) for e in estimator(y)]
        [2, 2]
    """

    def __init__(self, spectrum: dict | str | os.PathLike, iterations: int = 10, max_tilt: float = 0.0,
                 regressor=None, learned_weight: float | None = None,
                 max_disagreement: float | None = None, learned_flips: bool = False,
                 min_axis_ratio: float | None = None, max_axis_noise: float = 0.0,
                 model_error_floor: float = 0.0) -> None:
        if not isinstance(spectrum, dict):
            spectrum = load_spectrum(spectrum)
        if regressor is not None and not isinstance(regressor, torch.nn.Module):
            from .blur_regressor import load_regressor

            regressor = load_regressor(regressor)
        if regressor is None:
            learned_weight, max_disagreement = 0.0, 0.0
        elif learned_weight is None or max_disagreement is None:
            raise ValueError("a regressor needs learned_weight and max_disagreement (their home: the bundle's "
                             "inference.json estimator).")
        if not 0.0 <= learned_weight <= 1.0 or not max_disagreement >= 0:
            raise ValueError(f"need 0 <= learned_weight <= 1 and max_disagreement >= 0, got {learned_weight}, "
                             f"{max_disagreement}.")
        if min_axis_ratio is not None and not min_axis_ratio > 1:
            raise ValueError(f"min_axis_ratio must be > 1 (or None: isotropic only), got {min_axis_ratio}.")
        if not max_axis_noise >= 0:
            raise ValueError(f"max_axis_noise must be >= 0, got {max_axis_noise}.")
        if not (math.isfinite(model_error_floor) and model_error_floor >= 0):
            raise ValueError(f"model_error_floor must be a finite number >= 0, got {model_error_floor}.")
        self.model_error_floor = float(model_error_floor)
        self.min_axis_ratio = None if min_axis_ratio is None else float(min_axis_ratio)
        self.max_axis_noise = float(max_axis_noise)
        self.regressor = regressor
        self.learned_weight = float(learned_weight)
        self.max_disagreement = float(max_disagreement)
        self.learned_flips = bool(learned_flips)
        self.size = int(spectrum["size"])
        self.margin = int(spectrum["margin"])
        self.alpha = float(spectrum["alpha"])
        power = spectrum["power"].to(torch.float64)  # (S, L, L)
        self.sigmas = spectrum["sigmas"].to(torch.float64)
        self.length = power.shape[-1]
        self.iterations = int(iterations)
        self.max_tilt = float(max_tilt)
        self.dtype = torch.float32
        keep = torch.ones(self.length, self.length, dtype=torch.bool)
        keep[0, 0] = False  # DC: the mean, not the blur
        self.keep = keep.reshape(-1)
        k = torch.arange(self.length, dtype=torch.float64)
        radius = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2).reshape(-1)[self.keep]
        self.log_radius = (radius / radius.median()).log()
        self.rings = (radius / MISFIT_RING).long()
        angle = torch.atan2(k[:, None].expand(-1, self.length), k[None, :].expand(self.length, -1)).reshape(-1)
        sector = (angle[self.keep] / (math.pi / 2) * ANISOTROPY_SECTORS).long().clamp_max(ANISOTROPY_SECTORS - 1)
        band = (radius >= ANISOTROPY_BAND_FROM) & (radius <= ANISOTROPY_BAND_TO * self.length)
        self.sectors = torch.where(band, sector, torch.full_like(sector, -1))
        # the cells the axis model's misfit sums over: each ring of the sectors' band, split by sector
        self.read = self.sectors >= 0
        self.cells = torch.unique(self.rings[self.read] * ANISOTROPY_SECTORS + self.sectors[self.read],
                                  return_inverse=True)[1]
        w = taper(self.length, self.alpha)
        self.noise_gain = float((w**2).mean() ** 2)  # white noise of variance v: v·mean(w²)² per coefficient
        self.signal = power.reshape(len(self.sigmas), -1)[:, self.keep]  # (S, K): E[Y_k² | σ] of training images
        self.log_signal = self.signal.clamp_min(1e-30).log()
        self.padding = str(spectrum.get("padding", "reflect"))
        self.refine = 8  # the fine grid: the spectrum's step / refine, over ± one coarse step
        # the axis-aligned model: each coefficient's share of |k|² along axis 0 (vertical) and axis 1 (horizontal)
        k_v = k[:, None].expand(-1, self.length).reshape(-1)[self.keep]
        k_h = k[None, :].expand(self.length, -1).reshape(-1)[self.keep]
        self.axis_shares = torch.stack([k_v**2, k_h**2], dim=-1) / (k_v**2 + k_h**2)[:, None]  # (K, 2)
        axis = torch.arange(0.0, float(self.sigmas[-1]) + 1e-9, AXES_STEP, dtype=torch.float64)
        self.axes_grid = torch.cartesian_prod(axis, axis)  # (P, 2): (σ_v, σ_h)
        fine = torch.arange(-AXES_FINE_SPAN, AXES_FINE_SPAN + 1, dtype=torch.float64) * AXES_FINE_STEP
        self.axes_offsets = torch.cartesian_prod(fine, fine)  # (F, 2), row-major: σ_v outer, σ_h inner
        self.axes_signal = self._signal_axes(self.axes_grid[None])  # (1, P, K): the coarse grid's moments, once
        alternatives = spectrum.get("alternatives")
        self.alternative_kernels = None if alternatives is None else [tuple(k) for k in alternatives["kernels"]]
        self.alternative_signal = (None if alternatives is None else  # (1, A, K): E[Y_k²] under each alternative
                                   alternatives["power"].to(torch.float64).reshape(len(self.alternative_kernels),
                                                                                   -1)[None, :, self.keep])

    @property
    def config(self) -> dict:
        config = {"method": "spectral_ml", "window": f"{self.length}x{self.length} interior DCT-II, Tukey {self.alpha}",
                  "sigma_max": float(self.sigmas[-1]), "sigma_step": float(self.sigmas[1] - self.sigmas[0]),
                  "min_axis_ratio": self.min_axis_ratio, "max_axis_noise": self.max_axis_noise,
                  "non_gaussian_alternatives": len(self.alternative_kernels or [])}
        if self.regressor is not None:
            config.update({"method": "spectral_ml+learned", "learned_weight": self.learned_weight,
                           "max_disagreement": self.max_disagreement, "learned_flips": self.learned_flips})
        return config

    def _learned(self, image: torch.Tensor) -> torch.Tensor:
        """The regressor's reading ``(1, 2)`` (σ, log σ_y) of one image ``(1, 1, N, N)``; with ``learned_flips`` the
        mean of its readings of the image and its left-right mirror (an isotropic blur and white noise look the
        same in both, the anatomy does not: the two readings' content-driven errors partly cancel)."""
        reading = self.regressor(image)
        if self.learned_flips:
            reading = 0.5 * (reading + self.regressor(image.flip(-1)))
        return reading

    def _moments(self, u: torch.Tensor) -> torch.Tensor:
        """``E[Y_k² | σ_k²]`` for a σ² per coefficient ``u`` ``(..., K)``: log-linear in σ² between grid points (a
        Gaussian's transfer ``exp(-σ²ω²)`` makes it exact away from the noise floor), clamped to the grid."""
        grid = self.sigmas**2
        u = u.clamp(float(grid[0]), float(grid[-1]))
        hi = torch.searchsorted(grid, u.reshape(-1)).clamp(1, len(grid) - 1).reshape(u.shape)
        lo = hi - 1
        t = (u - grid[lo]) / (grid[hi] - grid[lo])
        column = torch.arange(u.shape[-1])
        return ((1 - t) * self.log_signal[lo, column] + t * self.log_signal[hi, column]).exp()

    def _signal_at(self, sigmas: torch.Tensor) -> torch.Tensor:
        """``E[Y_k² | σ]`` at any ``sigmas`` ``(B, F)`` in [0, σ_max] (:meth:`_moments`); ``(B, F, K)``."""
        return self._moments((sigmas**2)[..., None].expand(*sigmas.shape, self.log_signal.shape[-1]))

    def _signal_axes(self, axes: torch.Tensor) -> torch.Tensor:
        """``E[Y_k² | σ_v, σ_h]`` for axis-aligned blurs ``axes`` ``(B, F, 2)``: each coefficient at the isotropic σ
        that blurs it alike, ``σ_k² = share_v·σ_v² + share_h·σ_h²`` (:meth:`_moments`); ``(B, F, K)``."""
        return self._moments((axes**2) @ self.axis_shares.T)

    def _fit_axes(self, y2: torch.Tensor, floor2: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The axis-aligned fit of each image: ``(σ_v, σ_h)`` ``(B, 2)`` and its noise ``(B,)``: a coarse grid
        (:data:`AXES_STEP`, a few Fisher steps), a fine one around its best point (:data:`AXES_FINE_STEP`), then a
        parabola per axis through the best fine point and its neighbours."""
        axes, noise = [], []
        top, side = float(self.sigmas[-1]), int(round(len(self.axes_offsets) ** 0.5))
        for part in range(0, y2.shape[0], 8):  # a few images at a time: (b, P, K) temporaries stay small
            y, f = y2[part : part + 8], floor2[part : part + 8]
            nll = self._profile(y, f, self.axes_signal, iterations=AXES_COARSE_ITERATIONS)[0]
            centre = self.axes_grid[nll.argmin(dim=1)]  # (b, 2)
            fine = (centre[:, None] + self.axes_offsets[None]).clamp(0.0, top)  # (b, F, 2)
            nll, _, n, _ = self._profile(y, f, self._signal_axes(fine))
            best = nll.argmin(dim=1)
            for i in range(len(y)):
                b = int(best[i])
                point, surface = fine[i, b].clone(), nll[i].reshape(side, side)
                row, col = divmod(b, side)
                for axis, at, line in ((0, row, surface[:, col]), (1, col, surface[row, :])):
                    if 0 < at < side - 1:
                        lo, mid, hi = (float(t) for t in line[at - 1 : at + 2])
                        if lo - 2 * mid + hi > 0:
                            point[axis] += AXES_FINE_STEP * 0.5 * (lo - hi) / (lo - 2 * mid + hi)
                axes.append(point.clamp(0.0, top))
                noise.append(n[i, b])
        return torch.stack(axes), torch.stack(noise)

    @staticmethod
    def axis_ratio(axes: tuple[float, float]) -> float:
        """``max(σ_v, σ_h) / max(min(σ_v, σ_h), AXES_RATIO_FLOOR)``: how much one axis is blurred more."""
        return max(axes) / max(min(axes), AXES_RATIO_FLOOR)

    def anisotropic(self, axes: tuple[float, float], sigma_y: float) -> bool:
        """Whether an axis-aligned fit ``axes`` of an input with noise ``sigma_y`` is an anisotropic blur: its axes
        ``min_axis_ratio`` apart (:meth:`axis_ratio`), read where the noise is at most ``max_axis_noise`` (above it,
        noise and the anatomy's own directions spread an isotropic blur's axes as far: on val at σ_y 0.01 one in
        ten isotropic blurs reads 1.3 apart, at 0.002 one in a hundred)."""
        return (self.min_axis_ratio is not None and sigma_y <= self.max_axis_noise
                and self.axis_ratio(axes) >= self.min_axis_ratio)

    def _profile(self, y2: torch.Tensor, floor2: torch.Tensor, g: torch.Tensor | None = None,
                 iterations: int | None = None) -> tuple[torch.Tensor, ...]:
        """Negative log-likelihood per (image, σ) with gain, spectral tilt and noise fitted, the gain, the noise and
        the fitted moments ``(B, S, K)``; ``y2`` ``(B, K)``, ``g`` the moments ``(1 or B, S, K)`` at the σ's tried
        (default: the spectrum's grid); ``iterations`` (default: the estimator's) of Fisher scoring.

        ``v_k = a · G_k(σ) · r_k^β + n`` (``r_k`` the radial frequency over its median: β lets an image's texture
        be a little richer or poorer than the training average without being taken for blur or noise); Fisher
        scoring in ``(log a, β, log n)``, all (image, σ) pairs at once.
        """
        g = (self.signal[None] if g is None else g).to(self.dtype)  # (1 or B, S, K)
        y2 = y2[:, None, :].to(self.dtype)  # (B, 1, K)
        log_r = self.log_radius.to(self.dtype)
        b, s_count = y2.shape[0], g.shape[1]
        theta = torch.zeros(b, s_count, 3, dtype=self.dtype)
        g = g.expand(b, -1, -1)
        theta[..., 0] = ((y2.mean(-1) / g.mean(-1)).clamp_min(1e-12)).log()
        theta[..., 2] = torch.maximum(y2[..., -max(1, y2.shape[-1] // 8):].median(dim=-1).values.expand(-1, s_count),
                                      floor2[:, None]).clamp_min(1e-20).log()
        log_floor = floor2.clamp_min(1e-20).log()[:, None].to(self.dtype)
        best_theta, best_nll = theta.clone(), torch.full((b, s_count), float("inf"), dtype=self.dtype)
        for _ in range(self.iterations if iterations is None else iterations):
            a, beta, n = theta[..., 0:1].exp(), theta[..., 1:2], theta[..., 2:3].exp()
            signal = a * g * torch.exp(beta * log_r)
            v = signal + n
            nll = 0.5 * (v.log() + y2 / v).sum(-1)
            better = nll < best_nll
            best_nll, best_theta = torch.where(better, nll, best_nll), torch.where(better[..., None], theta, best_theta)
            w = 1.0 / v - y2 / v**2  # ∂NLL/∂v
            jac = torch.stack([signal, signal * log_r, n.expand_as(v)], dim=-1)  # ∂v/∂θ, (B, S, K, 3)
            grad = (w[..., None] * jac).sum(-2)
            fisher = torch.einsum("bskp,bskq->bspq", jac / v[..., None], jac / v[..., None])
            fisher = fisher + 1e-9 * torch.eye(3, dtype=self.dtype)
            step = torch.linalg.solve(fisher, grad[..., None])[..., 0].clamp(-2, 2)
            theta = theta - step
            theta[..., 1] = theta[..., 1].clamp(-self.max_tilt, self.max_tilt)
            theta[..., 2] = torch.maximum(theta[..., 2], log_floor)
        a, beta, n = theta[..., 0:1].exp(), theta[..., 1:2], theta[..., 2:3].exp()
        v = a * g * torch.exp(beta * log_r) + n
        nll = 0.5 * (v.log() + y2 / v).sum(-1)  # (B, S)
        # Fisher scoring has no line search: where a fit ran away from a better point it had passed (seen on a few
        # inputs with a model far from their blur), keep that point
        diverged = nll > best_nll + 1.0
        if bool(diverged.any()):
            theta = torch.where(diverged[..., None], best_theta, theta)
            a, beta, n = theta[..., 0:1].exp(), theta[..., 1:2], theta[..., 2:3].exp()
            v = a * g * torch.exp(beta * log_r) + n
            nll = 0.5 * (v.log() + y2 / v).sum(-1)
        return nll.double(), a[..., 0].double(), n[..., 0].double(), v.double()

    def _axis_readings(self, y2: torch.Tensor, floor2: torch.Tensor, index: Sequence[int]) -> dict[int, AxisReading]:
        """The axis-aligned fit of the inputs ``index``, by index (:class:`AxisReading`)."""
        if not index:
            return {}
        y2, floor2 = y2[list(index)], floor2[list(index)]
        axes, noise = self._fit_axes(y2, floor2)
        nll, _, _, model = self._profile(y2, floor2, self._signal_axes(axes[:, None]))
        model = model[:, 0]
        misfit = blur_misfit(y2[:, self.read], model[:, self.read], self.cells)
        anisotropy = blur_anisotropy(y2, model, self.sectors)
        return {i: AxisReading((float(axes[k, 0]), float(axes[k, 1])), float(noise[k]), float(misfit[k]),
                               float(anisotropy[k]), float(nll[k, 0])) for k, i in enumerate(index)}

    def _alternative_readings(self, y2: torch.Tensor, floor2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The best blur that is not Gaussian for each input: its negative log-likelihood ``(B,)`` and its index in
        :attr:`alternative_kernels` ``(B,)``."""
        nll = torch.cat([self._profile(y2[part : part + 8], floor2[part : part + 8], self.alternative_signal)[0]
                         for part in range(0, y2.shape[0], 8)])
        best = nll.min(dim=1)
        return best.values, best.indices

    @staticmethod
    def describe_alternative(kernel: tuple[str, float, float]) -> str:
        """An alternative kernel ``(kind, std, angle)`` in words (ASCII: it goes into a derived DICOM's Derivation
        Description), e.g. ``"a streak (std 1.8 px) at 30 or 150 degrees from the rows"``."""
        kind, size, angle = kernel
        if kind == "disk":
            return f"a disk blur (std {size:.1f} px)"
        where = "along the rows" if angle == 0 else "along the columns" if angle == 90 else \
            f"at {angle:g} or {180 - angle:g} degrees from the rows"
        return f"a streak (std {size:.1f} px) {where}"

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, bits_stored: int | Sequence[int | None] | None = None,
                 averaged: float | Sequence[float] = 1.0, windows: Sequence | None = None) -> list[DegradationEstimate]:
        """Estimates for ``images`` ``(B, 1, N, N)`` in [0, 1] at the model scale.

        ``bits_stored``: one value or one per image (the source's Bits Stored; 8 for an 8-bit PNG), for the noise
        floor; None: no floor. ``averaged``: source pixels area-averaged into one model pixel (one or one per
        image; ``(side/N)²`` for a source whose padded square of ``side`` is resized to ``N × N``), which lowers the
        floor by its square root. ``windows``: each image's footprint ``((r0, r1), (c0, c1))`` (``None``: all of
        it, :func:`~xray_restore.transforms.model_window`): the regressor reads only that, never the padding of a
        non-square source (whose mirror seam it would take for a sharp edge).
        """
        if images.shape[-1] != self.size:
            raise ValueError(f"images are {images.shape[-1]}x{images.shape[-1]} but the estimator's spectrum was "
                             f"fitted at {self.size}x{self.size}.")
        b = images.shape[0]
        bits = list(bits_stored) if isinstance(bits_stored, Sequence) else [bits_stored] * b
        counts = list(averaged) if isinstance(averaged, Sequence) else [averaged] * b
        if len(bits) != b or len(counts) != b:
            raise ValueError(f"got {len(bits)} bits_stored and {len(counts)} averaged values for {b} images.")
        floors = torch.tensor([max(quantisation_floor(v, c), self.model_error_floor) for v, c in zip(bits, counts)],
                              dtype=torch.float64)
        coeffs = _dct2(_window(images, self.margin, self.alpha)).reshape(b, -1)[:, self.keep]
        y2, floor2 = coeffs**2, floors**2 * self.noise_gain
        coarse = self._profile(y2, floor2)[0]
        step = float(self.sigmas[1] - self.sigmas[0])
        offsets = torch.linspace(-step, step, 2 * self.refine + 1, dtype=torch.float64)
        centre = self.sigmas[coarse.argmin(dim=1)]
        fine = (centre[:, None] + offsets[None]).clamp(0.0, float(self.sigmas[-1]))  # (B, F)
        nll, gain, noise, fitted = self._profile(y2, floor2, self._signal_at(fine))
        best = nll.argmin(dim=1)
        model = fitted[torch.arange(b), best]
        misfit = blur_misfit(y2, model, self.rings)
        anisotropy = blur_anisotropy(y2, model, self.sectors)
        learned_all = None
        if self.regressor is not None:
            # one input at a time: a convolution's arithmetic depends on the batch size, and an image's estimate
            # must not depend on its batch neighbours (B, 2): σ, log σ_y
            crops = [images[i : i + 1] if windows is None or windows[i] is None else
                     images[i : i + 1, :, windows[i][0][0] : windows[i][0][1], windows[i][1][0] : windows[i][1][1]]
                     for i in range(b)]
            learned_all = torch.cat([self._learned(crop.float()) for crop in crops]).double()
        h = step / self.refine
        readings = []
        for i in range(b):
            j = int(best[i])
            sigma, curvature = float(fine[i, j]), 0.0
            inside = 0 < j < fine.shape[1] - 1 and float(fine[i, j - 1]) < float(fine[i, j]) < float(fine[i, j + 1])
            if inside:
                lo, mid, hi = (float(v) for v in nll[i, j - 1 : j + 2])
                curvature = (lo - 2 * mid + hi) / h**2
                if curvature > 0:
                    sigma = sigma + h * 0.5 * (lo - hi) / (lo - 2 * mid + hi)
            elif j + 1 < fine.shape[1] and float(fine[i, j + 1]) > float(fine[i, j]):  # at σ = 0: one-sided
                curvature = 2 * (float(nll[i, j + 1]) - float(nll[i, j])) / h**2
            std = 1.0 / math.sqrt(curvature) if curvature > 0 else float("inf")
            sigma = max(0.0, sigma)
            sigma_y = max(math.sqrt(float(noise[i, j]) / self.noise_gain), float(floors[i]))
            spectral, method, learned = sigma, "spectral", (None, None)
            if learned_all is not None:
                learned = (max(0.0, float(learned_all[i, 0])), math.exp(float(learned_all[i, 1])))
                # the regressor reads the noise before storage: the quantisation adds in quadrature
                learned_noise = math.hypot(learned[1], float(floors[i]))
                if abs(learned[0] - spectral) <= self.max_disagreement:  # the two agree: the regressor refines
                    sigma = self.learned_weight * learned[0] + (1.0 - self.learned_weight) * spectral
                    sigma_y, method = learned_noise, "spectral+learned"
                elif learned[0] < spectral:  # they disagree: the smaller blur (under-restoring harms least)
                    sigma, sigma_y, method = learned[0], learned_noise, "learned"
                    std = float("inf")  # the likelihood's curvature says nothing about the regressor's reading
            checks = (None, None) if method == "learned" else (float(misfit[i]), float(anisotropy[i]))
            readings.append((j, sigma, std, sigma_y, spectral, method, learned, checks))
        # the axis-aligned fit, of each input that could be read as anisotropic (low noise), or of all of them where
        # the evidence for a blur that is not Gaussian needs the best Gaussian of either kind
        evidence = self.alternative_signal is not None
        index = [i for i, r in enumerate(readings)
                 if evidence or (self.min_axis_ratio is not None and r[3] <= self.max_axis_noise)]
        axes_fits = self._axis_readings(y2, floor2, index)
        if evidence:
            alternative_nll, alternative = self._alternative_readings(y2, floor2)
        out = []
        for i, (j, sigma, std, sigma_y, spectral, method, learned, checks) in enumerate(readings):
            axes, axis_checks, non_gaussian, ratio = None, (None, None), (None, None), None
            if evidence:
                gaussian_nll = min(float(nll[i, j]), axes_fits[i].nll)
                non_gaussian = (gaussian_nll - float(alternative_nll[i]),
                                self.describe_alternative(self.alternative_kernels[int(alternative[i])]))
            if i in axes_fits and self.min_axis_ratio is not None:
                fit = axes_fits[i]
                if self.anisotropic(fit.axes, sigma_y):
                    # an axis-aligned blur: the blur to restore with, and that fit's noise. ``blur_sigma`` stays the
                    # isotropic estimate, which the no-blur gate and the records read as before (the anatomy of a
                    # sharp study can read as two axes apart, and must still be reported as no blur)
                    axes, axis_checks = fit.axes, (fit.misfit, fit.anisotropy)
                    sigma_y = max(math.sqrt(fit.noise / self.noise_gain), float(floors[i]))
            if i in axes_fits and axes is None:
                ratio = self.axis_ratio(axes_fits[i].axes)
            out.append(DegradationEstimate(
                blur_sigma=sigma,
                sigma_y=sigma_y,
                blur_sigma_std=std,
                gain=float(gain[i, j]),
                noise_floor=float(floors[i]),
                spectral_blur_sigma=spectral,
                learned_blur_sigma=learned[0],
                learned_sigma_y=learned[1],
                method=method,
                # the checks of the spectral fit that stands behind σ̂ (set aside for the regressor: unknown)
                blur_misfit=checks[0],
                blur_anisotropy=checks[1],
                blur_sigma_axes=axes,
                axis_misfit=axis_checks[0],
                axis_anisotropy=axis_checks[1],
                axis_ratio=ratio,
                non_gaussian_evidence=non_gaussian[0],
                alternative_blur=non_gaussian[1],
            ))
        return out
