"""The conditional baseline on val (never test): sampler settings grid, then the full val table.

    python benchmarks/conditional_val.py --weights bundles/xray_conditional/models/model.pt

First a grid over (steps, η, temperature, strength) of the DDIM sampler on the first ``--tune-limit`` val images
(1 sample and mean of K); then the chosen setting on all val images with the linear baselines, realistic protocol.
Writes ``benchmarks/results/conditional_val.json`` (grid, choice, table, date, commit) and prints the table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch

from paths import DEFAULT_DATA
from xray_restore.evaluation import evaluate_conditional, format_results
from xray_restore.provenance import run_info, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--weights", default="bundles/xray_conditional/models/model.pt")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--etas", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.6, 1.0])
    parser.add_argument("--strengths", type=float, nargs="+", default=[1.0],
                        help="where the residual diffusion starts, as a fraction of the schedule (1: pure noise)")
    parser.add_argument("--samples", type=int, default=8, help="K of the mean-of-K row in the val table")
    parser.add_argument("--tune-samples", type=int, default=4, help="K used while tuning")
    parser.add_argument("--tune-limit", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/conditional_val.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    grid = []
    for steps, eta, tau, strength in itertools.product(args.steps, args.etas, args.temperatures, args.strengths):
        res = evaluate_conditional(args.data, args.weights, split="val", samples=(1, args.tune_samples),
                                   limit=args.tune_limit, num_steps=steps, eta=eta, temperature=tau, strength=strength,
                                   baselines=False)
        m = res["protocols"]["realistic"]["methods"]
        row = {"steps": steps, "eta": eta, "temperature": tau, "strength": strength,
               "one_sample": m["conditional_1sample"]["psnr"],
               f"mean{args.tune_samples}": m[f"conditional_mean{args.tune_samples}"]["psnr"],
               "predictor": m["predictor"]["psnr"]}
        grid.append(row)
        print(json.dumps(row))
    # the setting with the best sum of single-sample and mean-of-K PSNR; ties go to fewer steps
    best = max(grid, key=lambda r: (round(r["one_sample"] + r[f"mean{args.tune_samples}"], 2), -r["steps"]))
    table = evaluate_conditional(args.data, args.weights, split="val", samples=(1, args.samples),
                                 num_steps=best["steps"], eta=best["eta"], temperature=best["temperature"],
                                 strength=best["strength"])
    out = {**run_info(), "weights": args.weights,
           "tune_limit": args.tune_limit, "grid": grid,
           "chosen": {k: best[k] for k in ("steps", "eta", "temperature", "strength")},
           "val": table, "wall_seconds": round(time.time() - start, 1)}
    print(format_results(table))
    write_json(args.out, out)
    print(f"chosen: {out['chosen']}  -> {args.out}")


if __name__ == "__main__":
    main()
