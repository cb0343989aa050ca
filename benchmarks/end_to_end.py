"""End to end at the source resolution: full-size NIH radiographs, degraded, written as real DICOM, restored.

    python benchmarks/end_to_end.py                 # 76 originals × 8 degradations (about 25 min on 2 cores)
    python benchmarks/end_to_end.py --limit 8       # smoke run

The 76 full-size ChestX-ray14 originals of ``../shared/data/cxr14_full/`` (evaluation only, never trained on) are
blurred at 1024×1024 with a Gaussian of σ = 16·σ_64 px for σ_64 ∈ {0, 1, 2, 3}, given white noise σ_y ∈ {0.002, 0.01}
(at 1024), quantised and written with pydicom as CR objects whose encoding cycles over the images: MONOCHROME2 /
MONOCHROME1, 8 / 12 bits stored, uncompressed / JPEG 2000 lossless. The product then runs on each folder with
automatic parameters through the batch job (``run_batch``: what ``xray-restore batch`` runs), and the same inputs
go through the bundle's ``Restorer`` with ``force`` (detail-preserving and plain upsampling), with the true
parameters, through LMMSE with the estimated parameters and through the conditional model (trained at σ = 2 only).

Reports mean |σ error| (σ at the model scale), the σ_y ratio (estimate / σ_y/16, the noise left after the 16×16 area
average), and PSNR/SSIM at 64×64 (against the area-downsampled original) and at 1024×1024 (against the original).
Then every pixel-bearing file of ``../shared/data/dicom``: its estimate, and with ``force`` the PSNR of the output
against its input on the source grid. Writes ``benchmarks/results/end_to_end.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import torch
from monai.bundle import ConfigParser
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import JPEG2000Lossless, generate_uid

from xray_restore.baselines import GaussianLMMSE, SpectralGaussian
from xray_restore.batch import Manifest, run_batch
from paths import DEFAULT_DATA, DICOM_DATA, EXTRA_DATA, FULL_DATA
from xray_restore.evaluation import LMMSE_FLIPS, linear_prior_pool
from xray_restore.locate import CONDITIONAL_BUNDLE, DDRM_BUNDLE
from xray_restore.metrics import psnr, ssim
from xray_restore.operators import blur_operator
from xray_restore.plan import RestorationPlan
from xray_restore.provenance import run_info, write_json
from xray_restore.restore import Restorer

SIGMAS_64 = (0.0, 1.0, 2.0, 3.0)
NOISES = (0.002, 0.01)
ENCODINGS = [(p, b, c) for p in ("MONOCHROME2", "MONOCHROME1") for b in (8, 12) for c in (False, True)]
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def blur_1024(x: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma, mode="reflect", truncate=3.0) if sigma > 0 else x


def write_dicom(path: Path, unit: np.ndarray, photometric: str, bits: int, j2k: bool, uid_seed: str) -> None:
    """``unit`` (rows, cols) in [0, 1], bright = dense → a CR object on ``bits`` bits (MONOCHROME1 inverted)."""
    levels = 2**bits - 1
    values = np.round(np.clip(unit, 0, 1) * levels).astype(np.uint16 if bits > 8 else np.uint8)
    if photometric == "MONOCHROME1":
        values = (levels - values).astype(values.dtype)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CR_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[uid_seed, "sop"])
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SOPClassUID = CR_STORAGE
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[uid_seed, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[uid_seed, "series"])
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Anonymous", "E2E", "", "O"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20260101", "000000", ""
    ds.ReferringPhysicianName, ds.StudyID = "", ""
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CR", 1, 1
    ds.BodyPartExamined, ds.ViewPosition, ds.PatientOrientation, ds.Laterality = "CHEST", "PA", ["L", "F"], ""
    ds.ImagerPixelSpacing = [0.168, 0.168]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.Rows, ds.Columns = values.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (16 if bits > 8 else 8), bits, bits - 1, 0
    ds.PixelData = values.tobytes()
    if j2k:
        ds.compress(JPEG2000Lossless, values)
    ds.save_as(path, enforce_file_format=True)


def up(image_64: torch.Tensor, size: int) -> torch.Tensor:
    """The chain's inverse for a square source: bilinear, align_corners=False."""
    return torch.nn.functional.interpolate(image_64, size=(size, size), mode="bilinear", align_corners=False)


