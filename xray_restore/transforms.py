"""MONAI transforms that MONAI lacks, and loading of the declarative chains in ``transforms/``.

Geometry convention (documented choice): a non-square radiograph is **padded** (centred) to a square, never
cropped, so no anatomy is lost; the square is then area-averaged to 64×64 (an exact box filter for integer
factors, as the ChestX-ray14 cache was made). Both steps are invertible; the inverse upsamples bilinearly and
removes the padding, giving the source grid back. The load chains pad with the image's own mirror
(``pad_mode: "symmetric"`` in ``transforms/*.json``), so a blurred radiograph stays a blurred image across the pad;
zeros put a sharp edge beside it that the estimator read as "no blur" (a 800×1024 radiograph blurred by σ = 2 px
at the model scale read 0.72 px with zeros, 1.98 px mirrored). Neither the estimator's regressor nor DDRM (with
``unknown_borders``) looks at the pad itself: :func:`model_window` gives them the source's footprint.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.config import KeysCollection
from monai.transforms import Compose, MapTransform, Randomizable, Resize, Resized, SpatialPad, SpatialPadd, Transform
from monai.utils import TraceKeys

from .errors import InputError
from .measurement import PROTOCOLS, measure
from .operators import SVDOperator

__all__ = [
    "PadToSquare",
    "model_window",
    "PadToSquared",
    "AreaResize",
    "AreaResized",
    "Degrade",
    "Degraded",
    "ToStoredValues",
    "ToStoredValuesd",
    "load_chain",
    "apply_chain",
    "CHAINS",
]

CHAINS = ("cxr14_png", "dicom", "output")


def model_window(source_shape: Sequence[int], size: int = 64) -> tuple[tuple[int, int], tuple[int, int]]:
    """The model pixels ``((r0, r1), (c0, c1))`` of a ``size × size`` grid that lie wholly inside a ``(rows, cols)``
    source's footprint once :class:`PadToSquare` (centred, the first side gets ``pad // 2``) and the area resize to
    ``size`` are applied; the pixels across the footprint's edge are part padding and left out."""
    rows, cols = (int(v) for v in source_shape[-2:])
    side = max(rows, cols)
    window = []
    for n in (rows, cols):
        before = (side - n) // 2
        lo, hi = math.ceil(before * size / side - 1e-9), math.floor((before + n) * size / side + 1e-9)
        window.append((lo, max(hi, lo + 2)) if hi - lo < 2 else (lo, hi))
    return window[0], window[1]


class PadToSquare(SpatialPad):
    """Pad a channel-first 2-D image ``(C, H, W)`` on both sides to ``(C, S, S)``, ``S = max(H, W)``: with zeros
    (``mode="constant"``) or the image's mirror (``"symmetric"``, as the load chains do; any MONAI pad mode).

    Invertible (MONAI's ``Pad.inverse`` crops the recorded padding away).
    """

    def __init__(self, mode: str = "constant", **kwargs) -> None:
        super().__init__(spatial_size=-1, method="symmetric", mode=mode, **kwargs)

    def compute_pad_width(self, spatial_shape: Sequence[int]) -> tuple[tuple[int, int], ...]:
        side = max(spatial_shape)
        self.spatial_size = (side,) * len(spatial_shape)
        return super().compute_pad_width(spatial_shape)


class PadToSquared(SpatialPadd):
    """Dictionary version of :class:`PadToSquare`."""

    def __init__(self, keys: KeysCollection, mode: str = "constant", allow_missing_keys: bool = False, **kwargs):
        super().__init__(keys, spatial_size=-1, mode=mode, allow_missing_keys=allow_missing_keys, **kwargs)
        self.padder = PadToSquare(mode=mode, **kwargs)


class AreaResize(Resize):
    """Area-average (box) resize to ``spatial_size``; its inverse upsamples with ``inverse_mode`` (bilinear)."""

    def __init__(self, spatial_size: Sequence[int] | int, inverse_mode: str = "bilinear", **kwargs) -> None:
        super().__init__(spatial_size=spatial_size, mode="area", **kwargs)
        self.inverse_mode = inverse_mode

    def inverse_transform(self, data: torch.Tensor, transform) -> torch.Tensor:
        transform = dict(transform)
        transform[TraceKeys.EXTRA_INFO] = {**transform[TraceKeys.EXTRA_INFO], "mode": self.inverse_mode,
                                           "align_corners": False}
        return super().inverse_transform(data, transform)


class AreaResized(Resized):
    """Dictionary version of :class:`AreaResize`."""

    def __init__(self, keys: KeysCollection, spatial_size: Sequence[int] | int, inverse_mode: str = "bilinear",
                 allow_missing_keys: bool = False, **kwargs) -> None:
        super().__init__(keys, spatial_size=spatial_size, mode="area", allow_missing_keys=allow_missing_keys, **kwargs)
        self.resizer = AreaResize(spatial_size=spatial_size, inverse_mode=inverse_mode, **kwargs)


