"""RadiographReader on every real sample in ../shared/data, and one test per documented error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from xray_restore.errors import InputError
from xray_restore.readers import MAX_PIXELS, is_own_output, read_radiograph

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DICOM_DIR = SHARED / "dicom"
MANIFEST = json.loads((DICOM_DIR / "manifest.json").read_text())
WITH_PIXELS = [e["file"] for e in MANIFEST if e["pixel_data"] == "yes"]
HEADER_ONLY = [e["file"] for e in MANIFEST if e["pixel_data"] != "yes"]


@pytest.mark.parametrize("name", WITH_PIXELS)
def test_every_sample_dicom_reads_to_unit_range(name):
    image, meta = read_radiograph(DICOM_DIR / name)
    entry = next(e for e in MANIFEST if e["file"] == name)
    assert image.shape == (entry["rows"], entry["cols"]) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01
    assert meta["inverted"] == (entry["photometric"] == "MONOCHROME1")
    assert meta["rows"] == entry["rows"] and meta["bits_stored"] == entry["bits_stored"]
    assert "PatientName" not in meta and "patient_name" not in meta


@pytest.mark.parametrize("name", HEADER_ONLY)
def test_header_only_files_raise(name):
    with pytest.raises(InputError, match=f"{name}: has no Pixel Data"):
        read_radiograph(DICOM_DIR / name)


def test_monochrome1_is_inverted_against_its_monochrome2_twin():
    # Identical pixels, one tagged MONOCHROME1 (shared/data README): honouring the tag inverts the image.
    mono2, _ = read_radiograph(DICOM_DIR / "CR-RSNA-chest-JPEGbaseline.dcm")
    mono1, meta = read_radiograph(DICOM_DIR / "CR-RSNA-Fake_MONOHR1.dcm")
    assert meta["inverted"]
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)


def test_chest_orientation_and_bright_dense():
    # NIH 00000002_000 as DICOM: the spine (centre column) is bright, the lungs darker, air at the corners dark.
    image, meta = read_radiograph(DICOM_DIR / "DX-NIH-chest-8bit.dcm")
    assert meta["voi"] == "full range"
    rows, cols = image.shape
    spine = image[rows // 3 : 2 * rows // 3, cols // 2 - 20 : cols // 2 + 20].mean()
    lungs = image[rows // 3 : 2 * rows // 3, cols // 4 - 40 : cols // 4 + 40].mean()
    assert spine > lungs + 0.1
    png, _ = read_radiograph(SHARED / "cxr14_png" / "00000002_000.png")
    # same patient image via PNG: the same orientation (no transpose / flip) up to the stored 8-bit values
    assert np.corrcoef(png.ravel(), image.ravel())[0, 1] > 0.99


def test_window_is_applied_on_known_pixels():
    # CR-MONO1-10-chest: WC 550 / WW 1024, MONOCHROME1, no rescale. Check pixels against the DICOM window
    # formula (PS3.3 C.11.2.1.2.1) written out here, then inverted.
    path = DICOM_DIR / "CR-MONO1-10-chest.dcm"
    image, meta = read_radiograph(path)
    ds = pydicom.dcmread(path, force=True)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    stored = ds.pixel_array.astype(np.float64)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    linear = np.clip((stored - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
    assert meta["voi"] == "window" and meta["inverted"]
    np.testing.assert_allclose(image, 1.0 - linear, atol=2e-3)


def test_rescale_slope_intercept_window():
    # tiny CR: slope 0.684, intercept 200, window in rescaled units; check the window formula on rescaled values
    path = DICOM_DIR / "CR-tiny16x16-dicomdirtests-6154.dcm"
    image, meta = read_radiograph(path)
    ds = pydicom.dcmread(path)
    values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    c, w = float(ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter), float(
        ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth)
    linear = np.clip((values - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
    np.testing.assert_allclose(image, 1.0 - linear, atol=2e-3)


def test_png_reads_8bit():
    image, meta = read_radiograph(SHARED / "cxr14_png" / "00000001_000.png")
    assert image.shape == (1024, 1024) and meta["format"] == "png" and meta["bits_stored"] == 8
    assert image.max() <= 1.0


def test_jpeg_reads_like_the_png_it_was_made_from(tmp_path):
    """CheXpert and MIMIC-CXR-JPG ship JPEGs: a grey JPEG (and the RGB JPEG of a grey image) reads as the image."""
    from PIL import Image

    png, _ = read_radiograph(SHARED / "cxr14_png" / "00000001_000.png")
    grey = Image.fromarray(np.round(png * 255).astype(np.uint8))
    grey.save(tmp_path / "grey.jpg", quality=95)
    grey.convert("RGB").save(tmp_path / "rgb.JPEG", quality=95)
    for name in ("grey.jpg", "rgb.JPEG"):
        image, meta = read_radiograph(tmp_path / name)
        assert meta["format"] == "jpeg" and meta["bits_stored"] == 8 and image.shape == png.shape
        assert np.abs(image - png).mean() < 2 / 255, name  # JPEG is lossy


def test_a_dicom_is_read_as_dicom_whatever_its_preamble_holds(tmp_path):
    """The 128-byte preamble is free (TIFF/DICOM dual files use it): the DICM prefix decides, not the first bytes."""
    source = DICOM_DIR / "DX-NIH-chest-8bit.dcm"
    raw = bytearray(source.read_bytes())
    assert raw[128:132] == b"DICM"
    raw[:4] = b"\xff\xd8\xff\xe0"  # a JPEG signature
    (tmp_path / "dual.dcm").write_bytes(bytes(raw))
    image, meta = read_radiograph(tmp_path / "dual.dcm")
    assert meta["format"] == "dicom"
    np.testing.assert_array_equal(image, read_radiograph(source)[0])


# ---------------------------------------------------------------------------------------------- errors
def test_not_a_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("this is not a DICOM file\n" * 20)
    with pytest.raises(InputError, match="notes.dcm: not a"):
        read_radiograph(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_radiograph(tmp_path / "nope.dcm")


def test_truncated_file(tmp_path):
    data = (DICOM_DIR / "MG_Explicit_Little.dcm").read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated.dcm: "):
        read_radiograph(path)


def test_colour_dicom():
    with pytest.raises(InputError, match="colour image"):
        read_radiograph(get_testdata_file("SC_rgb_small_odd.dcm"))


def test_multiframe_dicom(tmp_path):
    ds = pydicom.dcmread(DICOM_DIR / "MG_Explicit_Little.dcm")
    frames = np.stack([ds.pixel_array, ds.pixel_array])
    ds.NumberOfFrames = 2
    ds.PixelData = frames.tobytes()
    path = tmp_path / "two_frames.dcm"
    ds.save_as(path)
    with pytest.raises(InputError, match="multi-frame object \\(2 frames\\)"):
        read_radiograph(path)


@pytest.mark.parametrize("name,modality", [("rtstruct.dcm", "RTSTRUCT"), ("rtdose.dcm", "RTDOSE"),
                                           ("test-SR.dcm", "SR")])
def test_non_image_objects(name, modality):
    with pytest.raises(InputError, match=f"is a {modality} object"):
        read_radiograph(get_testdata_file(name))


def test_unsupported_transfer_syntax(tmp_path):
    ds = pydicom.dcmread(DICOM_DIR / "CR-RSNA-chest-JPEGbaseline.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile: no decoder exists
    path = tmp_path / "mpeg2.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError, match="unsupported transfer syntax"):
        read_radiograph(path)


@pytest.mark.parametrize("suffix, kind", [(".png", "PNG"), (".jpg", "JPEG")])
def test_colour_image(tmp_path, suffix, kind):
    from PIL import Image

    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / f"red{suffix}")
    with pytest.raises(InputError, match=f"red{suffix}: colour {kind}"):
        read_radiograph(tmp_path / f"red{suffix}")


def test_truncated_jpeg(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(tmp_path / "full.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:200])
    with pytest.raises(InputError, match="cut.jpg: not a readable JPEG image"):
        read_radiograph(tmp_path / "cut.jpg")


def _unblocked(fifo: Path, call, seconds: float = 10.0):
    """``call()`` in a thread; fails the test if it is still running after ``seconds`` (an ``open()`` blocked on the
    FIFO, released then by opening its other end, so that no thread is left behind)."""
    import os
    import threading

    box: dict = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a writer comes and goes: the blocked open() returns
        thread.join(seconds)
        pytest.fail(f"blocked on the FIFO {fifo} for {seconds} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.mark.parametrize("name", ["chest.png", "chest.dcm", "chest"])
def test_a_fifo_is_refused_by_name_and_never_opened(tmp_path, name):
    import os

    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=f"{name}: not a regular file \\(a FIFO\\)"):
        _unblocked(fifo, lambda: read_radiograph(fifo))
    assert _unblocked(fifo, lambda: is_own_output(fifo)) is False


def test_a_device_is_refused_by_name():
    with pytest.raises(InputError, match="/dev/zero: not a regular file \\(a character device\\)"):
        read_radiograph("/dev/zero")


def test_a_strip_is_refused_by_the_square_it_would_be_padded_to(tmp_path):
    """2×40000 is 80 000 pixels, but the load chain pads it to a 40000² square (6.4 GB of float32): the limit is
    checked on that square, from the header, before anything is decoded or padded."""
    from PIL import Image

    Image.new("L", (40000, 2)).save(tmp_path / "strip.png")
    with pytest.raises(InputError, match=f"strip.png: image is 2x40000 \\(padded to a 40000x40000 square for the "
                                         f"model\\), over the {MAX_PIXELS} pixel limit"):
        read_radiograph(tmp_path / "strip.png")
    ds = pydicom.dcmread(DICOM_DIR / "DX-NIH-chest-8bit.dcm")
    ds.Rows, ds.Columns = 40000, 2  # the header alone: refused before its pixel data is looked at
    ds.save_as(tmp_path / "strip.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="strip.dcm: image is 40000x2 \\(padded to a 40000x40000 square"):
        read_radiograph(tmp_path / "strip.dcm")


@pytest.mark.parametrize("name", WITH_PIXELS)
def test_simpleitk_decoder_agrees_with_pydicom(name):
    """Two independent decoders (pydicom plugins, GDCM via SimpleITK) give the same image. Baseline JPEG is lossy
    and IDCT implementations may round differently: one grey level of 8 bits is allowed there."""
    entry = next(e for e in MANIFEST if e["file"] == name)
    a, _ = read_radiograph(DICOM_DIR / name)
    b, meta = read_radiograph(DICOM_DIR / name, decoder="simpleitk")
    assert meta["decoder"] == "simpleitk"
    # one stored level through a window slightly narrower than 256 (Issue44: WW 255.1) is 1/254.1
    tolerance = 1 / 250 if entry["transfer_syntax"].startswith("JPEG Baseline") else 1e-6
    assert np.abs(a - b).max() <= tolerance


def test_pydicoms_complaint_about_a_file_names_the_file_once():
    """A malformed value (this file's StudyInstanceUID) is one UserWarning that starts with the file's path."""
    import warnings

    path = DICOM_DIR / "CR-ModalitySequenceLUT.dcm"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_radiograph(path)
    messages = [str(w.message) for w in caught if "Invalid value for VR UI" in str(w.message)]
    assert len(messages) == 1 and messages[0].startswith(f"{path}: Invalid value for VR UI"), messages
