"""PNG export of a restored radiograph from a PNG source: same bit depth, the derivation in its text chunks.

Files are ``<stem>_<hash>_restored.png`` (the hash of the source path keeps two sources of one stem apart), written
atomically (a temporary name, then a rename). The ``Software`` chunk marks the file as this tool's output, so it is
never restored again (:func:`~xray_restore.readers.is_own_output`); ``Description`` holds the derivation text.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .stored import output_bits, to_stored

__all__ = ["write_png"]


def write_png(source: str | os.PathLike, restored: np.ndarray, output_dir: str | os.PathLike, bits_stored: int = 8,
              description: str = "", software_version: str = "") -> Path:
    """Write ``restored`` ``(rows, cols)`` in [0, 1] (or its stored values, :func:`~xray_restore.stored.to_stored`)
    for ``source`` into ``output_dir``: 16-bit where the source stores more than 8 bits, else 8-bit. Returns the path
    written."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from .readers import OWN_SOFTWARE

    digest = hashlib.sha256(str(Path(source).resolve()).encode()).hexdigest()[:10]
    target = Path(output_dir) / f"{Path(source).stem}_{digest}_restored.png"  # unique per source path
    info = PngInfo()
    info.add_text("Software", f"{OWN_SOFTWARE} {software_version}".strip())
    info.add_text("Description", description)
    pixels = to_stored(restored, output_bits(bits_stored))  # in row strips: no full-size float temporaries
    with atomic_path(target) as tmp:
        Image.fromarray(pixels).save(tmp, pnginfo=info)
    return target
