"""xray_restore: DDRM deblurring of chest radiographs inside a MONAI / DICOM workflow."""

from __future__ import annotations

__version__ = "0.1.0"
