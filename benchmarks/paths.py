"""Where the benchmarks find the shared data of the development checkout (``../shared/data`` beside the repo)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = str(ROOT.parent / "shared" / "data")
DEFAULT_DATA = f"{SHARED_DATA}/cxr14_64.npz"
EXTRA_DATA = f"{SHARED_DATA}/cxr14_extra_64.npz"
OTHER_DATA = f"{SHARED_DATA}/cxr_other_64.npz"
FULL_DATA = f"{SHARED_DATA}/cxr14_full"
CROPS_DATA = f"{SHARED_DATA}/cxr14_crops_1024"
NONCHEST_DATA = f"{SHARED_DATA}/nonchest"
DICOM_DATA = f"{SHARED_DATA}/dicom"
PNG_DATA = f"{SHARED_DATA}/cxr14_png"
