"""Figures and the memorisation check for the prior's bundle docs.

    python benchmarks/prior_figures.py --weights bundles/xray_ddrm/models/model.pt

Writes ``bundles/xray_ddrm/docs/samples_grid.png`` (unconditional DDIM samples, with each sample's nearest
training image below it), ``docs/val_deblurring_grid.png`` (rows: blurred / pinv / DDRM / original, realistic
protocol) and ``benchmarks/results/prior_memorisation.json``: nearest-neighbour L2 distances of samples to
the training set, against the same distances for held-out val images (memorised samples would sit far
closer to the training set than real unseen images do).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from paths import DEFAULT_DATA
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.ddrm import DDRMInferer
from xray_restore.measurement import PROTOCOLS, degrade, make_operator
from xray_restore.metrics import psnr
from xray_restore.networks import build_prior_unet, build_scheduler, load_weights
from xray_restore.prior import sample_prior
from xray_restore.provenance import run_info, write_json


def grid(rows: list[torch.Tensor], scale: int = 2, pad: int = 2) -> Image.Image:
    """Rows of ``(B, 1, H, W)`` [0, 1] images → one 8-bit PNG image with white separators."""
    b, _, h, w = rows[0].shape
    canvas = np.ones((len(rows) * (h + pad) - pad, b * (w + pad) - pad), dtype=np.float32)
    for r, row in enumerate(rows):
        for c in range(b):
            canvas[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = row[c, 0].clamp(0, 1)
    image = Image.fromarray((canvas * 255).round().astype(np.uint8))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def nearest(queries: torch.Tensor, bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-query RMS distance (in [0, 1] units) to the nearest bank image, and its index."""
    d = torch.cdist(queries.flatten(1).double(), bank.flatten(1).double()) / queries[0].numel() ** 0.5
    return d.min(dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--weights", default="bundles/xray_ddrm/models/model.pt")
    parser.add_argument("--docs", default="bundles/xray_ddrm/docs")
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--n-val", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet = load_weights(build_prior_unet(), args.weights)
    train = to_unit_range(load_cxr14_cache(args.data, "train")["images"])
    val = to_unit_range(load_cxr14_cache(args.data, "val")["images"])
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)

    start = time.time()
    samples = sample_prior(unet, args.n_samples, seed=0)
    sample_seconds = time.time() - start
    d_samples, idx = nearest(samples, train)
    d_val, _ = nearest(val, train)
    shown = samples[:16]
    grid([shown, train[idx[:16]]]).save(docs / "samples_grid.png")
    memo = {
        "n_samples": args.n_samples, "sampler": "DDIM 100 steps (eta 0)", "seconds": round(sample_seconds, 1),
        "nn_rms_distance_samples_to_train": {"median": d_samples.median().item(), "min": d_samples.min().item()},
        "nn_rms_distance_val_to_train": {"median": d_val.median().item(), "min": d_val.min().item()},
        "fraction_samples_closer_than_closest_val": (d_samples < d_val.min()).double().mean().item(),
        **run_info(), "weights": args.weights,
    }

    x = val[: args.n_val]
    op = make_operator("realistic")
    y = degrade(x, "realistic", torch.Generator().manual_seed(0))
    inferer = DDRMInferer(op, build_scheduler(), sigma_y=PROTOCOLS["realistic"]["sigma_y"], num_samples=8,
                          autocast=True)
    restored = inferer(inputs=y, network=unet, generator=torch.Generator().manual_seed(1))
    pinv = op.pinv(y).clamp(0, 1)
    grid([y, pinv, restored, x]).save(docs / "val_deblurring_grid.png")
    memo["val_grid_psnr"] = {"blurred": psnr(y, x).mean().item(), "pinv": psnr(pinv, x).mean().item(),
                             "ddrm_mean8": psnr(restored, x).mean().item()}
    write_json("benchmarks/results/prior_memorisation.json", memo)
    print(json.dumps(memo, indent=2))


if __name__ == "__main__":
    main()
