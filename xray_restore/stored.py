"""[0, 1] images → unsigned stored values, in row strips: what every writer does last, with bounded memory.

A 10000² float32 image is 400 MB; ``np.round(np.clip(x, 0, 1) * 255)`` makes three more of it. Strips of 512 rows
make one strip's worth of float32 temporaries instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["output_bits", "to_stored"]


def output_bits(bits_stored: int) -> int:
    """The bits a PNG or DICOM output stores for a source storing ``bits_stored``: 8, or 16 above 8."""
    return 8 if int(bits_stored) <= 8 else 16


def to_stored(image: np.ndarray, bits: int, rows_per_strip: int = 512) -> np.ndarray:
    """``image`` ``(rows, cols)`` in [0, 1] (clipped) → values on ``bits`` bits, rounded half to even
    (``np.round``): ``uint8`` for 8 bits, else ``uint16``. An array already of that unsigned type is returned as it
    is (stored values made earlier, so that the float image could be freed first)."""
    if not 1 <= int(bits) <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}.")
    if image.dtype.kind == "u":
        wanted = np.uint8 if int(bits) == 8 else np.uint16
        if image.dtype != wanted:
            raise ValueError(f"stored values are {image.dtype}, {bits}-bit output needs {np.dtype(wanted)}.")
        return image
    levels = 2 ** int(bits) - 1
    out = np.empty(image.shape, np.uint8 if int(bits) == 8 else np.uint16)
    for start in range(0, image.shape[0], rows_per_strip):
        strip = np.clip(image[start : start + rows_per_strip], 0.0, 1.0) * levels
        out[start : start + rows_per_strip] = np.round(strip, out=strip)
    return out
