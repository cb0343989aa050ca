"""Evaluation protocols (how y is simulated from a clean image) and per-image metrics."""

from __future__ import annotations

from typing import Literal

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .operators import GaussianBlur

__all__ = ["Protocol", "PROTOCOLS", "make_operator", "degrade", "psnr", "ssim"]

Protocol = Literal["case_study", "realistic"]
TIKHONOV_GRID = (1e-3, 3e-3, 1e-2, 3e-2)
LMMSE_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
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
    batch_size: int = 16,
    seed: int = 0,
    autocast: bool = True,
    network: torch.nn.Module | None = None,
    out_file: str | None = None,
    baselines: bool = True,
    lmmse_grid: tuple[float, ...] = LMMSE_GRID,
    tikhonov_grid: tuple[float, ...] = TIKHONOV_GRID,
) -> dict:
    """DDRM with the prior at ``weights`` against blurred / pinv / Tikhonov / LMMSE on one split.

    The linear baselines' hyper-parameters are tuned on the evaluated images themselves (grid search), which
    favours them. Returns ``{"protocols": {name: {"sigma_y", "methods": {method: metrics}}}, ...}``, also written
    as JSON to ``out_file`` when given.
    """
    import json
    import os
    import time

    from .baselines import GaussianLMMSE, tikhonov
    from .datasets import load_cxr14_cache, to_unit_range
    from .ddrm import DDRMInferer
    from .networks import build_prior_unet, build_scheduler, load_weights

    train = to_unit_range(load_cxr14_cache(data, "train")["images"])
    x = to_unit_range(load_cxr14_cache(data, split)["images"])[:limit]
    unet = load_weights(network if network is not None else build_prior_unet(), weights)
    scheduler = build_scheduler()
    results: dict = {"split": split, "n_images": int(x.shape[0]), "weights": str(weights), "protocols": {}}
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
            estimators = {v: GaussianLMMSE(op, train, v, sigma_y, exact=exact) for v in lmmse_grid}
            shrink = max(estimators, key=lambda v: psnr(estimators[v](y), x).mean().item())
            record("lmmse", estimators[shrink](y), 0.0, shrinkage=shrink)
        for k in samples:
            inferer = DDRMInferer(op, scheduler, num_steps=num_steps, eta=eta, eta_b=eta_b, sigma_y=sigma_y,
                                  num_samples=k, autocast=autocast)
            g = torch.Generator().manual_seed(seed + 1)
            start = time.time()
            out = torch.cat([inferer(inputs=y[i : i + batch_size], network=unet, generator=g)
                             for i in range(0, x.shape[0], batch_size)])
            record("ddrm_1sample" if k == 1 else f"ddrm_mean{k}", out, time.time() - start, num_samples=k)
        reference = rows["lmmse" if baselines else "blurred"]["psnr"]
        for row in rows.values():
            row["gain_over_lmmse_db" if baselines else "gain_over_blurred_db"] = row["psnr"] - reference
        results["protocols"][protocol] = {"sigma_y": sigma_y, "methods": rows}
    results["settings"] = {"num_steps": num_steps, "eta": eta, "eta_b": eta_b, "seed": seed, "bf16": autocast,
                           "threads": torch.get_num_threads()}
    if out_file:
        os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
        tmp = f"{out_file}.tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=2)
        os.replace(tmp, out_file)
    return results


def format_results(results: dict) -> str:
    """A plain-text table of :func:`evaluate_prior` results."""
    lines = []
    for protocol, block in results["protocols"].items():
        lines.append(f"\n{protocol} (sigma_y={block['sigma_y']}, {results['n_images']} {results['split']} images)")
        lines.append(f"{'method':<14}{'PSNR':>8}{'SSIM':>8}{'dLMMSE':>9}{'sec':>8}")
        for name, row in block["methods"].items():
            gain = row.get("gain_over_lmmse_db", row.get("gain_over_blurred_db", float("nan")))
            lines.append(f"{name:<14}{row['psnr']:>8.2f}{row['ssim']:>8.4f}{gain:>9.2f}{row['seconds']:>8.1f}")
    return "\n".join(lines)
