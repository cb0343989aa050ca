"""Peak memory of one restoration at the source resolution, per input class, against a bar (default 1.5 GB).

    python benchmarks/memory_peak.py      # the 3 largest shared DICOMs, 10000² DICOM and PNG, 2×30000 and 2×100000 PNGs

Each input is restored alone by the product's CLI in a fresh process (``xray-restore restore <file> -o <tmp>
--force --blur-sigma 2 --set anatomy_gate=null``: the full path — decode, LUTs, area resize, DDRM, the
detail-preserving composition on the source grid, derived DICOM or PNG write; the anatomy gate is off so that every
input takes it, a mammogram included); its peak resident set size is read from the kernel (``wait4`` rusage of that
child). Synthetic inputs: a 10000×10000 16-bit MONOCHROME2 DX (an upsampled NIH original plus noise, written by
pydicom), the same picture as an 8-bit PNG (also restored with 4 samples: the std map is one more source-grid
array), and 2×30000 / 2×100000 8-bit PNGs of noise (the extreme aspect ratios that once padded to a 37 GB square:
the first must restore or fail by name, the second fail by name, both under the bar). Writes
``benchmarks/results/memory_peak.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from paths import DICOM_DATA, FULL_DATA
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.provenance import run_info, write_json

LARGEST = ["MG-GH133-VOILUT-JPEGLL.dcm", "CR-Issue44_Monochrome1-Jpeg.dcm", "CR-ModalitySequenceLUT.dcm"]


def synthetic_dx(path: Path, side: int, original: Path) -> None:
    """A ``side``² 16-bit DX made from a real NIH original (bilinear upsample + noise), as a DICOM file."""
    import pydicom
    import torch
    from PIL import Image
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    x = torch.from_numpy(np.asarray(Image.open(original).convert("L"), dtype=np.float32) / 255.0)[None, None]
    big = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)[0, 0]
    big = (big + 0.002 * torch.randn(big.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    values = (big.numpy() * 65535).round().astype(np.uint16)
    del big
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[f"memory-peak-{side}"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"memory-peak-study-{side}"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"memory-peak-series-{side}"])
    ds.Modality, ds.PatientName, ds.PatientID = "DX", "Synthetic^Large", "SYNTH10000"
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = values.tobytes()
    ds.save_as(path, enforce_file_format=True)
    del values
    pydicom.dcmread(path, stop_before_pixels=True)  # readable


def synthetic_png(path: Path, shape: tuple[int, int], original: Path | None) -> None:
    """An 8-bit PNG: ``original`` upsampled bilinearly to ``shape`` (plus noise), or uniform noise without one."""
    import torch
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    if original is None:
        values = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8).numpy()
    else:
        x = torch.from_numpy(np.asarray(Image.open(original).convert("L"), dtype=np.float32) / 255.0)[None, None]
        big = torch.nn.functional.interpolate(x, size=shape, mode="bilinear", align_corners=False)[0, 0]
        big = (big + 0.002 * torch.randn(big.shape, generator=g)).clamp(0, 1)
        values = (big.numpy() * 255).round().astype(np.uint8)
        del big
    Image.fromarray(values).save(path)


def peak_rss_mb(cmd: list[str]) -> tuple[float, int, float]:
    """Run ``cmd``; return (peak RSS in MB = 10⁶ bytes, exit code, seconds).

    Linux starts a forked child's ``ru_maxrss`` at the parent's RSS, so the parent never holds large arrays
    (the synthetic input is made in a child of its own): a first version of this script made it in-process and
    reported its own 1.6 GB as the peak of every small input."""
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
    return usage.ru_maxrss * 1024 / 1e6, proc.returncode, time.time() - start  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dicom", default=DICOM_DATA)
    parser.add_argument("--original", default=f"{FULL_DATA}/00001595_002.png")
    parser.add_argument("--bundle", default=DDRM_BUNDLE)
    parser.add_argument("--side", type=int, default=10000, help="side of the synthetic DX")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bar-mb", type=float, default=1500.0,
                        help="the peak RSS every input must stay under, in MB (10⁶ bytes)")
    parser.add_argument("--out", default="benchmarks/results/memory_peak.json")
    parser.add_argument("--make-synthetic", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--png-shape", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_synthetic:  # in a child of its own: the parent must stay small (see peak_rss_mb)
        if args.png_shape:
            noise = args.png_shape[0] != args.png_shape[1]
            synthetic_png(Path(args.make_synthetic), tuple(args.png_shape), None if noise else Path(args.original))
        else:
            synthetic_dx(Path(args.make_synthetic), args.side, Path(args.original))
        return
    env_threads = {"OMP_NUM_THREADS": str(args.threads)}
    os.environ.update(env_threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [(Path(args.dicom) / name, name, 1) for name in LARGEST]
        big = Path(tmp) / f"synthetic_{args.side}.dcm"
        subprocess.run([sys.executable, __file__, "--make-synthetic", str(big), "--side", str(args.side),
                        "--original", args.original], check=True)
        for samples in (1, 2, 4):  # 2: the shipped bundle's (a restored and an uncertainty object are written)
            cases.append((big, f"synthetic {args.side}x{args.side} 16-bit DX" + (f", {samples} samples"
                                                                                 if samples > 1 else ""), samples))
        square = (args.side, args.side)
        for shape, label, samples in [(square, "8-bit PNG", 1), (square, "8-bit PNG", 4),
                                      ((2, 30000), "8-bit PNG of noise", 1), ((2, 100000), "8-bit PNG of noise", 1)]:
            png = Path(tmp) / f"synthetic_{shape[0]}x{shape[1]}.png"
            if not png.exists():
                subprocess.run([sys.executable, __file__, "--make-synthetic", str(png), "--png-shape", *map(str, shape),
                                "--original", args.original], check=True)
            cases.append((png, f"synthetic {shape[0]}x{shape[1]} {label}" + (f", {samples} samples" if samples > 1
                                                                                else ""), samples))
        for path, name, samples in cases:
            from PIL import Image

            if path.suffix == ".png":
                with Image.open(path) as im:
                    grid, bits = [im.height, im.width], 8
            else:
                import pydicom

                ds = pydicom.dcmread(path, stop_before_pixels=True)
                grid, bits = [int(ds.Rows), int(ds.Columns)], int(ds.BitsStored)
            out = Path(tmp) / f"out_{path.stem}_{samples}"
            cmd = [sys.executable, "-m", "xray_restore", "restore", str(path), "-o", str(out), "--bundle",
                   args.bundle, "--force", "--blur-sigma", "2", "--samples", str(samples),
                   "--set", "anatomy_gate=null"]
            rss, code, seconds = peak_rss_mb(cmd)
            written = sorted(p.name for p in out.rglob("*") if p.is_file() and p.suffix in (".dcm", ".png"))
            outcome = "restored" if code == 0 and written else f"failed by name (rc {code})"
            rows.append({"input": name, "grid": grid, "bits": bits, "samples": samples, "peak_rss_mb": round(rss, 1),
                         "exit_code": code, "outcome": outcome, "seconds": round(seconds, 1),
                         "under_bar": rss <= args.bar_mb})
            print(f"| {name} | {grid[0]}x{grid[1]} | {bits} | {samples} | {rss:.0f} MB | {outcome} | {seconds:.1f} s | "
                  f"{'ok' if rss <= args.bar_mb else 'OVER'} |", flush=True)
    write_json(args.out, {**run_info(), "threads": args.threads, "bar_mb": args.bar_mb, "rows": rows,
                          "all_under_bar": all(r["under_bar"] for r in rows),
                          "command": "python benchmarks/memory_peak.py " + " ".join(sys.argv[1:])})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
