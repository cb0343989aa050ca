"""Evaluation protocols (how y is simulated from a clean image) and per-image metrics."""

from __future__ import annotations

from typing import Literal

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .operators import GaussianBlur

__all__ = ["Protocol", "PROTOCOLS", "make_operator", "degrade", "psnr", "ssim"]

Protocol = Literal["case_study", "realistic"]
PROTOCOLS: dict[str, dict] = {
    # The reference study: thresholded 9-tap operator, float y (the "inverse crime"), σ_y = 5e-6.
    "case_study": {"sigma_y": 5e-6, "quantize_bits": None},
    # Real blur: exact 13-tap operator, σ_y = 0.01, y stored as 8-bit.
    "realistic": {"sigma_y": 0.01, "quantize_bits": 8},
}


def make_operator(protocol: Protocol, size: int = 64) -> GaussianBlur:
    """The operator of a protocol: ``case_study`` preset, or the default ``GaussianBlur``."""
    if protocol == "case_study":
        return GaussianBlur.case_study(size=size)
    if protocol == "realistic":
        return GaussianBlur(size=size)
    raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}.")


def degrade(
    x: torch.Tensor,
    protocol: Protocol,
    generator: torch.Generator,
    sigma_y: float | None = None,
    operator: GaussianBlur | None = None,
) -> torch.Tensor:
    """Simulate y from clean ``x`` ``(B, 1, N, N)`` in [0, 1] under a protocol (float64 arithmetic).

    ``case_study``: ``y = H_thr x + σ_y n`` in float. ``realistic``: ``y = Q₈(H x + σ_y n)`` with the exact blur
    and 8-bit quantisation (clipped to [0, 1]).
    """
    settings = PROTOCOLS[protocol]
    sigma_y = settings["sigma_y"] if sigma_y is None else sigma_y
    op = operator or make_operator(protocol, x.shape[-1])
    x64 = x.to(torch.float64)
    noise = torch.randn(x64.shape, generator=generator, dtype=torch.float64)
    if protocol == "case_study":
        return (op.H_thresholded(x64) + sigma_y * noise).to(x.dtype)
    levels = 2 ** settings["quantize_bits"] - 1
    y = op.H(x64) + sigma_y * noise
    return (torch.round(y.clamp(0, 1) * levels) / levels).to(x.dtype)


def psnr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) on [0, 1] after clamping the estimate, ``(B,)``."""
    return peak_signal_noise_ratio(
        estimate.clamp(0, 1).double(), reference.double(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )


def ssim(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM on [0, 1] (Gaussian window 11, σ 1.5), ``(B,)``."""
    return structural_similarity_index_measure(
        estimate.clamp(0, 1).double(), reference.double(), data_range=1.0, reduction="none"
    )
