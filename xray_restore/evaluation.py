"""Evaluation runners: restorers against the linear baselines on a split, under the measurement protocols.

A top-level runner: nothing in the package below it imports it (the measurement model lives in
:mod:`xray_restore.measurement`, PSNR/SSIM in :mod:`xray_restore.metrics`)."""

from __future__ import annotations

from collections.abc import Callable
import torch
from .measurement import PROTOCOLS, Protocol, degrade, make_operator
from .metrics import psnr, ssim
from .operators import GaussianBlur

__all__ = ["evaluate_methods", "evaluate_prior", "evaluate_conditional", "format_results", "Protocol"]

TIKHONOV_GRID = (1e-3, 3e-3, 1e-2, 3e-2)
LMMSE_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


Restorer = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def evaluate_methods(
    data: str,
    make_methods: Callable[[str, GaussianBlur, float], dict[str, Restorer]],
    split: str = "val",
    protocols: tuple[str, ...] = ("case_study", "realistic"),
    limit: int | None = None,
    batch_size: int = 16,
    seed: int = 0,
    baselines: bool = True,
    lmmse_grid: tuple[float, ...] = LMMSE_GRID,
    tikhonov_grid: tuple[float, ...] = TIKHONOV_GRID,
    out_file: str | None = None,
    settings: dict | None = None,
) -> dict:
    """Restorers from ``make_methods(protocol, operator, sigma_y)`` against blurred / pinv / Tikhonov / LMMSE.

    Each restorer maps a batch ``y`` ``(B, 1, N, N)`` in [0, 1] (and a generator seeded once per method) to its
    estimate. The linear baselines' hyper-parameters are tuned on the evaluated images themselves (grid search),
    which favours them. Returns ``{"protocols": {name: {"sigma_y", "methods": {method: metrics}}}, ...}``, also
    written as JSON to ``out_file`` when given.
    """
    import time

    from .baselines import GaussianLMMSE, SpectralGaussian, tikhonov
    from .datasets import load_cxr14_cache, to_unit_range

    train = to_unit_range(load_cxr14_cache(data, "train")["images"])
    x = to_unit_range(load_cxr14_cache(data, split)["images"])[:limit]
    results: dict = {"split": split, "n_images": int(x.shape[0]), "protocols": {}}
    for protocol in protocols:
        op = make_operator(protocol)  # type: ignore[arg-type]
        sigma_y = PROTOCOLS[protocol]["sigma_y"]
        y = degrade(x, protocol, torch.Generator().manual_seed(seed))  # type: ignore[arg-type]
        rows: dict[str, dict] = {}

        def record(name: str, estimate: torch.Tensor, seconds: float, **extra) -> None:
            p, s = psnr(estimate, x), ssim(estimate, x)
            rows[name] = {"psnr": p.mean().item(), "psnr_std": p.std().item(), "ssim": s.mean().item(),
                          "seconds": round(seconds, 2), **extra}

        record("blurred", y, 0.0)
        if baselines:
            record("pinv", op.pinv(y), 0.0)
            lam = max(tikhonov_grid, key=lambda v: psnr(tikhonov(op, y, v), x).mean().item())
            record("tikhonov", tikhonov(op, y, lam), 0.0, lam=lam)
            exact = protocol == "realistic"
            moments = SpectralGaussian(op, train)
            estimators = {v: GaussianLMMSE(op, moments, v, sigma_y, exact=exact) for v in lmmse_grid}
            shrink = max(estimators, key=lambda v: psnr(estimators[v](y), x).mean().item())
            record("lmmse", estimators[shrink](y), 0.0, shrinkage=shrink)
        for name, restorer in make_methods(protocol, op, sigma_y).items():
            g = torch.Generator().manual_seed(seed + 1)
            start = time.time()
            out = torch.cat([restorer(y[i : i + batch_size], g) for i in range(0, x.shape[0], batch_size)])
            record(name, out, time.time() - start)
        reference = rows["lmmse" if baselines else "blurred"]["psnr"]
        for row in rows.values():
            row["gain_over_lmmse_db" if baselines else "gain_over_blurred_db"] = row["psnr"] - reference
        results["protocols"][protocol] = {"sigma_y": sigma_y, "methods": rows}
    results["settings"] = {"seed": seed, "threads": torch.get_num_threads(), **(settings or {})}
    return _write(results, out_file)


