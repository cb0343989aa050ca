"""``RadiographReader``: DICOM projection radiographs and greyscale PNG / JPEG radiographs → [0, 1], bright = dense.

Every pixel decision lives here. For DICOM (pydicom with the installed JPEG / JPEG-LS / JPEG 2000 / RLE
decoders):

1. stored values → Modality LUT or Rescale Slope/Intercept (``apply_modality_lut``);
2. VOI LUT Sequence, else the first Window Center/Width (``apply_voi_lut(prefer_lut=True, index=0)``);
   a window's output range is the modality range [y_min, y_max] (PS3.3 C.11.2.1.2, as pydicom maps it),
   a VOI LUT's is its own value range; that range maps onto [0, 1]. Without VOI information the full
   Modality LUT / rescale range (over all stored values of ``BitsStored``) maps onto [0, 1];
3. MONOCHROME1, or Presentation LUT Shape INVERSE on MONOCHROME2, is inverted so that bright = dense.
   The photometric tag is honoured as written (a mislabelled file comes out inverted).

Arrays are returned as ``(rows, cols)`` (display orientation, no transpose). ``get_data`` meta carries only
what a derived object needs (UIDs, geometry, bits, photometric, mapping), never patient-identifying text.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.data import ImageReader
from monai.utils import ensure_tuple

from .errors import InputError

__all__ = ["RadiographReader", "read_radiograph", "is_own_output", "check_regular_file", "identifying_values",
           "MAX_PIXELS", "NON_IMAGE_MODALITIES", "IDENTIFYING_KEYWORDS"]

#: Refuse frames whose padded square holds more than this many pixels (a header can declare 65535², i.e. 8 GB at
#: 16 bits). The load chains pad a rows×cols frame to a max(rows, cols)² square (:class:`~xray_restore.transforms.
#: PadToSquare`), so that square, not rows×cols, is what an input costs: a 2×100000 strip would allocate 10¹⁰ pixels.
MAX_PIXELS = 10_000 * 10_000
#: Modalities of DICOM objects that are not projection images.
NON_IMAGE_MODALITIES = frozenset({"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "REG", "DOC"})
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
DICOM_SUFFIXES = (".dcm", ".dicom", "")


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def check_regular_file(path: str | os.PathLike) -> None:
    """Raise an InputError naming ``path`` unless it is a regular file (symlinks followed), without opening it: an
    ``open()`` of a FIFO blocks until a writer comes, a device can be read without end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
        raise InputError(path, f"not a regular file ({kind}); only regular files are read")


def _check_size(path: Path, rows: int, cols: int) -> None:
    """Refuse a frame whose padded square (what the load chain allocates, see :data:`MAX_PIXELS`) is too large."""
    side = max(rows, cols)
    if side * side > MAX_PIXELS:
        padded = "" if rows == cols else f" (padded to a {side}x{side} square for the model)"
        raise InputError(path, f"image is {rows}x{cols}{padded}, over the {MAX_PIXELS} pixel limit")


#: Header elements whose values identify a patient or a study; an error text can quote them (e.g. an output path
#: made of the Study Instance UID), and a report without identifiers must not.
IDENTIFYING_KEYWORDS = ("PatientName", "PatientID", "OtherPatientIDs", "PatientBirthDate", "AccessionNumber",
                        "StudyID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
                        "InstitutionName", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName")


def identifying_values(path: str | os.PathLike) -> tuple[str, ...]:
    """The values of :data:`IDENTIFYING_KEYWORDS` in a DICOM file's header (``()`` for anything else: a PNG, an
    unreadable file, a FIFO, which is never opened)."""
    import pydicom
    from pydicom.multival import MultiValue

    try:
        check_regular_file(path)
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=list(IDENTIFYING_KEYWORDS))
        values = [header.get(keyword) for keyword in IDENTIFYING_KEYWORDS]
    except Exception:  # noqa: BLE001 - whatever a broken file makes pydicom raise, it has nothing to give here
        return ()
    found = []
    for value in values:
        for item in (value if isinstance(value, (list, tuple, MultiValue)) else [value]):
            text = str(item or "").strip()
            if len(text) > 1:
                found.append(text)
    return tuple(dict.fromkeys(found))


