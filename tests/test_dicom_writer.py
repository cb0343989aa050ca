"""Derived DICOM objects from real sources: dciodvfy-clean, readable by pydicom and SimpleITK, referenced."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from xray_restore.dicom_writer import derivation_description, series_description, write_derived
from xray_restore.errors import InputError
from xray_restore.readers import read_radiograph

DICOM_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"
PROVENANCE = {
    "method": "DDRM",
    "inferer": {"num_steps": 20, "spacing": "quadratic", "eta": 0.85, "eta_b": 1.0, "sigma_y": 0.01, "num_samples": 4},
    "operator": {"name": "GaussianBlur", "size": 64, "sigma": 2.0, "threshold": 0.003},
    "model_version": "xray_ddrm 0.1.0",
    "software_version": "0.1.0",
}
SOURCES = ["DX-NIH-chest-8bit.dcm", "CR-MONO1-10-chest.dcm", "RG1_J2KI.dcm", "CR-Issue44_Monochrome1-Jpeg.dcm",
           "MG-GH133-VOILUT-JPEGLL.dcm"]


def dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.fail("dciodvfy (Debian package dicom3tools) is required; .ci/run installs it")
    result = subprocess.run([exe, str(path)], capture_output=True, text=True)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("name", SOURCES)
def test_derived_objects_are_valid_and_reference_the_source(name, tmp_path):
    source = DICOM_DIR / name
    image, _ = read_radiograph(source)
    std = np.linspace(0.0, 0.05, image.size).reshape(image.shape).astype(np.float32)
    written = write_derived(source, image, tmp_path, PROVENANCE, uncertainty=std)
    assert [w.kind for w in written] == ["restored", "uncertainty"]
    src = pydicom.dcmread(source, force=True)
    for obj in written:
        assert dciodvfy_errors(obj.path) == []
        ds = pydicom.dcmread(obj.path)
        assert ds.StudyInstanceUID == src.StudyInstanceUID
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
        assert ds.ImageType[0] == "DERIVED"
        assert "DDRM" in ds.DerivationDescription and "eta=0.85" in ds.DerivationDescription
        assert "num_samples=4" in ds.DerivationDescription
        assert ds.BurnedInAnnotation == "NO" and "restored" in ds.SeriesDescription.lower()
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.Rows, ds.Columns) == image.shape
        assert obj.path.name == f"{ds.SOPInstanceUID}.dcm"
        assert obj.path.parent.name == ds.SeriesInstanceUID
    # SimpleITK (GDCM) reads the restored image back (GDCM has no Parametric Map reader: the std map is for
    # highdicom/pydicom, or the NIfTI export)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(written[0].path))).squeeze().shape == image.shape
    restored = pydicom.dcmread(written[0].path)
    assert list(restored.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert restored.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    levels = 2 ** int(restored.BitsStored) - 1
    np.testing.assert_allclose(restored.pixel_array / levels, image, atol=0.5 / levels + 1e-6)
    dump = subprocess.run(["dcmdump", str(written[0].path)], capture_output=True, text=True).stdout
    assert "DerivationDescription" in dump and "SourceImageSequence" in dump


@pytest.mark.parametrize("name", SOURCES)
def test_uncertainty_is_a_parametric_map_whose_value_mapping_gives_the_std(name, tmp_path):
    """The std map is a Parametric Map referencing the source; its Real World Value Mapping turns stored values
    back into the std (intensity units) to within one step of its 16 bits."""
    import highdicom as hd

    source = DICOM_DIR / name
    image, _ = read_radiograph(source)
    std = np.linspace(0.0, 0.05, image.size).reshape(image.shape).astype(np.float32)
    uncertainty = write_derived(source, image, tmp_path, PROVENANCE, uncertainty=std)[1]
    pm = hd.pm.ParametricMap.from_dataset(pydicom.dcmread(uncertainty.path))
    assert pm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map Storage
    src = pydicom.dcmread(source, force=True)
    reference = pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == src.SOPInstanceUID and reference.SpatialLocationsPreserved == "YES"
    (mapping,) = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence
    assert mapping.LUTLabel == "POSTERIOR_STD" and mapping.MeasurementUnitsCodeSequence[0].CodeValue == "1"
    real = pm.pixel_array.astype(np.float64) * float(mapping.RealWorldValueSlope) + float(
        mapping.RealWorldValueIntercept)
    np.testing.assert_allclose(real.squeeze(), std, atol=1.0 / 65535)
    assert "num_samples=4" in pm.DerivationDescription and str(pm.Modality) == str(src.Modality)


def test_spacing_keeps_its_meaning(tmp_path):
    """Pixel Spacing with its calibration stays that; a source with only Imager Pixel Spacing gets an uncalibrated
    Pixel Spacing equal to it (PS3.3 10.7.1.1) and says so, never a calibration it does not have; an invalid
    spacing (0\\0) is not written."""
    cases = {"MG_Explicit_Little.dcm": ("PixelSpacing", True),
             "MG-GH133-VOILUT-JPEGLL.dcm": ("ImagerPixelSpacing", False),
             "RG1_J2KI.dcm": (None, False)}
    for name, (keyword, calibrated) in cases.items():
        source = DICOM_DIR / name
        src = pydicom.dcmread(source, force=True)
        image, meta = read_radiograph(source)
        ds = pydicom.dcmread(write_derived(source, image, tmp_path / name, PROVENANCE)[0].path)
        if keyword is None:
            assert "PixelSpacing" not in ds and not meta["pixel_spacing_known"]
            continue
        assert [float(v) for v in ds.PixelSpacing] == [float(v) for v in src[keyword].value]
        assert meta["pixel_spacing_plane"] == ("patient" if keyword == "PixelSpacing" else "detector")
        if calibrated:
            assert ds.PixelSpacingCalibrationType == src.PixelSpacingCalibrationType
        else:
            assert "PixelSpacingCalibrationType" not in ds and "Imager Pixel Spacing" in ds.ImageComments
        assert "ImagerPixelSpacing" not in ds  # not in the Secondary Capture IOD


def test_rerun_is_idempotent_and_never_touches_the_input(tmp_path):
    source = tmp_path / "in" / "chest.dcm"
    source.parent.mkdir()
    shutil.copy(DICOM_DIR / "DX-NIH-chest-8bit.dcm", source)
    before = source.read_bytes()
    image, _ = read_radiograph(source)
    first = write_derived(source, image, tmp_path / "out", PROVENANCE)
    second = write_derived(source, image, tmp_path / "out", PROVENANCE)
    assert [w.path for w in first] == [w.path for w in second]
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1
    assert not list((tmp_path / "out").rglob("*.tmp"))
    assert source.read_bytes() == before


def test_sources_without_usable_uids_get_a_new_study_and_say_so(tmp_path):
    """No StudyInstanceUID (JLSL) / an invalid SOPInstanceUID (999.999.01...): written, valid, and the comment says
    what was wrong; the same source gives the same UIDs again."""
    for name in ("JLSL_16_15_1_1F.dcm", "CR-ModalitySequenceLUT.dcm"):
        source = DICOM_DIR / name
        image, _ = read_radiograph(source)
        (obj,) = write_derived(source, image, tmp_path / name, PROVENANCE)
        assert dciodvfy_errors(obj.path) == []
        ds = pydicom.dcmread(obj.path)
        assert all(pydicom.uid.UID(str(u)).is_valid for u in (ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                                                ds.SOPInstanceUID))
        assert "StudyInstanceUID missing" in ds.ImageComments or "SOPInstanceUID not a valid UID" in ds.ImageComments
        (again,) = write_derived(source, image, tmp_path / f"{name}_again", PROVENANCE)
        assert again.sop_instance_uid == obj.sop_instance_uid and again.study_instance_uid == obj.study_instance_uid


def test_sources_that_cannot_be_referenced(tmp_path):
    image = np.zeros((128, 128), dtype=np.float32)
    with pytest.raises(InputError, match="source grid"):
        write_derived(DICOM_DIR / "DX-NIH-chest-8bit.dcm", image, tmp_path, PROVENANCE)
    with pytest.raises(InputError, match="has no Pixel Data"):
        write_derived(DICOM_DIR / "CR-HeaderOnly-CR000000.dcm", image, tmp_path, PROVENANCE)


def test_derivation_description_mentions_parameters():
    text = derivation_description(PROVENANCE)
    for part in ("DDRM", "num_steps=20", "spacing=quadratic", "eta_b=1.0", "sigma_y=0.01", "GaussianBlur",
                 "xray_ddrm 0.1.0"):
        assert part in text


def test_tag_text_cannot_steer_output_paths(tmp_path):
    ds = pydicom.dcmread(DICOM_DIR / "MG_Explicit_Little.dcm")
    ds.StudyInstanceUID = "../../escaped"
    source = tmp_path / "evil.dcm"
    ds.save_as(source)
    image, _ = read_radiograph(source)
    (obj,) = write_derived(source, image, tmp_path / "out", PROVENANCE)
    assert not (tmp_path / "escaped").exists() and (tmp_path / "out") in obj.path.parents
    assert pydicom.uid.UID(obj.study_instance_uid).is_valid and "../" not in str(obj.path)
    assert "not a valid UID (../../escaped)" in pydicom.dcmread(obj.path).ImageComments


PIXEL_BEARING = sorted(p.name for p in DICOM_DIR.glob("*.dcm") if "NoPixelData" not in p.name
                       and "HeaderOnly" not in p.name)
#: The one warning a derived object may add to its source's: Laterality present and empty where the source names
#: neither a body part nor a side. The Secondary Capture IOD requires it (Type 2C; absent is an error there) and
#: an empty value means "unknown"; inventing a body part or side would be worse.
UNKNOWN_SIDE = "is only permitted to be empty when actually unknown"


def dciodvfy_findings(path: Path) -> set[str]:
    """dciodvfy's errors and warnings, values and element numbers masked (compared across objects)."""
    import re

    result = subprocess.run([shutil.which("dciodvfy") or "dciodvfy", str(path)], capture_output=True, text=True)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith(("Error", "Warning"))]
    return {re.sub(r"<[^>]*>", "<>", re.sub(r"\[[0-9]+\]", "", line)) for line in lines if "DICOMDIR" not in line}