def evaluate_prior(
    data: str,
    weights: str,
    split: str = "val",
    protocols: tuple[str, ...] = ("case_study", "realistic"),
    samples: tuple[int, ...] = (1, 8),
    limit: int | None = None,
    num_steps: int = 20,
    eta: float = 0.85,
    eta_b: float = 1.0,
    spacing: str = "quadratic",
    batch_size: int = 16,
    seed: int = 0,
    autocast: bool = True,
    network: torch.nn.Module | None = None,
    out_file: str | None = None,
    baselines: bool = True,
    lmmse_grid: tuple[float, ...] = LMMSE_GRID,
    tikhonov_grid: tuple[float, ...] = TIKHONOV_GRID,
) -> dict:
    """DDRM with the prior at ``weights`` (1 sample and means of ``samples``) via :func:`evaluate_methods`."""
    from .ddrm import DDRMInferer
    from .networks import build_prior_unet, build_scheduler, load_weights

    unet = load_weights(network if network is not None else build_prior_unet(), weights)
    scheduler = build_scheduler()

    def make_methods(protocol: str, op: GaussianBlur, sigma_y: float) -> dict[str, Restorer]:
        methods = {}
        for k in samples:
            inferer = DDRMInferer(op, scheduler, num_steps=num_steps, spacing=spacing, eta=eta, eta_b=eta_b,
                                  sigma_y=sigma_y, num_samples=k, autocast=autocast)
            methods["ddrm_1sample" if k == 1 else f"ddrm_mean{k}"] = (
                lambda y, g, inferer=inferer: inferer(inputs=y, network=unet, generator=g))
        return methods

    results = evaluate_methods(data, make_methods, split=split, protocols=protocols, limit=limit,
                               batch_size=batch_size, seed=seed, baselines=baselines, lmmse_grid=lmmse_grid,
                               tikhonov_grid=tikhonov_grid, out_file=None,
                               settings={"num_steps": num_steps, "spacing": spacing, "eta": eta, "eta_b": eta_b,
                                         "bf16": autocast})
    results["weights"] = str(weights)
    return _write(results, out_file)


def evaluate_conditional(
    data: str,
    weights: str,
    split: str = "val",
    protocols: tuple[str, ...] = ("realistic",),
    samples: tuple[int, ...] = (1, 8),
    limit: int | None = None,
    num_steps: int = 20,
    eta: float = 1.0,
    temperature: float = 1.0,
    batch_size: int = 16,
    seed: int = 0,
    autocast: bool = True,
    network: torch.nn.Module | None = None,
    out_file: str | None = None,
    baselines: bool = True,
) -> dict:
    """The conditional baseline (predictor alone, 1 sample, means of ``samples``) via :func:`evaluate_methods`.

    ``network`` defaults to ``build_conditional("predict_refine")``; an SR3 network has no ``predictor`` row.
    """
    from .conditional import ConditionalSampler, PredictAndRefine, build_conditional
    from .networks import load_weights

    model = load_weights(network if network is not None else build_conditional("predict_refine"), weights)

    def make_methods(protocol: str, op: GaussianBlur, sigma_y: float) -> dict[str, Restorer]:
        methods: dict[str, Restorer] = {}
        if isinstance(model, PredictAndRefine):
            methods["predictor"] = lambda y, g: ((model.predict(2 * y - 1) + 1) / 2).clamp(0, 1)
        for k in samples:
            sampler = ConditionalSampler(model, num_steps=num_steps, eta=eta, autocast=autocast,
                                         temperature=temperature)
            methods["conditional_1sample" if k == 1 else f"conditional_mean{k}"] = (
                lambda y, g, sampler=sampler, k=k: sampler.sample(y, num_samples=k, generator=g)[0])
        return methods

    with torch.inference_mode():
        results = evaluate_methods(data, make_methods, split=split, protocols=protocols, limit=limit,
                                   batch_size=batch_size, seed=seed, baselines=baselines, out_file=None,
                                   settings={"num_steps": num_steps, "eta": eta, "temperature": temperature,
                                             "bf16": autocast})
    results["weights"] = str(weights)
    return _write(results, out_file)


def _write(results: dict, out_file: str | None) -> dict:
    from .provenance import write_json

    if out_file:
        write_json(out_file, results)
    return results


def format_results(results: dict) -> str:
    """A plain-text table of :func:`evaluate_methods` results."""
    lines = []
    for protocol, block in results["protocols"].items():
        lines.append(f"\n{protocol} (sigma_y={block['sigma_y']}, {results['n_images']} {results['split']} images)")
        lines.append(f"{'method':<14}{'PSNR':>8}{'SSIM':>8}{'dLMMSE':>9}{'sec':>8}")
        for name, row in block["methods"].items():
            gain = row.get("gain_over_lmmse_db", row.get("gain_over_blurred_db", float("nan")))
            lines.append(f"{name:<14}{row['psnr']:>8.2f}{row['ssim']:>8.4f}{gain:>9.2f}{row['seconds']:>8.1f}")
    return "\n".join(lines)
