"""Linear degradation operators with an exact, image-shaped SVD.

Every operator here is ``H = U diag(s) Vᵀ`` on single-channel ``(B, 1, N, N)`` images. The spectra are
kept image-shaped (``(B, 1, N, N)``), never flattened or permuted, so the singular values broadcast
against them and no channel layout can go wrong (cf. the tiling bug of the official DDRM code).

The separable blur ``H x = A X Bᵀ`` has the Kronecker SVD ``H = (U₁⊗U₂)(S₁⊗S₂)(V₁⊗V₂)ᵀ`` taken from the
1-D factors ``A = U₁ S₁ V₁ᵀ`` and ``B = U₂ S₂ V₂ᵀ`` (``N × N``; ``B = A`` for an isotropic blur of the whole image,
``B ≠ A`` when only a non-square window of a canvas is observed), so the ``N² × N²`` matrix is never built.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import nn

__all__ = ["SVDOperator", "SeparableSVDOperator", "GaussianBlur", "DCTGaussianBlur", "gaussian_kernel_1d",
           "convolution_matrix", "blur_operator", "snap_sigma"]

Padding = Literal["zeros", "reflect", "symmetric"]


def gaussian_kernel_1d(sigma: float, radius: int) -> torch.Tensor:
    """Sampled Gaussian ``exp(-k²/2σ²)`` at ``k = -radius..radius``, normalised to sum 1 (float64, ``2r+1`` taps)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}.")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}.")
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def convolution_matrix(kernel: torch.Tensor, size: int, padding: Padding = "zeros") -> torch.Tensor:
    """The ``size × size`` matrix of a centred "same" convolution.

    ``padding="zeros"``: ``A[i, j] = kernel[j - i + r]`` for ``|j - i| <= r`` (``r = len(kernel) // 2``); taps that
    fall outside the image are dropped, so the borders darken (the benchmark protocols' operator).
    ``padding="reflect"``: taps outside are mirrored about the edge pixel's centre (numpy's ``reflect``: ``c b | a b
    c``), so a flat image stays flat.
    ``padding="symmetric"``: mirrored about the edge pixel's outer boundary (numpy's ``symmetric``: ``b a | a b c``).
    This is what a blur of a larger (mirrored) scene followed by an area resize leaves at the model scale: the
    boundary of an area-averaged pixel is the source image's border, so the two chains agree to ~70 dB at σ = 2
    (``reflect``: ~46 dB), and it is the closer of the two when the scene really continues past the border.
    """
    if kernel.ndim != 1 or kernel.numel() % 2 == 0:
        raise ValueError(f"kernel must be 1-D with an odd number of taps, got shape {tuple(kernel.shape)}.")
    radius = kernel.numel() // 2
    if padding == "zeros":
        idx = torch.arange(size)
        offset = idx[None, :] - idx[:, None] + radius  # j - i + r
        inside = (offset >= 0) & (offset < kernel.numel())
        return torch.where(inside, kernel[offset.clamp(0, kernel.numel() - 1)], torch.zeros((), dtype=kernel.dtype))
    if padding not in ("reflect", "symmetric"):
        raise ValueError(f"padding must be 'zeros', 'reflect' or 'symmetric', got {padding!r}.")
    if radius >= size:
        raise ValueError(f"a kernel of {kernel.numel()} taps is too wide to mirror in {size} pixels.")
    index = torch.arange(-radius, size + radius)
    if padding == "reflect":
        index = index.abs()
        index = torch.where(index >= size, 2 * (size - 1) - index, index)
    else:
        index = torch.where(index < 0, -index - 1, index)
        index = torch.where(index >= size, 2 * size - 1 - index, index)
    matrix = torch.zeros(size, size, dtype=kernel.dtype)
    for i in range(size):
        matrix[i].index_add_(0, index[i : i + kernel.numel()], kernel)
    return matrix