def _read_dicom_dataset(path: Path, pixels: bool = True):
    """pydicom Dataset of ``path``; an InputError naming the file if unusable.

    ``pixels=False`` defers every large value (the pixel data stays on disk; its presence can still be checked)."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    try:
        try:
            ds = pydicom.dcmread(path, defer_size=None if pixels else "1 MB")
        except InvalidDicomError:
            # ACR-NEMA style: no preamble or file meta
            ds = pydicom.dcmread(path, force=True, defer_size=None if pixels else "1 MB")
    except (OSError, EOFError, ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as e:
        raise InputError(path, f"not a readable DICOM file ({type(e).__name__}: {e})") from e
    try:
        has_core = "SOPClassUID" in ds or "Rows" in ds or "Modality" in ds
    except Exception as e:  # noqa: BLE001 - a forced parse of a non-DICOM file can fail on any element
        raise InputError(path, f"not a DICOM file ({type(e).__name__})") from e
    if not has_core:
        raise InputError(path, "not a DICOM file (no SOP Class, Modality or Rows element)")
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        if not little:
            raise InputError(path, "big-endian data without file meta is not supported")
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return ds


def _spacing_of(ds) -> tuple[tuple[float, float] | None, str]:
    """The source's (row, column) spacing in mm and its plane: Pixel Spacing ("patient") when valid, else Imager
    Pixel Spacing ("detector"), else ``(None, "")``; an invalid value (e.g. ``0\\0``) counts as absent."""
    for keyword, plane in (("PixelSpacing", "patient"), ("ImagerPixelSpacing", "detector")):
        try:
            values = tuple(float(v) for v in (ds.get(keyword) or ()))
        except (TypeError, ValueError):
            continue
        if len(values) == 2 and min(values) > 0:
            return values, plane  # type: ignore[return-value]
    return None, ""


def _check_dicom_image(path: Path, ds) -> None:
    """Refuse what is not a single-frame greyscale radiograph, from its header alone."""
    modality = str(ds.get("Modality", "")).upper()
    if modality in NON_IMAGE_MODALITIES:
        name = getattr(ds.get("SOPClassUID"), "name", "unknown SOP class")
        raise InputError(path, f"is a {modality} object ({name}), not a radiograph image")
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputError(path, "has no Pixel Data (header-only object)")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise InputError(path, "float pixel data (parametric map) is not a radiograph")
    samples = int(ds.get("SamplesPerPixel", 1))
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(path, f"colour image ({photometric or 'no photometric'}, {samples} samples/pixel); "
                               "only MONOCHROME1/2 radiographs are supported")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(path, f"multi-frame object ({frames} frames); only single-frame radiographs are supported")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows < 2 or cols < 2:
        raise InputError(path, f"image is {rows}x{cols}; at least 2x2 is needed")
    _check_size(path, rows, cols)
    from pydicom.pixels import get_decoder

    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError as e:
            raise InputError(path, f"unsupported transfer syntax {syntax.name} ({syntax})") from e
        if not decoder.is_available:
            raise InputError(path, f"no installed decoder for transfer syntax {syntax.name} ({syntax})")


def _stored_value_probe(ds) -> np.ndarray:
    """Every possible stored value (≤ 65,536 of them) for the dataset's bit depth and sign."""
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    bits = min(bits, 16)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return np.arange(-(2 ** (bits - 1)), 2 ** (bits - 1), dtype=np.int64)
    return np.arange(0, 2**bits, dtype=np.int64)


def _modality_output_range(ds, windowed: bool) -> tuple[float, float]:
    """[y_min, y_max] of the Modality LUT / rescale output over all stored values (PS3.3 C.11.1).

    For a Modality LUT Sequence, windowing (pydicom) maps onto the descriptor's ``2**bits - 1``; without a window
    the LUT's own data range is used, since descriptors often declare 16 bits for 8-bit tables.
    """
    if "ModalityLUTSequence" in ds:
        item = ds.ModalityLUTSequence[0]
        if windowed:
            return 0.0, float(2 ** int(item.LUTDescriptor[2]) - 1)
        values = _modality_values(_stored_value_probe(ds), ds)
        return float(np.min(values)), float(np.max(values))
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        y_min, y_max = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    else:
        y_min, y_max = 0.0, 2.0**bits - 1
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        y_min, y_max = sorted((y_min * float(slope) + float(intercept), y_max * float(slope) + float(intercept)))
    return y_min, y_max


def _modality_values(stored: np.ndarray, ds) -> np.ndarray:
    """Modality LUT / rescale; integer-valued results stay integer (VOI LUT Sequences index with them)."""
    from pydicom.pixels import apply_modality_lut

    values = apply_modality_lut(stored, ds)
    if np.issubdtype(values.dtype, np.floating) and np.all(np.mod(values, 1) == 0):
        values = values.astype(np.int64)
    return values


