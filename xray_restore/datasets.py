"""Datasets: the 64×64 ChestX-ray14 cache (``.npz``) with its patient-disjoint splits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

__all__ = [
    "SPLITS",
    "EXTRA_ARCHIVES",
    "extra_archives",
    "IMAGE_SUFFIXES",
    "LABEL_NAMES",
    "find_images",
    "load_cxr14_cache",
    "to_model_space",
    "to_unit_range",
    "read_data_entry_csv",
    "patient_disjoint_split",
    "cxr14_datalists",
    "load_source_crops",
    "SOURCE_VAL_FRACTION",
]

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


#: Training-only archives looked for beside a cache (patients in no val/test split).
EXTRA_ARCHIVES = ("cxr14_extra_64.npz",)


def extra_archives(cache: str | os.PathLike) -> list[str]:
    """The training-only archives (:data:`EXTRA_ARCHIVES`) present beside ``cache`` (the bundles' ``train.json``
    ``extra_files`` and the linear baselines' pool read them from here)."""
    folder = Path(cache).parent
    return [str(folder / name) for name in EXTRA_ARCHIVES if (folder / name).is_file()]


MIN_NATIVE_FACTOR = 4  # source pixels per model pixel (a side) for an image to count as sharp at the model scale


def load_training_pool(
    path: str | os.PathLike, extra: tuple[str | os.PathLike, ...] | list[str | os.PathLike] = ()
) -> np.ndarray:
    """The training images: the ``train`` split of a cache plus every image of each ``extra`` archive.

    ``extra`` archives hold an ``images`` array ``(N, H, W)`` uint8 of the cache's size and no split (e.g.
    ``cxr14_extra_64.npz``: training-only ChestX-ray14 images of patients in no val/test split). Where an archive
    also records ``native_res`` (the side of the copy each image was made from, as ``cxr_other_64.npz`` does), an
    image made from fewer than :data:`MIN_NATIVE_FACTOR` source pixels per model pixel is left out: it was not
    area-averaged enough to be sharp at the model scale, so it cannot stand for an unblurred radiograph.

    Returns:
        ``(N_train + Σ N_extra, H, W)`` uint8.

    Raises:
        InputError: an archive is missing, unreadable, or its images do not match the cache's.
    """
    pool = [load_cxr14_cache(path, "train")["images"]]
    for extra_path in extra:
        extra_path = Path(extra_path)
        if not extra_path.is_file():
            raise InputError(extra_path, "extra training archive not found")
        try:
            with np.load(extra_path, allow_pickle=False) as data:
                if "images" not in data.files:
                    raise InputError(extra_path, f"has no array 'images' (arrays: {', '.join(sorted(data.files))})")
                images = data["images"]
                native = data["native_res"] if "native_res" in data.files else None
        except (OSError, ValueError) as e:
            raise InputError(extra_path, f"not a readable .npz archive ({e})") from e
        if images.dtype != np.uint8 or images.shape[1:] != pool[0].shape[1:]:
            raise InputError(extra_path, f"images must be (N, {pool[0].shape[1]}, {pool[0].shape[2]}) uint8, "
                                         f"got {images.shape} {images.dtype}")
        if native is not None:
            images = images[np.asarray(native) >= MIN_NATIVE_FACTOR * images.shape[-1]]
        pool.append(images)
    return np.concatenate(pool)


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
    # not only regular files: a FIFO, device or socket named like an image is listed, so that the reader refuses it
    # by name (never opening it) instead of its being skipped unsaid
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.exists() and not p.is_dir())
    if not files:
        raise InputError(folder, f"no image files ({', '.join(suffixes)}) in this folder")
    return [{"image": str(p)} for p in files]


#: The 14 ChestX-ray14 findings, in the order of the cache's label columns (MedMNIST ChestMNIST order).
LABEL_NAMES = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
    "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
CSV_COLUMNS = ("Image Index", "Finding Labels", "Patient ID")


