"""How much an error in the blur σ costs DDRM: PSNR on val against σ̂ = σ + Δ, and the accuracy a 0.3 dB gap needs.

    python benchmarks/blur_sensitivity.py              # 32 val images, 5 conditions × 5 offsets (~7 min on one core)

Val images (64×64) are degraded as in ``benchmarks/estimation_val.py`` (exact Gaussian blur σ, white noise σ_y,
8-bit quantisation), then restored by the bundle's DDRM (1 sample, its settings, the per-component operator
uncertainty it applies to an estimated blur) with the blur σ + Δ for Δ ∈ {−0.1, −0.05, 0, +0.05, +0.1} px and the
true total noise (σ_y and the 8-bit floor in quadrature). A quadratic fitted to the loss, loss ≈ k·Δ², gives the
RMS σ error that costs 0.3 dB: √(0.3 / k). Writes ``benchmarks/results/blur_sensitivity.json``. Val only.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from paths import DEFAULT_DATA
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.estimation import quantisation_floor
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.measurement import degrade
from xray_restore.metrics import psnr
from xray_restore.operators import GaussianBlur
from xray_restore.plan import RestorationPlan
from xray_restore.provenance import run_info, write_json
from xray_restore.restore import Restorer

CONDITIONS = ((0.5, 0.002), (1.0, 0.002), (2.0, 0.002), (1.0, 0.01), (2.0, 0.01))
OFFSETS = (-0.1, -0.05, 0.0, 0.05, 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--bundle", default=DDRM_BUNDLE)
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/blur_sensitivity.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    restorer = Restorer.from_bundle(args.bundle)
    sampler, policy = restorer.inferer.sampler, restorer.inferer.policy
    x = to_unit_range(load_cxr14_cache(args.data, "val")["images"])[: args.limit]
    n = len(x)
    rows = []
    for sigma, sigma_y in CONDITIONS:
        op = GaussianBlur(64, sigma, padding=sampler.operator.padding)
        y = degrade(x, "realistic", torch.Generator().manual_seed(args.seed), sigma_y=sigma_y, operator=op)
        noise = math.hypot(sigma_y, quantisation_floor(8))
        by_offset = {}
        for delta in OFFSETS:
            # restored with σ + Δ as given (no back-off), with the policy's operator (its borders) and the operator
            # uncertainty it applies to an estimated blur
            plan = RestorationPlan(status="restore", blur_sigma=sigma + delta, sigma_y=noise,
                                   operator=policy.operator_for(sigma + delta, device=sampler.device),
                                   operator_sigma=sigma + delta, operator_uncertainty=policy.operator_uncertainty,
                                   border_error=policy.border_error if policy.unknown_borders else 0.0)
            gens = [torch.Generator().manual_seed(args.seed + i) for i in range(n)]
            out, _ = sampler.restore(y, restorer.network, [plan] * n, num_samples=1, generator=gens)
            by_offset[delta] = float(psnr(out, x).mean())
        loss = np.array([by_offset[0.0] - by_offset[d] for d in OFFSETS])
        k = float(np.sum(loss * np.square(OFFSETS)) / np.sum(np.power(OFFSETS, 4)))  # least squares, loss = kΔ²
        rows.append({"sigma": sigma, "sigma_y": sigma_y, "n": n, "psnr_by_offset": {f"{d:+.2f}": v for d, v in
                                                                                     by_offset.items()},
                     "k_db_per_px2": k, "rms_error_for_0.3_db": math.sqrt(0.3 / k) if k > 0 else math.inf})
        print(f"σ {sigma} σ_y {sigma_y}: " + ", ".join(f"{d:+.2f}: {v:.2f}" for d, v in by_offset.items())
              + f" dB; k {k:.0f} dB/px², RMS for 0.3 dB {rows[-1]['rms_error_for_0.3_db']:.3f} px", flush=True)
    result = {**run_info(), "wall_seconds": round(time.time() - started, 1), "bundle": args.bundle,
              "operator_uncertainty": policy.operator_uncertainty, "rows": rows,
              "command": "python benchmarks/blur_sensitivity.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())}
    print("\n| σ | σ_y | " + " | ".join(f"Δ {d:+.2f}" for d in OFFSETS) + " | k (dB/px²) | RMS σ error for 0.3 dB |")
    print("| ---: | ---: | " + " | ".join("---:" for _ in OFFSETS) + " | ---: | ---: |")
    for r in rows:
        print(f"| {r['sigma']} | {r['sigma_y']} | " + " | ".join(f"{v:.2f}" for v in r["psnr_by_offset"].values())
              + f" | {r['k_db_per_px2']:.0f} | {r['rms_error_for_0.3_db']:.3f} |")
    write_json(args.out, result)
    print(f"wrote {args.out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
