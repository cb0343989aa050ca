"""DDRM tests. The main check uses a Gaussian prior, whose exact ε-model and posterior are analytic."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDPMScheduler

from xray_restore.ddrm import DDRMInferer, blend_outer_ring, ddrm_timesteps
from xray_restore.operators import GaussianBlur
from xray_restore.plan import RestorationPlan
from xray_restore.policy import PlannedInferer, RestorationPolicy

SIGMA_P = 0.5  # prior std in the model's [-1, 1] space


class GaussianPriorEpsilon(torch.nn.Module):
    """Exact ε-model for x₀ ~ N(0, σ_p² I): in VE terms E[x₀ | x_t] = x_t σ_p² / (σ_p² + σ_t²)."""

    def __init__(self, scheduler: DDPMScheduler, sigma_p: float = SIGMA_P) -> None:
        super().__init__()
        self.alphas_cumprod = scheduler.alphas_cumprod.double()
        self.sigma_p = sigma_p

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_ve, var_t = x.double() / a.sqrt(), (1 - a) / a
        x0 = x_ve * self.sigma_p**2 / (self.sigma_p**2 + var_t)
        return ((x_ve - x0) / var_t.sqrt()).float()


def gaussian_problem(op: GaussianBlur, sigma_y: float, batch: int, seed: int, sigma_p: float = SIGMA_P):
    """x ~ N(0, σ_p²) in model space, y_model = H_thr x + 2σ_y n, and the analytic posterior mean."""
    g = torch.Generator().manual_seed(seed)
    x = sigma_p * torch.randn(batch, 1, op.size, op.size, generator=g, dtype=torch.float64)
    sigma0 = 2 * sigma_y
    y_model = op.H_thresholded(x) + sigma0 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    s = op.singulars()
    posterior_mean = op.V(torch.where(s > 0, s * sigma_p**2 * op.Ut(y_model) / (s**2 * sigma_p**2 + sigma0**2), 0 * s))
    posterior_var = torch.where(s > 0, sigma_p**2 * sigma0**2 / (s**2 * sigma_p**2 + sigma0**2), sigma_p**2 + 0 * s)
    y_unit = (y_model + op.H(torch.ones_like(y_model))) / 2  # the inferer's [0,1] input convention
    return x, y_model, y_unit.float(), posterior_mean, posterior_var


def test_ddrm_sample_mean_approaches_gaussian_posterior_mean():
    """With the exact denoiser of a Gaussian prior, the posterior mean E[x|y] is closed form.

    Any estimator's MSE to x is the Bayes risk R = mean posterior variance plus its squared distance to E[x|y].
    Tolerances: the mean of K=400 DDRM samples carries Monte-Carlo error ≈ Var/K <= R/400, and 20-step DDRM
    with η=0.85 is an approximation of the posterior, whose excess we measured at ≈ 0.03 R here; we allow
    0.1 R. An estimator that ignores y (mean 0) has excess ||E[x|y]||² ≈ 1.3 R and fails, as does the
    pseudo-inverse (excess > 1 R).
    """
    scheduler = DDPMScheduler(1000)
    op = GaussianBlur(size=16, sigma=1.0, threshold=1e-2)
    x, y_model, y, post_mean, post_var = gaussian_problem(op, sigma_y=0.01, batch=4, seed=0)
    inferer = DDRMInferer(op, scheduler, num_steps=20, sigma_y=0.01, num_samples=400, clip_denoised=False,
                          temperature=1.0)
    mean, std = inferer.sample(y, GaussianPriorEpsilon(scheduler), generator=torch.Generator().manual_seed(1))
    ddrm = 2 * mean.double() - 1  # back to model space
    bayes_risk = post_var.mean().item()
    excess = ((ddrm - post_mean) ** 2).mean().item()
    assert excess < 0.1 * bayes_risk, (excess, bayes_risk)
    assert (post_mean**2).mean().item() > 0.5 * bayes_risk  # the test can tell "ignores y" from right
    pinv_mse = ((op.pinv(y_model) - x) ** 2).mean().item()
    ddrm_mse = ((ddrm - x) ** 2).mean().item()
    assert ddrm_mse < 0.5 * pinv_mse
    assert ddrm_mse < 1.1 * ((post_mean - x) ** 2).mean().item() + 0.1 * bayes_risk
    assert std.shape == mean.shape and (std > 0).all()


def test_noiseless_ddrm_is_data_consistent():
    """σ_y = 0: every kept component equals ȳ at the end (exact data consistency), no NaN anywhere.

    A narrow prior (σ_p = 0.2) keeps the images inside [-1, 1], so the final clamp to [0, 1] is inactive.
    """
    scheduler = DDPMScheduler(1000)
    op = GaussianBlur(size=16, sigma=1.0, threshold=1e-2)
    _, y_model, y, _, _ = gaussian_problem(op, sigma_y=0.0, batch=2, seed=3, sigma_p=0.2)
    inferer = DDRMInferer(op, scheduler, num_steps=10, sigma_y=0.0, clip_denoised=False)
    net = GaussianPriorEpsilon(scheduler, sigma_p=0.2)
    out = inferer(inputs=y, network=net, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all() and 0 < out.min() and out.max() < 1
    kept = op.singulars() > 0
    restored = op.Vt(2 * out.double() - 1)
    target = op.Ut(y_model) / torch.where(kept, op.singulars(), torch.ones_like(op.singulars()))
    assert torch.allclose(restored[kept.expand_as(restored)], target[kept.expand_as(target)], atol=1e-5)


def test_thresholded_components_never_blow_up_on_real_blur():
    """Real (untruncated) blur with 8-bit y: dropped components must not feed Uᵀy/σ_y into the sample."""
    scheduler = DDPMScheduler(1000)
    op = GaussianBlur(size=16, sigma=2.0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64)
    y = (op.H(x) * 255).round() / 255  # exact blur, quantised, tiny declared noise
    inferer = DDRMInferer(op, scheduler, num_steps=10, sigma_y=1e-6, clip_denoised=False)
    out = inferer.sample(y.float(), GaussianPriorEpsilon(scheduler), generator=torch.Generator().manual_seed(0))[0]
    assert torch.isfinite(out).all()


def test_operator_uncertainty_tempers_a_wrong_blur_and_costs_little_on_the_right_one():
    """y blurred at σ = 1.0 px, restored with σ̂ = 1.3 (an estimate 0.3 px too high): taken as exact, the wrong blur
    over-sharpens every high-frequency component (MSE ×5.5 of the right blur's, measured); with an operator
    uncertainty of 0.1 px DDRM counts what such an error changes in each component as noise there and halves the
    damage (measured ×2.2). On the right blur the same setting costs a little (measured ×1.3)."""
    scheduler = DDPMScheduler(1000)
    true, wrong = GaussianBlur(16, 1.0, threshold=1e-3), GaussianBlur(16, 1.3, threshold=1e-3)
    g = torch.Generator().manual_seed(0)
    x = SIGMA_P * torch.randn(8, 1, 16, 16, generator=g, dtype=torch.float64)
    y_model = true.H(x) + 2 * 0.002 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    y = ((y_model + true.H(torch.ones_like(x))) / 2).float()
    net = GaussianPriorEpsilon(scheduler)

    def mse(op: GaussianBlur, delta: float) -> float:
        inferer = DDRMInferer(op, scheduler, num_steps=20, sigma_y=0.002, num_samples=50, clip_denoised=False,
                              temperature=1.0)
        mean, _ = inferer.sample(y, net, generator=torch.Generator().manual_seed(1), operator_uncertainty=delta)
        return float(((2 * mean.double() - 1 - x) ** 2).mean())

    right, wrong_exact, wrong_tempered = mse(true, 0.0), mse(wrong, 0.0), mse(wrong, 0.1)
    assert wrong_exact > 3 * right  # the test can see a wrong blur
    assert wrong_tempered < 0.6 * wrong_exact
    assert mse(true, 0.1) < 1.5 * right
    with pytest.raises(ValueError, match="operator_uncertainty"):  # the policy's setting (the sampler has none)
        RestorationPolicy(operator=true, blur_sigma=None, sigma_y=0.002, operator_uncertainty=-0.1)
    # restore() hands each input's plan to sample(): the same pixels as a direct call, not those of δ = 0
    inferer = DDRMInferer(wrong, scheduler, num_steps=5, sigma_y=0.002, clip_denoised=False)
    plans = [RestorationPlan(status="restore", blur_sigma=1.3, sigma_y=0.002, operator_uncertainty=0.1)] * 2
    via_restore, _ = inferer.restore(y[:2], net, plans, generator=torch.Generator().manual_seed(2))
    direct, _ = inferer.sample(y[:2], net, generator=torch.Generator().manual_seed(2), operator_uncertainty=0.1)
    exact, _ = inferer.sample(y[:2], net, generator=torch.Generator().manual_seed(2))
    assert torch.equal(via_restore, direct) and not torch.allclose(direct, exact)
    with pytest.raises(ValueError, match="operator_uncertainty must be"):
        inferer.sample(y[:2], net, operator_uncertainty=-0.1)


def tiny_unet() -> DiffusionModelUNet:
    return DiffusionModelUNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=(8, 8),
        attention_levels=(False, False),
        num_res_blocks=1,
        norm_num_groups=8,
    )


def test_with_monai_unet_shapes_ranges_and_seed():
    torch.manual_seed(0)
    unet = tiny_unet().eval()
    op = GaussianBlur(size=16, sigma=1.0)
    y = op.H(torch.rand(3, 1, 16, 16))
    inferer = DDRMInferer(op, DDPMScheduler(1000), num_steps=4, sigma_y=0.01, num_samples=2)
    a, std = inferer.sample(y, unet, generator=torch.Generator().manual_seed(7))
    b, _ = inferer.sample(y, unet, generator=torch.Generator().manual_seed(7))
    c, _ = inferer.sample(y, unet, generator=torch.Generator().manual_seed(8))
    assert a.shape == (3, 1, 16, 16) and std.shape == (3, 1, 16, 16)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    bf16 = DDRMInferer(op, DDPMScheduler(1000), num_steps=4, sigma_y=0.01, autocast=True)
    out = bf16(inputs=y, network=unet, generator=torch.Generator().manual_seed(7))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_timestep_grid_is_the_official_one():
    assert ddrm_timesteps(1000, 20, "uniform") == list(range(0, 1000, 50))
    assert ddrm_timesteps(1000, 1, "uniform") == [0]


@pytest.mark.parametrize("num_steps", [1, 2, 5, 20, 100, 500, 1000])
def test_quadratic_grid_spans_the_official_range_denser_at_low_noise(num_steps):
    grid = ddrm_timesteps(1000, num_steps, "quadratic")
    assert len(grid) == num_steps and grid[0] == 0
    assert grid[-1] == ddrm_timesteps(1000, num_steps, "uniform")[-1]
    assert all(b > a for a, b in zip(grid, grid[1:]))
    if 2 < num_steps < 1000:
        assert grid[1] - grid[0] < grid[-1] - grid[-2]
    assert ddrm_timesteps(1000, 20, "quadratic")[:4] == [0, 3, 11, 24]


def test_inferer_uses_and_reports_its_spacing():
    quad = DDRMInferer(GaussianBlur(size=16, sigma=1.0), DDPMScheduler(1000), num_steps=20)
    assert quad.timesteps == ddrm_timesteps(1000, 20, "quadratic") and quad.config["spacing"] == "quadratic"
    uniform = DDRMInferer(GaussianBlur(size=16, sigma=1.0), DDPMScheduler(1000), num_steps=20, spacing="uniform")
    assert uniform.timesteps == list(range(0, 1000, 50)) and uniform.config["spacing"] == "uniform"
    with pytest.raises(ValueError, match="spacing"):
        DDRMInferer(GaussianBlur(size=16, sigma=1.0), DDPMScheduler(1000), spacing="cosine")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"eta": 1.5}, "eta"),
        ({"eta_b": -0.1}, "eta_b"),
        ({"sigma_y": -0.01}, "sigma_y"),
        ({"sigma_y": float("nan")}, "sigma_y"),
        ({"sigma_y": "auto"}, "sigma_y"),  # a number: estimating it is the policy's
        ({"num_steps": 0}, "num_steps"),
        ({"num_steps": 1001}, "num_steps"),
        ({"num_samples": 0}, "num_samples"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DDRMInferer(GaussianBlur(size=16, sigma=1.0), DDPMScheduler(1000), **kwargs)


def test_bad_inputs():
    inferer = DDRMInferer(GaussianBlur(size=16, sigma=1.0), DDPMScheduler(1000), num_steps=2)
    net = tiny_unet()
    with pytest.raises(ValueError, match="NaN"):
        inferer(inputs=torch.full((1, 1, 16, 16), float("nan")), network=net)
    with pytest.raises(ValueError, match="operator is 16x16"):
        inferer(inputs=torch.zeros(1, 1, 32, 32), network=net)
    with pytest.raises(ValueError, match="square"):
        inferer(inputs=torch.zeros(1, 1, 16, 12), network=net)
    with pytest.raises(TypeError, match="SVDOperator"):
        DDRMInferer("blur", DDPMScheduler(1000))


def test_the_inferer_moves_with_everything_that_holds_tensors():
    """``DDRMInferer`` is an ``nn.Module``: ``.to(device)`` moves its operator, and the blurs planned for it (an
    estimated or given σ, :meth:`PlannedInferer.plan`) are made on its device ("meta" stands in for a GPU: no data,
    same bookkeeping)."""
    sampler = DDRMInferer(GaussianBlur(16, 1.0), DDPMScheduler(1000), num_steps=3)
    planned = PlannedInferer(sampler, RestorationPolicy(operator=sampler.operator, blur_sigma=1.5, sigma_y=0.01))
    assert isinstance(sampler, torch.nn.Module) and sampler.device.type == "cpu"
    sampler.to("meta")
    assert sampler.device.type == "meta"
    assert all(b.device.type == "meta" for b in sampler.buffers()) and len(list(sampler.buffers())) > 0
    (plan,) = planned.plan(torch.zeros(1, 1, 16, 16))
    assert plan.restores and plan.operator_sigma == 1.5
    assert all(b.device.type == "meta" for b in plan.operator.buffers()) and len(list(plan.operator.buffers())) > 0
    fresh = DDRMInferer(GaussianBlur(16, 1.0), DDPMScheduler(1000))
    (plan,) = PlannedInferer(fresh, RestorationPolicy(operator=fresh.operator, blur_sigma=1.5, sigma_y=0.01)).plan(
        torch.zeros(1, 1, 16, 16))
    assert all(b.device.type == "cpu" for b in plan.operator.buffers())


def test_blend_outer_ring_is_the_inverse_error_variance_mix_on_the_footprint_edge():
    """On a 12×12 grid with the footprint rows 2–9: the ring is that footprint's edge; each image's weight is
    v / (v + b), v the larger of its mean squared correction one pixel in and its ring's less b; all else untouched."""
    window, b = ((2, 10), (0, 12)), 1e-3
    rows, cols = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    depth = torch.minimum(torch.minimum(rows - 2, 9 - rows), torch.minimum(cols, 11 - cols))
    inputs = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    inside = torch.tensor([0.05, 0.01], dtype=torch.float64).view(2, 1, 1, 1)  # v 2.5e-3 | 1e-4
    edge = torch.tensor([0.03, 0.1], dtype=torch.float64).view(2, 1, 1, 1)  # less b: < 0 | 9e-3
    restored = inputs + torch.where(depth == 1, inside, torch.where(depth == 0, edge, 0.2))
    blended, weight = blend_outer_ring(restored, inputs, window, border_error=b)
    w = torch.tensor([2.5e-3 / 3.5e-3, 9e-3 / 1e-2], dtype=torch.float64).view(2, 1, 1, 1)
    ring = depth == 0
    assert torch.allclose(weight[..., ring], w.view(2, 1, 1).expand(2, 1, int(ring.sum())))
    assert torch.allclose(blended[..., ring], (inputs + w * edge)[..., ring])
    assert torch.equal(blended[..., ~ring], restored[..., ~ring])  # inside, and outside the footprint
    assert torch.equal(weight[..., ~ring], torch.ones_like(weight[..., ~ring]))
    unchanged, ones = blend_outer_ring(restored, inputs, window, border_error=0.0)
    assert torch.equal(unchanged, restored) and bool((ones == 1).all())


def test_temperature_one_is_the_published_sampler_and_zero_the_deterministic_path():
    """τ = 1 draws what the sampler of package 0.24 (no temperature) drew: its output on this problem, computed with
    that release's ``ddrm.py`` (git 12f87b8), is pinned below; τ = 0 gives the same sample for every seed (std 0);
    in between, the spread of the samples shrinks with τ."""
    scheduler = DDPMScheduler(1000)
    op = GaussianBlur(size=16, sigma=1.0, threshold=1e-2)
    eps = GaussianPriorEpsilon(scheduler)

    def run(seed: int, samples: int = 16, batch: int = 2, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, y, _, _ = gaussian_problem(op, sigma_y=0.01, batch=batch, seed=3)
        inferer = DDRMInferer(op, scheduler, num_steps=10, sigma_y=0.01, num_samples=samples, clip_denoised=False,
                              uncertainty_scale=1.0, **kwargs)
        return inferer.sample(y, eps, generator=torch.Generator().manual_seed(seed))

    mean, std = run(1, samples=3, temperature=1.0)
    pinned = (250.31539215147495, 45.09667201619595, 0.49200597405433655, 0.6692680716514587)
    got = (mean.double().sum().item(), std.double().sum().item(), mean[0, 0, 3, 5].item(), mean[1, 0, 10, 2].item())
    assert got == pytest.approx(pinned, rel=1e-5), got
    published, published_std = run(1, temperature=1.0)
    cold_a, cold_std = run(1, temperature=0.0)
    cold_b, _ = run(2, temperature=0.0)
    assert torch.equal(cold_a, cold_b) and not torch.equal(cold_a, published)
    assert cold_std.abs().max() < 1e-6
    _, warm_std = run(1, temperature=0.5)
    ratio = (warm_std.pow(2).mean() / published_std.pow(2).mean()).sqrt().item()
    assert 0.3 < ratio < 0.8, ratio  # about τ: the spread of the draws, scaled by τ, is the spread of the samples


def test_uncertainty_scale_multiplies_the_exported_std_only():
    scheduler = DDPMScheduler(1000)
    op = GaussianBlur(size=16, sigma=1.0, threshold=1e-2)
    _, _, y, _, _ = gaussian_problem(op, sigma_y=0.01, batch=1, seed=4)
    outs = [DDRMInferer(op, scheduler, num_steps=5, sigma_y=0.01, num_samples=3, uncertainty_scale=scale).sample(
        y, GaussianPriorEpsilon(scheduler), generator=torch.Generator().manual_seed(0)) for scale in (1.0, 7.0)]
    assert torch.equal(outs[0][0], outs[1][0]) and torch.allclose(outs[1][1], 7.0 * outs[0][1])
    with pytest.raises(ValueError, match="uncertainty_scale"):
        DDRMInferer(op, scheduler, uncertainty_scale=0.0)


@pytest.mark.parametrize("temperature", [-0.1, 1.5, "0.5"])
def test_temperature_outside_zero_one_is_refused(temperature):
    with pytest.raises(ValueError, match="temperature"):
        DDRMInferer(GaussianBlur(size=16, sigma=1.0), DDPMScheduler(1000), temperature=temperature)


def test_ddrm_restores_a_non_square_image_through_the_dct_blur_and_a_tiled_prior():
    """DDRM at any size: an H × W measurement, the DCT-diagonalised blur and the exact Gaussian-prior ε-model applied
    by tiles; the mean of many samples approaches the closed-form posterior mean (as on the square grid)."""
    from xray_restore.operators import DCTGaussianBlur
    from xray_restore.tiling import TiledDenoiser

    scheduler = DDPMScheduler(1000)
    op = DCTGaussianBlur((24, 40), sigma=1.0, threshold=1e-2)
    g = torch.Generator().manual_seed(0)
    x = SIGMA_P * torch.randn(2, 1, 24, 40, generator=g, dtype=torch.float64)
    sigma0 = 0.02
    y_model = op.H_thresholded(x) + sigma0 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    s = op.singulars()
    post_mean = op.V(torch.where(s > 0, s * SIGMA_P**2 * op.Ut(y_model) / (s**2 * SIGMA_P**2 + sigma0**2), 0 * s))
    post_var = torch.where(s > 0, SIGMA_P**2 * sigma0**2 / (s**2 * SIGMA_P**2 + sigma0**2), SIGMA_P**2 + 0 * s)
    y = ((y_model + op.H(torch.ones_like(y_model))) / 2).float()
    network = TiledDenoiser(GaussianPriorEpsilon(scheduler), tile=16, generator=torch.Generator().manual_seed(2))
    inferer = DDRMInferer(GaussianBlur(16, 1.0), scheduler, num_steps=20, sigma_y=0.01, num_samples=200,
                          clip_denoised=False, temperature=1.0)
    mean, _ = inferer.sample(y, network, operator=op, generator=torch.Generator().manual_seed(1))
    assert mean.shape == y.shape
    excess = ((2 * mean.double() - 1 - post_mean) ** 2).mean().item()
    assert excess < 0.1 * post_var.mean().item(), (excess, post_var.mean().item())
    assert (post_mean**2).mean().item() > 0.5 * post_var.mean().item()  # ignoring y would fail


def test_restore_blends_the_outer_ring_as_each_plan_says():
    """With unknown borders (an operator observing a window of a canvas) each plan's ``border_error`` reaches the
    blend: ``restore`` gives what ``sample(operator=..., border_error=...)`` gives, and only the outermost observed
    ring differs from the unblended restoration."""
    scheduler = DDPMScheduler(1000)
    op = GaussianBlur(16, 1.0, threshold=1e-2, window=((0, 16), (0, 16)))
    assert op.margin > 0
    y = 0.25 + 0.5 * torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    net = GaussianPriorEpsilon(scheduler)
    sampler = DDRMInferer(GaussianBlur(16, 1.0), scheduler, num_steps=5, sigma_y=0.01)
    plans = [RestorationPlan(status="restore", blur_sigma=1.0, sigma_y=0.01, operator=op, operator_sigma=1.0,
                             border_error=1e-3, window=((0, 16), (0, 16)))] * 2
    via_restore, _ = sampler.restore(y, net, plans, generator=torch.Generator().manual_seed(1))
    direct, _ = sampler.sample(y, net, operator=op, sigma_y=0.01, border_error=1e-3,
                               generator=torch.Generator().manual_seed(1))
    alone, _ = sampler.sample(y, net, operator=op, sigma_y=0.01, generator=torch.Generator().manual_seed(1))
    assert torch.equal(via_restore, direct)
    ring = torch.ones(16, 16, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    assert torch.equal(direct[..., ~ring], alone[..., ~ring]) and not torch.equal(direct[..., ring], alone[..., ring])
