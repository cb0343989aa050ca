"""Derived DICOM objects for restored radiographs (highdicom, from the source dataset).

Each restored image becomes a Secondary Capture in its own new series of the source study: Patient and
Study modules copied from the source (``SCImage.from_ref_dataset``), ``ImageType`` DERIVED\\SECONDARY, a
Derivation Description naming method and parameters (the samples really drawn), Derivation Code and Source Image
Sequence referencing the input, a Series Description saying it is computer-restored, Burned In Annotation NO,
MONOCHROME2 on 8 or 16 bits, the source's Modality, body part, laterality, lossy history and display window, and the
source's spacing with its meaning (:func:`_carry_spacing`). The posterior std (with several samples) is a highdicom
Parametric Map in a second series, whose Real World Value Mapping gives the std in the restored image's intensity
units; a source a map cannot reference gets a scaled Secondary Capture instead.

UIDs are derived deterministically (``pydicom.uid.generate_uid`` with entropy sources) from the org root, the
source SOP Instance UID and the provenance, so a re-run writes the same object instead of a duplicate.
Files are written as ``<out>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm`` under a temporary name, then renamed.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import InputError
from .stored import output_bits, to_stored
from .readers import MANUFACTURER, OWN_SERIES_PREFIXES  # the reader recognises our objects by them

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
        return (f"{provenance['unchanged']}: pixels unchanged from the source as displayed (its window and polarity), "
                f"no {method} restoration{model}")[:1024]
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
        sigma = op.get("sigma")
        sigma = (f"{sigma[0]} px (vertical) x {sigma[1]} px (horizontal)" if isinstance(sigma, (list, tuple))
                 else f"{sigma} px")
        parts.append(f"operator {op.get('name', 'GaussianBlur')} sigma={sigma} threshold={op.get('threshold')}"
                     f" at {op.get('size')}x{op.get('size')}")
    if provenance.get("model_version"):
        parts.append(f"model {provenance['model_version']}")
    if provenance.get("output_mode") == "detail":
        parts.append("computed at 64x64; source detail finer than 64x64 kept (src + up(restored - down(src)))")
    else:
        parts.append("computed at 64x64, resampled to the source grid")
    return "; ".join(parts)[:1024]


def series_description(kind: str, unchanged: bool = False, method: str = "DDRM") -> str:
    """Series Description (LO, ≤ 64 chars) of a derived series: what a PACS user sees in the study list.

    ``kind`` ``"restored"`` or ``"uncertainty"``; ``unchanged``: a forced copy of an input with no blur at the model
    scale, whose pixels are the source's (it must not claim to be deblurred); ``method``: the provenance's method,
    named by its first word (``"DDRM"``, ``"predict_refine"``) where it fits.
    """
    label, suffix = method.split(" ")[0], " - not for diagnosis"
    if kind == "restored":
        options = [OWN_SERIES_PREFIXES[1]] if unchanged else [f"{OWN_SERIES_PREFIXES[0]} ({label} deblurred)",
                                                              f"{OWN_SERIES_PREFIXES[0]} (deblurred)"]
    else:
        options = [f"{OWN_SERIES_PREFIXES[0]}: {label} uncertainty (std)",
                   f"{OWN_SERIES_PREFIXES[0]}: {label} uncertainty", f"{OWN_SERIES_PREFIXES[0]}: uncertainty"]
    return next(text for text in options if len(text + suffix) <= 64) + suffix


def _uid(*entropy: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(prefix=UID_ROOT, entropy_srcs=list(entropy))


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


def _carry_spacing(sc, ds, spacing, imager_spacing) -> str:
    """Keep the source's spacing *semantics* on the derived grid (the source grid); returns a note for the
    Image Comments ("" if none).

    A Secondary Capture has Pixel Spacing only (Basic Pixel Spacing Calibration Macro; Imager Pixel Spacing is not
    in its IOD). A source's Pixel Spacing is written with its calibration type and description. A source with only
    Imager Pixel Spacing (most CR/DX/MG: detector plane, not corrected for geometric magnification) gets Pixel
    Spacing equal to it and *no* calibration type, which is what PS3.3 10.7.1.1 defines an uncalibrated Pixel
    Spacing to be; the Image Comments say so in words.
    """
    if spacing is not None:
        for keyword in ("PixelSpacingCalibrationType", "PixelSpacingCalibrationDescription"):
            if keyword in sc:
                del sc[keyword]
        kind = str(ds.get("PixelSpacingCalibrationType", "") or "").strip()
        text = str(ds.get("PixelSpacingCalibrationDescription", "") or "").strip()
        if kind and text:  # the description is required with a type (1C): both or neither
            sc.PixelSpacingCalibrationType, sc.PixelSpacingCalibrationDescription = kind, text
        return ""
    if imager_spacing is not None:
        return ("Pixel Spacing is the source's Imager Pixel Spacing (detector plane, not corrected for geometric "
                "magnification)")
    return ""


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


def _displayed_std(std: np.ndarray, bits: int, rows_per_strip: int = 512) -> np.ndarray:
    """4 × std, clipped to [0, 1], as stored values on ``bits`` bits (``std`` in [0, 1] units, or uint16 stored as
    std × :data:`STD_LEVELS`), in row strips."""
    out = np.empty(std.shape, np.uint8 if bits == 8 else np.uint16)
    for start in range(0, std.shape[0], rows_per_strip):
        strip = std[start : start + rows_per_strip]
        strip = strip / np.float32(STD_LEVELS) if strip.dtype == np.uint16 else strip
        out[start : start + rows_per_strip] = to_stored(np.clip(strip * 4.0, 0, 1), bits)
    return out


def _percentile(values: np.ndarray, q: float, rows_per_strip: int = 512) -> float:
    """``np.percentile(values, q)`` (linear interpolation) of unsigned integers, from a histogram built in row
    strips: no sorted copy of a 10000² map."""
    counts = np.zeros(2 ** (8 * values.dtype.itemsize), np.int64)
    for start in range(0, values.shape[0], rows_per_strip):
        counts += np.bincount(values[start : start + rows_per_strip].ravel(), minlength=counts.size)
    position = q / 100.0 * (values.size - 1)
    cumulative = np.cumsum(counts)
    lower = int(np.searchsorted(cumulative, int(np.floor(position)) + 1))  # the value at rank floor(position)
    upper = int(np.searchsorted(cumulative, int(np.ceil(position)) + 1))
    return lower + (upper - lower) * (position - np.floor(position))


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
        pixel_array=to_stored(image, bits),
        photometric_interpretation="MONOCHROME2",
        bits_allocated=bits,
        coordinate_system="PATIENT",
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        pixel_spacing=spacing,
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
        uncertainty: optional ``(rows, cols)`` std in [0, 1] units (float), or its 16-bit stored values (``uint16``,
            std × (2¹⁶ − 1), :func:`~xray_restore.stored.to_stored`); written as a second series (a Parametric Map,
            or scaled ×4 and clipped where the source cannot be referenced, see its Derivation Description).
        series_number: Series Number of the restored series (the uncertainty series gets ``+1``).

    Raises:
        InputError: the source is not a usable DICOM image, or the array does not match its grid.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from .readers import _check_dicom_image, _read_dicom_dataset, _spacing_of

    source = Path(source)
    ds = _read_dicom_dataset(source, pixels=False)  # the header is all a derived object takes from its source
    _check_dicom_image(source, ds)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if restored.shape != (rows, cols):
        raise InputError(source, f"restored image is {restored.shape}, the source grid is {(rows, cols)}")
    unusable = {}  # source UIDs a derived object cannot carry: what is wrong with each
    with warnings.catch_warnings():  # pydicom's own complaint was shown, with the file's name, when it was read
        warnings.simplefilter("ignore", UserWarning)
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
    bits = output_bits(ds.get("BitsStored", 8))
    source_spacing, plane = _spacing_of(ds)  # Pixel Spacing if valid, else Imager Pixel Spacing
    spacing = source_spacing if plane == "patient" else None
    imager_spacing = source_spacing if plane == "detector" else None
    orientation_known = len(ds.get("PatientOrientation", []) or []) == 2
    out_root = Path(out_dir)
    stamp = json.dumps(provenance, sort_keys=True, default=str)
    if uncertainty is not None and uncertainty.shape != (rows, cols):
        raise InputError(source, f"uncertainty map is {uncertainty.shape}, the source grid is {(rows, cols)}")
    written = []

    def write_secondary_capture(kind: str, image: np.ndarray, description: str, number: int) -> None:
        series_uid = _uid(str(ds.StudyInstanceUID), stamp, kind, "series")
        sop_uid = _uid(str(ds.get("SOPInstanceUID", "")), stamp, kind)
        equipment = _equipment(hd, codes, provenance)
        try:
            sc = _secondary_capture(hd, ds, image, bits, series_uid, number, sop_uid, spacing or imager_spacing,
                                    equipment)
        except ValueError as e:
            raise InputError(source, f"header cannot be copied into a derived object ({e})") from e
        sc.PatientOrientation = list(ds.PatientOrientation) if orientation_known else None
        spacing_note = _carry_spacing(sc, ds, spacing, imager_spacing)
        _carry_clinical_context(sc, ds, bits, kind)
        sc.SeriesDescription = series_description(kind, bool(provenance.get("unchanged")),
                                                  provenance.get("method", "DDRM"))
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
        if provenance.get("unchanged"):
            made = ("Checked at 64x64 by xray_restore: no blur found, pixels unchanged from the source as displayed "
                    "(its window and polarity)")
        elif provenance.get("output_mode") == "detail":
            made = "Computed at 64x64 by xray_restore; source detail above the 64x64 band kept"
        else:
            made = "Computed at 64x64 by xray_restore; resampled to the source grid"
        sc.ImageComments = (made + "; research use only."
                            + "".join(f" {n}." for n in (*notes, spacing_note) if n))
        path = out_root / str(ds.StudyInstanceUID) / series_uid / f"{sop_uid}.dcm"
        if path.resolve() == source.resolve():
            raise InputError(source, "output path equals the input; refusing to overwrite an input")
        _atomic_save(sc, path)
        written.append(DerivedObject(path, sop_uid, series_uid, str(ds.StudyInstanceUID), kind))
    # one object at a time, each saved and let go before the next is made (a 10000² object holds 200 MB of pixels)
    write_secondary_capture("restored", restored, derivation_description(provenance), series_number)
    if uncertainty is not None:
        std_description = "per-pixel posterior std of " + derivation_description(provenance)
        uncertainty_object = None
        if referenced and str(ds.get("SeriesInstanceUID", "") or "") and ds.SeriesInstanceUID.is_valid:
            uncertainty_object = _uncertainty_object(hd, codes, ds, source, uncertainty, bits, stamp,
                                                     series_number + 1, provenance, std_description, out_root)
        if uncertainty_object is None:  # no Parametric Map for this source: a scaled Secondary Capture instead
            write_secondary_capture("uncertainty", _displayed_std(uncertainty, bits),
                                    (std_description + "; displayed value = 4 x std")[:1024], series_number + 1)
        else:
            pm, obj = uncertainty_object
            _atomic_save(pm, obj.path)
            written.append(obj)
    return written


def _uncertainty_object(hd, codes, ds, source: Path, std: np.ndarray, bits: int, stamp: str, series_number: int,
                        provenance: dict, description: str, out_root: Path):
    """The uncertainty Parametric Map of ``source`` and where it goes, or None when highdicom cannot derive one from
    this source's IOD (a classic multi-frame IOD such as XRF without functional groups)."""
    series_uid = _uid(str(ds.StudyInstanceUID), stamp, "uncertainty", "series")
    sop_uid = _uid(str(ds.get("SOPInstanceUID", "")), stamp, "uncertainty")
    try:
        pm = _uncertainty_map(hd, ds, std, bits, series_uid, series_number, sop_uid,
                              _equipment(hd, codes, provenance), provenance)
    except AttributeError:  # highdicom expects functional groups of a source whose IOD allows several frames
        return None
    except ValueError as e:
        raise InputError(source, f"header cannot be copied into a parametric map ({e})") from e
    pm.DerivationDescription = description[:1024]
    _carry_clinical_context(pm, ds, bits, "uncertainty")
    pm.PositionReferenceIndicator = None
    pm.SeriesDescription = series_description("uncertainty", method=provenance.get("method", "DDRM"))
    path = out_root / str(ds.StudyInstanceUID) / series_uid / f"{sop_uid}.dcm"
    return pm, DerivedObject(path, sop_uid, series_uid, str(ds.StudyInstanceUID), "uncertainty")


