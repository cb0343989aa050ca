"""DDRM with the shipped prior vs the linear baselines, on the val split, under both protocols.

    python benchmarks/prior_val.py --data ../shared/data/cxr14_64.npz --weights bundles/xray_ddrm/models/model.pt

Prints a table and writes ``benchmarks/results/prior_val.json`` (with date and commit).
"""

from __future__ import annotations

import argparse
import time

import torch

from paths import DEFAULT_DATA
from xray_restore.evaluation import evaluate_prior, format_results
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.provenance import run_info, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--weights", default="bundles/xray_ddrm/models/model.pt")
    parser.add_argument("--bundle", default=DDRM_BUNDLE, help="settings not given below are this bundle's")
    parser.add_argument("--split", choices=["val", "test"], help="default: the bundle's evaluate.json")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--protocols", nargs="+", help="default: the bundle's evaluate.json")
    parser.add_argument("--samples", type=int, nargs="+", help="default: the bundle's evaluate.json")
    parser.add_argument("--steps", type=int, help="default: the bundle's num_steps")
    parser.add_argument("--spacing", choices=["quadratic", "uniform"], help="default: the bundle's spacing")
    parser.add_argument("--eta", type=float, help="for every protocol (default: the bundle's, per protocol)")
    parser.add_argument("--eta-b", type=float, help="default: the bundle's eta_b")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fp32", action="store_true", help="run the UNet in fp32 instead of bf16 autocast")
    parser.add_argument("--out", default="benchmarks/results/prior_val.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    given = {"num_steps": args.steps, "spacing": args.spacing, "eta": args.eta, "eta_b": args.eta_b,
             "autocast": False if args.fp32 else None}
    results = evaluate_prior(args.data, args.weights, split=args.split, limit=args.limit, seed=args.seed,
                             protocols=tuple(args.protocols) if args.protocols else None,
                             samples=tuple(args.samples) if args.samples else None, bundle=args.bundle,
                             **{k: v for k, v in given.items() if v is not None})
    results.update(**run_info(), wall_seconds=round(time.time() - start, 1),
                   command="python benchmarks/prior_val.py " + " ".join(f"{k}={v}" for k, v in vars(args).items()))
    print(format_results(results))
    write_json(args.out, results)
    print(f"\nwrote {args.out}  ({results['wall_seconds']} s)")


if __name__ == "__main__":
    main()
