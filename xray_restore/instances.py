"""A PACS instance as the batch sees it: its validated UIDs, its staging name, and how a retrieved copy is staged.

Shared by the DICOMweb (:mod:`xray_restore.pacs`) and DIMSE (:mod:`xray_restore.dimse`) nodes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_path
from .errors import InputError
from .readers import MANUFACTURER

__all__ = ["InstanceRef", "stage"]


@dataclass(frozen=True)
class InstanceRef:
    study: str
    series: str
    sop: str

    @property
    def key(self) -> str:
        """The manifest key of an instance that could not be staged (UIDs shown escaped)."""
        from .batch import REMOTE_PREFIX

        return REMOTE_PREFIX + "/".join(ascii(v)[1:-1] for v in (self.study, self.series, self.sop))

    @property
    def staged_name(self) -> str:
        """A file name made from a hash of the UIDs (a UID never becomes a path)."""
        digest = hashlib.sha256("\\".join((self.study, self.series, self.sop)).encode("utf-8", "replace"))
        return f"{digest.hexdigest()[:40]}.dcm"

    def check(self) -> None:
        """Raise :class:`InputError` naming the instance if any UID is not a valid DICOM UID."""
        from pydicom.uid import UID

        for name, value in (("StudyInstanceUID", self.study), ("SeriesInstanceUID", self.series),
                            ("SOPInstanceUID", self.sop)):
            if not value or not UID(value).is_valid:
                raise InputError(self.key, f"the PACS returned an invalid {name} {ascii(value)}; not retrieved")


def stage(dataset, target: Path) -> Path | None:
    """Write a retrieved instance to its staging name atomically; None (nothing written) for our own objects."""
    if str(dataset.get("Manufacturer", "")) == MANUFACTURER:
        return None
    with atomic_path(target) as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    return target