def down(image: torch.Tensor, size: int = 64) -> torch.Tensor:
    return torch.nn.functional.adaptive_avg_pool2d(image, size)


def scores(estimate: torch.Tensor, x: torch.Tensor) -> dict:
    """PSNR/SSIM at the source grid and at 64×64 (area-downsampled both), per image."""
    e, r = estimate.clamp(0, 1).float(), x.float()
    from torchmetrics.functional.image import structural_similarity_index_measure  # after xray_restore's shim

    # torchmetrics' SSIM (same window as metrics.ssim) in float32, one image at a time: bounded memory and time
    ssim_full = [float(structural_similarity_index_measure(e[i : i + 1], r[i : i + 1], data_range=1.0))
                 for i in range(len(e))]
    return {"psnr_1024": psnr(e, r).tolist(), "ssim_1024": ssim_full,
            "psnr_64": psnr(down(e), down(r)).tolist(), "ssim_64": ssim(down(e), down(r)).tolist()}


def val_shrinkage(protocol: str, path: str = "benchmarks/results/lmmse_val.json") -> float:
    """The LMMSE shrinkage λ chosen on val (``benchmarks/lmmse_val.py``) for the library's pool and flips."""
    rows = json.loads(Path(path).read_text())["rows"]
    (row,) = [r for r in rows if r["protocol"] == protocol and r["pool"] == "train+extra" and r["flips"] == LMMSE_FLIPS]
    return float(row["best_lambda"])


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", default=FULL_DATA)
    parser.add_argument("--dicom", default=DICOM_DATA)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--extra", default=EXTRA_DATA)
    parser.add_argument("--bundle", default=DDRM_BUNDLE)
    parser.add_argument("--conditional", default=CONDITIONAL_BUNDLE)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lmmse-shrinkage", type=float, default=None,
                        help="LMMSE λ (default: the realistic val optimum of benchmarks/results/lmmse_val.json)")
    parser.add_argument("--out", default="benchmarks/results/end_to_end.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    sources = sorted(Path(args.full).glob("*.png"))[: args.limit]
    originals = [np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255.0 for p in sources]
    forced = Restorer.from_bundle(args.bundle, force=True)
    cond = ConfigParser()
    cond.read_config(str(Path(args.conditional) / "configs" / "inference.json"))
    cond["bundle_root"] = args.conditional
    cond_net, cond_inferer = cond.get_parsed_content("network"), cond.get_parsed_content("inferer")
    pool = linear_prior_pool(args.data, [args.extra])
    shrinkage = args.lmmse_shrinkage if args.lmmse_shrinkage is not None else val_shrinkage("realistic")
    lmmse_cache: dict = {}

    def lmmse(y: torch.Tensor, sigma: float, sigma_y: float) -> torch.Tensor:
        key = (round(sigma * 2) / 2, float(np.exp(np.round(np.log(max(sigma_y, 1e-5)) * 2) / 2)))
        if key not in lmmse_cache:
            op = blur_operator(64, key[0], padding=forced.inferer.sampler.operator.padding)
            moments = lmmse_cache.setdefault(("moments", key[0]), SpectralGaussian(op, pool, flips=LMMSE_FLIPS))
            lmmse_cache[key] = GaussianLMMSE(op, moments, shrinkage, key[1])
        return lmmse_cache[key](y)

    conditions, per_image = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for sigma_64 in SIGMAS_64:
            for sigma_y in NOISES:
                tag = f"s{sigma_64:g}_n{sigma_y:g}"
                folder = Path(tmp) / tag / "in"
                folder.mkdir(parents=True)
                g = np.random.default_rng(int(sigma_64 * 100 + sigma_y * 1e4))
                files = []
                for i, (src, x) in enumerate(zip(sources, originals)):
                    photometric, bits, j2k = ENCODINGS[i % len(ENCODINGS)]
                    y = blur_1024(x, 16 * sigma_64) + sigma_y * g.standard_normal(x.shape).astype(np.float32)
                    path = folder / f"{src.stem}.dcm"
                    write_dicom(path, y, photometric, bits, j2k, f"{tag}:{src.name}")
                    files.append(path)
                t0 = time.time()
                summary = run_batch([folder], Path(tmp) / tag / "out", progress=False)  # the product, defaults
                batch_seconds = time.time() - t0
                book = Manifest(Path(tmp) / tag / "out" / "manifest.sqlite")
                rows = {Path(r["source"]).name: r for r in book.rows()}
                book.close()
                results = forced.restore(files)
                x = torch.stack([torch.from_numpy(o)[None] for o in originals])
                src_grid = torch.stack([torch.from_numpy(r.image)[None] for r in results])
                y64 = torch.stack([torch.from_numpy(r.model_input)[None] for r in results])
                m64 = torch.stack([torch.from_numpy(r.model_output)[None] for r in results])
                detail = torch.stack([torch.from_numpy(r.restored)[None] for r in results])
                upsampled = up(m64, x.shape[-1]).clamp(0, 1)
                default = []
                for r, f in zip(results, files):
                    row = rows[f.name]
                    if row["state"] == "done":
                        (dcm,) = [o for o in row["outputs"] if o.endswith(".dcm")][:1]
                        ds = pydicom.dcmread(dcm)
                        default.append(torch.from_numpy(ds.pixel_array.astype(np.float32) / (2**ds.BitsStored - 1)))
                    else:
                        default.append(torch.from_numpy(r.image))
                default = torch.stack(default)[:, None]
                bits = np.array([ENCODINGS[i % len(ENCODINGS)][1] for i in range(len(results))])
                quant = 1 / (2.0**bits * math.sqrt(12))
                noise_64 = np.sqrt(sigma_y**2 + quant**2) / 16  # the noise left after the 16×16 area average
                nominal = np.maximum(noise_64, quant)  # the estimator never reports below the source's floor
                sampler, policy = forced.inferer.sampler, forced.inferer.policy
                true_plans = [RestorationPlan(status="restore", blur_sigma=sigma_64, sigma_y=float(n),  # exact
                                              operator=policy.operator_for(sigma_64, device=sampler.device),
                                              operator_sigma=sigma_64,
                                              border_error=policy.border_error if policy.unknown_borders else 0.0)
                              for n in noise_64]
                gens = [torch.Generator().manual_seed(i) for i in range(len(results))]
                m_true, _ = sampler.restore(y64, forced.network, true_plans, generator=gens)  # the bundle's k
                true_detail = (src_grid + up(m_true - y64, x.shape[-1])).clamp(0, 1)
                lm = torch.cat([lmmse(y64[i : i + 1].double(), r.blur_sigma, r.sigma_y).float()
                                for i, r in enumerate(results)])
                lmmse_detail = (src_grid + up(lm - y64, x.shape[-1])).clamp(0, 1)
                with torch.inference_mode():
                    c64 = cond_inferer(inputs=y64, network=cond_net).float()
                cond_detail = (src_grid + up(c64 - y64, x.shape[-1])).clamp(0, 1)
                methods = {"input": src_grid, "default_output": default, "ddrm_estimated_detail": detail,
                           "ddrm_estimated_upsample": upsampled, "ddrm_true_detail": true_detail,
                           "lmmse_estimated_detail": lmmse_detail, "conditional_detail": cond_detail}
                table = {name: scores(est, x) for name, est in methods.items()}
                est_sigma = np.array([r.blur_sigma for r in results])
                est_noise = np.array([r.estimate["sigma_y"] for r in results])
                condition = {
                    "sigma_64": sigma_64, "sigma_y_1024": sigma_y, "n": len(results),
                    "abs_sigma_error": float(np.abs(est_sigma - sigma_64).mean()),
                    "sigma_hat_mean": float(est_sigma.mean()),
                    "sigma_y_ratio_median": float(np.median(est_noise / nominal)),
                    "batch_counts": summary.counts, "batch_seconds": round(batch_seconds, 1),
                    "means": {name: {k: float(np.mean(v)) for k, v in t.items()} for name, t in table.items()},
                    "forced_worse_than_input_by_0.5dB_at_1024": int(np.sum(
                        np.array(table["ddrm_estimated_detail"]["psnr_1024"]) < np.array(table["input"]["psnr_1024"])
                        - 0.5)),
                }
                conditions.append(condition)
                for i, r in enumerate(results):
                    per_image.append({"condition": tag, "image": sources[i].name, "encoding": ENCODINGS[i % 8],
                                      "blur_sigma": r.blur_sigma, "sigma_y": r.estimate["sigma_y"],
                                      "state": rows[files[i].name]["state"],
                                      **{f"{name}_psnr_1024": t["psnr_1024"][i] for name, t in table.items()}})
                mean = condition["means"]
                print(f"{tag}: |σ err| {condition['abs_sigma_error']:.3f}, σ_y ratio "
                      f"{condition['sigma_y_ratio_median']:.2f}, batch {summary.counts}; PSNR 1024 input "
                      f"{mean['input']['psnr_1024']:.2f} default {mean['default_output']['psnr_1024']:.2f} "
                      f"ddrm {mean['ddrm_estimated_detail']['psnr_1024']:.2f}; 64: input {mean['input']['psnr_64']:.2f}"
                      f" default {mean['default_output']['psnr_64']:.2f}", flush=True)
    real = []
    for path in sorted(Path(args.dicom).glob("*.dcm")):
        try:
            (r,) = forced.restore([path])
        except Exception as e:  # noqa: BLE001 - reported per file
            real.append({"file": path.name, "error": str(e).split(": ", 1)[-1]})
            continue
        mse = float(np.mean((r.restored - r.image) ** 2))
        default_state = "no blur" if r.status == "no_blur" else "blurred"  # the policy's verdict
        real.append({"file": path.name, "grid": list(r.image.shape), "blur_sigma": round(r.blur_sigma, 3),
                     "sigma_y": round(r.estimate["sigma_y"], 6), "default": default_state,
                     # None: the forced output is the input itself, pixel for pixel (no blur found: nothing to undo)
                     "forced_psnr_vs_input": round(10 * math.log10(1 / mse), 2) if mse > 0 else None,
                     "forced_identical_to_input": mse == 0})
    result = {**run_info(), "wall_seconds": round(time.time() - started, 1), "images": len(sources),
              "conditions": conditions, "real_dicom": real, "per_image": per_image, "bundle": args.bundle,
              "lmmse": {"shrinkage": shrinkage, "flips": LMMSE_FLIPS, "pool_images": int(pool.shape[0])},
              "command": "python benchmarks/end_to_end.py" + (f" --limit {args.limit}" if args.limit else "")}
    print("\n| σ_64 | σ_y | |σ err| | σ_y ratio | default: done/skipped | PSNR 64: input | default | DDRM est | "
          "DDRM true | LMMSE est | conditional | PSNR 1024: input | default | DDRM detail | DDRM upsample | "
          "DDRM true | LMMSE | conditional |")
    print("|" + " ---: |" * 17)
    for c in conditions:
        m = c["means"]
        cells = [m[k]["psnr_64"] for k in ("input", "default_output", "ddrm_estimated_detail", "ddrm_true_detail",
                                           "lmmse_estimated_detail", "conditional_detail")]
        cells += [m[k]["psnr_1024"] for k in ("input", "default_output", "ddrm_estimated_detail",
                                              "ddrm_estimated_upsample", "ddrm_true_detail", "lmmse_estimated_detail",
                                              "conditional_detail")]
        print(f"| {c['sigma_64']:g} | {c['sigma_y_1024']:g} | {c['abs_sigma_error']:.3f} | "
              f"{c['sigma_y_ratio_median']:.2f} | {c['batch_counts']['done']}/{c['batch_counts']['skipped']} | "
              + " | ".join(f"{v:.2f}" for v in cells) + " |")
    print("\n| file | grid | blur σ̂ (px) | σ_y | default | forced: PSNR vs input (dB) |")
    print("| --- | --- | ---: | ---: | --- | ---: |")
    for r in real:
        if "error" in r:
            print(f"| {r['file']} | — | — | — | failed: {r['error']} | — |")
        else:
            print(f"| {r['file']} | {r['grid'][0]}x{r['grid'][1]} | {r['blur_sigma']} | {r['sigma_y']} | "
                  f"{r['default']} "
                  f"| {'identical' if r['forced_identical_to_input'] else r['forced_psnr_vs_input']} |")
    write_json(args.out, result)
    print(f"\nwrote {args.out} ({result['wall_seconds']} s)")
    json.dumps(result)


if __name__ == "__main__":
    main()
