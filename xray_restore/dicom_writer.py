"""Derived DICOM objects for restored radiographs (highdicom Secondary Capture from the source dataset).

Each restored image becomes a new SOP instance in its own new series of the source study: Patient and
Study modules copied from the source (``SCImage.from_ref_dataset``), ``ImageType`` DERIVED\\SECONDARY, a
Derivation Description naming method and parameters, Derivation Code and Source Image Sequence referencing
the input, a Series Description saying it is computer-restored, Burned In Annotation NO, MONOCHROME2 on 8
or 16 bits, and the pixel spacing of the written grid.

UIDs are derived deterministically (``pydicom.uid.generate_uid`` with entropy sources) from the org root, the
source SOP Instance UID and the provenance, so a re-run writes the same object instead of a duplicate.
Files are written as ``<out>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm`` under a temporary name, then renamed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import InputError
from .readers import MANUFACTURER  # the reader recognises our objects by it

__all__ = ["UID_ROOT", "MANUFACTURER", "DerivedObject", "derivation_description", "write_derived"]

#: Org root for generated UIDs (pydicom's registered root; override for a site's own root).
UID_ROOT = "1.2.826.0.1.3680043.8.498."
DEFAULT_SERIES_NUMBER = 9001


@dataclass(frozen=True)
class DerivedObject:
    """One written derived instance."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    kind: str  # "restored" or "uncertainty"


def derivation_description(provenance: dict) -> str:
    """Short (≤ 1024 chars) text naming method, parameters, operator and model version."""
    method = provenance.get("method", "DDRM")
    if provenance.get("unchanged"):
        model = f"; model {provenance['model_version']}" if provenance.get("model_version") else ""
        return f"{provenance['unchanged']}: pixels unchanged from the source, no {method} restoration{model}"[:1024]
    parts = [f"{method} deblurring"]
    inferer = provenance.get("inferer", {})
    keys = ("num_steps", "spacing", "eta", "eta_b", "sigma_y", "num_samples")
    params = ", ".join(f"{k}={inferer[k]}" for k in keys if k in inferer)
    if params:
        parts.append(params)
    if provenance.get("estimated"):
        parts.append(f"{' and '.join(provenance['estimated'])} estimated from this image")
    op = provenance.get("operator", {})
    if op:
        parts.append(f"operator {op.get('name', 'GaussianBlur')} sigma={op.get('sigma')} px threshold={op.get('threshold')}"
                     f" at {op.get('size')}x{op.get('size')}")
    if provenance.get("model_version"):
        parts.append(f"model {provenance['model_version']}")
    if provenance.get("output_mode") == "detail":
        parts.append("computed at 64x64; source detail finer than 64x64 kept (src + up(restored - down(src)))")
    else:
        parts.append("computed at 64x64, resampled to the source grid")
    return "; ".join(parts)[:1024]


def _uid(*entropy: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(prefix=UID_ROOT, entropy_srcs=list(entropy))


def _to_pixels(image: np.ndarray, bits: int, rows_per_strip: int = 512) -> np.ndarray:
    """[0, 1] → unsigned stored values on ``bits`` bits, in row strips (no full-size float temporaries)."""
    levels = 2**bits - 1
    out = np.empty(image.shape, np.uint8 if bits == 8 else np.uint16)
    for start in range(0, image.shape[0], rows_per_strip):
        strip = np.clip(image[start : start + rows_per_strip], 0.0, 1.0) * levels
        out[start : start + rows_per_strip] = np.round(strip, out=strip)
    return out


#: Lossy transfer syntaxes and the Lossy Image Compression Method (0028,2114) defined term of each.
LOSSY_METHODS = {"1.2.840.10008.1.2.4.50": "ISO_10918_1", "1.2.840.10008.1.2.4.51": "ISO_10918_1",
                 "1.2.840.10008.1.2.4.81": "ISO_14495_1", "1.2.840.10008.1.2.4.91": "ISO_15444_1",
                 "1.2.840.10008.1.2.4.203": "ISO_15444_15"}
#: Modalities of projection radiographs that a derived Secondary Capture keeps (PS3.3 C.7.3.1.1.1 defined terms).
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "RF", "XA", "RG", "IO", "PX", "OT"})


