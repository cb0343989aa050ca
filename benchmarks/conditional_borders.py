"""The conditional model on the two border models of a blur: the protocols' dark (zero-padded) borders and the
mirrored borders a real radiograph's blur leaves at the model scale.

    python benchmarks/conditional_borders.py                       # the bundle's weights, 64 val images (~2 min)
    python benchmarks/conditional_borders.py --weights runs/conditional_mix/model.pt

Val images (64×64) blurred by the bundle's operator (σ = 2) with zero or symmetric padding, σ_y = 0.01, 8-bit; PSNR
of the input, of the deterministic predictor g(y) and of one sample of the bundle's sampler (its inference.json
settings), over the whole image and inside an 8-pixel margin (where borders do not reach). Writes
``benchmarks/results/conditional_borders.json``. Val only.
"""

from __future__ import annotations

import argparse
import time

import torch
from monai.bundle import ConfigParser

from paths import DEFAULT_DATA
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.locate import CONDITIONAL_BUNDLE
from xray_restore.measurement import PROTOCOLS, degrade
from xray_restore.metrics import psnr
from xray_restore.operators import GaussianBlur
from xray_restore.provenance import run_info, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--bundle", default=CONDITIONAL_BUNDLE)
    parser.add_argument("--weights", default=None, help="default: the bundle's models/model.pt")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/conditional_borders.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    config = ConfigParser()
    config.read_config(f"{args.bundle}/configs/inference.json")
    config["bundle_root"] = args.bundle
    config["num_samples"] = 1
    if args.weights:
        config["network"] = f"$xray_restore.networks.load_weights(@network_def, '{args.weights}').to(@device)"
    network, inferer, operator = (config.get_parsed_content(k) for k in ("network", "inferer", "operator"))
    x = to_unit_range(load_cxr14_cache(args.data, "val")["images"])[: args.limit]
    sigma_y = PROTOCOLS["realistic"]["sigma_y"]
    rows = []
    for padding in ("zeros", "symmetric"):
        op = GaussianBlur(operator.size, operator.sigma, operator.threshold, padding=padding)
        y = degrade(x, "realistic", torch.Generator().manual_seed(0), sigma_y=sigma_y, operator=op)
        with torch.inference_mode():
            predicted = ((network.predict(2 * y - 1) + 1) / 2).clamp(0, 1)
            sample = inferer(inputs=y, network=network).float().clamp(0, 1)
        row = {"padding": padding, "n": len(x)}
        for name, est in (("input", y), ("predictor", predicted), ("one_sample", sample)):
            row[name] = float(psnr(est, x).mean())
            row[f"{name}_interior"] = float(psnr(est[..., 8:-8, 8:-8], x[..., 8:-8, 8:-8]).mean())
        rows.append(row)
        print(f"{padding:9s}: input {row['input']:.2f}, predictor {row['predictor']:.2f} "
              f"(interior {row['predictor_interior']:.2f}), one sample {row['one_sample']:.2f} dB", flush=True)
    result = {**run_info(), "wall_seconds": round(time.time() - started, 1), "weights": args.weights or
              f"{args.bundle}/models/model.pt", "rows": rows,
              "command": "python benchmarks/conditional_borders.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None)}
    write_json(args.out, result)
    print(f"wrote {args.out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
