"""Exploration of DDRM timestep grids and σ_y on the first N val images (never test); one JSON line per config.

    python benchmarks/ddrm_grid_explore.py 48 8 realistic '[{"grid": "official"}, {"grid": "quad", "tmax": 950}]'

Arguments: N val images, K samples (mean of K), protocol, a JSON list of configs with keys ``grid`` (official |
uniform | quad | logsigma), ``tmax`` (largest timestep, default 950), ``n`` (steps, default 20), ``eta``, ``eta_b``,
``sy`` (σ_y multiplier). The rows of 2026-11-23 (bundle 0.2.0 weights) are in
``benchmarks/results/ddrm_grid_explore_realistic_mean8.jsonl``; they led to ``DDRMInferer(spacing="quadratic")``,
whose choice ``benchmarks/ddrm_tune_val.py --spacings`` records.
"""

from __future__ import annotations

import json
import math
import sys
import time

import torch

from xray_restore.cli import DEFAULT_DATA
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.ddrm import DDRMInferer
from xray_restore.measurement import PROTOCOLS, degrade, make_operator
from xray_restore.metrics import psnr, ssim
from xray_restore.networks import build_prior_unet, build_scheduler, load_weights


def grid_timesteps(config: dict, alphas_cumprod: torch.Tensor, official: list[int]) -> list[int]:
    """Increasing timesteps of one config (duplicates after rounding removed)."""
    kind, t_max, n = config.get("grid", "official"), config.get("tmax", 950), config.get("n", 20)
    sigmas = torch.sqrt((1 - alphas_cumprod) / alphas_cumprod)
    if kind == "uniform":
        steps = [round(t_max * i / (n - 1)) for i in range(n)]
    elif kind == "quad":
        steps = [round(t_max * (i / (n - 1)) ** 2) for i in range(n)]
    elif kind == "logsigma":
        lo, hi = math.log(float(sigmas[0])), math.log(float(sigmas[t_max]))
        steps = [int(torch.argmin((sigmas - math.exp(lo + (hi - lo) * i / (n - 1))).abs())) for i in range(n)]
    elif kind == "official":
        steps = official
    else:
        raise ValueError(f"unknown grid {kind!r}")
    return sorted(set(steps))


def main() -> None:
    n_images, k, protocol, configs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    torch.set_num_threads(2)
    x = to_unit_range(load_cxr14_cache(DEFAULT_DATA, "val")["images"])[:n_images]
    op = make_operator(protocol)
    y = degrade(x, protocol, torch.Generator().manual_seed(0))
    unet = load_weights(build_prior_unet(), "bundles/xray_ddrm/models/model.pt")
    scheduler = build_scheduler()
    alphas_cumprod = scheduler.alphas_cumprod
    for config in configs:
        sigma_y = PROTOCOLS[protocol]["sigma_y"] * config.get("sy", 1.0)
        inferer = DDRMInferer(op, scheduler, num_steps=20, spacing="uniform", eta=config.get("eta", 0.85),
                              eta_b=config.get("eta_b", 1.0), sigma_y=sigma_y, num_samples=k, autocast=True)
        inferer.timesteps = grid_timesteps(config, alphas_cumprod, inferer.timesteps)
        generator = torch.Generator().manual_seed(1)
        start = time.time()
        out = torch.cat([inferer(inputs=y[i : i + 16], network=unet, generator=generator)
                         for i in range(0, n_images, 16)])
        t_max = inferer.timesteps[-1]
        sigma_max = math.sqrt((1 - alphas_cumprod[t_max]) / alphas_cumprod[t_max])
        print(json.dumps({**config, "n_ts": len(inferer.timesteps), "sigma_T": round(sigma_max, 2),
                          "psnr": round(psnr(out, x).mean().item(), 3), "ssim": round(ssim(out, x).mean().item(), 4),
                          "sec": round(time.time() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
