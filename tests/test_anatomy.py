"""The anatomy gate (xray_restore.anatomy): the DICOM header check and the shipped content gate on real images."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset

from xray_restore.anatomy import GATE_FILE, NOT_CHEST, ChestGate, header_finding, header_findings
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.errors import InputError
from xray_restore.operators import blur_operator
from xray_restore.transforms import apply_chain, load_chain

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
GATE = REPO / "bundles" / "xray_ddrm" / GATE_FILE
#: nonchest/ images (calibration only) the shipped gate catches with a margin, sharp and blurred (score 3 to 5)
CAUGHT = ("mammogram_mdb001.png", "hand_1437.png", "knee_9003175L.png", "dental_panoramic_1018.png")


def _dataset(**elements) -> Dataset:
    ds = Dataset()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize("elements, expected", [
    ({"Modality": "CR", "BodyPartExamined": "CHEST", "ViewPosition": "PA"}, None),
    ({"Modality": "DX", "BodyPartExamined": "THORAX", "ViewPosition": "AP"}, None),
    ({"Modality": "DX", "BodyPartExamined": "CHEST_PA"}, None),
    ({"Modality": "DX"}, None),  # nothing said of the body part or view: the content gate decides
    ({"Modality": "OT", "BodyPartExamined": ""}, None),
    ({}, None),
    ({"Modality": "MG", "BodyPartExamined": "BREAST", "ViewPosition": "MLO"}, "Modality MG"),
    ({"Modality": "RF"}, "Modality RF"),
    ({"Modality": "XA", "BodyPartExamined": "CHEST"}, "Modality XA"),
    ({"Modality": "PX"}, "Modality PX"),
    ({"Modality": "CR", "BodyPartExamined": "KNEE", "ViewPosition": "AP"}, "Body Part Examined is 'KNEE'"),
    ({"Modality": "DX", "BodyPartExamined": "TSPINE"}, "Body Part Examined"),
    ({"Modality": "CR", "BodyPartExamined": "THORACIC SPINE"}, "Body Part Examined"),
    ({"Modality": "DX", "BodyPartExamined": "SKULL"}, "Body Part Examined"),
    ({"Modality": "CR", "BodyPartExamined": "CHEST", "ViewPosition": "LL"}, "View Position is 'LL'"),
    ({"Modality": "CR", "BodyPartExamined": "CHEST", "ViewPosition": "RL"}, "View Position"),
    ({"Modality": "DX", "BodyPartExamined": "CHEST", "ViewPosition": "LATERAL"}, "View Position"),
])
def test_header_finding_on_pydicom_datasets(elements, expected):
    finding = header_finding(_dataset(**elements))
    if expected is None:
        assert finding is None
    else:
        assert finding is not None and finding.startswith(expected)


def test_header_finding_reads_the_readers_meta_keys_and_a_collated_batch():
    assert header_finding({"format": "png"}) is None  # a PNG's meta has no header
    assert header_finding({"modality": "CR", "body_part_examined": "chest", "view_position": "pa"}) is None
    assert "Modality MG" in header_finding({"modality": "MG"})
    assert "KNEE" in header_finding({"modality": "DX", "body_part_examined": "Knee"})
    batch = {"modality": ["CR", "MG", "DX"], "body_part_examined": ["CHEST", "BREAST", "HAND"],
             "view_position": ["PA", "CC", ""]}
    found = header_findings(batch, 3)
    assert found[0] is None and "MG" in found[1] and "HAND" in found[2]
    assert NOT_CHEST == "not_chest"


def _header(name: str) -> Dataset:
    return pydicom.dcmread(SHARED / "dicom" / name, stop_before_pixels=True, force=True)


def test_header_finding_on_the_shared_dicoms():
    for name in ("MG-GH133-VOILUT-JPEGLL.dcm", "MG-OutOfBoundsOverlay.dcm", "MG_Explicit_Little.dcm",
                 "RF-KarstenHilbert-MLUT.dcm", "RG3_J2KR.dcm", "DX-Issue56-NoPixelData.dcm",
                 "CR-tiny16x16-dicomdirtests-6154.dcm"):
        assert header_finding(_header(name)) is not None, name
    for name in ("CR-MONO1-10-chest.dcm", "CR-RSNA-chest-JPEGbaseline.dcm", "DX-NIH-chest-8bit.dcm", "RG1_J2KI.dcm",
                 "CR-Issue44_Monochrome1-Jpeg.dcm"):
        assert header_finding(_header(name)) is None, name


@pytest.fixture(scope="module")
def gate() -> ChestGate:
    return ChestGate.load(GATE)


def _blurred(x: torch.Tensor) -> torch.Tensor:
    return blur_operator(64, 2.0, padding="symmetric").H(x.double()).float().clamp(0, 1)


def test_content_gate_passes_val_chests_sharp_and_blurred(gate, cxr14_cache):
    chests = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:24])
    assert chests.dtype == torch.float32
    for x in (chests, _blurred(chests)):
        score = gate.score(x)
        assert score.shape == (24,) and bool((score < 1).all()), score
        assert gate.finding(x) == [None] * 24


def test_content_gate_catches_other_anatomy_and_noise(gate):
    chain = load_chain("cxr14_png", "unit_range")  # the product's own path to the 64x64 grid
    x = torch.stack([apply_chain(chain, {"image": str(SHARED / "nonchest" / name)})["image"].as_tensor()
                     for name in CAUGHT]).float()
    noise = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    for images in (x, _blurred(x), noise):
        score = gate.score(images)
        assert bool((score > 1).all()), score
        assert all(f is not None and f.startswith("content: ") for f in gate.finding(images))
    assert "layout" in gate.finding(x[2:3])[0] and "grey levels" in gate.finding(x[1:2])[0]  # knee; hand
    assert "noise" in gate.finding(noise[:1])[0]


def test_content_gate_through_the_dicom_chain(gate):
    chain = load_chain("dicom", "unit_range")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chest, fluoro = (apply_chain(chain, {"image": str(SHARED / "dicom" / name)})["image"]
                         for name in ("DX-NIH-chest-8bit.dcm", "RF-KarstenHilbert-MLUT.dcm"))
    score = gate.score(torch.stack([chest, fluoro]))  # MetaTensors are read as plain tensors
    assert float(score[0]) < 1 < float(score[1])


def test_shipped_gate_file_is_small_weights_only_and_calibrated(gate):
    state = torch.load(GATE, map_location="cpu", weights_only=True)
    assert GATE.stat().st_size < 400_000
    assert set(state["thresholds"]) == set(ChestGate.COMPONENTS) and all(v > 0 for v in state["thresholds"].values())
    assert state["calibration"]["sets"] and state["training"]["images"] > 2000


def test_save_load_round_trip_and_a_bad_file(gate, tmp_path, cxr14_cache):
    images = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:4])
    path = tmp_path / "gate.pt"
    gate.save(path)
    again = ChestGate.load(path)
    assert again.thresholds == gate.thresholds and again.calibration == gate.calibration
    assert torch.equal(again.score(images), gate.score(images))
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="bad.pt"):
        ChestGate.load(tmp_path / "bad.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not an anatomy gate"):
        ChestGate.load(tmp_path / "other.pt")


def test_fit_and_calibrate_on_a_few_training_chests(cxr14_cache):
    train = to_unit_range(load_cxr14_cache(cxr14_cache, "train")["images"][:32])
    fitted = ChestGate.fit(train, epochs=1, seed=0, channels=(4, 8, 8))
    with pytest.raises(RuntimeError, match="no thresholds"):
        fitted.score(train[:2])
    thresholds = fitted.calibrate({"train": train}, {"layout": 1.0, "intensity": 1.0})
    assert set(thresholds) == set(ChestGate.COMPONENTS)
    assert bool((fitted.score(train) <= 1.0 + 1e-9).all())  # the largest value of each set is on its threshold
    assert fitted.score(torch.rand(2, 1, 64, 64)).min() > 1  # noise: twice the roughest chest at least
    assert np.isclose(thresholds["roughness"], 2 * float(fitted.components(train)["roughness"].max()))
