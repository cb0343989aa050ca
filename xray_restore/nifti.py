"""NIfTI-1 export of restored radiographs (and their posterior std) for research pipelines (nibabel).

A projection radiograph has no 3-D patient geometry, so none is invented: the volume is ``(columns, rows, 1)``
(i along the columns, j along the rows, as ``image.T``), its affine a pure scaling by the source's pixel spacing
in mm (column spacing, row spacing, 1; unit voxels when the source gives none), qform/sform code "scanner". Values
are float32 in [0, 1], bright = dense. Files are ``<stem>_<hash>_restored.nii.gz`` (and ``…_std.nii.gz``), written
atomically, with the derivation text in the header's ``descrip`` (80 characters) and in a JSON sidecar.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path, atomic_write_text

__all__ = ["write_nifti", "to_nifti"]


def to_nifti(image: np.ndarray, spacing: tuple[float, float] | None, description: str = ""):
    """``(rows, cols)`` in [0, 1] and its (row, column) spacing in mm → a ``nibabel.Nifti1Image``."""
    import nibabel as nib

    row, col = spacing if spacing is not None else (1.0, 1.0)
    affine = np.diag([float(col), float(row), 1.0, 1.0])
    nifti = nib.Nifti1Image(np.asarray(image, np.float32).T[:, :, None], affine)
    nifti.header.set_xyzt_units("mm" if spacing is not None else "unknown")
    nifti.header.set_qform(affine, code=1)
    nifti.header.set_sform(affine, code=1)
    nifti.header["descrip"] = description.encode("ascii", "replace")[:79]
    return nifti


def write_nifti(source: str | os.PathLike, restored: np.ndarray, out_dir: str | os.PathLike,
                spacing: tuple[float, float] | None, std: np.ndarray | None = None, description: str = ""
                ) -> list[Path]:
    """Write the restoration (and ``std``) of ``source`` as ``.nii.gz`` files in ``out_dir``; returns their paths."""
    digest = hashlib.sha256(str(Path(source).resolve()).encode()).hexdigest()[:10]
    stem = f"{Path(source).stem}_{digest}"
    written = []
    for kind, image in (("restored", restored), ("std", std)):
        if image is None:
            continue
        target = Path(out_dir) / f"{stem}_{kind}.nii.gz"
        data = gzip.compress(to_nifti(image, spacing, description).to_bytes(), mtime=0)  # reproducible bytes
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        written.append(target)
    sidecar = Path(out_dir) / f"{stem}_restored.json"
    atomic_write_text(sidecar, json.dumps({"source": Path(source).name, "description": description,
                                           "pixel_spacing_mm": list(spacing) if spacing else None,
                                           "axes": "i = columns, j = rows (image.T); values in [0, 1]"}, indent=2))
    return written
