"""Choose DDRM's timestep spacing, η and η_b on val (never test): grid over protocols, first N val images.

    python benchmarks/ddrm_tune_val.py --limit 48

Writes ``benchmarks/results/ddrm_tune_val.json`` and prints PSNR per (protocol, η, η_b).
"""

from __future__ import annotations

import argparse
import itertools

import torch

from paths import DEFAULT_DATA
from xray_restore.evaluation import evaluate_prior
from xray_restore.provenance import run_info, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--weights", default="bundles/xray_ddrm/models/model.pt")
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--etas", type=float, nargs="+", default=[0.5, 0.7, 0.85, 1.0])
    parser.add_argument("--eta-bs", type=float, nargs="+", default=[0.8, 1.0])
    parser.add_argument("--spacings", nargs="+", default=["quadratic"], choices=["quadratic", "uniform"])
    parser.add_argument("--samples", type=int, default=1, help="K: tune the mean of K samples (1: one sample)")
    parser.add_argument("--protocols", nargs="+", default=["case_study", "realistic"],
                        choices=["case_study", "realistic"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/ddrm_tune_val.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for spacing, eta, eta_b in itertools.product(args.spacings, args.etas, args.eta_bs):
        res = evaluate_prior(args.data, args.weights, split="val", protocols=tuple(args.protocols),
                             samples=(args.samples,), limit=args.limit, spacing=spacing, eta=eta, eta_b=eta_b,
                             baselines=False)
        for protocol, block in res["protocols"].items():
            ddrm = next(v for k, v in block["methods"].items() if k.startswith("ddrm"))
            rows.append({"protocol": protocol, "spacing": spacing, "eta": eta, "eta_b": eta_b, "psnr": ddrm["psnr"],
                         "ssim": ddrm["ssim"]})
            print(f"{protocol:<11} {spacing:<9} eta={eta:<5} eta_b={eta_b:<4} "
                  f"PSNR {ddrm['psnr']:.2f}  SSIM {ddrm['ssim']:.4f}")
    write_json(args.out, {**run_info(), "split": "val", "limit": args.limit, "samples": args.samples,
                          "protocols": args.protocols, "weights": args.weights, "rows": rows})


if __name__ == "__main__":
    main()
