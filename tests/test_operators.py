"""Operator tests: the separable SVD against dense matrices built independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xray_restore.operators import GaussianBlur, convolution_matrix, gaussian_kernel_1d


def dense_blur_matrix(size: int, sigma: float, radius: int) -> np.ndarray:
    """The N²×N² zero-padded 'same' Gaussian blur built pixel by pixel (independent of the package)."""
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    kernel2d = np.outer(taps, taps)
    n = size
    dense = np.zeros((n * n, n * n))
    for i in range(n):
        for j in range(n):
            for di in range(-radius, radius + 1):
                for dj in range(-radius, radius + 1):
                    r, c = i + di, j + dj
                    if 0 <= r < n and 0 <= c < n:
                        dense[i * n + j, r * n + c] = kernel2d[di + radius, dj + radius]
    return dense


@pytest.mark.parametrize("size,sigma", [(16, 1.0), (16, 2.0), (32, 2.0), (32, 3.0), (16, 0.7)])
def test_operator_equals_dense_matrix(size, sigma):
    radius = math.ceil(3 * sigma)
    op = GaussianBlur(size=size, sigma=sigma)
    dense = dense_blur_matrix(size, sigma, radius)
    x = torch.randn(3, 1, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = (x.reshape(3, -1).numpy() @ dense.T).reshape(3, 1, size, size)
    np.testing.assert_allclose(op.H(x).numpy(), expected, atol=1e-12)
    expected_t = (x.reshape(3, -1).numpy() @ dense).reshape(3, 1, size, size)
    np.testing.assert_allclose(op.Ht(x).numpy(), expected_t, atol=1e-12)
    # 2-D singular values are the products s_i·s_j: compare with the dense SVD.
    dense_s = np.linalg.svd(dense, compute_uv=False)
    np.testing.assert_allclose(np.sort(op.full_singulars().flatten().numpy())[::-1], dense_s, atol=1e-10)


def test_kernel_is_centred_normalised_13_taps():
    op = GaussianBlur()
    assert op.radius == 6 and op.kernel.numel() == 13
    assert torch.isclose(op.kernel.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.equal(op.kernel, op.kernel.flip(0))
    impulse = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    impulse[0, 0, 32, 20] = 1.0
    blurred = op.H(impulse)[0, 0]
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    centre = ((blurred * rows).sum() / blurred.sum(), (blurred * cols).sum() / blurred.sum())
    assert torch.allclose(torch.stack(centre), torch.tensor([32.0, 20.0], dtype=torch.float64), atol=1e-9)
    assert torch.isclose(blurred.sum(), torch.tensor(1.0, dtype=torch.float64))  # away from the border


def test_zero_padding_darkens_border():
    op = GaussianBlur(size=32, sigma=2.0)
    ones = op.H(torch.ones(1, 1, 32, 32, dtype=torch.float64))
    assert torch.isclose(ones[0, 0, 16, 16], torch.tensor(1.0, dtype=torch.float64))
    edge_mass = op.kernel[op.radius :].sum()  # the corner pixel sees one quadrant of the kernel
    assert torch.isclose(ones[0, 0, 0, 0], edge_mass**2)
    assert ones[0, 0, 0, 0] < 0.4


@pytest.mark.parametrize("op", [GaussianBlur(size=32), GaussianBlur.case_study(size=32)])
def test_u_v_orthogonal_and_svd_reconstructs(op):
    eye = torch.eye(op.size, dtype=torch.float64)
    for m in (op.U1, op.V1):
        assert torch.allclose(m.T @ m, eye, atol=1e-12)
    x = torch.randn(2, 1, op.size, op.size, dtype=torch.float64)
    assert torch.allclose(op.U(op.Ut(x)), x, atol=1e-12)
    assert torch.allclose(op.V(op.Vt(x)), x, atol=1e-12)
    assert torch.allclose(op.U(op.full_singulars() * op.Vt(x)), op.H(x), atol=1e-12)
    # adjointness <Hx, y> = <x, Hᵀy>
    y = torch.randn_like(x)
    assert torch.isclose((op.H(x) * y).sum(), (x * op.Ht(y)).sum(), rtol=1e-12)


def test_threshold_rule_and_pinv_recovers_kept_part():
    op = GaussianBlur(size=64)
    full = op.full_singulars()
    kept = op.singulars()
    assert kept.shape == (1, 1, 64, 64)
    assert torch.equal(kept > 0, full > 3e-3)
    assert torch.equal(kept[kept > 0], full[full > 3e-3])
    x = torch.rand(2, 1, 64, 64, dtype=torch.float64)
    kept_part = op.V((kept > 0) * op.Vt(x))
    assert torch.allclose(op.pinv(op.H(x)), kept_part, atol=1e-9)
    assert torch.allclose(op.pinv(op.H_thresholded(x)), kept_part, atol=1e-9)
    assert torch.isfinite(op.pinv(op.H(x))).all()


def test_component_counts_match_the_notes():
    # anchors.md §2.4 (64², zero padding): 13-tap with 2-D s_i·s_j >= 3e-3 keeps 981; the case study's
    # 9-tap symmetric kernel with 1-D s >= 3e-2 keeps 676.
    assert GaussianBlur(size=64).num_kept() == 981
    case = GaussianBlur.case_study(size=64)
    assert case.num_kept() == 676
    assert case.kernel.numel() == 9


def test_dense_1d_matrix_helper_is_banded():
    kernel = gaussian_kernel_1d(1.0, 2)
    a = convolution_matrix(kernel, 8)
    assert a[3, 1:6].tolist() == kernel.tolist()
    assert a[0, 0] == kernel[2] and a[0, 3] == 0


def test_works_on_float32_batches():
    op = GaussianBlur(size=64)
    x = torch.rand(4, 1, 64, 64)
    out = op.H(x)
    assert out.dtype == torch.float32 and out.shape == x.shape


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sigma": float("nan")}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": -1e-3}, "threshold"),
        ({"size": 1}, "size"),
        ({"radius": -2}, "radius"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianBlur(**kwargs)


def test_check_input_errors():
    op = GaussianBlur(size=16, sigma=1.0)
    with pytest.raises(ValueError, match="square"):
        op.check_input(torch.zeros(1, 1, 16, 8))
    with pytest.raises(ValueError, match="operator is 16x16"):
        op.check_input(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        op.check_input(torch.full((1, 1, 16, 16), float("nan")))
    with pytest.raises(ValueError, match="one channel"):
        op.check_input(torch.zeros(1, 3, 16, 16))


def test_zero_sigma_is_the_identity():
    op = GaussianBlur(size=16, sigma=0.0)
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    assert torch.allclose(op.H(x), x) and torch.allclose(op.pinv(x), x)
    assert op.num_kept() == 16 * 16 and op.radius == 0


def test_blur_operator_cache_rounds_sigma():
    from xray_restore.operators import blur_operator

    a, b = blur_operator(16, 1.98, resolution=0.05), blur_operator(16, 2.01, resolution=0.05)
    assert a is b and a.sigma == pytest.approx(2.0)
    assert blur_operator(16, -0.01).sigma == 0.0
    assert blur_operator(16, 1.0) is not a
    # no grid: the σ asked for (to 1e-6), one cache entry per σ
    fine = blur_operator(16, 1.98)
    assert fine is not a and fine.sigma == pytest.approx(1.98) and blur_operator(16, 1.9800001) is fine
    with pytest.raises(ValueError, match="resolution"):
        blur_operator(16, 1.0, resolution=-0.01)


def _area_chain(x_full: torch.Tensor, sigma_64: float, padding: str, size: int = 64) -> torch.Tensor:
    """Blur at the source grid (σ·factor px, mirrored borders), then the chain's area resize to ``size``."""
    factor = x_full.shape[-1] // size
    m = convolution_matrix(gaussian_kernel_1d(sigma_64 * factor, math.ceil(3 * sigma_64 * factor)), x_full.shape[-1],
                           padding)
    return torch.nn.functional.adaptive_avg_pool2d(m @ x_full @ m.T, size)


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_symmetric_borders_are_what_a_source_grid_blur_leaves_at_the_model_scale(sigma):
    """A real radiograph blurred at 1024² and area-resized to 64² equals the 64² operator with half-sample
    ("symmetric") borders; the whole-pixel ("reflect") borders miss it at the edges by ~25 dB more."""
    from pathlib import Path

    from PIL import Image

    path = sorted((Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr14_full").glob("*.png"))[0]
    x = torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255.0)[None, None]
    y = _area_chain(x, sigma, "symmetric")
    a = torch.nn.functional.adaptive_avg_pool2d(x, 64)

    def psnr(u: torch.Tensor) -> float:
        return float(10 * torch.log10(1 / (u - y).pow(2).mean()))

    symmetric = psnr(GaussianBlur(64, sigma, padding="symmetric").H(a))
    reflect = psnr(GaussianBlur(64, sigma, padding="reflect").H(a))
    assert symmetric > 60.0 and symmetric > reflect + 10.0, (symmetric, reflect)


def test_symmetric_padding_mirrors_about_the_pixel_edge():
    m = convolution_matrix(torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64), 4, "symmetric")
    assert m[0].tolist() == [0.75, 0.25, 0.0, 0.0]  # the tap left of pixel 0 lands on pixel 0 itself
    assert torch.allclose(m.sum(1), torch.ones(4, dtype=torch.float64))  # flat stays flat
    r = convolution_matrix(torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64), 4, "reflect")
    assert r[0].tolist() == [0.5, 0.5, 0.0, 0.0]


