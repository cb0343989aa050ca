"""Blur / noise estimation on val: accuracy, the no-blur threshold, and DDRM with estimated vs true settings.

    python benchmarks/estimation_val.py                      # 165 val images; DDRM on the first 48
    python benchmarks/estimation_val.py --ddrm-limit 0       # estimator only (seconds)
    python benchmarks/estimation_val.py --sigmas 0.53 1.03 --out /tmp/off_grid.json   # blurs between the grid's
    python benchmarks/estimation_val.py --set sigma_resolution=0.05 blur_backoff=0  # an ablation of bundle settings
    python benchmarks/estimation_val.py --set operator_uncertainty=0 \
        --true-from benchmarks/results/estimation_val.json --out /tmp/unc0.json  # the estimated path only

Val images (64×64) are degraded at the model scale with the exact Gaussian blur of σ ∈ {0, 0.5, …, 3} px (σ = 0:
none), white noise σ_y ∈ {0.002, 0.01} and 8-bit quantisation (the realistic protocol's measurement model), then
the bundle's estimator (``Restorer.from_bundle``: the same objects the product uses) estimates σ and σ_y.
Reports mean |σ error|, the σ_y ratio (estimate / nominal), the estimator's time per image, the calibration of
``no_blur_sigma`` (from the σ̂ of unblurred and 1 px-blurred val images), and PSNR of DDRM (1 sample, the bundle's
settings) with the estimated settings (σ̂ as the bundle restores it, less ``blur_backoff``; σ̂_y; no gate) and with
the true (σ, σ_y), and of the default output (the input itself where σ̂ is below ``no_blur_sigma`` or the blur's
misfit above ``max_blur_misfit``), and the DDRM
gap (estimated − true) per image, binned by |σ̂ − σ|: the
precision the estimate needs. Writes ``benchmarks/results/estimation_val.json``.
Also the RMS σ error of each of the estimator's two opinions (spectral, learned) and of an oracle that picks the
closer of the two per image: the bound of any rule that combines them. ``--split train`` runs the estimator part on
training images (is the learned regressor's error a fit to its training images, or the same there?).
Footprints: the same val images blurred with a cut border (the scene continues past the edge, as at a detector),
then cut to a portrait (64 × 52) or landscape (52 × 64) footprint (or not: ``square``, the control) and
mirror-padded back to 64 × 64 as the load
chain pads a non-square source; the estimator reads them with their windows (``footprints`` in the JSON: σ̂ bias
and mean |σ error| per geometry, σ ∈ {1, 2, 3}, σ_y 0.002). Tuned on val only; the test split is never read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from paths import DEFAULT_DATA
from xray_restore.cli import set_ids
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.measurement import degrade
from xray_restore.metrics import psnr
from xray_restore.operators import GaussianBlur
from xray_restore.plan import RestorationPlan
from xray_restore.provenance import run_info, write_json
from xray_restore.restore import Restorer

SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
NOISES = (0.002, 0.01)
ERROR_BINS = ((0.0, 0.02), (0.02, 0.05), (0.05, 0.1), (0.1, float("inf")))
FOOTPRINT_SIGMAS, FOOTPRINT_SIDE = (1.0, 2.0, 3.0), 52


def footprint_rows(x: torch.Tensor, inferer, seed: int) -> list[dict]:
    """σ̂ of val images blurred as a cut scene, cut to a portrait / landscape footprint and mirror-padded."""
    from xray_restore.blur_regressor import cut_blur
    from xray_restore.measurement import quantise

    from xray_restore.transforms import PadToSquare

    lo = (64 - FOOTPRINT_SIDE) // 2
    window = (lo, lo + FOOTPRINT_SIDE)
    pad = PadToSquare(mode="symmetric")  # as the load chains pad a non-square source (transforms/*.json)
    out = []
    for sigma in FOOTPRINT_SIGMAS:
        g = torch.Generator().manual_seed(seed)
        y = torch.stack([cut_blur(im.double(), sigma, "replicate") for im in x])
        y = quantise(y + 0.002 * torch.randn(y.shape, generator=g, dtype=torch.float64), 8).float()
        for geometry in ("square", "portrait", "landscape"):
            if geometry == "square":  # the control: the same cut scene, not cut to a footprint
                cut, windows = y, [None] * len(y)
            elif geometry == "portrait":  # columns cut, padded with their mirror by the chain's own padder
                cut = torch.stack([torch.as_tensor(pad(im)) for im in y[..., lo : lo + FOOTPRINT_SIDE]])
                windows = [((0, 64), window)] * len(y)
            else:
                cut = torch.stack([torch.as_tensor(pad(im)) for im in y[..., lo : lo + FOOTPRINT_SIDE, :]])
                windows = [(window, (0, 64))] * len(y)
            est = np.array([p.blur_sigma for p in inferer.plan(cut, 8, 1.0, windows)])
            out.append({"geometry": geometry, "sigma": sigma, "sigma_y": 0.002, "n": len(y),
                        "sigma_bias": float((est - sigma).mean()),
                        "abs_sigma_error": float(np.abs(est - sigma).mean())})
            print(f"footprint {geometry} sigma {sigma:.1f}: bias {out[-1]['sigma_bias']:+.3f} "
                  f"|err| {out[-1]['abs_sigma_error']:.3f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--bundle", default=DDRM_BUNDLE)
    parser.add_argument("--limit", type=int, default=None, help="val images for the estimator (default: all)")
    parser.add_argument("--ddrm-limit", type=int, default=48, help="val images for the DDRM comparison (0: none)")
    parser.add_argument("--samples", type=int, default=None, help="DDRM samples averaged per image (default: the "
                        "bundle's num_samples; the README's tables up to bundle 0.10.0 were measured with 1)")
    parser.add_argument("--regressor", default=None,
                        help="degradation regressor weights to try in place of the bundle's (a candidate)")
    parser.add_argument("--split", choices=("val", "train"), default="val",
                        help="images to estimate on (train: a diagnostic of the regressor's fit; no DDRM)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sigmas", type=float, nargs="+", default=SIGMAS,
                        help="blurs (px at 64x64); the no-blur calibration needs 0 and 1; footprints: defaults only")
    parser.add_argument("--set", nargs="*", default=[], metavar="ID=JSON",
                        help="bundle ids to override for an ablation, e.g. sigma_resolution=0.05")
    parser.add_argument("--noises", type=float, nargs="+", default=NOISES, help="noise std in [0, 1] units")
    parser.add_argument("--out", default=None, help="JSON (default: benchmarks/results/estimation_<split>.json)")
    parser.add_argument("--true-from", default=None, metavar="JSON",
                        help="take DDRM with the true settings from this earlier run (same images, seed and samples) "
                             "instead of restoring again: an ablation of the estimated path in half the time")
    args = parser.parse_args()
    args.out = args.out or f"benchmarks/results/estimation_{args.split}.json"
    if args.split == "train":
        args.ddrm_limit = 0
    torch.set_num_threads(args.threads)
    started = time.time()
    overrides = set_ids(args.set)
    restorer = Restorer.from_bundle(args.bundle, **overrides)
    inferer = restorer.inferer
    sampler, policy = inferer.sampler, inferer.policy
    if args.regressor:
        from xray_restore.blur_regressor import load_regressor

        policy.estimator.regressor = load_regressor(args.regressor)
    x = to_unit_range(load_cxr14_cache(args.data, args.split)["images"])[: args.limit]
    true_from = {}
    if args.true_from:
        earlier = json.loads(Path(args.true_from).read_text())
        if earlier["ddrm_num_samples"] != (args.samples or inferer.num_samples) or \
                f"--seed {args.seed} " not in earlier["command"] + " ":
            parser.error(f"{args.true_from} restored with other samples or another seed")
        true_from = {(r["sigma"], r["sigma_y"]): r for r in earlier["ddrm"]}
    rows, ddrm_rows = [], []
    for sigma_y in args.noises:
        for sigma in args.sigmas:
            g = torch.Generator().manual_seed(args.seed)
            # the physics the bundle's operator assumes (reflect: no dark border, as in real radiographs)
            op = GaussianBlur(64, sigma, padding=sampler.operator.padding)
            y = degrade(x, "realistic", g, sigma_y=sigma_y, operator=op)
            start = time.time()
            plans = inferer.plan(y, 8)
            per_image = (time.time() - start) / len(y)
            est_sigma = np.array([p.blur_sigma for p in plans])
            est_noise = np.array([p.estimate.sigma_y for p in plans])
            ratio = est_noise / sigma_y
            opinions = {"spectral": np.array([p.estimate.spectral_blur_sigma for p in plans], dtype=float),
                        "learned": np.array([np.nan if p.estimate.learned_blur_sigma is None
                                             else p.estimate.learned_blur_sigma for p in plans], dtype=float)}
            closer = np.abs(opinions["learned"] - sigma) < np.abs(opinions["spectral"] - sigma)
            opinions["best_of_two"] = np.where(closer, opinions["learned"], opinions["spectral"])
            rows.append({"sigma": sigma, "sigma_y": sigma_y, "n": len(y), "sigma_hat_mean": float(est_sigma.mean()),
                         "abs_sigma_error": float(np.abs(est_sigma - sigma).mean()),
                         # what DDRM's loss follows (benchmarks/blur_sensitivity.py): bias and RMS of σ̂ − σ
                         "sigma_bias": float((est_sigma - sigma).mean()),
                         "rms_sigma_error": float(np.sqrt(((est_sigma - sigma) ** 2).mean())),
                         **{f"rms_sigma_error_{k}": float(np.sqrt(np.mean((v - sigma) ** 2)))
                            for k, v in opinions.items()},
                         "sigma_hat_p01": float(np.percentile(est_sigma, 1)),
                         "sigma_hat_p05": float(np.percentile(est_sigma, 5)),
                         "sigma_hat_p99": float(np.percentile(est_sigma, 99)),
                         "sigma_y_ratio_median": float(np.median(ratio)),
                         "sigma_y_ratio_within_1.5": float(np.mean((ratio <= 1.5) & (ratio >= 1 / 1.5))),
                         "no_blur_fraction": float(np.mean([p.status == "no_blur" for p in plans])),
                         "blur_mismatch_fraction": float(np.mean([p.status == "blur_mismatch" for p in plans])),
                         "estimator_ms_per_image": round(1000 * per_image, 2),
                         "sigma_hats": est_sigma.round(3).tolist()})
            if args.ddrm_limit:
                n = min(args.ddrm_limit, len(y))
                xs, ys, est = x[:n], y[:n], plans[:n]
                true = [RestorationPlan(status="restore", blur_sigma=sigma, sigma_y=sigma_y,  # exact: as given
                                        operator=policy.operator_for(sigma, device=sampler.device),
                                        operator_sigma=sigma,
                                        border_error=policy.border_error if policy.unknown_borders else 0.0)] * n
                # DDRM with the estimated σ̂ and σ̂_y themselves (no gate: what the issue compares with the truth),
                # an input with no blur too (restored with its σ̂, not as denoise only); the product's default output
                # below applies the gate on top (the input itself)
                ungated = []
                for p in est:  # the blur the product restores with (both axes where it read them)
                    restoring = policy.restoring_sigma(p.estimate.blur_sigma_axes or p.blur_sigma)
                    ungated.append(dataclasses.replace(
                        p, status="restore", reason=None, operator_sigma=restoring,
                        operator=policy.operator_for(restoring, p.window, device=sampler.device)))
                out = {}
                earlier = true_from.get((sigma, sigma_y))
                if args.true_from and (earlier is None or earlier["n"] != n):
                    parser.error(f"{args.true_from} has no DDRM row of {n} images at sigma {sigma}, sigma_y {sigma_y}")
                for name, st in (("estimated", ungated), ("true", true))[: 1 if earlier else 2]:
                    gens = [torch.Generator().manual_seed(args.seed + i) for i in range(n)]
                    mean, _ = sampler.restore(ys, restorer.network, st, num_samples=args.samples, generator=gens)
                    out[name] = mean
                default = torch.stack([out["estimated"][i] if p.restores else ys[i] for i, p in enumerate(est)])
                psnr_est = psnr(out["estimated"], xs).numpy()
                psnr_true = (np.array(earlier["psnr_ddrm_true_per_image"]) if earlier
                             else psnr(out["true"], xs).numpy())
                gap, error = psnr_est - psnr_true, np.abs(est_sigma[:n] - sigma)
                ddrm_rows.append({"sigma": sigma, "sigma_y": sigma_y, "n": n,
                                  "psnr_input": float(psnr(ys, xs).mean()),
                                  "psnr_ddrm_estimated": float(psnr_est.mean()),
                                  "psnr_ddrm_true": float(psnr_true.mean()),
                                  "psnr_default_output": float(psnr(default, xs).mean()),
                                  "gap_median": float(np.median(gap)),
                                  # the mean gap by how far σ̂ was off (px): what precision the 0.3 dB bar needs
                                  "gap_by_sigma_error": [{"abs_error_from": lo, "abs_error_to": hi, "n": int(m.sum()),
                                                          "mean_gap": float(gap[m].mean()) if m.any() else None}
                                                         for lo, hi in ERROR_BINS
                                                         for m in [(error >= lo) & (error < hi)]],
                                  "psnr_ddrm_estimated_per_image": psnr_est.round(3).tolist(),
                                  "psnr_ddrm_true_per_image": psnr_true.round(3).tolist()})
            print(f"sigma {sigma:.1f} sigma_y {sigma_y:.3f}: sigma_hat {rows[-1]['sigma_hat_mean']:.3f} "
                  f"|err| {rows[-1]['abs_sigma_error']:.3f} rms {rows[-1]['rms_sigma_error']:.3f}, "
                  f"sigma_y ratio {rows[-1]['sigma_y_ratio_median']:.2f}"
                  + (f", DDRM est {ddrm_rows[-1]['psnr_ddrm_estimated']:.2f} / "
                     f"true {ddrm_rows[-1]['psnr_ddrm_true']:.2f}"
                     f" dB" if ddrm_rows else ""), flush=True)
    default_grid = tuple(args.sigmas) == SIGMAS and tuple(args.noises) == NOISES
    footprints = footprint_rows(x, inferer, args.seed) if args.split == "val" and default_grid else []
    calibration = {}
    if {0.0, 1.0} <= set(args.sigmas):
        sharp = np.concatenate([r["sigma_hats"] for r in rows if r["sigma"] == 0.0])
        one_px = np.concatenate([r["sigma_hats"] for r in rows if r["sigma"] == 1.0])
        sharp_p99, one_px_p01 = float(np.percentile(sharp, 99)), float(np.percentile(one_px, 1))
        calibration = {"sharp_p99": sharp_p99, "sharp_max": float(sharp.max()), "one_px_p01": one_px_p01,
                       "suggested_no_blur_sigma": round((sharp_p99 + one_px_p01) / 2, 2),
                       "bundle_no_blur_sigma": policy.no_blur_sigma}
    result = {**run_info(), "wall_seconds": round(time.time() - started, 1), "estimator": policy.estimator.config,
              "bundle": args.bundle, "model_version": restorer.provenance["model_version"],
              "restoring": {k: policy.config[k] for k in ("blur_backoff", "blur_backoff_until", "sigma_resolution",
                                                           "operator_uncertainty", "border_error")},
              "overrides": overrides, "ddrm_num_samples": args.samples or inferer.num_samples,
              "rows": rows, "ddrm": ddrm_rows, "calibration": calibration, "footprints": footprints,
              "mean_abs_sigma_error": float(np.mean([r["abs_sigma_error"] for r in rows])),
              "command": "python benchmarks/estimation_val.py " + " ".join(
                  f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                  for k, v in vars(args).items())}
    print("\n| σ | σ_y | σ̂ mean | mean abs σ err | RMS: estimate / spectral / learned / best of two "
          "| σ_y ratio (median) | within ×1.5 | no-blur | ms/img |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        rms = " / ".join(f"{r[k]:.3f}" for k in ("rms_sigma_error", "rms_sigma_error_spectral",
                                                 "rms_sigma_error_learned", "rms_sigma_error_best_of_two"))
        print(f"| {r['sigma']} | {r['sigma_y']} | {r['sigma_hat_mean']:.3f} | {r['abs_sigma_error']:.3f} | {rms} | "
              f"{r['sigma_y_ratio_median']:.2f} | {r['sigma_y_ratio_within_1.5']:.2f} | {r['no_blur_fraction']:.2f} | "
              f"{r['estimator_ms_per_image']} |")
    if ddrm_rows:
        print("\n| σ | σ_y | input | DDRM (estimated) | DDRM (true) | Δ | default output |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in ddrm_rows:
            print(f"| {r['sigma']} | {r['sigma_y']} | {r['psnr_input']:.2f} | {r['psnr_ddrm_estimated']:.2f} | "
                  f"{r['psnr_ddrm_true']:.2f} | {r['psnr_ddrm_estimated'] - r['psnr_ddrm_true']:+.2f} | "
                  f"{r['psnr_default_output']:.2f} |")
        heads = " | ".join(f"off {lo:g}–{hi:g}" for lo, hi in ERROR_BINS)
        print(f"\nDDRM estimated − true (dB), by how far σ̂ was off (px): n, mean\n\n| σ | σ_y | median | {heads} |")
        print("| ---: " * (3 + len(ERROR_BINS)) + "|")
        for r in ddrm_rows:
            cells = " | ".join(f"{b['n']}: {b['mean_gap']:+.2f}" if b["n"] else "0" for b in r["gap_by_sigma_error"])
            print(f"| {r['sigma']} | {r['sigma_y']} | {r['gap_median']:+.2f} | {cells} |")
    if footprints:
        print("\n| footprint | σ | σ̂ bias | mean abs σ err |\n| --- | ---: | ---: | ---: |")
        for r in footprints:
            print(f"| {r['geometry']} | {r['sigma']} | {r['sigma_bias']:+.3f} | {r['abs_sigma_error']:.3f} |")
    print(f"\nmean |σ error| {result['mean_abs_sigma_error']:.3f} px; calibration {calibration}")
    write_json(args.out, result)
    print(f"wrote {args.out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
