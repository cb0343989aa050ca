"""The outermost pixel ring of a cut scene: DDRM alone, the input, and their blend (``border_error``), on val.

    python benchmarks/border_ring.py --threads 2      # 48 val images, 5 blurs × 2 noises × 3 scenes (~6 min)

With unknown borders DDRM restores the outermost pixel ring of an image from the prior's guess of the scene past the
edge, and that guess is poor: at σ 0.7 px the restored ring was up to 3× *worse* than the blurred input there (mean
squared error), while the rest of the image gained 3 dB. The bundle blends that ring with the input by inverse
error variance (:func:`xray_restore.ddrm.blend_outer_ring`, ``border_error`` in ``configs/inference.json``).

Val images (64×64) are blurred as a scene that continues past their edge and is cut by the detector, in three
ways: ``enlarged`` (the image itself bicubic-enlarged to 84×84, blurred, the centre 64×64 kept; its truth is the
enlarged centre, a little smoother than a val image), and ``circular`` / ``replicate`` (the val image is the truth;
past its edge the scene is another scene's content, wrapped around, or flat: ``blur_regressor.cut_blur``, as the
regressor's cut-scene training blurs are made). White noise σ_y, 8-bit quantisation; DDRM (1 sample, the bundle's
settings, the true σ and σ_y) restores each once without the blend, which is then applied for every
``border_error`` on a grid (the blend is a post-process of the restoration). Reports, per condition, the ring's
mean squared error (input, DDRM, blended at the bundle's value) and PSNR of the whole image, and the mean PSNR
gain of each grid value over all 30 conditions. Writes ``benchmarks/results/border_ring.json``. Val only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from xray_restore.blur_regressor import cut_blur
from paths import DEFAULT_DATA
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.ddrm import blend_outer_ring
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.measurement import quantise
from xray_restore.metrics import psnr
from xray_restore.operators import GaussianBlur
from xray_restore.plan import RestorationPlan
from xray_restore.provenance import run_info, write_json
from xray_restore.restore import Restorer

SIGMAS = (0.7, 1.0, 1.5, 2.0, 3.0)
NOISES = (0.002, 0.01)
SCENES = ("enlarged", "circular", "replicate")
GRID = (1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3)
ENLARGED = 84  # side of the enlarged scene: a 10 px margin of real content past the 64 px cut (3σ at σ 3)


def cut_scene(x: torch.Tensor, sigma: float, scene: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(truth, blurred)``, each ``(B, 1, 64, 64)`` float64: ``x`` blurred as a scene cut at its edge."""
    x = x.double()
    if scene == "enlarged":
        big = F.interpolate(x, size=(ENLARGED, ENLARGED), mode="bicubic", align_corners=False).clamp(0, 1)
        lo = (ENLARGED - x.shape[-1]) // 2
        blurred = GaussianBlur(ENLARGED, sigma, padding="symmetric").H(big)
        crop = (..., slice(lo, lo + x.shape[-2]), slice(lo, lo + x.shape[-1]))
        return big[crop], blurred[crop]
    return x, torch.stack([cut_blur(image, sigma, scene) for image in x])


def ring_mse(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean squared error over the outermost pixel ring of ``(B, 1, N, N)`` images."""
    ring = torch.ones(truth.shape[-2:], dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    return float(((estimate - truth) ** 2)[..., ring].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--bundle", default=DDRM_BUNDLE)
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/border_ring.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    restorer = Restorer.from_bundle(args.bundle, border_error=0.0)  # the restoration alone; blended below
    chosen = Restorer.from_bundle(args.bundle).inferer.policy.border_error
    sampler, policy = restorer.inferer.sampler, restorer.inferer.policy
    x = to_unit_range(load_cxr14_cache(args.data, "val")["images"])[: args.limit]
    n, window = len(x), ((0, x.shape[-2]), (0, x.shape[-1]))
    rows, gains = [], {value: [] for value in GRID}
    for scene in SCENES:
        for sigma_y in NOISES:
            for sigma in SIGMAS:
                g = torch.Generator().manual_seed(args.seed)
                truth, blurred = cut_scene(x, sigma, scene)
                y = quantise(blurred + sigma_y * torch.randn(blurred.shape, generator=g, dtype=torch.float64), 8)
                y, truth = y.float(), truth.float()
                # told the true σ and σ_y (exact), the policy's operator (unknown borders) and no blend (0 here)
                plan = RestorationPlan(status="restore", blur_sigma=sigma, sigma_y=sigma_y,
                                       operator=policy.operator_for(sigma, device=sampler.device),
                                       operator_sigma=sigma, border_error=policy.border_error)
                gens = [torch.Generator().manual_seed(args.seed + i) for i in range(n)]
                raw, _ = sampler.restore(y, restorer.network, [plan] * n, num_samples=1, generator=gens)
                base = float(psnr(raw, truth).mean())
                for value in GRID:
                    gains[value].append(float(psnr(blend_outer_ring(raw, y, window, value)[0], truth).mean()) - base)
                blended = blend_outer_ring(raw, y, window, chosen)[0]
                rows.append({"scene": scene, "sigma": sigma, "sigma_y": sigma_y, "n": n,
                             "ring_mse_input": ring_mse(y, truth), "ring_mse_ddrm": ring_mse(raw, truth),
                             "ring_mse_blended": ring_mse(blended, truth),
                             "psnr_input": float(psnr(y, truth).mean()), "psnr_ddrm": base,
                             "psnr_blended": float(psnr(blended, truth).mean())})
                r = rows[-1]
                print(f"{scene:>9} σ {sigma:.1f} σ_y {sigma_y:.3f}: ring MSE input {r['ring_mse_input']:.1e} "
                      f"DDRM {r['ring_mse_ddrm']:.1e} blended {r['ring_mse_blended']:.1e}; PSNR {r['psnr_input']:.2f}"
                      f" → {r['psnr_ddrm']:.2f} → {r['psnr_blended']:.2f} dB", flush=True)
    grid = [{"border_error": value, "mean_psnr_gain": float(np.mean(v)), "min_psnr_gain": float(np.min(v))}
            for value, v in gains.items()]
    print("\n| border_error | mean PSNR gain (dB) | worst condition (dB) |\n| ---: | ---: | ---: |")
    for g_ in grid:
        print(f"| {g_['border_error']:.1e} | {g_['mean_psnr_gain']:+.3f} | {g_['min_psnr_gain']:+.3f} |")
    result = {**run_info(), "wall_seconds": round(time.time() - started, 1), "bundle": args.bundle,
              "model_version": restorer.provenance["model_version"], "bundle_border_error": chosen,
              "rows": rows, "grid": grid,
              "ring_worse_than_input_ddrm": sum(r["ring_mse_ddrm"] > r["ring_mse_input"] for r in rows),
              "ring_worse_than_input_blended": sum(r["ring_mse_blended"] > r["ring_mse_input"] for r in rows),
              "command": f"python benchmarks/border_ring.py --limit {args.limit} --threads {args.threads} "
                         f"--seed {args.seed}"}
    write_json(args.out, result)
    print(f"\nrings worse than the input's: DDRM {result['ring_worse_than_input_ddrm']} / {len(rows)}, blended "
          f"{result['ring_worse_than_input_blended']} / {len(rows)}; {args.out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
