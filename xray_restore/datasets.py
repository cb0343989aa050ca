"""Datasets: the 64×64 ChestX-ray14 cache (``.npz``) with its patient-disjoint splits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

__all__ = ["SPLITS", "IMAGE_SUFFIXES", "find_images", "load_cxr14_cache", "to_model_space", "to_unit_range"]

SPLITS = ("train", "val", "test")


def load_cxr14_cache(path: str | os.PathLike, split: str) -> dict[str, np.ndarray]:
    """Arrays of one split of a ChestX-ray14 cache (``cxr14_64.npz`` layout).

    Returns a dict with ``images`` ``(N, H, W)`` uint8 (0 = air, 255 = bone), ``labels`` ``(N, 14)``,
    ``patient_ids`` ``(N,)``, ``names`` ``(N,)`` and ``label_names`` ``(14,)``.

    Raises:
        InputError: the file is missing, unreadable, or lacks the split's arrays.
        ValueError: ``split`` is not one of ``train``, ``val``, ``test``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "ChestX-ray14 cache not found")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(path, f"not a readable .npz archive ({e})") from e
    with data:
        key = f"{split}_images"
        if key not in data.files:
            raise InputError(path, f"has no array {key!r} (arrays: {', '.join(sorted(data.files))})")
        out = {"images": data[key]}
        for field in ("labels", "patient_ids", "names"):
            if f"{split}_{field}" in data.files:
                out[field] = data[f"{split}_{field}"]
        if "label_names" in data.files:
            out["label_names"] = data["label_names"]
    if out["images"].ndim != 3 or out["images"].dtype != np.uint8:
        raise InputError(path, f"{key} must be (N, H, W) uint8, got {out['images'].shape} {out['images'].dtype}")
    return out


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W)`` → float32 ``(N, 1, H, W)`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0).unsqueeze(1)


def to_model_space(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W)`` → float32 ``(N, 1, H, W)`` in [-1, 1] (the diffusion model's space)."""
    return to_unit_range(images).mul_(2.0).sub_(1.0)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")


def find_images(folder: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[dict[str, str]]:
    """A MONAI datalist ``[{"image": path}, ...]`` of the image files in ``folder`` (sorted, recursive).

    Raises:
        InputError: the folder does not exist or holds no file with one of ``suffixes``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "input folder not found")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(folder, f"no image files ({', '.join(suffixes)}) in this folder")
    return [{"image": str(p)} for p in files]
