"""The strongest linear estimator on val: Gaussian LMMSE by training pool, flips and shrinkage.

    python benchmarks/lmmse_val.py            # 165 val images, both protocols (~4 min on one core)

The Gaussian prior N(μ, C + λI) is fitted on the train split (1,323 images) or the whole training pool (train + the
training-only ``cxr14_extra_64.npz``: 2,039), with or without the horizontally flipped copy of every image; λ on
a grid whose val optimum is interior. The library's choice (``xray_restore.evaluation``: ``LMMSE_FLIPS``,
``LMMSE_GRID``, ``linear_prior_pool``) is the best row here. Writes ``benchmarks/results/lmmse_val.json``.
Val only; the test split is never read.
"""

from __future__ import annotations

import argparse
import time

import torch

from xray_restore.baselines import GaussianLMMSE, SpectralGaussian
from paths import DEFAULT_DATA
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.evaluation import LMMSE_FLIPS, LMMSE_GRID, linear_prior_pool
from xray_restore.measurement import PROTOCOLS, degrade, make_operator
from xray_restore.metrics import psnr
from xray_restore.provenance import run_info, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/lmmse_val.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    pools = {"train": linear_prior_pool(args.data, extra=()), "train+extra": linear_prior_pool(args.data)}
    x = to_unit_range(load_cxr14_cache(args.data, "val")["images"])
    rows = []
    for protocol in ("realistic", "case_study"):
        op, sigma_y = make_operator(protocol), PROTOCOLS[protocol]["sigma_y"]
        y = degrade(x, protocol, torch.Generator().manual_seed(args.seed))
        for name, pool in pools.items():
            for flips in (False, True):
                moments = SpectralGaussian(op, pool, flips=flips)
                by_lambda = {v: psnr(GaussianLMMSE(op, moments, v, sigma_y, exact=protocol == "realistic")(y),
                                     x).mean().item() for v in LMMSE_GRID}
                best = max(by_lambda, key=by_lambda.get)
                rows.append({"protocol": protocol, "pool": name, "images": int(pool.shape[0]), "flips": flips,
                             "best_lambda": best, "psnr": by_lambda[best],
                             "psnr_by_lambda": {str(k): round(v, 4) for k, v in by_lambda.items()}})
                print(f"{protocol:10s} {name:12s} ({pool.shape[0]} images) flips={flips!s:5s} "
                      f"λ {best:g}: {by_lambda[best]:.2f} dB", flush=True)
    print("\n| protocol | pool | flips | λ (val optimum) | PSNR |\n| --- | --- | --- | ---: | ---: |")
    for r in rows:
        print(f"| {r['protocol']} | {r['pool']} ({r['images']}) | {'yes' if r['flips'] else 'no'} | "
              f"{r['best_lambda']:g} | {r['psnr']:.2f} |")
    write_json(args.out, {**run_info(), "wall_seconds": round(time.time() - started, 1), "n_images": int(x.shape[0]),
                          "library_choice": {"pool": "train+extra", "flips": LMMSE_FLIPS, "grid": list(LMMSE_GRID)},
                          "rows": rows, "command": "python benchmarks/lmmse_val.py"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
