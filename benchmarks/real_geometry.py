"""Inputs as users bring them: non-square radiographs, PNG and JPEG, restored with the product's defaults.

    python benchmarks/real_geometry.py --limit 12 --threads 2     # about 4 min on 2 cores

Real CR/DX images are rarely square (e.g. 2500×2048), their edges cut a blurred scene (the detector ends, the scene
does not), and research sets ship JPEGs (CheXpert, MIMIC-CXR-JPG). The full-size NIH originals of
``../shared/data/cxr14_full/`` (evaluation only) are blurred at the source grid by σ = 14·σ_64 px for
σ_64 ∈ {0, 1, 2, 3}, given white noise σ_y = 0.002, and cropped to square 896×896, portrait 896×736 and landscape
736×896 (the long side of 896 reaches the model's 64, so σ_64 is the blur at the model scale; every border is a cut
through the blurred scene, as a detector sees it: unlike a blur with mirrored borders, nothing beyond it is known),
stored 8-bit as PNG or JPEG (quality 95, alternating), and restored by the bundle's ``Restorer`` with
its defaults (estimated blur and noise, detail-preserving output) and ``force`` (so a no-blur input shows what it
would come back as). Reports per geometry and σ_64: mean |σ error|, how many images the default restores (σ̂ at or
above the no-blur gate, and not handed back as a blur that is not Gaussian: ``blur_mismatch``), and PSNR of the
input and the output against the sharp crop at the source grid and at 1/16
(area means: 56×46 for 896×736), next to the square image's output cropped the same way (what the crop
would get if the padding to a square cost nothing) and the output of the same bundle assuming mirrored borders
(``unknown_borders`` false, as xray_ddrm ≤ 0.8.2 did). Writes ``benchmarks/results/real_geometry.json`` and prints the
table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from paths import FULL_DATA
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.provenance import run_info, write_json
from xray_restore.restore import Restorer

SIGMAS_64 = (0.0, 1.0, 2.0, 3.0)
SIGMA_Y = 0.002
GEOMETRIES = {"square 896x896": (896, 896), "portrait 896x736": (896, 736), "landscape 736x896": (736, 896)}
FACTOR = 14  # source pixels per model pixel: the long side of 896 reaches the model's 64
REPORT = 16  # PSNR also at 1/16 (area means; the crops are multiples of 16)


def crop(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The centred ``shape`` crop of ``x``."""
    top, left = (x.shape[0] - shape[0]) // 2, (x.shape[1] - shape[1]) // 2
    return x[top : top + shape[0], left : left + shape[1]]


