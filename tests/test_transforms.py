"""The declarative chains on every real sample, their inverse, and the Degrade transform."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xray_restore.errors import InputError
from xray_restore.operators import GaussianBlur
from xray_restore.readers import read_radiograph
from xray_restore.transforms import Degraded, PadToSquare, apply_chain, load_chain

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MANIFEST = json.loads((SHARED / "dicom" / "manifest.json").read_text())
DICOMS = [SHARED / "dicom" / e["file"] for e in MANIFEST if e["pixel_data"] == "yes"]
PNGS = sorted((SHARED / "cxr14_png").glob("*.png"))


@pytest.fixture(scope="module")
def dicom_chain():
    return load_chain("dicom")


@pytest.mark.parametrize("path", DICOMS + PNGS, ids=lambda p: p.name)
def test_every_sample_reaches_model_space(path, dicom_chain):
    chain = dicom_chain if path.suffix == ".dcm" else load_chain("cxr14_png")
    out = apply_chain(chain, {"image": str(path)})["image"]
    assert out.shape == (1, 64, 64)
    assert -1.0 <= out.min() and out.max() <= 1.0 and out.std() > 0.01


def test_header_only_dicom_error_names_the_file(dicom_chain):
    path = SHARED / "dicom" / "CR-HeaderOnly-CR000000.dcm"
    with pytest.raises(InputError, match="CR-HeaderOnly-CR000000.dcm: has no Pixel Data"):
        apply_chain(dicom_chain, {"image": str(path)})


def test_png_and_dicom_of_the_same_image_agree_with_the_cache(cxr14_cache):
    cache = np.load(cxr14_cache)
    idx = int(np.where(cache["train_names"] == "00000002_000.png")[0][0])
    reference = cache["train_images"][idx].astype(np.float64)
    for chain, path in (("cxr14_png", SHARED / "cxr14_png" / "00000002_000.png"),
                        ("dicom", SHARED / "dicom" / "DX-NIH-chest-8bit.dcm")):
        unit = apply_chain(load_chain(chain, id="unit_range"), {"image": str(path)})["image"][0].numpy()
        mse = np.mean((unit * 255 - reference) ** 2)
        assert mse < 0.6, (chain, mse)  # the data README: the DICOM's box-filtered version is within MSE 0.5


def test_non_square_is_padded_not_cropped():
    image, _ = read_radiograph(SHARED / "dicom" / "CR-Issue44_Monochrome1-Jpeg.dcm")  # 2446 x 2010
    padded = PadToSquare()(torch.from_numpy(image)[None])
    assert padded.shape == (1, 2446, 2446)
    left = (2446 - 2010) // 2
    assert torch.equal(padded[0, :, left : left + 2010], torch.from_numpy(image))
    assert padded[0, :, :left].abs().max() == 0


@pytest.mark.parametrize("chain", ["dicom", "cxr14_png"])
def test_chains_pad_with_the_mirror_of_the_image(chain):
    """The load chains pad a non-square radiograph with its own mirror image, as the blur operator's symmetric
    borders assume: a blurred input stays a blurred image across the padding (zeros would add a sharp edge that
    reads as "no blur"). At the source size (no resize) the pad is exactly the mirrored rows / columns, and the
    inverse gives the source back."""
    path = SHARED / "dicom" / "CR-Issue44_Monochrome1-Jpeg.dcm"  # 2446 x 2010
    image, _ = read_radiograph(path)
    forward = load_chain(chain, id="unit_range", spatial_size=2446)
    padded = apply_chain(forward, {"image": str(path)})["image"][0]
    left = (2446 - 2010) // 2
    source = torch.from_numpy(image)
    assert torch.equal(padded[:, left : left + 2010], source)
    assert torch.equal(padded[:, :left], source[:, :left].flip(1))
    assert torch.equal(padded[:, left + 2010 :], source[:, -(2446 - 2010 - left) :].flip(1))


@pytest.mark.parametrize("name", ["DX-NIH-chest-8bit.dcm", "CR-Issue44_Monochrome1-Jpeg.dcm"])
def test_forward_inverse_round_trip_on_full_size_image(name):
    """Model grid → source grid: the error equals that of a 64-pixel band limit, nothing more.

    Expected error: downsample to 64 (box) and upsample bilinearly loses detail above 64 cycles/image. We
    compute exactly that loss with torch on the padded square (independently of the chains) and require the
    chain's round trip to match it to 1e-4; the round trip must also keep the geometry (same shape, high
    correlation with the source)."""
    path = SHARED / "dicom" / name
    forward = load_chain("dicom", id="unit_range")
    data = apply_chain(forward, {"image": str(path)})
    data["pred"] = data["image"].clone()
    back = load_chain("output", id="postprocessing", preprocessing=forward)
    restored = back(data)
    source, meta = read_radiograph(path)
    bits = restored["pred_bits_stored"]
    result = restored["pred"][0].float().numpy() / (2**bits - 1)
    assert result.shape == source.shape
    rows, cols = source.shape
    side = max(rows, cols)
    square = torch.zeros(1, 1, side, side)
    top, left = (side - rows) // 2, (side - cols) // 2
    square[0, 0, top : top + rows, left : left + cols] = torch.from_numpy(source)
    small = torch.nn.functional.adaptive_avg_pool2d(square, 64)
    up = torch.nn.functional.interpolate(small, size=(side, side), mode="bilinear", align_corners=False)
    expected = up[0, 0, top : top + rows, left : left + cols].numpy()
    quantisation = 1.0 / (2**bits - 1)
    assert np.abs(result - expected).max() < quantisation + 1e-4
    assert np.corrcoef(result.ravel(), source.ravel())[0, 1] > 0.9


def test_degraded_matches_operator_and_is_reproducible():
    op = GaussianBlur()
    x = torch.rand(1, 64, 64)
    t = Degraded(keys="y", operator=op, sigma_y=0.0, quantize_bits=None)
    out = t({"image": x})
    assert torch.allclose(out["y"], op.H(x[None].double())[0].float(), atol=1e-6)
    noisy = Degraded(keys="y", operator=op, sigma_y=0.01, quantize_bits=8).set_random_state(3)
    a = noisy({"image": x})["y"]
    b = Degraded(keys="y", operator=op, sigma_y=0.01, quantize_bits=8).set_random_state(3)({"image": x})["y"]
    assert torch.equal(a, b)
    assert torch.equal(torch.round(a * 255), a * 255)  # 8-bit levels


def test_unknown_chain():
    with pytest.raises(ValueError, match="unknown chain"):
        load_chain("nifti")


@pytest.mark.parametrize("shape, window", [((1024, 1024), ((0, 64), (0, 64))), ((1024, 832), ((0, 64), (6, 58))),
                                           ((832, 1024), ((6, 58), (0, 64))), ((1000, 777), ((0, 64), (8, 56)))])
def test_model_window_is_the_footprint_of_the_padded_source(shape, window):
    """The model pixels wholly inside a padded source: an all-ones source zero-padded and area-resized as the
    chains do is exactly 1 there and below 1 elsewhere (1000x777: the footprint spans columns 7.10 ... 56.83)."""
    from xray_restore.transforms import AreaResize, model_window

    assert model_window(shape, 64) == window
    ones = AreaResize((64, 64))(PadToSquare()(torch.ones(1, *shape)))[0]
    (r0, r1), (c0, c1) = window
    inside = torch.zeros(64, 64, dtype=torch.bool)
    inside[r0:r1, c0:c1] = True
    assert torch.allclose(ones[inside], torch.ones(())) and (ones[~inside] < 1 - 1e-4).all()