def _decode_with_simpleitk(path: Path, ds) -> np.ndarray:
    """Stored values decoded by SimpleITK (GDCM).

    GDCM hands back MONOCHROME1 data inverted (``2**BitsStored - 1 - stored``) and rescaled by Rescale
    Slope/Intercept; both are undone here, so the LUT pipeline that follows is the same for both decoders.
    """
    import SimpleITK as sitk

    try:
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError as e:
        raise InputError(path, f"SimpleITK cannot decode the pixel data ({str(e).strip().splitlines()[-1]})") from e
    values = array.reshape(int(ds.Rows), int(ds.Columns)).astype(np.float64)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    values = (values - intercept) / slope
    if str(ds.PhotometricInterpretation).upper() == "MONOCHROME1":
        values = (2 ** int(ds.BitsStored) - 1) - values
    return np.rint(values).astype(np.int64)


def _unit_values(modality_input: np.ndarray, ds) -> tuple[np.ndarray, str]:
    """Steps 1–3 of the module docstring on stored values: ``(values in [0, 1] as float64, VOI kind)``.

    Element-wise, so it runs once over a table of stored values (:func:`_dicom_to_unit`), not over the image.
    """
    from pydicom.pixels import apply_voi_lut

    modality = _modality_values(modality_input, ds)
    if "VOILUTSequence" in ds:
        # VOI LUT: output spans the LUT's own values, over every possible input.
        values = apply_voi_lut(modality, ds, index=0, prefer_lut=True).astype(np.float64)
        probe = apply_voi_lut(_modality_values(_stored_value_probe(ds), ds), ds, index=0, prefer_lut=True)
        lo, hi, voi = float(np.min(probe)), float(np.max(probe)), "VOI LUT"
    elif "WindowCenter" in ds:
        # Window: output spans the modality range [y_min, y_max] (PS3.3 C.11.2.1.2), as pydicom maps it.
        values = apply_voi_lut(modality, ds, index=0, prefer_lut=True).astype(np.float64)
        (lo, hi), voi = _modality_output_range(ds, windowed=True), "window"
    else:
        values = modality.astype(np.float64)
        (lo, hi), voi = _modality_output_range(ds, windowed=False), "full range"
    unit = np.clip((values - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(values)
    if _inverted(ds):
        unit = 1.0 - unit
    return unit, voi


def _inverted(ds) -> bool:
    photometric = str(ds.PhotometricInterpretation).upper()
    shape = str(ds.get("PresentationLUTShape", "IDENTITY")).upper()
    return photometric == "MONOCHROME1" or (photometric == "MONOCHROME2" and shape == "INVERSE")


#: Stored-value types mapped through a lookup table (every value of the type evaluated once).
_TABLE_TYPES = {np.dtype(np.uint8): np.uint8, np.dtype(np.int8): np.uint8,
                np.dtype(np.uint16): np.uint16, np.dtype(np.int16): np.uint16}


def _to_unit(stored: np.ndarray, ds) -> tuple[np.ndarray, str]:
    """Stored values ``(rows, cols)`` → float32 [0, 1] and the VOI kind, with bounded memory.

    8/16-bit stored values (every radiograph) go through a table over all 2^8 / 2^16 values of their type, indexed
    by the raw bits: one float32 output and no float64 copy of the image (a 10000² 16-bit frame: 400 MB, not
    2.4 GB of temporaries). Values outside BitsStored are mapped exactly as the element-wise pipeline maps them.
    Wider integer types fall back to the element-wise pipeline in row strips.
    """
    unsigned = _TABLE_TYPES.get(stored.dtype)
    if unsigned is not None:
        n = np.iinfo(unsigned).max + 1
        table_input = np.arange(n, dtype=np.int64)
        if stored.dtype.kind == "i":  # two's complement: raw bits v stand for v - n above the sign bit
            table_input = np.where(table_input >= n // 2, table_input - n, table_input)
        table, voi = _unit_values(table_input, ds)
        # fancy indexing: no intp copy of the index (np.take makes one)
        return table.astype(np.float32)[stored.view(unsigned)], voi
    out = np.empty(stored.shape, np.float32)
    voi = "full range"
    for start in range(0, stored.shape[0], 256):
        out[start : start + 256], voi = _unit_values(stored[start : start + 256], ds)
    return out, voi


def _dicom_to_unit(path: Path, ds, decoder: str = "pydicom") -> tuple[np.ndarray, dict]:
    if decoder == "simpleitk":
        stored = _decode_with_simpleitk(path, ds)
    else:
        try:
            stored = ds.pixel_array
        except Exception as e:  # noqa: BLE001 - decoders raise many unrelated types for corrupt data
            raise InputError(path, f"pixel data cannot be decoded ({type(e).__name__}: {e})") from e
    if stored.ndim != 2:
        raise InputError(path, f"decoded pixel array has shape {stored.shape}; expected one 2-D frame")
    if "PixelData" in ds:
        del ds.PixelData  # the encoded bytes are not needed once decoded (half the frame again in memory)
    unit, voi = _to_unit(stored, ds)
    del stored
    photometric = str(ds.PhotometricInterpretation).upper()
    invert = _inverted(ds)
    spacing, plane = _spacing_of(ds)
    meta = {
        "format": "dicom",
        "modality": str(ds.get("Modality", "")),
        "body_part_examined": str(ds.get("BodyPartExamined", "")),  # the anatomy gate's (not identifying)
        "view_position": str(ds.get("ViewPosition", "")),
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "study_instance_uid": str(ds.get("StudyInstanceUID", "")),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "pixel_spacing": list(spacing) if spacing else [1.0, 1.0],
        "pixel_spacing_known": bool(spacing),
        "pixel_spacing_plane": plane,  # "patient" (Pixel Spacing), "detector" (Imager Pixel Spacing only) or ""
        "bits_stored": int(ds.get("BitsStored", 8)),
        "bits_allocated": int(ds.get("BitsAllocated", 8)),
        "pixel_representation": int(ds.get("PixelRepresentation", 0)),
        "photometric_interpretation": photometric,
        "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
        "voi": voi,
        "inverted": invert,
        "decoder": decoder,
    }
    return unit, meta


def _raster_to_unit(path: Path, kind: str) -> tuple[np.ndarray, dict]:
    """A greyscale PNG or JPEG (``kind``: ``"png"`` / ``"jpeg"``, as its signature says) → [0, 1], bright = dense
    (as ChestX-ray14, CheXpert and MIMIC-CXR-JPG store them). 8 or 16 bits; a colour file with equal channels
    (within 2 levels, as a JPEG of a grey image decodes) is read as grey."""
    from PIL import Image, UnidentifiedImageError

    label = kind.upper()

    try:
        with Image.open(path) as im:
            width, height = im.size
            _check_size(path, height, width)  # checked before decoding (PIL's own bomb check comes later)
            im.load()
            mode = im.mode
            if mode in ("LA", "RGBA") and im.getchannel("A").getextrema()[1] == 0:
                raise InputError(path, f"fully transparent {label} (alpha is 0 everywhere): no image to restore")
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)
                scale = 65535.0 if mode != "I" or arr.max() > 255 else 255.0
            elif mode in ("L", "P", "LA"):
                arr, scale = np.asarray(im if mode == "L" else im.convert("L"), dtype=np.float32), 255.0
            elif mode in ("RGB", "RGBA"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
                if np.abs(rgb - rgb[..., :1]).max() > 2:
                    raise InputError(path, f"colour {label} (RGB channels differ); radiographs must be greyscale")
                arr, scale = np.asarray(im.convert("L"), dtype=np.float32), 255.0
            else:
                raise InputError(path, f"unsupported {label} mode {mode!r}")
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        raise InputError(path, f"image is too large to decode safely ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(path, f"not a readable {label} image ({type(e).__name__}: {e})") from e
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise InputError(path, f"{label} has shape {arr.shape}; expected a 2-D image of at least 2x2")
    meta = {
        "format": kind,
        "rows": int(arr.shape[0]),
        "columns": int(arr.shape[1]),
        "pixel_spacing": [1.0, 1.0],
        "pixel_spacing_known": False,
        "bits_stored": 16 if scale > 255 else 8,
        "photometric_interpretation": "MONOCHROME2",
        "voi": "none",
        "inverted": False,
    }
    arr /= np.float32(scale)  # in place: a 10000² image is 400 MB per float32 copy
    return arr, meta


OWN_SOFTWARE = "xray_restore"  # written into every PNG output (tEXt "Software") so it is never taken as an input
MANUFACTURER = "xray_restore"  # the Manufacturer of every derived DICOM object: never taken as an input either
# how the Series Description of every derived series begins (a PACS that drops Manufacturer from C-FIND still shows it)
OWN_SERIES_PREFIXES = ("Computer-restored", "Unchanged copy: no blur found")


def is_own_output(source: str | os.PathLike) -> bool:
    """Whether a file was written by xray_restore (a DICOM with our Manufacturer, a PNG with our Software tag)."""
    source = str(source)
    try:
        check_regular_file(source)  # a FIFO is never opened here (open() would block for ever)
    except InputError:
        return False
    lower = source.lower()
    if lower.endswith(".png"):
        from PIL import Image

        try:
            with Image.open(source) as im:
                return str(im.info.get("Software", "")).startswith(OWN_SOFTWARE)
        except (OSError, ValueError, Image.DecompressionBombError):
            return False
    if not lower.endswith((".dcm", ".dicom")):
        return False
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(source, stop_before_pixels=True, specific_tags=["Manufacturer"])
    except (InvalidDicomError, OSError, ValueError):
        return False
    return str(header.get("Manufacturer", "")) == MANUFACTURER


def _raster_kind(head: bytes) -> str | None:
    """``"png"`` or ``"jpeg"`` from a file's first bytes, ``None`` for anything else (read as DICOM). A DICOM
    file's ``DICM`` prefix wins over whatever its 128-byte preamble holds."""
    if head[128:132] == b"DICM":
        return None
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    return None


def read_radiograph(path: str | os.PathLike, decoder: str = "pydicom") -> tuple[np.ndarray, dict]:
    """Read one DICOM, PNG or JPEG radiograph as ``(rows, cols)`` float32 in [0, 1] (bright = dense) and its meta.

    ``decoder`` picks who decodes DICOM pixel data: ``"pydicom"`` (pylibjpeg / openjpeg / pyjpegls plugins) or
    ``"simpleitk"`` (GDCM), e.g. for a transfer syntax only GDCM handles. Headers and the LUT pipeline are the
    same either way.

    Raises:
        InputError: missing, not a regular file (a FIFO, device, socket, folder), unreadable, non-image, colour,
            multi-frame, undecodable or oversized (its padded square over :data:`MAX_PIXELS`) input.
    """
    if decoder not in ("pydicom", "simpleitk"):
        raise ValueError(f"decoder must be 'pydicom' or 'simpleitk', got {decoder!r}.")
    path = Path(path)
    check_regular_file(path)
    with open(path, "rb") as f:
        head = f.read(132)
    kind = _raster_kind(head)
    if kind is not None:
        image, meta = _raster_to_unit(path, kind)
    else:
        # pydicom's complaints about this file's values (UserWarnings) are shown once each, with the file's name;
        # any other warning passes on as it was raised. (catch_warnings is process-wide, not per thread: a reader
        # running beside another thread's may take that one's warnings for its own.)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = _read_dicom_dataset(path)
            _check_dicom_image(path, ds)
            image, meta = _dicom_to_unit(path, ds, decoder)
        about_file = [w for w in caught if issubclass(w.category, UserWarning)]
        for message in dict.fromkeys(str(w.message) for w in about_file):
            warnings.warn(f"{path}: {message}", UserWarning, stacklevel=2)
        for w in caught:
            if not issubclass(w.category, UserWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    meta["filename_or_obj"] = str(path)
    return image, meta


class RadiographReader(ImageReader):
    """MONAI ``ImageReader`` for DICOM, PNG and JPEG radiographs, for ``LoadImage(reader=RadiographReader())``.

    The array is ``(rows, cols)`` float32 in [0, 1] with bright = dense (see the module docstring for the
    DICOM LUT pipeline); the meta carries the fields a derived DICOM needs, plus ``spatial_shape``,
    ``original_channel_dim = "no_channel"`` and an identity-orientation affine scaled by the pixel spacing.
    """

    def __init__(self, decoder: str = "pydicom") -> None:
        super().__init__()
        if decoder not in ("pydicom", "simpleitk"):
            raise ValueError(f"decoder must be 'pydicom' or 'simpleitk', got {decoder!r}.")
        self.decoder = decoder

    def verify_suffix(self, filename: Sequence[str] | str) -> bool:
        return all(Path(f).suffix.lower() in RASTER_SUFFIXES + DICOM_SUFFIXES for f in ensure_tuple(filename))

    def read(self, data: Sequence[str] | str, **kwargs) -> list[str]:
        """Only collects the paths: decoding and validation happen in :meth:`get_data`, so that an
        :class:`InputError` reaches the caller instead of making ``LoadImage`` fall back to other readers."""
        return [str(f) for f in ensure_tuple(data)]

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        paths = img if isinstance(img, list) else [img]
        if len(paths) != 1:
            raise ValueError(f"RadiographReader loads one radiograph at a time, got {len(paths)}.")
        array, meta = read_radiograph(paths[0], self.decoder)
        meta = dict(meta)
        row_mm, col_mm = meta["pixel_spacing"]
        meta["spatial_shape"] = np.asarray(array.shape)
        meta["original_channel_dim"] = float("nan")
        meta["affine"] = np.diag([row_mm, col_mm, 1.0])
        meta["original_affine"] = meta["affine"].copy()
        meta["pixel_spacing"] = np.asarray(meta["pixel_spacing"])
        return array, meta