def read_data_entry_csv(csv_path: str | os.PathLike) -> list[dict]:
    """Rows of ``Data_Entry_2017*.csv``: ``{"name", "patient_id", "labels" (14 uint8), "findings"}``.

    Raises:
        InputError: the file is missing, or lacks one of the columns ``Image Index``, ``Finding Labels``,
            ``Patient ID``, or a row has an unknown finding or a non-integer patient id.
    """
    import csv

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(csv_path, "CSV file not found")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise InputError(csv_path, f"missing CSV column(s) {', '.join(missing)} (found: {', '.join(header)})")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
            findings = [f for f in row["Finding Labels"].split("|") if f and f != "No Finding"]
            unknown = [f for f in findings if f not in LABEL_NAMES]
            if unknown:
                raise InputError(csv_path, f"line {line}: unknown finding(s) {', '.join(unknown)}")
            try:
                patient = int(row["Patient ID"])
            except ValueError as e:
                raise InputError(csv_path, f"line {line}: Patient ID {row['Patient ID']!r} is not an integer") from e
            labels = np.array([name in findings for name in LABEL_NAMES], dtype=np.uint8)
            rows.append({"name": row["Image Index"], "patient_id": patient, "labels": labels,
                         "findings": row["Finding Labels"]})
    return rows


def patient_disjoint_split(
    patient_ids: np.ndarray, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> np.ndarray:
    """Assign each image to ``"train"``/``"val"``/``"test"`` so that no patient spans two splits.

    Patients are visited in ``numpy.random.default_rng(seed).permutation(sorted unique ids)`` order; a patient
    goes to test, then to val, while that split stays within its fraction of the images; the rest is train.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"fractions must be in [0, 1) and sum below 1, got {val_fraction}, {test_fraction}.")
    patient_ids = np.asarray(patient_ids)
    unique, counts = np.unique(patient_ids, return_counts=True)
    count_of = dict(zip(unique.tolist(), counts.tolist()))
    limits = {"test": test_fraction * len(patient_ids), "val": val_fraction * len(patient_ids)}
    sizes = {"test": 0, "val": 0}
    split_of = {}
    for patient in np.random.default_rng(seed).permutation(unique).tolist():
        split_of[patient] = "train"
        for name in ("test", "val"):
            if sizes[name] + count_of[patient] <= limits[name]:
                sizes[name] += count_of[patient]
                split_of[patient] = name
                break
    return np.array([split_of[p] for p in patient_ids.tolist()])


def cxr14_datalists(
    csv_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    missing: str = "error",
) -> dict[str, list[dict]]:
    """MONAI datalists ``{"train"|"val"|"test": [{"image", "label", "patient_id", "name"}, ...]}``.

    If ``image_dir`` holds the official ``test_list.txt`` (and ``train_val_list.txt``), test follows it and
    train/val is split by patient from the rest; otherwise all three splits are patient-disjoint from ``seed``.
    ``missing="error"`` raises for an image listed in the CSV but absent from ``image_dir``; ``"skip"`` drops it.
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}.")
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise InputError(image_dir, "image folder not found")
    rows = read_data_entry_csv(csv_path)
    present = []
    for row in rows:
        path = image_dir / row["name"]
        if not path.is_file():
            if missing == "error":
                raise InputError(path, f"listed in {Path(csv_path).name} but not found in the image folder")
            continue
        present.append({**row, "image": str(path)})
    if not present:
        raise InputError(image_dir, f"none of the images listed in {Path(csv_path).name} is in this folder")
    patient_ids = np.array([r["patient_id"] for r in present])
    official_test = image_dir / "test_list.txt"
    if official_test.is_file():
        test_names = set(official_test.read_text().split())
        is_test = np.array([r["name"] in test_names for r in present])
        splits = np.where(is_test, "test", "train").astype(object)
        rest = np.where(~is_test)[0]
        if len(rest):
            sub = patient_disjoint_split(patient_ids[rest], seed, val_fraction / (1 - test_fraction), 0.0)
            splits[rest] = sub
    else:
        splits = patient_disjoint_split(patient_ids, seed, val_fraction, test_fraction)
    out: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for row, split in zip(present, splits):
        out[str(split)].append({"image": row["image"], "label": row["labels"], "patient_id": row["patient_id"],
                                "name": row["name"]})
    return out