class SVDOperator(nn.Module):
    """A linear operator ``H = U diag(s) Vᵀ`` acting on ``(B, 1, N, N)`` images.

    Subclasses implement ``U``, ``Ut``, ``V``, ``Vt`` and ``singulars``. ``singulars()`` returns the kept
    singular values, image-shaped ``(1, 1, N, N)``, with dropped components set to 0; the thresholded
    operator the pseudo-inverse and DDRM see is ``U(singulars() * Vt(x))``. ``H``/``Ht`` may be the exact
    (untruncated) operator.
    """

    size: int

    @property
    def device(self) -> torch.device:
        """Where the operator's tensors live (CPU for an operator without any)."""
        return next(iter(self.buffers()), torch.empty(0)).device

    def U(self, z: torch.Tensor) -> torch.Tensor:  # noqa: N802 - maths name
        raise NotImplementedError

    def Ut(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        raise NotImplementedError

    def V(self, z: torch.Tensor) -> torch.Tensor:  # noqa: N802
        raise NotImplementedError

    def Vt(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        raise NotImplementedError

    def singulars(self) -> torch.Tensor:
        raise NotImplementedError

    def H(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Forward operator (default: the thresholded SVD form)."""
        return self.H_thresholded(x)

    def Ht(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Adjoint operator (default: the thresholded SVD form)."""
        return self.V(self.singulars().to(y.dtype) * self.Ut(y))

    def H_thresholded(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """``U(s · Vᵀx)`` with dropped singular values set to 0."""
        return self.U(self.singulars().to(x.dtype) * self.Vt(x))

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Thresholded pseudo-inverse ``V S⁺ Uᵀ y``; ``S⁺ = 1/s`` on kept components, 0 elsewhere."""
        s = self.singulars().to(torch.float64)
        inverse = torch.where(s > 0, 1.0 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
        return self.V(inverse * self.Ut(y.to(torch.float64))).to(y.dtype)

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` is a finite floating ``(B, 1, N, N)`` tensor of this operator's size."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != x.shape[3]:
            raise ValueError(f"{name} must have shape (B, 1, N, N) (square, one channel), got {tuple(x.shape)}.")
        if x.shape[-1] != self.size:
            raise ValueError(f"{name} is {x.shape[-2]}x{x.shape[-1]} but the operator is {self.size}x{self.size}.")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}.")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or Inf values.")


class SeparableSVDOperator(SVDOperator):
    """``H x = A X Bᵀ`` for 1-D factors with SVDs ``A = U₁S₁V₁ᵀ`` (rows) and ``B = U₂S₂V₂ᵀ`` (columns).

    ``columns=None``: ``B = A`` (isotropic). All factor matrices are float64 buffers; inputs are cast to float64
    and results back to their dtype.
    """

    def __init__(self, matrix: torch.Tensor, kept_singulars: torch.Tensor | None = None,
                 columns: torch.Tensor | None = None) -> None:
        super().__init__()
        columns = matrix if columns is None else columns
        for name, m in (("matrix", matrix), ("columns", columns)):
            if m.ndim != 2 or m.shape[0] != m.shape[1]:
                raise ValueError(f"{name} must be square, got shape {tuple(m.shape)}.")
        if columns.shape != matrix.shape:
            raise ValueError(f"row and column factors differ in size: {tuple(matrix.shape)} vs {tuple(columns.shape)}.")
        self.size = matrix.shape[0]
        isotropic = columns is matrix
        for suffix, m in (("1", matrix), ("2", columns)):
            if suffix == "2" and isotropic:  # the row factor's own tensors, not saved twice
                u, s, v, m = self.U1, self.s1, self.V1, self.A
            else:
                m = m.to(torch.float64)
                u, s, vh = torch.linalg.svd(m)
                v = vh.T.contiguous()
            # the column factor is not part of the state (checkpoints of isotropic operators predate it; an
            # operator is always rebuilt from its constructor arguments)
            persistent = suffix == "1"
            self.register_buffer("A" if suffix == "1" else "B", m, persistent=persistent)
            self.register_buffer(f"U{suffix}", u, persistent=persistent)
            self.register_buffer(f"V{suffix}", v, persistent=persistent)
            self.register_buffer(f"s{suffix}", s, persistent=persistent)
        kept = self.full_singulars() if kept_singulars is None else kept_singulars.to(torch.float64)
        self.register_buffer("_singulars", kept.reshape(1, 1, self.size, self.size))

    @staticmethod
    def _sandwich(left: torch.Tensor, x: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        out = left @ x.to(torch.float64) @ right
        return out.to(x.dtype)

    def U(self, z: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._sandwich(self.U1, z, self.U2.T)

    def Ut(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._sandwich(self.U1.T, y, self.U2)

    def V(self, z: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._sandwich(self.V1, z, self.V2.T)

    def Vt(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._sandwich(self.V1.T, x, self.V2)

    def singulars(self) -> torch.Tensor:
        return self._singulars

    def full_singulars(self) -> torch.Tensor:
        """All 2-D singular values ``s_i·s_j`` (nothing dropped), ``(1, 1, N, N)``."""
        return torch.outer(self.s1, self.s2).reshape(1, 1, self.size, self.size)

    def H(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """The exact operator ``A X Bᵀ`` (every singular value)."""
        return self._sandwich(self.A, x, self.B.T)

    def Ht(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """The exact adjoint ``Aᵀ Y B``."""
        return self._sandwich(self.A.T, y, self.B)

    def num_kept(self) -> int:
        """Number of 2-D spectral components with a non-zero (kept) singular value."""
        return int((self._singulars > 0).sum())


class GaussianBlur(SeparableSVDOperator):
    """Gaussian blur on ``N × N`` images with its exact SVD: isotropic, or axis-aligned anisotropic.

    The 1-D kernel has ``2r+1`` taps with ``r = ceil(3σ)`` unless ``radius`` is given (13 taps at σ = 2),
    normalised to sum 1 and centred. ``sigma = (σ_v, σ_h)`` blurs with σ_v down the columns (along image axis 0,
    the row factor ``A``) and σ_h along the rows (axis 1, the column factor ``B``): ``H x = A X Bᵀ`` is still
    separable, with the Kronecker SVD of the two 1-D factors (a CR plate's scan and sub-scan directions differ in
    sharpness). Components with ``s_i·s_j <= threshold`` are dropped (set to 0 in
    :meth:`singulars`); :meth:`H` still applies the exact blur. ``sigma = 0`` is the identity (no blur: DDRM
    then only denoises).

    Args:
        size: image side N (pixels), >= 2.
        sigma: blur standard deviation in pixels, >= 0; or ``(σ_v, σ_h)``, one per image axis (equal values: the
            isotropic blur).
        threshold: ε for the 2-D singular values ``s_i·s_j`` (or for the 1-D values if
            ``threshold_on="1d"``), > 0.
        radius: kernel radius in pixels; default ``ceil(3σ)``.
        threshold_on: ``"2d"`` (drop ``s_i·s_j <= ε``) or ``"1d"`` (zero 1-D values ``s_i < ε`` before the
            Kronecker product, as the reference case study did).
        padding: ``"zeros"`` (the benchmark protocols), ``"reflect"`` or ``"symmetric"`` (a mirrored scene), see
            :func:`convolution_matrix`.
        window: ``((r0, r1), (c0, c1))``, the observed part of the ``size × size`` image (``None``: the operator
            acts on the image itself with ``padding`` at its borders). Given, the scene beyond the image is
            **unknown**, as at a real detector's edge: the operator acts on a canvas of side
            ``size + 2·margin`` (the image centred, ``margin`` = the kernel radius rounded up to even, so the
            canvas keeps the image side's divisibility by 4) and observes the blur only on the window, where the
            whole kernel lies on the canvas; every other row and column of the canvas is unobserved (singular
            value 0: DDRM's prior fills it in). ``padding`` then plays no part. A padded non-square radiograph
            observes only its own footprint (:func:`xray_restore.transforms.model_window`).

    Example:
        >>> op = GaussianBlur(size=32, sigma=2.0)
        >>> x = torch.rand(2, 1, 32, 32)
        >>> op.H(x).shape
        torch.Size([2, 1, 32, 32])
        >>> bool(torch.allclose(op.H(x), op.U(op.full_singulars().float() * op.Vt(x)), atol=1e-6))
        True
    """

    def __init__(
        self,
        size: int = 64,
        sigma: float | tuple[float, float] = 2.0,
        threshold: float = 3e-3,
        radius: int | None = None,
        threshold_on: Literal["2d", "1d"] = "2d",
        padding: Padding = "zeros",
        window: tuple[tuple[int, int], tuple[int, int]] | None = None,
    ) -> None:
        if not isinstance(size, int) or size < 2:
            raise ValueError(f"size must be an integer >= 2, got {size!r}.")
        axes = _checked_sigma(sigma)
        if not threshold > 0:
            raise ValueError(f"threshold (epsilon) must be > 0, got {threshold}.")
        if threshold_on not in ("2d", "1d"):
            raise ValueError(f"threshold_on must be '2d' or '1d', got {threshold_on!r}.")
        if radius is not None and int(radius) < 0:
            raise ValueError(f"radius must be >= 0, got {radius}.")
        kernels = [gaussian_kernel_1d(s, math.ceil(3 * s) if radius is None else int(radius)) if s > 0
                   else torch.ones(1, dtype=torch.float64) for s in axes]
        radius = max(k.numel() // 2 for k in kernels)
        isotropic = axes[0] == axes[1]
        if window is None:
            margin = 0
            rows = convolution_matrix(kernels[0], size, padding)
            columns = None if isotropic else convolution_matrix(kernels[1], size, padding)
        else:
            window = _checked_window(window, size)
            margin = 2 * math.ceil(radius / 2)
            rows, columns = (_observed_rows(k, size + 2 * margin, margin + lo, margin + hi)
                             for k, (lo, hi) in zip(kernels, window))
        super().__init__(rows, columns=columns)
        n = self.size
        if threshold_on == "2d":
            products = torch.outer(self.s1, self.s2)
            kept = torch.where(products > threshold, products, torch.zeros_like(products))
        else:
            s1, s2 = (torch.where(s >= threshold, s, torch.zeros_like(s)) for s in (self.s1, self.s2))
            kept = torch.outer(s1, s2)
        self._singulars = kept.reshape(1, 1, n, n)
        self.image_size = size
        self.margin = margin
        self.window = window
        #: σ in pixels: one number (isotropic), or ``(σ_v, σ_h)`` for an anisotropic blur
        self.sigma: float | tuple[float, float] = axes[0] if isotropic else axes
        self.threshold = float(threshold)
        self.radius = radius
        self.threshold_on = threshold_on
        self.padding = padding
        self.register_buffer("kernel", kernels[0])
        if not isotropic:
            self.register_buffer("kernel_h", kernels[1], persistent=False)

    @property
    def isotropic(self) -> bool:
        """Whether the blur is the same along both image axes."""
        return not isinstance(self.sigma, tuple)

    def to_canvas(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, n, n)`` images (``n = image_size``) on this operator's canvas: edge values repeated into the
        margin (unobserved: any values do)."""
        if not self.margin:
            return images
        return torch.nn.functional.pad(images, (self.margin,) * 4, mode="replicate")

    def from_canvas(self, images: torch.Tensor) -> torch.Tensor:
        """The image part ``(B, 1, n, n)`` of canvas-sized ``images``."""
        if not self.margin:
            return images
        return images[..., self.margin : self.margin + self.image_size, self.margin : self.margin + self.image_size]

    @classmethod
    def case_study(cls, size: int = 64) -> GaussianBlur:
        """The reference case study's effective operator: σ = 2, 9 taps (radius 2σ), 1-D s < 3e-2 zeroed."""
        return cls(size=size, sigma=2.0, threshold=3e-2, radius=4, threshold_on="1d")

    @property
    def config(self) -> dict:
        """Constructor arguments, for provenance (reports, DICOM DerivationDescription)."""
        return {
            "name": type(self).__name__,
            "size": self.size,
            "sigma": self.sigma if self.isotropic else list(self.sigma),
            "threshold": self.threshold,
            "radius": self.radius,
            "threshold_on": self.threshold_on,
            "padding": self.padding,
            **({"window": [list(w) for w in self.window], "margin": self.margin} if self.window is not None else {}),
        }

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.items() if k != "name")


def _checked_sigma(sigma) -> tuple[float, float]:
    """``(σ_v, σ_h)`` of a σ given as one number or a pair, each finite and >= 0."""
    pair = tuple(sigma) if isinstance(sigma, (tuple, list)) else (sigma, sigma)
    if len(pair) != 2:
        raise ValueError(f"sigma must be a number or a (vertical, horizontal) pair, got {sigma!r}.")
    for value in pair:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"sigma must be finite numbers >= 0, got {sigma!r}.")
    return float(pair[0]), float(pair[1])


def _checked_window(window, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    try:
        (r0, r1), (c0, c1) = ((int(a), int(b)) for a, b in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be ((r0, r1), (c0, c1)), got {window!r}.") from None
    for lo, hi in ((r0, r1), (c0, c1)):
        if not 0 <= lo < hi <= size or hi - lo < 2:
            raise ValueError(f"window {window!r} must lie in [0, {size}] with at least 2 pixels per side.")
    return (r0, r1), (c0, c1)


def _observed_rows(kernel: torch.Tensor, canvas: int, lo: int, hi: int) -> torch.Tensor:
    """The canvas's zero-padded convolution matrix with every row outside ``[lo, hi)`` (unobserved) zeroed."""
    matrix = convolution_matrix(kernel, canvas, "zeros")
    matrix[:lo] = 0
    matrix[hi:] = 0
    return matrix


def snap_sigma(sigma: float | tuple[float, float], resolution: float = 0.0) -> float | tuple[float, float]:
    """σ (pixels) on the grid of ``resolution`` (0: to 1e-6), never below 0: the blur :func:`blur_operator` builds.
    A ``(σ_v, σ_h)`` pair is snapped per axis, and is one number again where the two meet."""
    if isinstance(sigma, (tuple, list)):
        vertical, horizontal = (snap_sigma(s, resolution) for s in sigma)
        return vertical if vertical == horizontal else (vertical, horizontal)
    if not math.isfinite(sigma):
        raise ValueError(f"sigma must be finite, got {sigma}.")
    if not (math.isfinite(resolution) and resolution >= 0):
        raise ValueError(f"resolution must be a finite number >= 0, got {resolution}.")
    snapped = round(float(sigma) / resolution) * resolution if resolution else float(sigma)
    return round(max(0.0, snapped), 6)


@functools.lru_cache(maxsize=128)
def _cached_blur(size: int, sigma: float | tuple[float, float], threshold: float, padding: str, device: str,
                 window=None) -> GaussianBlur:
    return GaussianBlur(size=size, sigma=sigma, threshold=threshold, padding=padding, window=window).to(device)


def blur_operator(size: int, sigma: float | tuple[float, float], threshold: float = 3e-3, resolution: float = 0.0,
                  padding: Padding = "zeros", device: torch.device | str = "cpu",
                  window: tuple[tuple[int, int], tuple[int, int]] | None = None) -> GaussianBlur:
    """A (cached) :class:`GaussianBlur` for an estimated σ (or ``(σ_v, σ_h)``) on the grid of ``resolution`` pixels
    (:func:`snap_sigma`; σ ≤ 0: identity), on ``device`` (one cache entry per device and observed ``window``, see
    :class:`GaussianBlur`).

    Operators are shared between calls: do not move them to another device in place.
    """
    window = None if window is None else _checked_window(window, int(size))
    return _cached_blur(int(size), snap_sigma(sigma, resolution), float(threshold), padding, str(torch.device(device)),
                        window)


class DCTGaussianBlur(SVDOperator):
    """Gaussian blur of an ``H × W`` image with half-sample symmetric borders, diagonalised by the DCT-II.

    A symmetric kernel with mirrored borders (numpy's ``symmetric``, as a cut-out radiograph continues past its
    edge) is exactly ``A = Cᵀ diag(λ) C`` per axis (:mod:`xray_restore.dct`), so ``H = U diag(s) Vᵀ`` with
    ``V = Cᵀ`` (both axes), ``s = |λ_i μ_j|`` and ``U = V·sign(λ_i μ_j)``: each transform is ``O(HW log HW)``
    through the FFT and no matrix is stored, so a source-grid radiograph (thousands of pixels a side, not square)
    is restored on its own grid. Components with ``s <= threshold`` are dropped, as :class:`GaussianBlur` does;
    :meth:`H` applies the exact blur. Equal to :class:`GaussianBlur` with ``padding="symmetric"`` on a square.

    Args:
        shape: ``(H, W)`` in pixels, each larger than the kernel radius.
        sigma: σ in pixels (>= 0; 0: identity), or ``(σ_v, σ_h)``.
        threshold: ε for the 2-D singular values, > 0.
        radius: kernel radius; default ``ceil(3σ)``.

    Example:
        >>> op = DCTGaussianBlur((40, 24), sigma=1.5)
        >>> x = torch.rand(1, 1, 40, 24, dtype=torch.float64)
        >>> bool(torch.allclose(op.Ht(op.U(x)), op.V(op.singulars() * x)))
        True
    """

    def __init__(self, shape: tuple[int, int], sigma: float | tuple[float, float] = 1.0, threshold: float = 3e-3,
                 radius: int | None = None) -> None:
        super().__init__()
        from .dct import symmetric_kernel_eigenvalues

        if len(shape) != 2 or min(int(v) for v in shape) < 2:
            raise ValueError(f"shape must be (H, W) with H, W >= 2, got {shape!r}.")
        if not threshold > 0:
            raise ValueError(f"threshold (epsilon) must be > 0, got {threshold}.")
        axes = _checked_sigma(sigma)
        self.shape = (int(shape[0]), int(shape[1]))
        eig = []
        for s, n in zip(axes, self.shape):
            kernel = (gaussian_kernel_1d(s, math.ceil(3 * s) if radius is None else int(radius)) if s > 0
                      else torch.ones(1, dtype=torch.float64))
            eig.append(symmetric_kernel_eigenvalues(kernel, n))
        full = torch.outer(eig[0], eig[1]).reshape(1, 1, *self.shape)
        self.register_buffer("eigenvalues", full)
        self.register_buffer("_signs", torch.where(full < 0, -1.0, 1.0).to(torch.float64))
        self.register_buffer("_singulars", torch.where(full.abs() > threshold, full.abs(), torch.zeros_like(full)))
        self.sigma: float | tuple[float, float] = axes[0] if axes[0] == axes[1] else axes
        self.threshold = float(threshold)
        self.size = max(self.shape)  # for code that reads a side; check_input compares the whole shape

    @staticmethod
    def _dct2(x: torch.Tensor) -> torch.Tensor:
        from .dct import dct

        return dct(dct(x.to(torch.float64), -1), -2)

    @staticmethod
    def _idct2(z: torch.Tensor) -> torch.Tensor:
        from .dct import idct

        return idct(idct(z.to(torch.float64), -1), -2)

    def U(self, z: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._idct2(self._signs * z).to(z.dtype)

    def Ut(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return (self._signs * self._dct2(y)).to(y.dtype)

    def V(self, z: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._idct2(z).to(z.dtype)

    def Vt(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._dct2(x).to(x.dtype)

    def singulars(self) -> torch.Tensor:
        return self._singulars

    def H(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """The exact blur (every component, mirrored borders)."""
        return self._idct2(self.eigenvalues * self._dct2(x)).to(x.dtype)

    def check_input(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` is a finite floating ``(B, 1, H, W)`` tensor of this operator's shape."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
        if x.ndim != 4 or x.shape[1] != 1 or tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"{name} must have shape (B, 1, {self.shape[0]}, {self.shape[1]}), got {tuple(x.shape)}.")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}.")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or Inf values.")
