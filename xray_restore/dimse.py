"""A DIMSE PACS (most hospital PACS and modality routers) as batch source and sink, with pynetdicom.

``dicom://CALLED_AET@host:port`` names the node (``dicom://host:port`` calls it ``ANY-SCP``). The same contract as
:class:`~xray_restore.pacs.DicomWebNode`, so :func:`~xray_restore.pacs.run_pacs_batch` drives either:

* ``search`` — C-FIND (Study Root): studies by UID / date / modality, then their series, then their instances;
* ``retrieve`` — C-GET of one instance into the staging folder (the node's C-STORE sub-operations arrive on the same
  association; the file is written atomically under a name made from a hash of its UIDs, never from a UID);
* ``missing`` / ``store`` — C-FIND of the derived SOP instances the node already holds, C-STORE of the rest, with
  the transfer syntaxes negotiated per object (its own, explicit and implicit VR little endian).

UIDs the node returns are validated (:meth:`InstanceRef.check`) before they are used; objects written by
xray_restore (Manufacturer ``xray_restore``) are never taken as inputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from .errors import InputError
from .instances import InstanceRef, stage
from .readers import MANUFACTURER, OWN_SERIES_PREFIXES

__all__ = ["DimseNode", "parse_dimse_url"]

CALLING_AET = "XRAY_RESTORE"
_URL = re.compile(r"^dicom://(?:(?P<aet>[^@/]{1,16})@)?(?P<host>[^:/@]+):(?P<port>\d{1,5})/?$")


def parse_dimse_url(url: str) -> tuple[str, str, int]:
    """``dicom://AET@host:port`` → (called AE title, host, port)."""
    match = _URL.match(url)
    if not match:
        raise InputError(url, "not a DIMSE address; expected dicom://AET@host:port")
    return match["aet"] or "ANY-SCP", match["host"], int(match["port"])


def _storage_contexts():
    """The storage SOP classes a radiograph (or a derived Secondary Capture) can arrive as."""
    from pynetdicom import sop_class as sc

    names = ("ComputedRadiographyImageStorage", "DigitalXRayImageStorageForPresentation",
             "DigitalXRayImageStorageForProcessing", "DigitalMammographyXRayImageStorageForPresentation",
             "DigitalMammographyXRayImageStorageForProcessing", "SecondaryCaptureImageStorage",
             "XRayRadiofluoroscopicImageStorage", "XRayAngiographicImageStorage",
             "DigitalIntraOralXRayImageStorageForPresentation")
    return [getattr(sc, n) for n in names]