def training_items(path: str | os.PathLike, extra: tuple[str | os.PathLike, ...] | list[str | os.PathLike] = ()
                   ) -> list[dict[str, torch.Tensor]]:
    """The training pool (:func:`load_training_pool`) as MONAI dataset items ``{"image": (1, H, W) float32 in
    [0, 1]}`` (for a MONAI ``Dataset`` / ``SupervisedTrainer``)."""
    return [{"image": image} for image in to_unit_range(load_training_pool(path, extra))]


def protocol_pairs(path: str | os.PathLike, split: str, protocol: str = "realistic", seed: int = 0,
                   limit: int | None = None) -> list[dict]:
    """A split degraded under an evaluation protocol, as MONAI items ``{"image": y, "label": x}``.

    ``y`` is a ``MetaTensor`` ``(1, H, W)`` in [0, 1] whose meta records ``bits_stored`` (8 for the realistic
    protocol's stored y) so an estimating inferer knows the quantisation floor; ``x`` the clean image. Degraded by
    :func:`~xray_restore.measurement.degrade` with one generator seeded with ``seed``: the pairs
    ``xray-restore evaluate`` scores.
    """
    from monai.data import MetaTensor

    from .measurement import PROTOCOLS, degrade

    x = to_unit_range(load_cxr14_cache(path, split)["images"])[:limit]
    y = degrade(x, protocol, torch.Generator().manual_seed(seed))  # type: ignore[arg-type]
    bits = PROTOCOLS[protocol]["quantize_bits"]
    meta = {"bits_stored": bits} if bits else {}
    return [{"image": MetaTensor(yi, meta=dict(meta)), "label": xi} for yi, xi in zip(y, x)]


#: share of the source-resolution crops' patients held out to validate the patch prior (never trained on)
SOURCE_VAL_FRACTION = 0.05


def load_source_crops(folder: str | os.PathLike, seed: int = 0,
                      val_fraction: float = SOURCE_VAL_FRACTION) -> dict[str, torch.Tensor]:
    """The radiograph crops at their own grid (``cxr14_crops_1024/``: 8-bit PNGs and ``crops.csv``), split by patient.

    Returns ``{"train": (N, 1, H, W), "val": (M, 1, H, W)}`` float32 in [-1, 1], val being ``val_fraction`` of the
    images by :func:`patient_disjoint_split` of ``crops.csv``'s ``patient_id`` (no test split: the evaluation
    images are elsewhere).

    Raises:
        InputError: the folder, its ``crops.csv`` or a listed PNG is missing or unreadable, or the sizes differ.
    """
    import csv

    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    listing = folder / "crops.csv"
    if not listing.is_file():
        raise InputError(listing, "source-resolution crops listing not found")
    with open(listing, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "patient_id"} <= set(rows[0]):
        raise InputError(listing, "needs the columns 'file' and 'patient_id'")
    images = []
    for row in rows:
        path = folder / row["file"]
        try:
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("L")))
        except (OSError, UnidentifiedImageError) as e:
            raise InputError(path, f"not a readable image ({e})") from e
        if images[-1].shape != images[0].shape:
            raise InputError(path, f"is {images[-1].shape}, the first crop {images[0].shape}")
    split = patient_disjoint_split(np.array([r["patient_id"] for r in rows]), seed=seed, val_fraction=val_fraction,
                                   test_fraction=0.0)
    stacked = np.stack(images)
    return {name: to_model_space(stacked[split == name]) for name in ("train", "val")}
