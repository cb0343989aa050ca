"""Blur and noise of each input, estimated from the input itself (before any restoration).

Model (at the 64×64 model scale, intensities in [0, 1]): ``y = h_σ * x + n`` with ``x`` a chest radiograph, ``h_σ``
an isotropic Gaussian of std σ pixels (σ = 0: no blur) and ``n`` white noise of std σ_y. On an interior window the
orthonormal DCT-II nearly diagonalises both the blur and the image statistics, which gives a spectral (Whittle)
likelihood ``Y_k ~ N(0, a · |ĥ_σ(k)|² · P_k + σ_y²)`` with ``P_k`` learned from sharp training radiographs
(:mod:`xray_restore.spectrum`) and ``a`` a free contrast gain. σ̂ maximises the profile likelihood (a grid, a grid 8×
finer, a parabola); its standard error is the curvature there. σ_y is never reported below the quantisation floor of
the source's Bits Stored as it reaches the model scale. The same fit with an axis-aligned Gaussian ``(σ_v, σ_h)``
reads a blur that differs along the two axes, and the same likelihood under a disk and a uniform streak gives the
evidence for a blur that is not Gaussian. A learned regressor
(:class:`~xray_restore.blur_regressor.DegradationRegressor`) is a second opinion: where the two agree the estimate
blends them, where they disagree the smaller blur is kept.
The statistics that say whether a Gaussian explains the input are the checks' (:mod:`xray_restore.checks`). The whole
derivation, with the evidence for each choice: docs/estimation.md, "The model behind the estimate".
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import torch

from .checks import (
    ANISOTROPY_BAND_FROM,
    ANISOTROPY_BAND_TO,
    ANISOTROPY_SECTORS,
    MISFIT_RING,
    blur_anisotropy,
    blur_misfit,
)
from .degradation import DegradationEstimate, quantisation_floor
from .spectrum import dct2, interior_window, load_spectrum, taper

#: The axis-aligned fit: a coarse grid (px per axis; Fisher steps per point), then a fine grid of ± 3 steps.
AXES_STEP, AXES_COARSE_ITERATIONS, AXES_FINE_STEP, AXES_FINE_SPAN = 0.4, 4, 0.1, 3
#: The smaller axis counts as at least this (px) in the axis ratio: a sharp axis makes no ratio by itself.
AXES_RATIO_FLOOR = 0.5

__all__ = [
    "AxisReading",
    "DegradationEstimate",
    "SpectralDegradationEstimator",
    "quantisation_floor",
]


class _Reading(NamedTuple):
    """One input's isotropic reading, before the axis-aligned and non-Gaussian fits: the index of its best point on
    the fine grid, σ̂ and its standard error, σ_y, the spectral fit's own σ̂, which opinion was kept, the regressor's
    ``(σ, σ_y)`` and the checks of the spectral fit ``(misfit, anisotropy)`` (None where it was set aside)."""

    index: int
    sigma: float
    std: float
    sigma_y: float
    spectral: float
    method: str
    learned: tuple[float | None, float | None]
    checks: tuple[float | None, float | None]


class AxisReading(NamedTuple):
    """An input's axis-aligned blur fit: its axes ``(σ_v, σ_h)`` (px), that fit's noise variance (DCT units), the
    misfit and anisotropy of the input against its own axis model (what a streak's lobes and angle show), and that
    model's negative log-likelihood."""

    axes: tuple[float, float]
    noise: float
    misfit: float
    anisotropy: float
    nll: float


class SpectralDegradationEstimator:
    """Per-image maximum (Whittle) likelihood of the blur σ and noise σ_y, batched.

    Args:
        spectrum: from :func:`fit_spectrum` / :func:`load_spectrum` (or a path to it); its σ grid (from 0 to
            the largest blur considered, model-scale pixels) is searched, then refined 8× finer and parabolically.
        iterations: Fisher-scoring iterations for the gain and noise at each σ.
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
        >>> from xray_restore.spectrum import fit_spectrum
        >>> g = torch.Generator().manual_seed(0)
        >>> train = torch.rand(32, 1, 64, 64, generator=g)
        >>> estimator = SpectralDegradationEstimator(fit_spectrum(train))
        >>> y = GaussianBlur(64, 2.0).H(train[:2].double()).float()
        >>> [round(e.blur_sigma) for e in estimator(y)]
        [2, 2]
    """

    def __init__(self, spectrum: dict | str | os.PathLike, iterations: int = 10,
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
        """Negative log-likelihood per (image, σ) with gain and noise fitted, the gain, the noise and the fitted
        moments ``(B, S, K)``; ``y2`` ``(B, K)``, ``g`` the moments ``(1 or B, S, K)`` at the σ's tried (default: the
        spectrum's grid); ``iterations`` (default: the estimator's) of Fisher scoring.

        ``v_k = a · G_k(σ) · r_k^β + n`` with the spectral tilt β held at 0 (``r_k`` the radial frequency over its
        median): each Fisher step is solved in ``(log a, β, log n)`` and its β part dropped. That is the scoring
        every limit and the regressor blend were calibrated with; a plain two-parameter solve moves σ̂ by up to
        0.1 px (mean 0.008 px on val) and the non-Gaussian evidence by tens of nats, so it would need the gate
        recalibrated (docs/experiments.md). All (image, σ) pairs at once.
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
            theta[..., 1] = 0.0  # the tilt is held at 0 (see above)
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
        coeffs = dct2(interior_window(images, self.margin, self.alpha)).reshape(b, -1)[:, self.keep]
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
            readings.append(_Reading(j, sigma, std, sigma_y, spectral, method, learned, checks))
        # the axis-aligned fit, of each input that could be read as anisotropic (low noise), or of all of them where
        # the evidence for a blur that is not Gaussian needs the best Gaussian of either kind
        evidence = self.alternative_signal is not None
        index = [i for i, r in enumerate(readings)
                 if evidence or (self.min_axis_ratio is not None and r.sigma_y <= self.max_axis_noise)]
        axes_fits = self._axis_readings(y2, floor2, index)
        if evidence:
            alternative_nll, alternative = self._alternative_readings(y2, floor2)
        out = []
        for i, r in enumerate(readings):
            sigma_y, axes, axis_checks, non_gaussian, ratio = r.sigma_y, None, (None, None), (None, None), None
            if evidence:
                gaussian_nll = min(float(nll[i, r.index]), axes_fits[i].nll)
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
                blur_sigma=r.sigma,
                sigma_y=sigma_y,
                blur_sigma_std=r.std,
                gain=float(gain[i, r.index]),
                noise_floor=float(floors[i]),
                spectral_blur_sigma=r.spectral,
                learned_blur_sigma=r.learned[0],
                learned_sigma_y=r.learned[1],
                method=r.method,
                # the checks of the spectral fit that stands behind σ̂ (set aside for the regressor: unknown)
                blur_misfit=r.checks[0],
                blur_anisotropy=r.checks[1],
                blur_sigma_axes=axes,
                axis_misfit=axis_checks[0],
                axis_anisotropy=axis_checks[1],
                axis_ratio=ratio,
                non_gaussian_evidence=non_gaussian[0],
                alternative_blur=non_gaussian[1],
            ))
        return out
