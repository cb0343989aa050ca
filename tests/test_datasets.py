"""ChestX-ray14 datalists, patient-disjoint splits, the cache file, and the 64×64 cache builder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from xray_restore.cache import build_cache, downsample_png
from xray_restore.datasets import (
    LABEL_NAMES,
    cxr14_datalists,
    find_images,
    load_cxr14_cache,
    patient_disjoint_split,
    read_data_entry_csv,
)
from xray_restore.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PNG_DIR = SHARED / "cxr14_png"
CSV = PNG_DIR / "Data_Entry_2017.csv"


def test_cache_splits_are_patient_disjoint_and_shaped(cxr14_cache):
    ids = {s: set(load_cxr14_cache(cxr14_cache, s)["patient_ids"].tolist()) for s in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    train = load_cxr14_cache(cxr14_cache, "train")
    assert train["images"].shape == (1323, 64, 64) and train["labels"].shape == (1323, 14)
    assert tuple(train["label_names"]) == LABEL_NAMES


def test_csv_rows_and_labels():
    rows = read_data_entry_csv(CSV)
    assert [r["name"] for r in rows] == ["00000001_000.png", "00000002_000.png", "00000013_003.png"]
    assert rows[0]["labels"][LABEL_NAMES.index("Cardiomegaly")] == 1 and rows[0]["labels"].sum() == 1
    assert rows[1]["labels"].sum() == 0  # No Finding
    assert rows[2]["patient_id"] == 13


def test_missing_csv_columns(tmp_path):
    bad = tmp_path / "Data_Entry_2017.csv"
    bad.write_text("Image Index,Finding Labels\n00000001_000.png,Cardiomegaly\n")
    with pytest.raises(InputError, match="missing CSV column\\(s\\) Patient ID"):
        read_data_entry_csv(bad)


def test_unknown_finding(tmp_path):
    bad = tmp_path / "entries.csv"
    bad.write_text("Image Index,Finding Labels,Patient ID\n00000001_000.png,Broken Bone,1\n")
    with pytest.raises(InputError, match="line 2: unknown finding"):
        read_data_entry_csv(bad)


def test_image_listed_but_absent(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(PNG_DIR / "00000001_000.png", folder)
    with pytest.raises(InputError, match="00000002_000.png: listed in Data_Entry_2017.csv but not found"):
        cxr14_datalists(CSV, folder)
    lists = cxr14_datalists(CSV, folder, missing="skip")
    assert sum(len(v) for v in lists.values()) == 1


def test_split_is_patient_disjoint_and_seeded():
    rng = np.random.default_rng(0)
    patients = rng.integers(0, 300, size=2000)
    a = patient_disjoint_split(patients, seed=1)
    b = patient_disjoint_split(patients, seed=1)
    c = patient_disjoint_split(patients, seed=2)
    assert (a == b).all() and (a != c).any()
    for split in ("val", "test"):
        assert 0.05 < (a == split).mean() <= 0.1
        assert not set(patients[a == split]) & set(patients[a == "train"])


def test_official_test_list_is_honoured(tmp_path):
    folder = tmp_path / "images"
    shutil.copytree(PNG_DIR, folder)
    (folder / "test_list.txt").write_text("00000013_003.png\n")
    lists = cxr14_datalists(folder / "Data_Entry_2017.csv", folder)
    assert [item["name"] for item in lists["test"]] == ["00000013_003.png"]


def test_downsample_reproduces_the_shared_cache(cxr14_cache):
    cache = np.load(cxr14_cache)
    for name in ("00000001_000.png", "00000002_000.png", "00000013_003.png"):
        small = downsample_png(PNG_DIR / name)
        for split in ("train", "val", "test"):
            idx = np.where(cache[f"{split}_names"] == name)[0]
            if len(idx):
                assert np.array_equal(small, cache[f"{split}_images"][idx[0]])


def test_build_cache_round_trip(tmp_path):
    out = tmp_path / "cache.npz"
    counts = build_cache(CSV, PNG_DIR, out, workers=2)
    assert sum(counts.values()) == 3
    total = sum(len(load_cxr14_cache(out, s)["images"]) for s in ("train", "val", "test"))
    assert total == 3


def test_find_images_errors(tmp_path):
    with pytest.raises(InputError, match="input folder not found"):
        find_images(tmp_path / "nope")
    with pytest.raises(InputError, match="no image files"):
        find_images(tmp_path)


def test_cache_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_cxr14_cache(tmp_path / "missing.npz", "train")
    with pytest.raises(ValueError, match="split"):
        load_cxr14_cache(tmp_path / "missing.npz", "validation")


def test_extra_archives_are_the_training_only_files_beside_a_cache(cxr14_cache, tmp_path):
    """The shared cache has cxr14_extra_64.npz beside it (2,039 images in the pool); a cache alone has none."""
    from xray_restore.datasets import extra_archives, load_training_pool

    found = extra_archives(cxr14_cache)
    assert [Path(p).name for p in found] == ["cxr14_extra_64.npz"]
    assert len(load_training_pool(cxr14_cache, found)) == 2039
    alone = tmp_path / "cxr14_64.npz"
    shutil.copy(cxr14_cache, alone)
    assert extra_archives(alone) == []


def test_pool_leaves_out_images_made_from_too_small_a_copy(cxr14_cache, tmp_path):
    """An archive that records ``native_res`` loses the images not area-averaged ≥ 4× into the model grid (upsampled
    copies are blurred at the model scale); the shared other-CXR archive has 18 made from under 256 px."""
    from xray_restore.datasets import load_training_pool

    other = SHARED / "cxr_other_64.npz"
    train = len(load_training_pool(cxr14_cache))
    assert len(load_training_pool(cxr14_cache, [other])) == train + 2426 - 18
    images = np.full((3, 64, 64), 7, np.uint8)
    np.savez(tmp_path / "small.npz", images=images, native_res=np.array([1024, 255, 256], np.int32))
    assert len(load_training_pool(cxr14_cache, [tmp_path / "small.npz"])) == train + 2
