"""Orthonormal DCT-II and its inverse (DCT-III) along one axis, through the FFT: ``O(N log N)`` per line.

A symmetric kernel convolved with half-sample symmetric borders (numpy's ``symmetric``: ``b a | a b c``) is
diagonalised exactly by the DCT-II, so a separable Gaussian blur of an ``H × W`` image has the SVD
``H = Cᵀ diag(λ) C`` with ``C`` these transforms (:class:`~xray_restore.operators.DCTGaussianBlur`).
"""

from __future__ import annotations

import math

import torch

__all__ = ["dct", "idct", "dct_matrix", "symmetric_kernel_eigenvalues"]


def _twiddle(n: int, sign: int, device, dtype) -> torch.Tensor:
    k = torch.arange(n, device=device, dtype=dtype)
    return torch.polar(torch.ones_like(k), sign * math.pi * k / (2 * n))


def dct(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Orthonormal DCT-II of ``x`` along ``dim`` (real floating tensor; same shape and dtype)."""
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)  # Makhoul's reordering
    spectrum = torch.fft.fft(v, dim=-1)
    out = (spectrum * _twiddle(n, -1, x.device, x.dtype)).real * math.sqrt(2.0 / n)
    out[..., 0] = out[..., 0] / math.sqrt(2.0)
    return out.movedim(-1, dim)


def idct(y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Inverse of :func:`dct` (the orthonormal DCT-III) along ``dim``."""
    y = y.movedim(dim, -1)
    n = y.shape[-1]
    scaled = y * math.sqrt(n / 2.0)
    scaled = torch.cat([scaled[..., :1] * math.sqrt(2.0), scaled[..., 1:]], dim=-1)
    shifted = torch.cat([torch.zeros_like(scaled[..., :1]), scaled[..., 1:].flip(-1)], dim=-1)  # X_{N-k}, X_N = 0
    spectrum = torch.complex(scaled, -shifted) * _twiddle(n, 1, y.device, y.dtype)
    v = torch.fft.ifft(spectrum, dim=-1).real
    out = torch.empty_like(v)
    half = (n + 1) // 2
    out[..., ::2] = v[..., :half]
    out[..., 1::2] = v[..., half:].flip(-1)
    return out.movedim(-1, dim)


def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The ``n × n`` orthonormal DCT-II matrix ``C`` (``dct(x) = C x``), for tests and small sizes."""
    return dct(torch.eye(n, dtype=dtype), dim=0)


def symmetric_kernel_eigenvalues(kernel: torch.Tensor, n: int) -> torch.Tensor:
    """Eigenvalues ``λ_k = h₀ + 2 Σ_j h_j cos(π k j / n)`` of the ``n × n`` half-sample symmetric convolution by a
    symmetric odd-length ``kernel`` (radius < n), in the DCT-II basis; float64 ``(n,)``."""
    radius = kernel.numel() // 2
    if kernel.ndim != 1 or kernel.numel() % 2 == 0 or not torch.allclose(kernel, kernel.flip(0)):
        raise ValueError("kernel must be 1-D, symmetric and of odd length.")
    if radius >= n:
        raise ValueError(f"a kernel of {kernel.numel()} taps is too wide to mirror in {n} pixels.")
    h = kernel.to(torch.float64)[radius:]  # h_0 … h_r
    k = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(1, radius + 1, dtype=torch.float64)[None, :]
    return h[0] + 2.0 * (h[1:][None, :] * torch.cos(math.pi * k * j / n)).sum(1)
