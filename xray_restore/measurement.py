"""The measurement model ``y = Q_b(H x + σ_y n)``: one home for how a blurred, noisy, stored radiograph is simulated.

Used by evaluation (the protocols), the MONAI transform ``Degrade`` (training pairs, bundle configs), the
conditional model's training condition and the prior's embedded samples. Values are in [0, 1]; ``Q_b`` clips to
[0, 1] and rounds to ``2^b − 1`` levels (b = None: float y, no clipping).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from .operators import GaussianBlur, SVDOperator

__all__ = ["Protocol", "PROTOCOLS", "REAL_BORDERS", "make_operator", "quantise", "measure", "degrade",
           "NON_GAUSSIAN_BLURS", "non_gaussian_kernel", "convolve_mirrored"]

#: The borders a real radiograph's blur leaves at the model scale, as the chain pads it: the scene mirrored (the
#: protocols' zero padding darkens the input's edge, which any restoration then "gains" back, understating harm).
REAL_BORDERS = "symmetric"

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


def quantise(y: torch.Tensor, bits: int | None) -> torch.Tensor:
    """``Q_b``: clip to [0, 1] and round to ``2^bits − 1`` levels; ``bits=None`` returns ``y`` unchanged."""
    if not bits:
        return y
    levels = 2**bits - 1
    return torch.round(y.clamp(0, 1) * levels) / levels


def measure(x: torch.Tensor, operator: SVDOperator, sigma_y: float | torch.Tensor, noise: torch.Tensor,
            quantize_bits: int | None = 8, thresholded: bool = False) -> torch.Tensor:
    """``Q_b(H x + σ_y n)`` for ``x`` ``(B, 1, N, N)`` in [0, 1] and a standard-normal ``noise`` of its shape.

    ``sigma_y``: a number or a tensor broadcastable to ``x`` (one σ_y per image); ``thresholded``: apply the
    operator's thresholded form (the case study's "inverse crime"). Computed in the dtype of ``x``.
    """
    if isinstance(sigma_y, (int, float)) and sigma_y < 0:
        raise ValueError(f"sigma_y must be >= 0, got {sigma_y}.")
    blur = operator.H_thresholded if thresholded else operator.H
    return quantise(blur(x) + sigma_y * noise, quantize_bits)


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
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}.")
    settings = PROTOCOLS[protocol]
    sigma_y = settings["sigma_y"] if sigma_y is None else sigma_y
    op = operator or make_operator(protocol, x.shape[-1])
    x64 = x.to(torch.float64)
    noise = torch.randn(x64.shape, generator=generator, dtype=torch.float64)
    y = measure(x64, op, sigma_y, noise, settings["quantize_bits"], thresholded=protocol == "case_study")
    return y.to(x.dtype)


#: Blurs that are not Gaussian, as real ones can be: a defocus (or square focal-spot) disk and a motion streak.
NON_GAUSSIAN_BLURS = ("disk", "motion")


def non_gaussian_kernel(kind: str, sigma: float, angle: float = 0.0, supersample: int = 16) -> torch.Tensor:
    """A normalised 2-D blur kernel ``(k, k)`` float64 of std ``sigma`` px along each axis (disk) or its streak.

    ``"disk"``: a uniform disk of radius ``2σ`` (a defocus blur, a uniform focal spot); ``"motion"``: a uniform
    streak of length ``√12·σ`` at ``angle`` radians from the row direction (patient motion). Each pixel holds the
    kernel's area over it (``supersample``² points per pixel), so small kernels keep their shape.
    """
    if kind not in NON_GAUSSIAN_BLURS:
        raise ValueError(f"kind must be one of {NON_GAUSSIAN_BLURS}, got {kind!r}.")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}.")
    reach = 2.0 * sigma if kind == "disk" else math.sqrt(12.0) * sigma / 2.0
    r = math.ceil(reach) + 1
    n = (2 * r + 1) * supersample
    c = (torch.arange(n, dtype=torch.float64) + 0.5) / supersample - (r + 0.5)
    rows, cols = torch.meshgrid(c, c, indexing="ij")
    if kind == "disk":
        fine = (rows**2 + cols**2 <= reach**2).double()
    else:
        along = cols * math.cos(angle) + rows * math.sin(angle)
        across = -cols * math.sin(angle) + rows * math.cos(angle)
        fine = ((along.abs() <= reach) & (across.abs() <= 0.5 / supersample)).double()
    kernel = fine.reshape(2 * r + 1, supersample, 2 * r + 1, supersample).sum(dim=(1, 3))
    return kernel / kernel.sum()


def convolve_mirrored(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, 1, N, N)`` convolved with ``kernel`` ``(k, k)`` (k odd), the scene mirrored at the borders
    (float64)."""
    r = kernel.shape[-1] // 2
    padded = F.pad(x.to(torch.float64), (r, r, r, r), mode="reflect")
    return F.conv2d(padded, kernel.flip(-1, -2)[None, None].to(torch.float64))
