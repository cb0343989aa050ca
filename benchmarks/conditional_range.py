"""The conditional baseline on blurs it was not trained for: where it helps, where it harms, and ``min_blur_sigma``.

    python benchmarks/conditional_range.py                # about 6 min on 2 cores
    python benchmarks/conditional_range.py --limit 8 --out /tmp/quick.json

The conditional network (``bundles/xray_conditional``) was trained on one degradation, σ = 2 px, and restores every
input as for it. A milder blur comes back over-sharpened, worse than it came in. The bundle's ``min_blur_sigma``
hands back an input whose estimated blur σ̂ is below it (status ``blur_mismatch``, the reason says so).

The first ``--limit`` val images are blurred with the realistic protocol (Gaussian σ on the grid below, noise σ_y
0.002 and 0.01, 8-bit) and mirrored borders (``--padding``: the borders a real radiograph's blur leaves at the model
scale, as the chain pads it; the protocol's own zero padding darkens the input's edge, which any restoration then
"gains" back, and so understates the harm) and restored **forced** (the mean of ``--samples`` samples, whatever the
checks say). Per condition: the PSNR gain over the input, forced and as the bundle delivers it (0 where a check
hands the input back), and the σ̂ the bundle's estimator reads. Then, for each candidate limit T, over all
conditions: the inputs it would restore, how many of those come back worse than their input, the gain it forgoes
(the positive gains of inputs with σ̂ < T) and the harm it avoids (the negative ones). The suggested limit maximises
``HARM_WEIGHT`` × harm avoided − gain forgone (rounded to 0.05): an output worse than its input is the product's
worst defect, so a dB lost weighs twice a dB not won. Tuned on val only; test is never read. Writes
``benchmarks/results/conditional_range.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from paths import DEFAULT_DATA
from xray_restore.cli import set_ids
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.locate import CONDITIONAL_BUNDLE
from xray_restore.measurement import REAL_BORDERS, degrade
from xray_restore.metrics import psnr
from xray_restore.operators import GaussianBlur
from xray_restore.provenance import run_info, write_json
from xray_restore.restore import Restorer

SIGMAS = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5)
NOISES = (0.002, 0.01)
LIMITS = tuple(np.round(np.arange(0.8, 2.01, 0.05), 2))
HARM_WEIGHT = 2.0


def sweep(gain: np.ndarray, sigma_hat: np.ndarray) -> list[dict]:
    """For each candidate limit: what handing back every input with σ̂ below it does to the forced ``gain``s."""
    rows = []
    for limit in LIMITS:
        kept = sigma_hat >= limit
        rows.append({"limit": float(limit), "restored": int(kept.sum()),
                     "worse_restored": int((kept & (gain < 0)).sum()),
                     "gain_forgone_db": float(gain[~kept & (gain > 0)].sum()),
                     "harm_avoided_db": float(-gain[~kept & (gain < 0)].sum())})
        rows[-1]["net_db"] = HARM_WEIGHT * rows[-1]["harm_avoided_db"] - rows[-1]["gain_forgone_db"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--bundle", default=CONDITIONAL_BUNDLE)
    parser.add_argument("--limit", type=int, default=48, help="val images per condition")
    parser.add_argument("--samples", type=int, default=4, help="samples averaged per input")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="ID=JSON", help="bundle ids to override")
    parser.add_argument("--padding", default=REAL_BORDERS, choices=(REAL_BORDERS, "zeros"),
                        help="the blurred scene's borders: mirrored, as a real radiograph's (default), or the "
                             "training protocol's dark zeros")
    parser.add_argument("--out", default="benchmarks/results/conditional_range.json")
    args = parser.parse_args()
    overrides = set_ids(args.set)
    torch.set_num_threads(args.threads)
    started = time.time()
    restorer = Restorer.from_bundle(args.bundle, **overrides)
    inferer, policy = restorer.inferer, restorer.inferer.policy
    x = to_unit_range(load_cxr14_cache(args.data, "val")["images"])[: args.limit]
    g = torch.Generator().manual_seed(args.seed + 3)
    conditions, gains, sigma_hats = [], [], []
    print("| σ (px) | σ_y | σ̂ mean [min, max] | forced gain (dB) | worse, forced | handed back | gain, default | "
          "worse, default |")
    print("| ---: |" + " ---: |" * 7)
    for sigma_y in NOISES:
        for sigma in SIGMAS:
            y = degrade(x, "realistic", g, sigma_y=sigma_y,
                        operator=GaussianBlur(64, sigma, padding=args.padding))
            plans = inferer.plan(y, 8)
            forced = [dataclasses.replace(p, status="restore", reason=None) for p in plans]  # whatever the checks say
            gens = [torch.Generator().manual_seed(args.seed + i) for i in range(len(y))]
            mean, _ = inferer.sampler.restore(y, restorer.network, forced, num_samples=args.samples, generator=gens)
            gain = (psnr(mean, x) - psnr(y, x)).numpy()
            sigma_hat = np.array([p.blur_sigma for p in plans])
            back = np.array([not p.restores for p in plans])
            default = np.where(back, 0.0, gain)
            conditions.append({"sigma": sigma, "sigma_y": sigma_y, "n": len(y),
                               "sigma_hat_mean": float(sigma_hat.mean()), "sigma_hat_min": float(sigma_hat.min()),
                               "sigma_hat_max": float(sigma_hat.max()), "gain_forced_mean": float(gain.mean()),
                               "worse_forced": int((gain < 0).sum()), "handed_back": int(back.sum()),
                               "gain_default_mean": float(default.mean()), "worse_default": int((default < 0).sum()),
                               "gains_forced": [round(float(v), 3) for v in gain],
                               "sigma_hats": [round(float(v), 3) for v in sigma_hat]})
            gains.append(gain)
            sigma_hats.append(sigma_hat)
            c = conditions[-1]
            print(f"| {sigma:g} | {sigma_y:g} | {c['sigma_hat_mean']:.2f} [{c['sigma_hat_min']:.2f}, "
                  f"{c['sigma_hat_max']:.2f}] | {c['gain_forced_mean']:+.2f} | {c['worse_forced']}/{c['n']} | "
                  f"{c['handed_back']} | {c['gain_default_mean']:+.2f} | {c['worse_default']} |", flush=True)
    swept = sweep(np.concatenate(gains), np.concatenate(sigma_hats))
    best = max(swept, key=lambda r: r["net_db"])
    print(f"\n| limit T (px) | restored | worse of those | gain forgone (dB) | harm avoided (dB) | "
          f"{HARM_WEIGHT:g} × harm avoided − gain forgone |")
    print("| ---: |" + " ---: |" * 5)
    for r in swept:
        print(f"| {r['limit']:.2f} | {r['restored']} | {r['worse_restored']} | {r['gain_forgone_db']:.1f} | "
              f"{r['harm_avoided_db']:.1f} | {r['net_db']:.1f} |")
    suggested = round(round(best["limit"] / 0.05) * 0.05, 2)
    print(f"\nsuggested min_blur_sigma {suggested:g} (the bundle's: {policy.min_blur_sigma})")
    result = {**run_info(), "wall_seconds": round(time.time() - started, 1), "bundle": args.bundle,
              "model_version": restorer.provenance["model_version"], "overrides": overrides,
              "bundle_min_blur_sigma": policy.min_blur_sigma, "suggested_min_blur_sigma": suggested,
              "harm_weight": HARM_WEIGHT, "padding": args.padding,
              "conditions": conditions, "sweep": swept,
              "command": f"python benchmarks/conditional_range.py --limit {args.limit} --samples {args.samples} "
                         f"--threads {args.threads} --seed {args.seed} --padding {args.padding}"
                         + (f" --set {' '.join(args.set)}" if args.set else "")}
    write_json(args.out, result)
    print(f"wrote {args.out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
