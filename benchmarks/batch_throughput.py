"""Batch throughput on this machine: folders of N radiographs through ``run_batch`` (single process), defaults.

    python benchmarks/batch_throughput.py --n 200 --batch-size 8

Two workloads, both run with the bundle's defaults (blur and noise estimated per image, the no-blur gate on):

- ``as_stored``: copies of the real sample DICOMs in ../shared/data/dicom (each with its own SOP Instance UID, as
  distinct PACS instances). They are sharp at the model scale, so each is estimated and *skipped* ("no blur"): the
  cost a PACS pays for the studies it should leave alone (read + LUTs + resample + estimate + manifest).
- ``blurred``: NIH originals (../shared/data/cxr14_full, evaluation only) blurred at 1024×1024 by σ_64 = 2
  (32 px) with noise σ_y 0.002, written as CR DICOMs in the end-to-end benchmark's eight encodings (MONOCHROME1/2,
  8/12-bit, uncompressed / JPEG 2000 lossless), copied to N instances: each is estimated, restored by DDRM (the
  bundle's steps and samples, on the unknown-borders canvas) and written as a derived DICOM with its source-grid
  detail kept (and, with more than one sample, its uncertainty series).

Reported per workload: images/s end to end and the outcome counts; for ``blurred`` also the UNet floor, the time of
the network alone for the bundle's ``num_steps`` evaluations of its ``num_samples`` chains per image at the same
batch size on the canvas DDRM uses for σ 2, so
``floor_ratio = batch time / UNet time`` (1.0 would be pure network cost). Writes
``benchmarks/results/batch_throughput.json`` (with date and commit).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import torch
from end_to_end import ENCODINGS, blur_1024, write_dicom
from PIL import Image
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from xray_restore._compat import bf16_autocast
from xray_restore.batch import run_batch
from paths import DICOM_DATA, FULL_DATA
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.operators import blur_operator
from xray_restore.provenance import run_info, write_json
from xray_restore.restore import Restorer

SOURCES = ["DX-NIH-chest-8bit.dcm", "CR-MONO1-10-chest.dcm", "MG_Explicit_Little.dcm", "RF-KarstenHilbert-MLUT.dcm",
           "CR-RSNA-chest-JPEGbaseline.dcm", "MG-OutOfBoundsOverlay.dcm"]
SIGMA_64, SIGMA_Y = 2.0, 0.002


def unet_floor(net: torch.nn.Module, batch_size: int, side: int, steps: int, samples: int, repeats: int = 3) -> float:
    """Seconds per image of ``steps`` bf16 evaluations of ``net`` for ``samples`` chains per image, ``batch_size``
    images per call (``batch_size · samples`` network inputs), on ``side × side`` (median)."""
    rows = batch_size * samples
    x, t = torch.randn(rows, 1, side, side), torch.full((rows,), 500, dtype=torch.long)
    times = []
    with torch.inference_mode(), bf16_autocast("cpu"):
        net(x, t)
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                net(x, t)
            times.append((time.perf_counter() - start) / batch_size)
    return sorted(times)[len(times) // 2]


def copy_instance(source: Path, target: Path) -> None:
    """``source`` saved as ``target`` with a new SOP Instance UID (pixel data untouched, compressed or not)."""
    ds = pydicom.dcmread(source, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(target, enforce_file_format=True)


def blurred_sources(full: str, count: int, folder: Path, seed: int = 0) -> list[Path]:
    """``count`` NIH originals blurred by σ_64 = 2 with noise, as CR DICOMs cycling the end-to-end encodings."""
    rng = np.random.default_rng(seed)
    paths = []
    for i, png in enumerate(sorted(Path(full).glob("*.png"))[:count]):
        x = np.asarray(Image.open(png).convert("L"), dtype=np.float32) / 255.0
        y = blur_1024(x, SIGMA_64 * x.shape[0] / 64) + SIGMA_Y * rng.standard_normal(x.shape).astype(np.float32)
        photometric, bits, j2k = ENCODINGS[i % len(ENCODINGS)]
        paths.append(folder / f"blurred_{i:02d}.dcm")
        write_dicom(paths[-1], y, photometric, bits, j2k, uid_seed=f"throughput-{png.name}")
    return paths


def run(sources: list[Path], n: int, tmp: Path, name: str, bundle: str, batch_size: int) -> dict:
    """Copies of ``sources`` (cycled) to ``n`` instances, then one ``run_batch`` over them with the defaults."""
    folder = tmp / name
    folder.mkdir()
    for i in range(n):
        copy_instance(sources[i % len(sources)], folder / f"{i:04d}.dcm")
    summary = run_batch([folder], tmp / f"{name}_out", bundle=bundle, batch_size=batch_size, progress=False)
    return {"n": n, "counts": summary.counts, "seconds": round(summary.seconds, 2),
            "images_per_second": round(summary.images_per_second, 3),
            "seconds_per_image": round(summary.seconds / max(1, summary.processed), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dicom-dir", default=DICOM_DATA)
    parser.add_argument("--full", default=FULL_DATA)
    parser.add_argument("--bundle", default=DDRM_BUNDLE)
    parser.add_argument("--n", type=int, default=200, help="instances per workload")
    parser.add_argument("--originals", type=int, default=16, help="distinct blurred originals (cycled to --n)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/batch_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "sources").mkdir()
        blurred = blurred_sources(args.full, args.originals, tmp / "sources")
        workloads = {"as_stored": run([Path(args.dicom_dir) / s for s in SOURCES], args.n, tmp, "as_stored",
                                      args.bundle, args.batch_size),
                     "blurred": run(blurred, args.n, tmp, "blurred", args.bundle, args.batch_size)}
    canvas = blur_operator(64, SIGMA_64, window=((0, 64), (0, 64))).size  # the image and its unknown margin
    restorer = Restorer.from_bundle(args.bundle)  # the bundle's network, steps and samples per image
    inferer = restorer.inferer.sampler
    floor = unet_floor(restorer.network, args.batch_size, canvas, inferer.num_steps, inferer.num_samples)
    workloads["blurred"].update(unet_floor_seconds_per_image=round(floor, 4), canvas=canvas,
                                num_steps=inferer.num_steps, num_samples=inferer.num_samples,
                                floor_ratio=round(workloads["blurred"]["seconds_per_image"] / floor, 2))
    result = {**run_info(), "wall_seconds": round(time.time() - started, 1), "benchmark": "batch_throughput",
              "batch_size": args.batch_size, "threads": args.threads, "cpu_count": os.cpu_count(),
              "workloads": workloads, "sources": SOURCES, "sigma_64": SIGMA_64, "sigma_y": SIGMA_Y,
              "originals": args.originals,
              "command": "python benchmarks/batch_throughput.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())}
    print("| workload | images | done | skipped | failed | seconds | images/s | UNet floor s/img | ratio |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for name, w in workloads.items():
        c = w["counts"]
        print(f"| {name} | {w['n']} | {c.get('done', 0)} | {c.get('skipped', 0)} | {c.get('failed', 0)} | "
              f"{w['seconds']:.1f} | {w['images_per_second']:.2f} | {w.get('unet_floor_seconds_per_image', '')} | "
              f"{w.get('floor_ratio', '')} |")
    write_json(args.out, result)
    print(f"\nwrote {args.out}  ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
