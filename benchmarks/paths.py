"""Where the benchmarks find the development checkout's shared files: ``../shared`` beside the repository (never
committed; ``../shared/data/README`` describes the data).

The one home of these paths: every benchmark imports them from here (``python benchmarks/<script>.py`` puts this
folder first on ``sys.path``, so ``from paths import ...`` works, as the benchmarks import their siblings). The
package and its command line name no development path: its training commands take ``--data`` (or
``XRAY_RESTORE_DATA``).
"""

from __future__ import annotations

from pathlib import Path

#: The repository root.
ROOT = Path(__file__).resolve().parents[1]
#: The shared folder beside the repository.
SHARED = ROOT.parent / "shared"
#: Its data folder.
SHARED_DATA = str(SHARED / "data")
#: The 64×64 ChestX-ray14 cache (train / val / test splits) that the benchmarks read by default.
DEFAULT_DATA = f"{SHARED_DATA}/cxr14_64.npz"
#: The 716 extra ChestX-ray14 images of the training pool (training only).
EXTRA_DATA = f"{SHARED_DATA}/cxr14_extra_64.npz"
#: The full-size 1024×1024 NIH originals (evaluation only), the real DICOM samples and the three developer PNGs.
FULL_DATA, DICOM_DATA, PNG_DATA = f"{SHARED_DATA}/cxr14_full", f"{SHARED_DATA}/dicom", f"{SHARED_DATA}/cxr14_png"
#: LPIPS / KID backbone weights (``$TORCH_HOME`` layout; nothing is downloaded).
TORCH_HOME = str(SHARED / "weights" / "torch_home")
