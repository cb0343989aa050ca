"""The checks that say an input's blur is not the Gaussian the product restores: one registry.

Each :class:`Check` names a statistic of the estimate (a :class:`~xray_restore.estimation.DegradationEstimate`
attribute, also a report column), the limit it is held to (a :class:`GaussianLimits` field, whose home is the bundle's
``inference.json``), what it says in words, and which fit it applies to. The estimate's findings
(:func:`findings`), the report's columns (``report.CHECK_KEYS``) and the limits all read :data:`CHECKS`: a new check is
one entry here, one statistic in the estimator and one value in ``inference.json``.

The statistics of the spectral fit are here too (:func:`blur_misfit`, :func:`blur_anisotropy`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch

#: Width of the spectral rings :func:`blur_misfit` sums over (DCT indices of the interior window).
MISFIT_RING = 3
#: Angular sectors of the DCT quadrant (0°–90°, equal angles) :func:`blur_anisotropy` compares.
ANISOTROPY_SECTORS = 3
#: The radial band :func:`blur_anisotropy` reads, in DCT indices of the interior window: from this index ...
ANISOTROPY_BAND_FROM = 3
#: ... to this fraction of the window's side (beyond it, noise dominates any blur the product restores).
ANISOTROPY_BAND_TO = 0.7

__all__ = ["CHECKS", "Check", "GaussianLimits", "blur_anisotropy", "blur_misfit", "findings", "mismatch"]


@dataclass(frozen=True)
class Check:
    """One check: ``statistic`` (an estimate attribute and report column) over the :class:`GaussianLimits` field
    ``limit`` says the blur is not Gaussian; ``label`` and ``hint`` are its finding in words (``hint`` may name
    ``{alternative_blur}``); ``applies_to``: the inputs restored as an isotropic blur, those restored with their
    axes (``blur_sigma_axes``), or both."""

    statistic: str
    limit: str
    label: str
    hint: str
    applies_to: Literal["isotropic", "axes", "both"]


#: Every check, in the order its findings are reported (and the report's columns).
CHECKS: tuple[Check, ...] = (
    Check("blur_misfit", "max_blur_misfit", "spectral misfit", "a defocus or motion blur?", "isotropic"),
    Check("blur_anisotropy", "max_blur_anisotropy", "anisotropy", "a blur along one direction, motion?", "isotropic"),
    Check("axis_misfit", "max_axis_misfit", "misfit of its axis-aligned model", "a streak?", "axes"),
    Check("axis_anisotropy", "max_axis_anisotropy", "anisotropy beyond its axis-aligned model",
          "a streak at an angle?", "axes"),
    Check("axis_ratio", "max_axis_ratio", "axis ratio", "a blur along a row or a column, too noisy to restore as one?",
          "isotropic"),
    Check("non_gaussian_evidence", "max_non_gaussian_evidence", "evidence for a blur that is not Gaussian",
          "{alternative_blur} explains it better", "both"),
)


@dataclass(frozen=True)
class GaussianLimits:
    """The limit of each check (None: that check is off). Home of the values: the bundle's ``inference.json``; the
    evidence for each is named per field (``benchmarks/results/``, and docs/estimation.md).

    Attributes:
        max_blur_misfit: :func:`blur_misfit` of the isotropic fit (3.5: ``blur_mismatch.json``, disks and streaks
            against Gaussian blurs of val).
        max_blur_anisotropy: :func:`blur_anisotropy` of the isotropic fit (1.7: ``blur_mismatch.json``).
        max_axis_misfit: the axis model's misfit over rings and sectors (1.3: ``blur_mismatch.json``, axis-aligned
            rows).
        max_axis_anisotropy: the anisotropy beyond the axis model (0.7: ``blur_mismatch.json``).
        max_axis_ratio: the axis ratio of an input restored as isotropic (3.0: ``blur_mismatch.json``).
        max_non_gaussian_evidence: nats by which a disk or streak beats the best Gaussian (10: ``blur_mismatch.json``).
    """

    max_blur_misfit: float | None = None
    max_blur_anisotropy: float | None = None
    max_axis_misfit: float | None = None
    max_axis_anisotropy: float | None = None
    max_axis_ratio: float | None = None
    max_non_gaussian_evidence: float | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value)
                                                                                      and value > 0):
                raise ValueError(f"{field.name} must be None or a number > 0, got {value!r}.")
            object.__setattr__(self, field.name, float(value))

    def as_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)


if {c.limit for c in CHECKS} != {f.name for f in dataclasses.fields(GaussianLimits)}:  # pragma: no cover
    raise ImportError("checks.CHECKS and GaussianLimits disagree")


def findings(estimate, limits: GaussianLimits) -> list[str]:
    """What says ``estimate``'s blur is not the Gaussian the product would restore it with: one line per check over
    its limit (empty: none). An input restored with its axes (``blur_sigma_axes``) is read by the checks of the axis
    model, any other by those of the isotropic fit; both by the evidence for a blur that is not Gaussian."""
    kind = "axes" if getattr(estimate, "blur_sigma_axes", None) is not None else "isotropic"
    out = []
    for check in CHECKS:
        value, limit = getattr(estimate, check.statistic, None), getattr(limits, check.limit)
        if check.applies_to in (kind, "both") and limit is not None and value is not None and value > limit:
            hint = check.hint.format(alternative_blur=getattr(estimate, "alternative_blur", None))
            out.append(f"{check.label} {value:.2f} > {limit:g}: {hint}")
    return out


def mismatch(estimate, limits: GaussianLimits) -> str | None:
    """Why ``estimate`` is handed back as a blur that is not Gaussian (a sentence naming each check over its limit),
    or None where none is."""
    found = findings(estimate, limits)
    return (f"the blur is not Gaussian ({'; '.join(found)}), and restoring it as one would make it worse"
            if found else None)


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