def _carry_clinical_context(sc, ds, bits: int, kind: str) -> None:
    """What a PACS viewer and a radiologist need from the source, carried into a derived object.

    Modality stays the source's (a CR stays CR, not OT); Laterality is copied when the source has one and absent
    otherwise (Type 2C: a chest is unpaired); BodyPartExamined is copied; a lossy history is never reset
    (PS3.3 C.7.6.1.1.5: "01" with the source's ratio and method, or the method of a lossy transfer syntax); the
    window displays the derived values as the source displayed (they are already the source's VOI output, mapped
    linearly onto the full range of the stored bits).
    """
    from pydicom.multival import MultiValue

    modality = str(ds.get("Modality", "")).upper()
    if modality in PROJECTION_MODALITIES:
        sc.Modality = modality
    # a paired organ's side: the series' Laterality, else the image's (e.g. a mammogram's ImageLaterality)
    laterality = str(ds.get("Laterality", "") or "").strip() or str(ds.get("ImageLaterality", "") or "").strip()
    if laterality not in ("R", "L"):
        laterality = ""  # "U"/"B" (ImageLaterality only) are not Laterality values
    body_part = str(ds.get("BodyPartExamined", "") or "").strip()
    if body_part:
        sc.BodyPartExamined = body_part
    if laterality:
        sc.Laterality = laterality
    elif body_part:  # a named, unpaired body part (a chest): Laterality absent, not empty
        if "Laterality" in sc:
            del sc.Laterality
    else:  # unknown body part: present and empty ("unknown"), as Type 2C allows
        sc.Laterality = None
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    lossy = str(ds.get("LossyImageCompression", "")) == "01" or syntax in LOSSY_METHODS
    if lossy:
        sc.LossyImageCompression = "01"
        methods = ds.get("LossyImageCompressionMethod") or LOSSY_METHODS.get(syntax)
        ratios = ds.get("LossyImageCompressionRatio")
        if methods:
            sc.LossyImageCompressionMethod = methods
        def count(value) -> int:
            return len(value) if isinstance(value, (list, MultiValue)) else 1

        if ratios and methods and count(ratios) == count(methods):  # the two are paired value by value
            sc.LossyImageCompressionRatio = ratios
    if kind == "restored":
        levels = 2**bits
        sc.WindowCenter, sc.WindowWidth = f"{(levels - 1) / 2:g}", f"{levels:g}"
        sc.VOILUTFunction = "LINEAR"
        sc.WindowCenterWidthExplanation = "source display (its VOI already applied)"


def _atomic_save(dataset, path: Path) -> None:
    with atomic_path(path) as tmp:
        dataset.save_as(tmp, enforce_file_format=True)


def _sanitized_reference(ds):
    """A copy of the source whose unparseable dates/times (e.g. ``00000000``) are emptied, so that highdicom can
    copy the Patient/Study modules; the source file itself is never touched."""
    from pydicom.valuerep import DA, TM

    ref = ds.copy()
    for keyword, vr in (("PatientBirthDate", DA), ("StudyDate", DA), ("StudyTime", TM), ("PatientBirthTime", TM)):
        value = ref.get(keyword)
        if value in (None, ""):
            continue
        try:
            vr(str(value))
        except ValueError:
            setattr(ref, keyword, "")
    if str(ref.get("PatientSex", "")).upper() not in ("", "M", "F", "O"):
        ref.PatientSex = ""  # e.g. "?": not a defined term
    return ref


