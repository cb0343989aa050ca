"""Batch throughput on this machine: a folder of N real radiographs through ``run_batch`` (single process).

    python benchmarks/batch_throughput.py --n 200 --batch-size 8

The folder holds copies of the real sample DICOMs in ../shared/data/dicom (each with its own SOP Instance UID,
as distinct PACS instances). Reported: images/s end to end (read + LUTs + resample + DDRM 20 steps + inverse +
derived DICOM write + manifest), and the UNet floor: the time of the network alone for 20 evaluations per image
at the same batch size, so ``floor_ratio = batch time / UNet time`` (1.0 would be pure network cost).
Writes ``benchmarks/results/batch_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pydicom
import torch
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from xray_restore._compat import bf16_autocast
from xray_restore.batch import run_batch
from xray_restore.networks import build_prior_unet, load_weights

SOURCES = ["DX-NIH-chest-8bit.dcm", "CR-MONO1-10-chest.dcm", "MG_Explicit_Little.dcm", "RF-KarstenHilbert-MLUT.dcm",
           "CR-RSNA-chest-JPEGbaseline.dcm", "MG-OutOfBoundsOverlay.dcm"]


def unet_floor(weights: str, batch_size: int, steps: int = 20, repeats: int = 3) -> float:
    """Seconds per image of ``steps`` bf16 UNet evaluations at ``batch_size`` (median of repeats)."""
    net = load_weights(build_prior_unet(), weights)
    x, t = torch.randn(batch_size, 1, 64, 64), torch.full((batch_size,), 500, dtype=torch.long)
    times = []
    with torch.inference_mode(), bf16_autocast("cpu"):
        net(x, t)
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                net(x, t)
            times.append((time.perf_counter() - start) / batch_size)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dicom-dir", default="../shared/data/dicom")
    parser.add_argument("--bundle", default="bundles/xray_ddrm")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/batch_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i in range(args.n):
            ds = pydicom.dcmread(Path(args.dicom_dir) / SOURCES[i % len(SOURCES)], force=True)
            if "TransferSyntaxUID" not in ds.file_meta:
                ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(folder / f"{i:04d}.dcm", enforce_file_format=True)
        summary = run_batch([folder], Path(tmp) / "out", bundle=args.bundle, batch_size=args.batch_size)
    floor = unet_floor(str(Path(args.bundle) / "models" / "model.pt"), args.batch_size)
    per_image = summary.seconds / max(1, summary.processed)
    result = {"benchmark": "batch_throughput", "n": args.n, "batch_size": args.batch_size, "threads": args.threads,
              "cpu_count": os.cpu_count(), "counts": summary.counts, "seconds": round(summary.seconds, 2),
              "images_per_second": round(summary.images_per_second, 3),
              "unet_floor_seconds_per_image": round(floor, 4), "floor_ratio": round(per_image / floor, 2),
              "sources": SOURCES, "date": time.strftime("%Y-%m-%d")}
    print(f"{'images':>7}{'seconds':>9}{'img/s':>8}{'UNet s/img':>12}{'ratio':>7}")
    print(f"{summary.processed:>7}{summary.seconds:>9.1f}{summary.images_per_second:>8.2f}{floor:>12.4f}"
          f"{per_image / floor:>7.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
