"""Build the 64×64 ChestX-ray14 cache (``cxr14_64.npz`` layout) from full-size PNGs.

Downsampling, stated exactly: each PNG is decoded with Pillow and converted to mode ``L`` (if not already),
then to float32 mode ``F``, resized with ``Image.Resampling.BOX`` (area averaging: the exact block mean for
integer factors such as 1024 → 64), rounded with ``numpy.rint`` and clipped to uint8. Non-square images
are zero-padded (centred) to a square first. This reproduces ``../shared/data/cxr14_64.npz``.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .datasets import LABEL_NAMES, SPLITS, cxr14_datalists
from .errors import InputError
from .atomic import atomic_path

__all__ = ["downsample_png", "downsample_files", "build_cache"]


def downsample_png(path: str | os.PathLike, size: int = 64) -> np.ndarray:
    """One PNG → ``(size, size)`` uint8 by the box filter described in the module docstring."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            grey = im if im.mode == "L" else im.convert("L")
            arr = np.asarray(grey, dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise InputError(path, f"not a readable PNG image ({type(e).__name__}: {e})") from e
    h, w = arr.shape
    if h != w:
        side = max(h, w)
        padded = np.zeros((side, side), dtype=np.float32)
        top, left = (side - h) // 2, (side - w) // 2
        padded[top : top + h, left : left + w] = arr
        arr = padded
    small = Image.fromarray(arr, mode="F").resize((size, size), Image.Resampling.BOX)
    return np.clip(np.rint(np.asarray(small)), 0, 255).astype(np.uint8)


def _downsample_one(args: tuple[str, int]) -> np.ndarray:
    return downsample_png(*args)


def downsample_files(paths: list[str], size: int = 64, workers: int | None = None) -> np.ndarray:
    """Downsample many PNGs in parallel processes (``workers`` defaults to all cores): ``(N, size, size)`` uint8."""
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        return np.stack([downsample_png(p, size) for p in paths]) if paths else np.zeros((0, size, size), np.uint8)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        images = list(pool.map(_downsample_one, [(str(p), size) for p in paths], chunksize=16))
    return np.stack(images) if images else np.zeros((0, size, size), np.uint8)


def build_cache(
    csv_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    size: int = 64,
    seed: int = 0,
    workers: int | None = None,
    missing: str = "error",
) -> dict[str, int]:
    """Write a cache ``.npz`` with ``<split>_images/labels/names/patient_ids`` and ``label_names``.

    The file is written under a temporary name and renamed. Returns the number of images per split.
    """
    lists = cxr14_datalists(csv_path, image_dir, seed=seed, missing=missing)
    arrays: dict[str, np.ndarray] = {"label_names": np.array(LABEL_NAMES)}
    for split in SPLITS:
        items = lists[split]
        arrays[f"{split}_images"] = downsample_files([it["image"] for it in items], size, workers)
        arrays[f"{split}_labels"] = np.array([it["label"] for it in items], dtype=np.uint8).reshape(-1, 14)
        arrays[f"{split}_names"] = np.array([it["name"] for it in items], dtype=str)
        arrays[f"{split}_patient_ids"] = np.array([it["patient_id"] for it in items], dtype=np.int32)
    with atomic_path(out_path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return {split: len(lists[split]) for split in SPLITS}