class DimseNode:
    """A DIMSE Query/Retrieve + Storage SCP, e.g. Orthanc's DICOM port."""

    def __init__(self, url: str, calling_aet: str = CALLING_AET, timeout: float = 30.0) -> None:
        try:
            import pynetdicom  # noqa: F401
        except ImportError as e:
            raise InputError(url, "pynetdicom is not installed: pip install 'xray_restore[pacs]'") from e
        self.url = url
        self.called_aet, self.host, self.port = parse_dimse_url(url)
        self.calling_aet = calling_aet
        self.timeout = timeout

    # ------------------------------------------------------------------------------------- association
    def _associate(self, contexts, roles=(), handlers=()):
        from pynetdicom import AE

        ae = AE(ae_title=self.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        for context, syntaxes in contexts:
            if syntaxes:
                ae.add_requested_context(context, syntaxes)
            else:
                ae.add_requested_context(context)
        assoc = ae.associate(self.host, self.port, ae_title=self.called_aet, ext_neg=list(roles),
                             evt_handlers=list(handlers))
        if not assoc.is_established:
            raise InputError(self.url, "association rejected or the node is unreachable")
        return assoc

    def _find(self, level: str, keys: dict) -> list:
        from pydicom.dataset import Dataset
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

        query = Dataset()
        query.QueryRetrieveLevel = level
        for key, value in keys.items():
            setattr(query, key, value)
        assoc = self._associate([(StudyRootQueryRetrieveInformationModelFind, None)])
        try:
            found = []
            for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
                if status is None:
                    raise InputError(self.url, "C-FIND: no response (timeout or aborted association)")
                if status.Status in (0xFF00, 0xFF01) and identifier is not None:
                    found.append(identifier)
                elif status.Status not in (0x0000, 0xFF00, 0xFF01):
                    raise InputError(self.url, f"C-FIND failed with status 0x{status.Status:04X}")
            return found
        finally:
            assoc.release()

    # --------------------------------------------------------------------------------------- contract
    def search(self, study_uids: Sequence[str] | None = None, date_range: str | None = None,
               modality: str | None = None):
        """Instances matching all given filters: studies (C-FIND STUDY) → series → instances."""
        studies = []
        for study in study_uids or [None]:
            keys = {"StudyInstanceUID": study or "", "StudyDate": date_range or ""}
            studies += [str(s.StudyInstanceUID) for s in self._find("STUDY", keys)]
        refs = set()
        for study in sorted(set(studies)):
            for series in self._find("SERIES", {"StudyInstanceUID": study, "SeriesInstanceUID": "",
                                                "Modality": modality or "", "Manufacturer": "",
                                                "SeriesDescription": ""}):
                if str(series.get("Manufacturer", "")) == MANUFACTURER or str(
                        series.get("SeriesDescription", "")).startswith(OWN_SERIES_PREFIXES):
                    continue  # our own derived series are never inputs
                series_uid = str(series.SeriesInstanceUID)
                for item in self._find("IMAGE", {"StudyInstanceUID": study, "SeriesInstanceUID": series_uid,
                                                 "SOPInstanceUID": ""}):
                    refs.add(InstanceRef(study, series_uid, str(item.get("SOPInstanceUID", ""))))
        return sorted(refs, key=lambda r: (r.study, r.series, r.sop))

    def retrieve(self, ref, staging: str | os.PathLike) -> Path | None:
        """C-GET one instance into ``staging`` (atomic; reused when already there); None for our own objects."""
        from pydicom.dataset import Dataset
        from pynetdicom import build_role, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

        ref.check()
        target = Path(staging) / ref.staged_name
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        received: list = []

        def on_store(event):
            ds = event.dataset
            ds.file_meta = event.file_meta
            received.append(ds)
            return 0x0000

        storage = _storage_contexts()
        contexts = [(StudyRootQueryRetrieveInformationModelGet, None)] + [(cx, None) for cx in storage]
        roles = [build_role(cx, scp_role=True) for cx in storage]
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID, query.SeriesInstanceUID, query.SOPInstanceUID = ref.study, ref.series, ref.sop
        assoc = self._associate(contexts, roles, [(evt.EVT_C_STORE, on_store)])
        try:
            statuses = [s.Status for s, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
                        if s is not None]
        except Exception as e:  # noqa: BLE001 - network errors of any kind: this instance fails, not the batch
            raise InputError(ref.key, f"C-GET failed ({type(e).__name__}: {e})") from None
        finally:
            assoc.release()
        if not received:
            last = f"0x{statuses[-1]:04X}" if statuses else "no response"
            raise InputError(ref.key, f"C-GET returned no object (status {last})")
        dataset = received[0]
        if str(dataset.get("SOPInstanceUID", "")) != ref.sop:
            raise InputError(ref.key, "C-GET returned another object than the one asked for")
        return stage(dataset, target)

    def missing(self, paths: Sequence[str | os.PathLike]) -> list[str]:
        """The files among ``paths`` whose SOP instance the node does not hold yet (C-FIND IMAGE)."""
        import pydicom

        out = []
        for path in paths:
            header = pydicom.dcmread(path, stop_before_pixels=True,
                                     specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
            held = self._find("IMAGE", {"StudyInstanceUID": str(header.StudyInstanceUID),
                                        "SeriesInstanceUID": str(header.SeriesInstanceUID),
                                        "SOPInstanceUID": str(header.SOPInstanceUID)})
            if not held:
                out.append(str(path))
        return out

    def store(self, paths: Sequence[str | os.PathLike]) -> int:
        """C-STORE the files; returns how many the node accepted."""
        import pydicom
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

        if not paths:
            return 0
        datasets = [pydicom.dcmread(p) for p in paths]
        contexts = {}
        for ds in datasets:
            syntaxes = contexts.setdefault(str(ds.SOPClassUID), [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
            own = str(ds.file_meta.TransferSyntaxUID)
            if own not in syntaxes:
                syntaxes.insert(0, own)
        assoc = self._associate(list(contexts.items()))
        try:
            accepted = 0
            for ds in datasets:
                status = assoc.send_c_store(ds)
                accepted += int(status is not None and status.Status in (0x0000, 0xB000, 0xB007, 0xB006))
            return accepted
        finally:
            assoc.release()