class Degrade(Randomizable, Transform):
    """Simulate a measurement ``y = Q_b(H x + σ_y n)`` (:func:`xray_restore.measurement.measure`; values in [0, 1]).

    Args:
        operator: the blur (``H`` applies the exact operator, ``thresholded=True`` its thresholded form).
        sigma_y: noise std in [0, 1] units.
        quantize_bits: e.g. 8 to store y as 8-bit; None keeps float.
    """

    def __init__(self, operator: SVDOperator, sigma_y: float = 0.01, quantize_bits: int | None = 8,
                 thresholded: bool = False) -> None:
        if sigma_y < 0:
            raise ValueError(f"sigma_y must be >= 0, got {sigma_y}.")
        self.operator, self.sigma_y = operator, sigma_y
        self.quantize_bits, self.thresholded = quantize_bits, thresholded
        self._noise: np.ndarray | None = None

    @classmethod
    def from_protocol(cls, operator: SVDOperator, protocol: str) -> Degrade:
        settings = PROTOCOLS[protocol]
        return cls(operator, settings["sigma_y"], settings["quantize_bits"], thresholded=protocol == "case_study")

    def randomize(self, data: torch.Tensor) -> None:
        self._noise = self.R.standard_normal(tuple(data.shape))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """``img`` ``(1, N, N)`` in [0, 1] → y ``(1, N, N)``."""
        x = torch.as_tensor(img, dtype=torch.float64)
        if randomize:
            self.randomize(x)
        noise = torch.from_numpy(self._noise)[None]
        y = measure(x[None], self.operator, self.sigma_y, noise, self.quantize_bits, self.thresholded)[0]
        return y.to(torch.float32)


class Degraded(Randomizable, MapTransform):
    """Dictionary version of :class:`Degrade`: reads ``source_key`` and writes y to ``keys``; one draw per call."""

    def __init__(self, keys: KeysCollection, operator: SVDOperator, source_key: str = "image", sigma_y: float = 0.01,
                 quantize_bits: int | None = 8, thresholded: bool = False) -> None:
        super().__init__(keys)
        self.source_key = source_key
        self.degrade = Degrade(operator, sigma_y, quantize_bits, thresholded)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Degraded:
        super().set_random_state(seed, state)
        self.degrade.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self.degrade.randomize(data)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(torch.as_tensor(d[self.source_key]))
        for key in self.keys:  # output keys: created here
            d[key] = self.degrade(d[self.source_key], randomize=False)
        return d


class ToStoredValues(Transform):
    """[0, 1] (bright = dense) → unsigned integers on ``bits`` bits, for a MONOCHROME2 derived object."""

    def __init__(self, bits: int = 12) -> None:
        if not 1 <= bits <= 16:
            raise ValueError(f"bits must be in [1, 16], got {bits}.")
        self.bits = bits

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        levels = 2**self.bits - 1
        return torch.round(torch.as_tensor(img).clamp(0, 1) * levels).to(torch.int32)


class ToStoredValuesd(MapTransform):
    """Dictionary version of :class:`ToStoredValues`; the bit depth comes from ``meta["bits_stored"]`` when present."""

    def __init__(self, keys: KeysCollection, default_bits: int = 12, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.default_bits = default_bits

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            meta = getattr(d[key], "meta", {}) or {}
            bits = int(min(max(int(meta.get("bits_stored", self.default_bits)), 8), 16))
            d[key] = ToStoredValues(bits)(d[key])
            d[f"{key}_bits_stored"] = bits
            d[f"{key}_note"] = "restored at 64x64 and resampled (bilinear) to the source grid"
        return d


def load_chain(name: str, id: str = "preprocessing", **overrides) -> Compose:
    """A declarative chain from ``transforms/<name>.json`` (installed as ``xray_restore.chains``).

    ``id`` picks the Compose inside the file (``preprocessing``: to [-1, 1] model space; ``unit_range``: the same
    grid in [0, 1], as the DDRM inferer takes it; ``postprocessing`` in ``output``). ``overrides`` replace ids of
    the file (e.g. ``image_key="y"``, ``preprocessing=<the forward Compose>`` for the output chain).
    """
    if name not in CHAINS:
        raise ValueError(f"unknown chain {name!r}; available: {', '.join(CHAINS)}.")
    text = resources.files("xray_restore.chains").joinpath(f"{name}.json").read_text()
    parser = ConfigParser(json.loads(text))
    for key, value in overrides.items():
        parser[key] = value
    if id not in parser.config:
        raise ValueError(f"chain {name!r} has no id {id!r}; ids: {', '.join(parser.config)}.")
    return parser.get_parsed_content(id)


def apply_chain(chain: Compose, data: Mapping[Hashable, Any]) -> dict:
    """Run ``chain`` on one item; an :class:`~xray_restore.errors.InputError` raised inside a MONAI transform is
    re-raised as itself (MONAI wraps transform errors in ``RuntimeError("applying transform ...")``)."""
    try:
        return chain(data)
    except RuntimeError as e:
        cause = e
        while cause is not None and not isinstance(cause, InputError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from e
        raise
