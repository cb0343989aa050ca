"""DDRM with the shipped prior vs the linear baselines, on the val split, under both protocols.

    python benchmarks/prior_val.py --data ../shared/data/cxr14_64.npz --weights bundles/xray_ddrm/models/model.pt

Linear hyper-parameters (Tikhonov λ, LMMSE shrinkage) are chosen on the same val images by grid search,
which favours the baselines. Prints a table and writes ``benchmarks/results/prior_val.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from xray_restore.baselines import GaussianLMMSE, tikhonov
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.ddrm import DDRMInferer
from xray_restore.evaluation import PROTOCOLS, degrade, make_operator, psnr, ssim
from xray_restore.networks import build_prior_unet, build_scheduler, load_weights

TIKHONOV_GRID = (1e-3, 3e-3, 1e-2, 3e-2)
LMMSE_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    train = to_unit_range(load_cxr14_cache(args.data, "train")["images"])
    x = to_unit_range(load_cxr14_cache(args.data, args.split)["images"])[: args.limit]
    unet = load_weights(build_prior_unet(), args.weights)
    scheduler = build_scheduler()
    results: dict = {"split": args.split, "n_images": x.shape[0], "weights": str(args.weights), "protocols": {}}
    for protocol in args.protocols:
        op = make_operator(protocol)
        sigma_y = PROTOCOLS[protocol]["sigma_y"]
        y = degrade(x, protocol, torch.Generator().manual_seed(args.seed))
        rows: dict[str, dict] = {}

        def record(name: str, estimate: torch.Tensor, seconds: float, **extra) -> None:
            p, s = psnr(estimate, x), ssim(estimate, x)
            rows[name] = {"psnr": p.mean().item(), "psnr_std": p.std().item(), "ssim": s.mean().item(),
                          "seconds": round(seconds, 2), **extra}

        record("blurred", y, 0.0)
        record("pinv", op.pinv(y), 0.0)
        best = max(TIKHONOV_GRID, key=lambda lam: psnr(tikhonov(op, y, lam), x).mean().item())
        record("tikhonov", tikhonov(op, y, best), 0.0, lam=best)
        exact = protocol == "realistic"
        scored = {}
        for shrink in LMMSE_GRID:
            scored[shrink] = psnr(GaussianLMMSE(op, train, shrink, sigma_y, exact=exact)(y), x).mean().item()
        best = max(scored, key=scored.get)
        record("lmmse", GaussianLMMSE(op, train, best, sigma_y, exact=exact)(y), 0.0, shrinkage=best)
        for k in args.samples:
            inferer = DDRMInferer(op, scheduler, num_steps=args.steps, eta=args.eta, eta_b=args.eta_b,
                                  sigma_y=sigma_y, num_samples=k, autocast=not args.fp32)
            start, outs = time.time(), []
            g = torch.Generator().manual_seed(args.seed + 1)
            for i in range(0, x.shape[0], args.batch):
                outs.append(inferer(inputs=y[i : i + args.batch], network=unet, generator=g))
            record(f"ddrm_mean{k}" if k > 1 else "ddrm_1sample", torch.cat(outs), time.time() - start,
                   num_samples=k)
        lm = rows["lmmse"]["psnr"]
        for row in rows.values():
            row["gain_over_lmmse_db"] = row["psnr"] - lm
        results["protocols"][protocol] = {"sigma_y": sigma_y, "methods": rows}
        print(f"\n{protocol} (σ_y={sigma_y}, {x.shape[0]} {args.split} images)")
        print(f"{'method':<14}{'PSNR':>8}{'SSIM':>8}{'Δ LMMSE':>9}{'sec':>8}")
        for name, row in rows.items():
            print(f"{name:<14}{row['psnr']:>8.2f}{row['ssim']:>8.4f}{row['gain_over_lmmse_db']:>9.2f}{row['seconds']:>8.1f}")
    results["settings"] = {"num_steps": args.steps, "eta": args.eta, "eta_b": args.eta_b, "seed": args.seed,
                           "bf16": not args.fp32, "threads": args.threads}
    results["machine"] = platform.processor() or platform.machine()
    try:
        results["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                           text=True, check=False).stdout.strip()
    except OSError:
        results["commit"] = ""
    results["date"] = time.strftime("%Y-%m-%d")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/cxr14_64.npz")
    parser.add_argument("--weights", default="bundles/xray_ddrm/models/model.pt")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--protocols", nargs="+", default=["case_study", "realistic"])
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eta", type=float, default=0.85)
    parser.add_argument("--eta-b", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fp32", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/prior_val.json")
    args = parser.parse_args()
    results = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