def test_every_shared_source_gives_objects_a_pacs_admin_trusts(tmp_path):
    """The 14 pixel-bearing shared DICOMs: no dciodvfy error, no warning the source does not have (but the one
    above), the source's Modality, body part and side kept, a lossy history never reset, a displaying window."""
    for name in PIXEL_BEARING:
        source = DICOM_DIR / name
        image, _ = read_radiograph(source)
        written = write_derived(source, image, tmp_path / name, PROVENANCE, uncertainty=np.full_like(image, 0.02))
        src = pydicom.dcmread(source, force=True, stop_before_pixels=True)
        own = dciodvfy_findings(source)
        for obj in written:
            findings = dciodvfy_findings(obj.path)
            assert [f for f in findings if f.startswith("Error")] == [], (name, obj.kind, findings)
            new = [f for f in findings - own if UNKNOWN_SIDE not in f and "Person Name" not in f]
            assert new == [], (name, obj.kind, new)
            ds = pydicom.dcmread(obj.path, stop_before_pixels=True)
            if str(src.get("Modality", "")) in ("CR", "DX", "MG", "RF"):
                assert ds.Modality == src.Modality, name
            if src.get("BodyPartExamined"):
                assert ds.BodyPartExamined == src.BodyPartExamined
            side = str(src.get("Laterality") or src.get("ImageLaterality") or "")
            if side in ("R", "L"):
                assert ds.Laterality == side, name
            syntax = str(src.file_meta.get("TransferSyntaxUID", ""))
            if str(src.get("LossyImageCompression", "")) == "01" or syntax in ("1.2.840.10008.1.2.4.50",
                                                                                "1.2.840.10008.1.2.4.91"):
                assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod, name
            else:
                assert ds.get("LossyImageCompression", "00") == "00", name
            if obj.kind == "restored":
                levels = 2 ** int(ds.BitsStored)
                assert (float(ds.WindowCenter), float(ds.WindowWidth)) == ((levels - 1) / 2, levels)


def test_derivation_description_names_both_axes_of_an_anisotropic_blur():
    provenance = {**PROVENANCE, "operator": {**PROVENANCE.get("operator", {}), "name": "GaussianBlur",
                                             "sigma": [1.1, 2.05], "size": 64}}
    assert "sigma=1.1 px (vertical) x 2.05 px (horizontal)" in derivation_description(provenance)


def test_series_descriptions_name_the_method_and_fit_a_long_string():
    """What a PACS user sees in the study list names the method that made the series (not DDRM for the conditional
    baseline), keeps the words the readers and tests look for, and fits LO (64 characters)."""
    for method in ("DDRM", "predict_refine (conditional baseline)"):
        restored, std = series_description("restored", method=method), series_description("uncertainty", method=method)
        assert f"({method.split(' ')[0]} deblurred)" in restored and "uncertainty" in std
        assert all(len(t) <= 64 and t.endswith("not for diagnosis") for t in (restored, std))
        assert "deblurred" not in series_description("restored", True, method)
    assert "DDRM uncertainty" in series_description("uncertainty")
