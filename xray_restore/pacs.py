"""A DICOMweb PACS as batch source and sink: QIDO-RS search, WADO-RS retrieve, STOW-RS store-back.

Built on ``dicomweb-client``. Retrieved instances are staged as ``<staging>/<SOPInstanceUID>.dcm`` (written
atomically, skipped when already present), so a resumed batch neither re-downloads nor duplicates them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .dicom_writer import MANUFACTURER

__all__ = ["InstanceRef", "DicomWebNode", "run_pacs_batch"]


@dataclass(frozen=True)
class InstanceRef:
    study: str
    series: str
    sop: str


def _value(item: dict, tag: str) -> str:
    values = item.get(tag, {}).get("Value", [])
    return str(values[0]) if values else ""


class DicomWebNode:
    """A DICOMweb endpoint, e.g. ``http://127.0.0.1:8042/dicom-web`` (Orthanc's DICOMweb plugin).

    Searches leave out objects made by xray_restore (Manufacturer ``xray_restore``), so derived series stored
    back are never restored again."""

    def __init__(self, url: str) -> None:
        from dicomweb_client.api import DICOMwebClient

        self.url = url
        self.client = DICOMwebClient(url=url)

    def search(self, study_uids: Sequence[str] | None = None, date_range: str | None = None,
               modality: str | None = None) -> list[InstanceRef]:
        """Instances matching all given filters (QIDO-RS). ``date_range`` is ``YYYYMMDD-YYYYMMDD``."""
        filters: dict[str, str] = {}
        if date_range:
            filters["StudyDate"] = date_range
        if modality:
            filters["Modality"] = modality
        refs: list[InstanceRef] = []
        for study in study_uids or [None]:
            query = dict(filters)
            if study:
                query["StudyInstanceUID"] = study
            fields = ["Modality", "StudyDate", "Manufacturer"]
            for item in self.client.search_for_instances(search_filters=query, fields=fields):
                if _value(item, "00080070") == MANUFACTURER:
                    continue  # our own derived objects are never inputs
                refs.append(InstanceRef(_value(item, "0020000D"), _value(item, "0020000E"), _value(item, "00080018")))
        return sorted(set(refs), key=lambda r: (r.study, r.series, r.sop))

    def retrieve(self, ref: InstanceRef, staging: str | os.PathLike) -> Path | None:
        """WADO-RS retrieve one instance into ``staging`` (atomic; reused when already there).

        Returns None for an object written by xray_restore itself (when the search could not filter it)."""
        target = Path(staging) / f"{ref.sop}.dcm"
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        dataset = self.client.retrieve_instance(ref.study, ref.series, ref.sop)
        if str(dataset.get("Manufacturer", "")) == MANUFACTURER:
            return None
        tmp = target.with_name(f".{target.name}.tmp")
        dataset.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, target)
        return target

    def store(self, paths: Sequence[str | os.PathLike]) -> int:
        """STOW-RS the files; returns how many the node accepted (storing the same SOP UID again is idempotent)."""
        import pydicom

        if not paths:
            return 0
        datasets = [pydicom.dcmread(p) for p in paths]
        response = self.client.store_instances(datasets=datasets)
        failed = response.get("FailedSOPSequence", []) if response is not None else []
        return len(datasets) - len(failed)


def run_pacs_batch(
    url: str,
    output_dir: str | os.PathLike,
    study_uids: Sequence[str] | None = None,
    date_range: str | None = None,
    modality: str | None = None,
    store_back: bool = False,
    **batch_kwargs,
):
    """Query → retrieve into ``<output>/retrieved`` → :func:`~xray_restore.batch.run_batch` → optional STOW of the
    derived objects of every ``done`` input. Returns ``(BatchSummary, stored_count)``."""
    from .batch import Manifest, run_batch

    node = DicomWebNode(url)
    staging = Path(output_dir) / "retrieved"
    refs = node.search(study_uids, date_range, modality)
    for ref in refs:
        node.retrieve(ref, staging)
    if not refs:
        staging.mkdir(parents=True, exist_ok=True)
    summary = run_batch([staging], Path(output_dir) / "derived", manifest=Path(output_dir) / "manifest.sqlite",
                        **batch_kwargs)
    stored = 0
    if store_back:
        book = Manifest(Path(output_dir) / "manifest.sqlite")
        outputs = [o for r in book.rows() if r["state"] == "done" for o in r["outputs"] if o.endswith(".dcm")]
        book.close()
        stored = node.store(outputs)
    return summary, stored