def _equipment(hd, codes, provenance: dict):
    return hd.ContributingEquipment(
        manufacturer=MANUFACTURER,
        purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=str(provenance.get("method", "DDRM")),
        software_versions=str(provenance.get("software_version", "unknown")),
    )


#: Stored values of the uncertainty Parametric Map: 16 bits, real value = stored / STD_LEVELS (intensity units).
STD_LEVELS = 2**16 - 1
#: Type 2 attributes of the Patient / General Study modules that a Parametric Map copies from its source.
_TYPE2_REFERENCE = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _uncertainty_map(hd, ds, std: np.ndarray, bits: int, series_uid: str, series_number: int, sop_uid: str,
                     equipment, provenance: dict):
    """The per-pixel posterior std as a highdicom Parametric Map with a Real World Value Mapping.

    Stored values are unsigned 16-bit; the mapping gives the std in the restored image's intensity units (a
    fraction of its display range: restored stored value / (2^b − 1)), so a viewer reads the real value directly.
    """
    from pydicom.dataset import Dataset

    from .readers import _spacing_of

    reference = Dataset()  # only what the map takes from its source (no Patient's Age etc. in a source's own VR)
    for keyword in (*_TYPE2_REFERENCE, "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID",
                    "Rows", "Columns", "PatientOrientation"):
        setattr(reference, keyword, ds.get(keyword))
    reference.file_meta = ds.file_meta
    # The Parametric Map IOD needs a Frame of Reference and plane geometry, which a projection radiograph does not
    # have: the map gets its own Frame of Reference (a new UID) whose unit position/orientation describe only the
    # map's pixel grid; Spatial Locations Preserved = YES ties it pixel for pixel to the source.
    reference.FrameOfReferenceUID = _uid(str(ds.SOPInstanceUID), "uncertainty", "frame of reference")
    spacing = _spacing_of(ds)[0] or (1.0, 1.0)
    reference.ImagePositionPatient, reference.ImageOrientationPatient = [0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    reference.PixelSpacing, reference.SliceThickness = list(spacing), 1.0
    stored = to_stored(std, 16)  # STD_LEVELS = 2¹⁶ − 1 levels, in row strips
    unit = hd.sr.CodedConcept("1", "UCUM", "no units")  # type: ignore[misc]
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="POSTERIOR_STD",
        lut_explanation=f"posterior std in restored stored value / {2**bits - 1}",  # LO: ≤ 64 characters
        unit=unit, value_range=(0, STD_LEVELS), slope=1.0 / STD_LEVELS, intercept=0.0)
    top = max(1.0, _percentile(stored, 99.5))
    voi = hd.VOILUTTransformation(window_center=top / 2, window_width=top,
                                  window_explanation="0 to the 99.5th percentile of the std")
    return _parametric_map(
        source_images=[reference], pixel_array=stored, series_instance_uid=series_uid,
        series_number=series_number, sop_instance_uid=sop_uid, instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=str(provenance.get("method", "DDRM")),
        software_versions=str(provenance.get("software_version", "unknown")), device_serial_number="0",
        contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
        voi_lut_transformations=[voi], content_label="UNCERTAINTY",
        pixel_measures=hd.PixelMeasuresSequence(pixel_spacing=spacing, slice_thickness=1.0),
        plane_orientation=hd.PlaneOrientationSequence("PATIENT", (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)),
        plane_positions=[hd.PlanePositionSequence("PATIENT", (0.0, 0.0, 0.0))],
        content_description="DDRM posterior std (research use only)", contributing_equipment=[equipment],
        image_flavor="STATIC", derived_pixel_contrast="STD_DEVIATION")


@functools.cache
def _projection_map_class():
    import highdicom as hd

    class ProjectionParametricMap(hd.pm.ParametricMap):
        """highdicom's Parametric Map for a source with no Frame of Reference (a projection radiograph).

        highdicom (0.28) declares a Frame Label dimension for such a map but leaves each frame's Frame Label and
        Dimension Index Values empty, then fails to index its own frames; they are filled here (one frame, label
        "UNCERTAINTY", index 1) just before highdicom indexes them.
        """

        def _build_luts(self) -> None:
            pointers = [int(item.DimensionIndexPointer) for item in self.get("DimensionIndexSequence", [])]
            if pointers == [0x00209453]:  # Frame Label only
                for item in self.get("PerFrameFunctionalGroupsSequence", []):
                    content = item.FrameContentSequence[0]
                    if not content.get("DimensionIndexValues"):
                        content.FrameLabel = "UNCERTAINTY"
                        content.DimensionIndexValues = [1]
            super()._build_luts()

    return ProjectionParametricMap


def _parametric_map(**kwargs):
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
        return _projection_map_class()(**kwargs)