def area(x: np.ndarray, factor: int = REPORT) -> np.ndarray:
    """Means of ``factor``×``factor`` blocks (``x``'s sides are multiples of ``factor``)."""
    h, w = x.shape
    return x.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def psnr(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(estimate, 0, 1) - reference) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", default=FULL_DATA)
    parser.add_argument("--bundle", default=DDRM_BUNDLE)
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/real_geometry.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    sources = sorted(Path(args.full).glob("*.png"))[: args.limit]
    originals = [np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255.0 for p in sources]
    restorer = Restorer.from_bundle(args.bundle, force=True)
    # the same, assuming the scene mirrors at every border (xray_ddrm <= 0.8.2): what unknown borders change
    mirrored = Restorer.from_bundle(args.bundle, force=True, unknown_borders=False)
    gate = restorer.inferer.policy.no_blur_sigma
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sigma_64 in SIGMAS_64:
            g = np.random.default_rng(int(sigma_64 * 100))
            blurred = [(gaussian_filter(x, FACTOR * sigma_64, mode="reflect", truncate=3.0) if sigma_64 else x)
                       + SIGMA_Y * g.standard_normal(x.shape).astype(np.float32) for x in originals]
            square_outputs = None
            for geometry, shape in GEOMETRIES.items():
                files, references = [], []
                for i, (src, x, y_full) in enumerate(zip(sources, originals, blurred)):
                    sharp, y = crop(x, shape), crop(y_full, shape)  # a crop of the blurred scene, as a detector sees it
                    image = Image.fromarray(np.round(np.clip(y, 0, 1) * 255).astype(np.uint8))
                    path = Path(tmp) / f"{geometry.split()[0]}_s{sigma_64:g}_{src.stem}.{'jpg' if i % 2 else 'png'}"
                    image.save(path, **({"quality": 95} if i % 2 else {}))
                    files.append(path)
                    references.append(sharp)
                results = restorer.restore(files)
                assumed = mirrored.restore(files)
                if square_outputs is None:
                    square_outputs = [r.restored for r in results]
                # the square image restored, then cropped: what the crop would get if the pad changed nothing
                square_cropped = [area(crop(o, shape)) for o in square_outputs]
                sigma_hat = np.array([r.blur_sigma for r in results])
                rows.append({
                    "geometry": geometry, "sigma_64": sigma_64, "sigma_y": SIGMA_Y, "n": len(results),
                    "abs_sigma_error": float(np.abs(sigma_hat - sigma_64).mean()),
                    "sigma_hat_mean": float(sigma_hat.mean()),
                    "restored_by_default": int(sum(r.status == "restored" for r in results)),
                    "blur_mismatch": int(sum(r.status == "blur_mismatch" for r in results)),
                    "psnr_source_input": float(np.mean([psnr(r.image, s) for r, s in zip(results, references)])),
                    "psnr_source_output": float(np.mean([psnr(r.restored, s) for r, s in zip(results, references)])),
                    "psnr_16_input": float(np.mean([psnr(area(r.image), area(s))
                                                    for r, s in zip(results, references)])),
                    "psnr_16_output": float(np.mean([psnr(area(r.restored), area(s))
                                                     for r, s in zip(results, references)])),
                    "psnr_16_square_output_cropped": float(np.mean([psnr(c, area(s))
                                                                    for c, s in zip(square_cropped, references)])),
                    "psnr_16_output_mirrored_borders": float(np.mean([psnr(area(r.restored), area(s))
                                                                      for r, s in zip(assumed, references)])),
                    "sigma_hats": [round(float(v), 3) for v in sigma_hat],
                })
                r = rows[-1]
                print(f"{geometry} σ_64 {sigma_64:g}: |σ err| {r['abs_sigma_error']:.3f}, restored "
                      f"{r['restored_by_default']}/{r['n']}, PSNR 1/16 {r['psnr_16_input']:.2f} -> "
                      f"{r['psnr_16_output']:.2f} (square restored, cropped: {r['psnr_16_square_output_cropped']:.2f})",
                      flush=True)
    result = {**run_info(), "wall_seconds": round(time.time() - started, 1), "images": len(sources),
              "no_blur_sigma": gate, "rows": rows, "bundle": args.bundle,
              "command": f"python benchmarks/real_geometry.py --limit {args.limit} --threads {args.threads}"}
    print("\n| geometry | σ_64 | mean σ̂ | |σ err| | restored by default | PSNR 1/16: input | forced output | "
          "square output, cropped | mirrored borders | PSNR source: input | forced output |")
    print("| --- |" + " ---: |" * 10)
    for r in sorted(rows, key=lambda r: (list(GEOMETRIES).index(r["geometry"]), r["sigma_64"])):
        print(f"| {r['geometry']} | {r['sigma_64']:g} | {r['sigma_hat_mean']:.3f} | {r['abs_sigma_error']:.3f} | "
              f"{r['restored_by_default']}/{r['n']} | {r['psnr_16_input']:.2f} | {r['psnr_16_output']:.2f} | "
              f"{r['psnr_16_square_output_cropped']:.2f} | {r['psnr_16_output_mirrored_borders']:.2f} | "
              f"{r['psnr_source_input']:.2f} | "
              f"{r['psnr_source_output']:.2f} |")
    write_json(args.out, result)
    print(f"\nwrote {args.out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