# ------------------------------------------------------------------------------------- unknown borders (window)
@pytest.mark.parametrize("window", [((0, 24), (0, 24)), ((0, 24), (3, 21))])
def test_a_window_operator_observes_the_cut_of_a_blurred_larger_scene(window):
    """``window``: the image is a cut through a blurred scene. On the canvas (image + margin) the operator's
    observed rows are exactly the blurred scene there, every other row is unobserved (0), and the SVD reproduces
    it (checked against a dense blur of the canvas built pixel by pixel)."""
    sigma, size = 1.3, 24
    op = GaussianBlur(size, sigma, window=window)
    radius = math.ceil(3 * sigma)
    assert op.margin == 2 * math.ceil(radius / 2) and op.size == size + 2 * op.margin and op.size % 4 == 0
    canvas = torch.rand(2, 1, op.size, op.size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    dense = dense_blur_matrix(op.size, sigma, radius) @ canvas.reshape(2, -1).numpy().T
    blurred = torch.from_numpy(dense.T.reshape(2, 1, op.size, op.size))
    (r0, r1), (c0, c1) = ((lo + op.margin, hi + op.margin) for lo, hi in window)
    observed = torch.zeros_like(blurred, dtype=torch.bool)
    observed[..., r0:r1, c0:c1] = True
    out = op.H(canvas)
    torch.testing.assert_close(out[observed], blurred[observed])
    assert out[~observed].abs().max() == 0
    torch.testing.assert_close(op.U(op.full_singulars() * op.Vt(canvas)), out)
    # unobserved canvas components are missing (singular value 0), as many as the unobserved rows/columns allow
    assert op.num_kept() <= (r1 - r0) * (c1 - c0)
    image = torch.rand(1, 1, size, size, dtype=torch.float64)
    assert torch.equal(op.from_canvas(op.to_canvas(image)), image)


def test_a_window_must_fit_the_image():
    with pytest.raises(ValueError, match="window"):
        GaussianBlur(16, 1.0, window=((0, 17), (0, 16)))
    with pytest.raises(ValueError, match="window"):
        GaussianBlur(16, 1.0, window=((4, 5), (0, 16)))


@pytest.mark.parametrize("axes", [(1.0, 2.0), (2.5, 0.0), (0.5, 1.5)])  # radius ceil(3σ) = scipy's here
def test_an_axis_aligned_blur_is_the_per_axis_gaussian_with_its_kronecker_svd(axes):
    """``sigma=(σ_v, σ_h)``: σ_v down the columns (axis 0), σ_h along the rows (axis 1), as scipy's per-axis filter
    with mirrored borders; the SVD of the two 1-D factors still reconstructs it."""
    from scipy.ndimage import gaussian_filter

    x = torch.rand(2, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    op = GaussianBlur(size=32, sigma=axes, padding="symmetric")
    expected = gaussian_filter(x.numpy(), (0, 0, *axes), mode="reflect", truncate=3.0)
    assert torch.allclose(op.H(x), torch.from_numpy(expected), atol=1e-12)
    assert torch.allclose(op.H(x), op.U(op.full_singulars() * op.Vt(x)), atol=1e-10)
    assert not op.isotropic and op.sigma == axes and op.config["sigma"] == list(axes)


def test_equal_axes_are_the_isotropic_blur_and_pairs_snap_per_axis():
    from xray_restore.operators import blur_operator, snap_sigma

    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    pair = GaussianBlur(size=16, sigma=(1.5, 1.5))
    assert pair.isotropic and pair.sigma == 1.5 and torch.equal(pair.H(x), GaussianBlur(size=16, sigma=1.5).H(x))
    assert snap_sigma((1.02, 1.98), 0.05) == (1.0, 2.0) and snap_sigma((1.49, 1.51), 0.1) == 1.5
    assert blur_operator(16, (1.02, 1.98), resolution=0.05) is blur_operator(16, (0.98, 2.01), resolution=0.05)
    canvas = GaussianBlur(size=16, sigma=(0.5, 2.0), window=((0, 16), (0, 16)))
    assert canvas.margin == 6 and canvas.size == 28  # the wider kernel's radius sets the canvas
    for bad in [(1.0,), (1.0, -0.5), (1.0, float("inf")), (True, 1.0)]:
        with pytest.raises(ValueError, match="sigma"):
            GaussianBlur(size=16, sigma=bad)


# ---------------------------------------------------------------------------------------------- the H×W DCT blur
def test_dct_is_orthonormal_and_idct_inverts_it():
    from xray_restore.dct import dct, dct_matrix, idct

    for n in (2, 7, 64, 33):
        c = dct_matrix(n)
        assert torch.allclose(c @ c.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
        x = torch.randn(3, 5, n, dtype=torch.float64)
        assert torch.allclose(idct(dct(x)), x, atol=1e-12)
        assert torch.allclose(dct(x, dim=-1), x @ c.T, atol=1e-12)


@pytest.mark.parametrize("shape, sigma", [((40, 24), 1.5), ((37, 61), (0.8, 2.5)), ((16, 16), 3.0)])
def test_dct_blur_is_the_dense_convolution_with_mirrored_borders(shape, sigma):
    """H against a dense convolution with the same (half-sample symmetric) borders, on a non-square grid."""
    from xray_restore.operators import DCTGaussianBlur

    op = DCTGaussianBlur(shape, sigma=sigma)
    axes = (sigma, sigma) if isinstance(sigma, float) else sigma
    a, b = (convolution_matrix(gaussian_kernel_1d(s, math.ceil(3 * s)), n, "symmetric") for s, n in zip(axes, shape))
    x = torch.rand(2, 1, *shape, dtype=torch.float64)
    assert torch.allclose(op.H(x), a @ x @ b.T, atol=1e-12)


def test_dct_blur_svd_is_adjoint_consistent_and_its_pinv_inverts_on_the_range():
    from xray_restore.operators import DCTGaussianBlur

    op = DCTGaussianBlur((48, 30), sigma=2.0, threshold=1e-3)
    g = torch.Generator().manual_seed(0)
    x, y = (torch.randn(2, 1, 48, 30, generator=g, dtype=torch.float64) for _ in range(2))
    assert torch.allclose((op.H_thresholded(x) * y).sum(), (x * op.Ht(y)).sum(), rtol=1e-9)  # <Hx, y> = <x, Hᵀy>
    assert torch.allclose((op.H(x) * y).sum(), (x * op.H(y)).sum(), rtol=1e-9)  # mirrored borders: H is symmetric
    assert torch.allclose(op.U(op.Ut(y)), y, atol=1e-12) and torch.allclose(op.V(op.Vt(x)), x, atol=1e-12)
    s = op.singulars()
    assert (s >= 0).all() and 0 < int((s > 0).sum()) < s.numel()
    on_range = op.V(torch.where(s > 0, op.Vt(x), torch.zeros_like(x)))  # x restricted to the kept components
    assert torch.allclose(op.pinv(op.H_thresholded(on_range)), on_range, atol=1e-9)
    with pytest.raises(ValueError, match="shape"):
        op.check_input(torch.zeros(1, 1, 30, 48))


def test_dct_blur_equals_the_dense_svd_blur_on_a_square():
    from xray_restore.operators import DCTGaussianBlur

    dense, fast = GaussianBlur(32, 2.0, padding="symmetric"), DCTGaussianBlur((32, 32), 2.0)
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    assert torch.allclose(dense.H(x), fast.H(x), atol=1e-12)
    assert torch.allclose(dense.pinv(dense.H(x)), fast.pinv(fast.H(x)), atol=1e-9)
    assert dense.num_kept() == int((fast.singulars() > 0).sum())
