"""How many DDRM samples the product should average: PSNR and time per image against ``num_samples``, on val.

    python benchmarks/num_samples.py                       # 24 val images, about 13 min on 2 cores
    python benchmarks/num_samples.py --limit 8 --samples 1 2 --out /tmp/quick.json

One DDRM sample is a draw from the posterior: in the components the measurement leaves uncertain it carries the
posterior's spread, which costs PSNR against the posterior mean (for a Gaussian posterior, twice the mean's error).
The mean of ``k`` samples approaches the posterior mean at ``k`` times the cost, and with ``k > 1`` the product also
writes a per-pixel uncertainty map. This measures the trade on the product's own path: val images (64×64, the
first ``--limit``) blurred by σ ∈ {1, 2, 3} px with mirrored borders, white noise σ_y ∈ {0.0005, 0.01}
(0.0005: what a full-size source with noise 0.008 keeps after the 16 × 16 area average to the model grid, where
real inputs live; 0.01 and 8-bit quantisation: the realistic protocol), σ and σ_y estimated by the bundle
(``Restorer.from_bundle``, no gate), DDRM with the bundle's settings and ``num_samples`` ∈ ``--samples``; one
generator per image, so every ``k`` restores the same inputs. Reports the mean PSNR against the sharp image and the
DDRM time per image. Writes ``benchmarks/results/num_samples.json``. Tuned on val only; test is never read.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from paths import DEFAULT_DATA
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.measurement import measure
from xray_restore.metrics import psnr
from xray_restore.operators import GaussianBlur
from xray_restore.provenance import run_info, write_json
from xray_restore.restore import Restorer

SIGMAS = (1.0, 2.0, 3.0)
#: noise std and the bits the input is stored with (None: not quantised; the estimator then has no floor)
NOISES = ((0.0005, None), (0.01, 8))
SAMPLES = (1, 4, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--bundle", default=DDRM_BUNDLE)
    parser.add_argument("--limit", type=int, default=24, help="val images")
    parser.add_argument("--samples", type=int, nargs="+", default=SAMPLES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/num_samples.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    restorer = Restorer.from_bundle(args.bundle)
    inferer = restorer.inferer
    sampler, policy = inferer.sampler, inferer.policy
    x = to_unit_range(load_cxr14_cache(args.data, "val")["images"])[: args.limit]
    rows = []
    print(f"{'sigma':>6}{'sigma_y':>8}{'input':>8}" + "".join(f"{f'k={k}':>16}" for k in args.samples))
    for sigma_y, bits in NOISES:
        for sigma in SIGMAS:
            g = torch.Generator().manual_seed(args.seed)
            noise = torch.randn(x.shape, generator=g, dtype=torch.float64)
            op = GaussianBlur(64, sigma, padding=sampler.operator.padding)
            y = measure(x.double(), op, sigma_y, noise, bits).clamp(0.0, 1.0).to(x.dtype)
            plans = []
            for p in inferer.plan(y, bits):  # no gate: restore all, each with its estimated (isotropic) blur
                restoring = policy.restoring_sigma(p.blur_sigma)
                plans.append(dataclasses.replace(p, status="restore", reason=None, operator_sigma=restoring,
                                                 operator=policy.operator_for(restoring, p.window, sampler.device)))
            row = {"sigma": sigma, "sigma_y": sigma_y, "bits": bits, "n": len(y),
                   "psnr_input": float(psnr(y, x).mean()), "samples": []}
            for k in args.samples:
                gens = [torch.Generator().manual_seed(args.seed + i) for i in range(len(y))]
                start = time.time()
                mean, _ = sampler.restore(y, restorer.network, plans, num_samples=k, generator=gens)
                row["samples"].append({"num_samples": k, "psnr": float(psnr(mean, x).mean()),
                                       "seconds_per_image": round((time.time() - start) / len(y), 3)})
            rows.append(row)
            print(f"{sigma:>6g}{sigma_y:>8g}{row['psnr_input']:>8.2f}"
                  + "".join(f"{r['psnr']:>8.2f} ({r['seconds_per_image']:.2f}s)" for r in row["samples"]), flush=True)
    gains = {k: sum(r["samples"][i]["psnr"] - r["samples"][0]["psnr"] for r in rows) / len(rows)
             for i, k in enumerate(args.samples)}
    print("mean gain over k=%d: " % args.samples[0] + ", ".join(f"k={k} {v:+.2f} dB" for k, v in gains.items()))
    result = {**run_info(), "wall_seconds": round(time.time() - started, 1), "bundle": args.bundle,
              "model_version": restorer.provenance["model_version"], "bundle_num_samples": inferer.num_samples,
              "rows": rows, "mean_gain_db": {str(k): v for k, v in gains.items()},
              "command": "python benchmarks/num_samples.py " + " ".join(
                  f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                  for k, v in vars(args).items())}
    write_json(args.out, result)
    print(f"wrote {args.out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
