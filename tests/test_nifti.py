"""NIfTI export: restored image and posterior std as .nii.gz with the source's pixel spacing."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

from xray_restore.readers import read_radiograph
from xray_restore.restore import Restorer

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "dicom" / "CR-ModalitySequenceLUT.dcm"  # 1576×1976, 0.15 mm


def test_a_dicom_restored_to_nifti_keeps_its_grid_and_spacing(tmp_path):
    restorer = Restorer.from_bundle(REPO / "bundles" / "xray_ddrm", output_format="nifti", blur_sigma=2.0,
                                    anatomy_gate=None, num_steps=3, force=True)
    (r,) = restorer.restore([SOURCE], num_samples=2, output_dir=tmp_path)
    restored, std = (Path(p) for p in r.outputs)
    assert restored.name.endswith("_restored.nii.gz") and std.name.endswith("_std.nii.gz")
    assert not list(tmp_path.rglob("*.dcm"))  # NIfTI instead of a derived DICOM series
    ds = pydicom.dcmread(SOURCE, stop_before_pixels=True)
    image = nib.load(restored)
    assert image.shape == (ds.Columns, ds.Rows, 1)  # i along the columns, j along the rows
    assert np.allclose(image.header.get_zooms(), (float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0]), 1.0))
    assert image.header.get_xyzt_units()[0] == "mm"
    data = image.get_fdata()[:, :, 0].T
    np.testing.assert_allclose(data, r.restored, atol=1e-6)  # the same pixels the DICOM path would write
    assert 0.0 <= data.min() and data.max() <= 1.0
    source, _ = read_radiograph(SOURCE)
    assert data.shape == source.shape
    spread = nib.load(std).get_fdata()
    assert spread.shape == image.shape and spread.min() >= 0 and spread.max() > 0
    assert "DDRM" in image.header["descrip"].tobytes().decode()
