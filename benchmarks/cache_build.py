"""Rate of building the 64×64 cache from full-size ChestX-ray14 PNGs (1024×1024, 8-bit).

    python benchmarks/cache_build.py --n 1000 --workers 1 2

Only 3 original PNGs are available (../shared/data/cxr14_png), so the folder holds ``n`` hard-linked copies
of them (decoding work is identical to distinct files; the OS page cache is warm in both cases). Prints a
table and writes ``benchmarks/results/cache_build.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from xray_restore.cache import downsample_files
from paths import PNG_DATA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=PNG_DATA)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--out", default="benchmarks/results/cache_build.json")
    args = parser.parse_args()
    originals = sorted(Path(args.source).glob("*.png"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.n):
            target = Path(tmp) / f"{i:05d}_{originals[i % len(originals)].name}"
            try:
                os.link(originals[i % len(originals)], target)
            except OSError:
                shutil.copy(originals[i % len(originals)], target)
            paths.append(str(target))
        for workers in args.workers:
            start = time.perf_counter()
            images = downsample_files(paths, 64, workers)
            seconds = time.perf_counter() - start
            assert images.shape == (args.n, 64, 64)
            rows.append({"workers": workers, "images": args.n, "seconds": round(seconds, 2),
                         "images_per_second": round(args.n / seconds, 1)})
    print(f"{'workers':>8}{'images':>8}{'seconds':>9}{'img/s':>8}")
    for r in rows:
        print(f"{r['workers']:>8}{r['images']:>8}{r['seconds']:>9.2f}{r['images_per_second']:>8.1f}")
    result = {"benchmark": "cache_build", "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
              "note": "1024x1024 8-bit PNGs, box filter to 64x64; hard-linked copies of the 3 originals",
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
