"""A DICOMweb PACS as batch source and sink: QIDO-RS search, WADO-RS retrieve, STOW-RS store-back.

Built on ``dicomweb-client``. UIDs a PACS returns are validated (DICOM PS3.5 §9.1: digits and dots, at most 64
characters) before they are used in a request, and never become paths: an instance is staged as
``<staging>/<sha256 of its study/series/SOP UIDs>.dcm`` (written atomically, skipped when already present), so a
resumed batch neither re-downloads nor duplicates it. An instance that cannot be retrieved (invalid UID, HTTP
error, not the object asked for) is recorded in the batch manifest as ``failed`` with the reason; the others go on.
With ``store_back`` only the derived objects of inputs not yet ``stored`` are sent (manifest state ``stored``), and
of those only what the PACS does not already hold (a QIDO-RS check first).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .readers import MANUFACTURER
from .errors import InputError
from .instances import InstanceRef, stage

__all__ = ["InstanceRef", "DicomWebNode", "open_node", "run_pacs_batch"]


def _value(item: dict, tag: str) -> str:
    values = item.get(tag, {}).get("Value", [])
    return str(values[0]) if values else ""


class DicomWebNode:
    """A DICOMweb endpoint, e.g. ``http://127.0.0.1:8042/dicom-web`` (Orthanc's DICOMweb plugin).

    Searches leave out objects made by xray_restore (Manufacturer ``xray_restore``), so derived series stored
    back are never restored again."""

    def __init__(self, url: str) -> None:
        try:
            from dicomweb_client.api import DICOMwebClient
        except ImportError as e:
            raise InputError(url, "dicomweb-client is not installed: pip install 'xray_restore[pacs]'") from e

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

        Returns None for an object written by xray_restore itself (when the search could not filter it). Raises
        :class:`InputError` for invalid UIDs, a failed request or an object that is not the one asked for."""
        ref.check()
        target = Path(staging) / ref.staged_name
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            dataset = self.client.retrieve_instance(ref.study, ref.series, ref.sop)
        except Exception as e:  # noqa: BLE001 - requests/HTTP errors of any kind: this instance fails, not the batch
            raise InputError(ref.key, f"WADO-RS retrieve failed ({type(e).__name__}: {e})") from None
        if str(dataset.get("SOPInstanceUID", "")) != ref.sop:
            raise InputError(ref.key, f"WADO-RS returned SOPInstanceUID {ascii(str(dataset.get('SOPInstanceUID')))}"
                                      ", not the instance asked for")
        return stage(dataset, target)

    def missing(self, paths: Sequence[str | os.PathLike]) -> list[str]:
        """The files among ``paths`` whose SOP instance the node does not hold yet (QIDO-RS, one query per study)."""
        import pydicom

        by_study: dict[str, list[tuple[str, str]]] = {}
        for path in paths:
            header = pydicom.dcmread(path, stop_before_pixels=True,
                                     specific_tags=["StudyInstanceUID", "SOPInstanceUID"])
            by_study.setdefault(str(header.StudyInstanceUID), []).append((str(path), str(header.SOPInstanceUID)))
        out = []
        for study, files in by_study.items():
            held = {_value(item, "00080018") for item in self.client.search_for_instances(
                search_filters={"StudyInstanceUID": study}, fields=["SOPInstanceUID"])}
            out.extend(path for path, sop in files if sop not in held)
        return out

    def store(self, paths: Sequence[str | os.PathLike]) -> int:
        """STOW-RS the files; returns how many the node accepted (storing the same SOP UID again is idempotent)."""
        import pydicom

        if not paths:
            return 0
        datasets = [pydicom.dcmread(p) for p in paths]
        response = self.client.store_instances(datasets=datasets)
        failed = response.get("FailedSOPSequence", []) if response is not None else []
        return len(datasets) - len(failed)


def open_node(url: str):
    """The PACS at ``url``: ``http(s)://…/dicom-web`` (DICOMweb) or ``dicom://AET@host:port`` (DIMSE)."""
    if url.startswith("dicom://"):
        from .dimse import DimseNode

        return DimseNode(url)
    return DicomWebNode(url)


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
    derived objects of every input ``done`` and not yet ``stored``. Returns ``(BatchSummary, stored_count)``; a
    store failure is kept in the summary's failures (the input stays ``done`` and is stored on the next run)."""
    from .batch import Manifest, check_batch_settings, run_batch

    settings = {k: v for k, v in batch_kwargs.items() if k not in ("seed", "scheduler", "retry_failed", "progress",
                                                                     "manifest")}
    check_batch_settings(**settings)  # a bad setting fails before any study is retrieved
    node = open_node(url)
    staging = Path(output_dir) / "retrieved"
    staging.mkdir(parents=True, exist_ok=True)
    manifest = Path(output_dir) / "manifest.sqlite"
    book = Manifest(manifest)
    try:
        for ref in node.search(study_uids, date_range, modality):
            try:
                node.retrieve(ref, staging)
            except InputError as e:
                book.add([(ref.key, ref.key)])
                book.mark(ref.key, "failed", f"retrieve: {e.reason}")
            else:
                book.remove([ref.key])  # retrieved now: its file has its own row
    finally:
        book.close()
    summary = run_batch([staging], Path(output_dir) / "derived", manifest=manifest, **batch_kwargs)
    stored = 0
    if store_back:
        book = Manifest(manifest)
        try:
            for row in book.rows():
                outputs = [o for o in row["outputs"] if o.endswith(".dcm")]
                if row["state"] != "done" or not outputs:
                    continue
                try:
                    # only what the PACS does not hold yet (e.g. a run killed after STOW, before this mark)
                    todo = node.missing(outputs)
                    accepted = node.store(todo) + len(outputs) - len(todo)
                except Exception as e:  # noqa: BLE001 - this input's store fails; it is retried next run
                    accepted, todo, reason = 0, [], f"store: STOW-RS failed ({type(e).__name__}: {e})"
                else:
                    reason = f"store: the PACS accepted {accepted} of {len(outputs)} objects"
                if accepted == len(outputs):
                    book.mark(row["key"], "stored", "", row["outputs"], row["blur_sigma"], row["sigma_y"])
                    stored += len(todo)
                else:
                    book.mark(row["key"], "done", reason, row["outputs"], row["blur_sigma"], row["sigma_y"])
                    summary.failures.append({"source": row["source"], "reason": reason})
            summary.counts = book.counts()
        finally:
            book.close()
    return summary, stored