def _secondary_capture(hd, ds, image, bits, series_uid, series_number, sop_uid, spacing, equipment):
    """highdicom ``SCImage.from_ref_dataset`` with our fixed choices (MONOCHROME2, Explicit VR LE).

    highdicom warns about unusual person names *quoting them*; those warnings are silenced so that no patient or
    physician name reaches the logs."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
        return _from_ref(hd, ds, image, bits, series_uid, series_number, sop_uid, spacing, equipment)


def _from_ref(hd, ds, image, bits, series_uid, series_number, sop_uid, spacing, equipment):
    return hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ds,
        pixel_array=_to_pixels(image, bits),
        photometric_interpretation="MONOCHROME2",
        bits_allocated=bits,
        coordinate_system="PATIENT",
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        pixel_spacing=tuple(float(v) for v in spacing) if spacing else None,
        # highdicom requires an orientation for the PATIENT coordinate system and accepts single letters only;
        # the caller replaces this placeholder by the source's value verbatim (e.g. "FL"), or leaves it empty
        # (Type 2) if the source has none, so no orientation is ever invented.
        patient_orientation=("L", "F"),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        contributing_equipment=[equipment],
    )


def write_derived(
    source: str | os.PathLike,
    restored: np.ndarray,
    out_dir: str | os.PathLike,
    provenance: dict,
    uncertainty: np.ndarray | None = None,
    series_number: int = DEFAULT_SERIES_NUMBER,
) -> list[DerivedObject]:
    """Write the restored image (and optionally its per-pixel std) as derived objects of ``source``.

    Args:
        source: the source DICOM file (never modified or overwritten).
        restored: ``(rows, cols)`` in [0, 1], bright = dense, on the source grid.
        out_dir: output root.
        provenance: ``{"method", "inferer": {...}, "operator": {...}, "model_version"}``, recorded in the object.
        uncertainty: optional ``(rows, cols)`` std in [0, 1] units; written as a second series (scaled ×4,
            clipped, see its Derivation Description).
        series_number: Series Number of the restored series (the uncertainty series gets ``+1``).

    Raises:
        InputError: the source is not a usable DICOM image, or the array does not match its grid.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from .readers import _check_dicom_image, _read_dicom_dataset

    source = Path(source)
    ds = _read_dicom_dataset(source, pixels=False)  # the header is all a derived object takes from its source
    _check_dicom_image(source, ds)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if restored.shape != (rows, cols):
        raise InputError(source, f"restored image is {restored.shape}, the source grid is {(rows, cols)}")
    unusable = {}  # source UIDs a derived object cannot carry: what is wrong with each
    for key in ("StudyInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        if key not in ds or not str(ds[key].value or ""):
            unusable[key] = "missing"
        elif not ds[key].value.is_valid:
            unusable[key] = f"not a valid UID ({ascii(str(ds[key].value))[1:-1][:64]})"
    ds = _sanitized_reference(ds)
    notes = []
    if "StudyInstanceUID" in unusable:  # a new study, derived from the source's content: stable across runs
        ds.StudyInstanceUID = _uid("study", str(provenance.get("source_sha256", "")), str(source.name),
                                   str(ds.get("SOPInstanceUID", "")))
        notes.append(f"source StudyInstanceUID {unusable['StudyInstanceUID']}: placed in a new study")
    referenced = "SOPInstanceUID" not in unusable and "SOPClassUID" not in unusable
    for key in ("SOPInstanceUID", "SOPClassUID"):
        if key in unusable:
            notes.append(f"source {key} {unusable[key]}: the source is not referenced")
    bits = 8 if int(ds.get("BitsStored", 8)) <= 8 else 16
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if spacing is not None and (len(spacing) != 2 or min(float(v) for v in spacing) <= 0):
        spacing = None  # absent or invalid (e.g. 0\0) in the source: not written rather than invented
    orientation_known = len(ds.get("PatientOrientation", []) or []) == 2
    out_root = Path(out_dir)
    stamp = json.dumps(provenance, sort_keys=True, default=str)
    outputs = [("restored", restored, derivation_description(provenance), series_number)]
    if uncertainty is not None:
        if uncertainty.shape != (rows, cols):
            raise InputError(source, f"uncertainty map is {uncertainty.shape}, the source grid is {(rows, cols)}")
        outputs.append(("uncertainty", np.clip(uncertainty * 4.0, 0, 1),
                        "per-pixel posterior std of " + derivation_description(provenance) + "; displayed value = 4 x std",
                        series_number + 1))
    written = []
    for kind, image, description, number in outputs:
        series_uid = _uid(str(ds.StudyInstanceUID), stamp, kind, "series")
        sop_uid = _uid(str(ds.get("SOPInstanceUID", "")), stamp, kind)
        equipment = hd.ContributingEquipment(
            manufacturer=MANUFACTURER,
            purpose_of_reference=codes.DCM.ProcessingEquipment,
            manufacturer_model_name=str(provenance.get("method", "DDRM")),
            software_versions=str(provenance.get("software_version", "unknown")),
        )
        try:
            sc = _secondary_capture(hd, ds, image, bits, series_uid, number, sop_uid, spacing, equipment)
        except ValueError as e:
            raise InputError(source, f"header cannot be copied into a derived object ({e})") from e
        sc.PatientOrientation = list(ds.PatientOrientation) if orientation_known else None
        _carry_clinical_context(sc, ds, bits, kind)
        sc.SeriesDescription = ("Computer-restored (DDRM deblurred)" if kind == "restored"
                                else "Computer-restored: DDRM uncertainty (std)") + " - not for diagnosis"
        sc.DerivationDescription = description
        derivation = hd.sr.CodedConcept(*codes.DCM.ImageProcessing)  # type: ignore[misc]
        sc.DerivationCodeSequence = [derivation]
        reference = hd.sr.CodedConcept(*codes.DCM.SourceImageForImageProcessingOperation)  # type: ignore[misc]
        from pydicom.dataset import Dataset

        if referenced:
            item = Dataset()
            item.ReferencedSOPClassUID = ds.SOPClassUID
            item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
            item.PurposeOfReferenceCodeSequence = [reference]
            sc.SourceImageSequence = [item]
        sc.BurnedInAnnotation = "NO"
        sc.ImageComments = ("Computed at 64x64 by xray_restore; "
                            + ("source detail above the 64x64 band kept" if provenance.get("output_mode") == "detail"
                               else "resampled to the source grid") + "; research use only."
                            + "".join(f" {n}." for n in notes))
        path = out_root / str(ds.StudyInstanceUID) / series_uid / f"{sop_uid}.dcm"
        if path.resolve() == source.resolve():
            raise InputError(source, "output path equals the input; refusing to overwrite an input")
        _atomic_save(sc, path)
        written.append(DerivedObject(path, sop_uid, series_uid, str(ds.StudyInstanceUID), kind))
    return written
