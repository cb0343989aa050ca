"""Anatomy gate: is an input a frontal chest radiograph? If not, it is handed back (``not_chest``), not restored.

The restoration prior knows 64×64 frontal chest radiographs only; a PACS batch also meets knees, hands, skulls,
mammograms. Two checks, the header first:

- :func:`header_finding` (DICOM header, when it says so): a Modality other than projection radiography (MG, RF,
  XA, PX, CT, ...), a Body Part Examined that names something other than the chest, or a View Position that is not
  frontal (LL, RL, oblique, decubitus, mammography views). Empty or absent values are unknown: no finding.
- :class:`ChestGate` (content, for what the header does not say): three statistics of the 64×64 model-grid image
  in [0, 1] (the load chains' mirror-pad to a square and area resize, :mod:`xray_restore.transforms`), each with
  a threshold chosen on held-out chests (``benchmarks/anatomy_gate.py``):

  1. *layout*: a small CNN on the image area-averaged to 16×16 was trained on training chests only to tell which
     of the four 90° rotations it sees (self-supervised; no other anatomy seen). The score is its summed negative
     log-likelihood of the right answer over the four rotations: low for an upright frontal chest, high for an
     image whose layout it does not know (a knee, a dental panoramic, a mammogram, a rotated or inverted chest).
  2. *intensity*: the squared Mahalanobis distance of six grey-level statistics of the 16×16 image (mean, std,
     fraction below 0.1, 10/50/90 % quantiles) from those of the training chests: catches a mostly black frame (a
     hand on an empty background, a mammogram), which the layout score does not (a hand has an upright layout).
  3. *roughness*: the mean absolute difference of neighbouring pixels at 64×64: catches noise, which no
     radiograph at this scale comes near.

  All three are computed at 16×16 or from grey levels, so a Gaussian blur of σ = 2 model pixels (what the product
  restores) hardly moves them (the benchmark checks it on chests and non-chests alike).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NOT_CHEST", "GATE_FILE", "CHEST_MODALITIES", "batch_headers", "header_finding", "header_findings",
           "ChestGate",
           "LayoutNet", "intensity_features", "roughness"]

#: The status of an input handed back because it is not a frontal chest radiograph.
NOT_CHEST = "not_chest"
#: Where a bundle keeps the fitted gate (relative to the bundle's root).
GATE_FILE = "models/anatomy_gate.pt"
#: Modalities of projection radiographs that can be chests (DR and XR are not DICOM terms, but vendors write them).
CHEST_MODALITIES = frozenset({"CR", "DX", "DR", "XR"})
#: Modalities that say nothing about the image ("other"): no finding, the content gate decides.
UNKNOWN_MODALITIES = frozenset({"", "OT"})
#: Body Part Examined words that name the chest (a word starting with one of these: CHEST, CHESTABDOMEN, THORAX...).
CHEST_BODY_PARTS = ("CHEST", "THORAX", "TORAX", "LUNG", "PULMO")
#: View Position values of a frontal projection.
FRONTAL_VIEWS = frozenset({"PA", "AP", "FRONTAL"})
#: Values that mean "not recorded".
_UNKNOWN_TEXT = frozenset({"", "UNKNOWN", "NONE", "NA", "N/A", "-"})
_MODALITY_NAMES = {"MG": "mammography", "RF": "fluoroscopy", "XA": "angiography", "PX": "panoramic dental",
                   "IO": "intra-oral", "CT": "CT", "MR": "MR", "US": "ultrasound", "NM": "nuclear medicine",
                   "PT": "PET", "BMD": "bone densitometry", "XC": "photograph", "ES": "endoscopy"}


def _text(meta: Mapping[str, Any] | Any, *keys: str) -> str:
    """The first of ``keys`` present in ``meta`` (a mapping or a pydicom Dataset), as stripped upper-case text."""
    for key in keys:
        try:
            value = meta.get(key)
        except (AttributeError, KeyError, TypeError):
            value = None
        if value is None:
            continue
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):  # a list, a pydicom MultiValue
            value = "\\".join(str(v) for v in value)
        return str(getattr(value, "value", value)).strip().upper()
    return ""


def header_finding(meta: Mapping[str, Any] | Any) -> str | None:
    """Why the header says this input is not a frontal chest radiograph, or None (chest, or not said).

    ``meta``: one input's meta data as :mod:`xray_restore.readers` gives it (keys ``modality``,
    ``body_part_examined``, ``view_position``), or the DICOM keywords themselves (``Modality``, ``BodyPartExamined``,
    ``ViewPosition``: a pydicom ``Dataset`` works too). A PNG's meta has none of them: no finding.

    Rules: Modality must be one of :data:`CHEST_MODALITIES` (empty or OT: unknown); Body Part Examined, when
    given, must hold a word starting with one of :data:`CHEST_BODY_PARTS`; View Position, when given, must be
    frontal (PA, AP). A value that is present but unrecognised counts as a finding: handing back is the safe side.
    """
    modality = _text(meta, "modality", "Modality")
    if modality not in CHEST_MODALITIES and modality not in UNKNOWN_MODALITIES:
        name = _MODALITY_NAMES.get(modality)
        return (f"Modality {modality}{f' ({name})' if name else ''} is not a chest radiograph "
                f"({', '.join(sorted(CHEST_MODALITIES))})")
    body = _text(meta, "body_part_examined", "BodyPartExamined")
    if body not in _UNKNOWN_TEXT:
        words = [w for w in re.split(r"[^A-Z]+", body) if w]
        if not any(w.startswith(CHEST_BODY_PARTS) for w in words):
            return f"Body Part Examined is {body!r}, not the chest"
    view = _text(meta, "view_position", "ViewPosition")
    if view not in _UNKNOWN_TEXT:
        first = next((w for w in re.split(r"[^A-Z]+", view) if w), "")
        if first not in FRONTAL_VIEWS:
            return f"View Position is {view!r}, not a frontal (PA/AP) view"
    return None


def batch_headers(meta: Mapping[str, Any], batch_size: int) -> list[dict[str, Any]]:
    """Each input's header keys (:func:`header_finding` reads them) from a collated batch's meta (``MetaTensor.meta``
    of a ``(B, 1, H, W)`` batch: each value a list of ``batch_size`` items, or one value shared by all)."""
    out = []
    for i in range(batch_size):
        item = {}
        for key in ("modality", "body_part_examined", "view_position", "Modality", "BodyPartExamined", "ViewPosition"):
            if key in meta:
                value = meta[key]
                item[key] = value[i] if isinstance(value, (list, tuple)) and len(value) == batch_size else value
        out.append(item)
    return out


def header_findings(meta: Mapping[str, Any], batch_size: int) -> list[str | None]:
    """:func:`header_finding` of each input of a collated batch's meta (:func:`batch_headers`)."""
    return [header_finding(item) for item in batch_headers(meta, batch_size)]


# --------------------------------------------------------------------------------------------------- content gate

#: Side of the grid the layout network and the intensity statistics see (area-averaged from 64×64).
GATE_SIZE = 16


class LayoutNet(nn.Module):
    """4-way rotation classifier: ``(B, 1, 16, 16)`` in [-1, 1] → ``(B, 4)`` logits of 0°, 90°, 180°, 270°."""

    def __init__(self, channels: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.channels = (c1, c2, c3)
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(c3, c3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _grid(images: torch.Tensor) -> torch.Tensor:
    """``(B, 1, N, N)`` in [0, 1] → ``(B, 1, 16, 16)`` area averages (float32)."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (B, 1, H, W), got {tuple(images.shape)}.")
    return F.adaptive_avg_pool2d(images.float(), GATE_SIZE)


def _rotations(x: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` → ``(4B, ...)``: the batch rotated by 0°, 90°, 180°, 270°, in that order."""
    return torch.cat([torch.rot90(x, k, (-2, -1)) for k in range(4)])


def _layout_nll(net: LayoutNet, grid: torch.Tensor) -> torch.Tensor:
    """Σ over the four rotations of −log p(right rotation): ``(B, 1, 16, 16)`` in [0, 1] → ``(B,)`` ≥ 0."""
    n = len(grid)
    logp = F.log_softmax(net(_rotations(grid * 2 - 1)), dim=1)
    return -sum(logp[k * n:(k + 1) * n, k] for k in range(4))


def intensity_features(images: torch.Tensor) -> torch.Tensor:
    """Grey-level statistics of the 16×16 image: ``(B, 1, N, N)`` in [0, 1] → ``(B, 6)`` float64: mean, std,
    fraction below 0.1, and the 10 %, 50 %, 90 % quantiles."""
    z = _grid(images).flatten(1).double()
    q = torch.quantile(z, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64), dim=1).T
    return torch.cat([z.mean(1, keepdim=True), z.std(1, keepdim=True), (z < 0.1).double().mean(1, keepdim=True), q], 1)


def roughness(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of vertical plus horizontal neighbours at the given grid: ``(B, 1, H, W)`` → ``(B,)``
    (about 0.02–0.15 for radiographs at 64×64, 0.67 for uniform noise)."""
    x = images.float()
    return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3)) + (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3)))


# Training augmentations: what a chest at the model grid varies by (position, zoom, tilt, a non-square source
# mirror-padded to a square, window / gamma, blur up to σ = 2.5, noise).

def _uniform(gen: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def _mirror_pad(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Half-sample symmetric pad of ``pad`` pixels along ``dim``, split as :class:`~xray_restore.transforms.
    PadToSquare` splits it (the first side gets ``pad // 2``)."""
    before, after = pad // 2, pad - pad // 2
    flipped = x.flip(dim)
    n = x.shape[dim]
    return torch.cat([flipped.narrow(dim, n - before, before), x, flipped.narrow(dim, 0, after)], dim)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with mirrored borders: ``(B, 1, H, W)`` → same."""
    radius = int(math.ceil(3 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps = taps / taps.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), taps.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), taps.view(1, 1, -1, 1))


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One random variant of one chest ``(1, 64, 64)`` in [0, 1]."""
    size = x.shape[-1]
    if _uniform(gen) < 0.7:  # shift, zoom (0.75–1.15 of the field), tilt ±5°
        scale, angle = _uniform(gen, 0.75, 1.15), math.radians(_uniform(gen, -5, 5))
        shift = (_uniform(gen, -0.06, 0.06), _uniform(gen, -0.06, 0.06))
        theta = torch.tensor([[scale * math.cos(angle), -scale * math.sin(angle), shift[0]],
                              [scale * math.sin(angle), scale * math.cos(angle), shift[1]]])[None]
        grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
        x = F.grid_sample(x[None], grid, padding_mode="reflection", align_corners=False)[0]
    if _uniform(gen) < 0.5:  # a non-square source: part of one side, mirror-padded back to a square
        keep = int(_uniform(gen, 44, 64))
        start = int(_uniform(gen, 0, size - keep + 1))
        dim = -1 if _uniform(gen) < 0.5 else -2
        x = _mirror_pad(x.narrow(dim, start, keep), size - keep, dim)
    x = x.clamp(0, 1) ** math.exp(_uniform(gen, -0.4, 0.4))  # gamma
    lo, hi = _uniform(gen, 0, 0.15), _uniform(gen, 0.85, 1.0)  # a narrower output range
    x = lo + (hi - lo) * x
    if _uniform(gen) < 0.3:  # a narrower window
        a, b = _uniform(gen, 0, 0.1), _uniform(gen, 0.9, 1.0)
        x = ((x - a) / (b - a)).clamp(0, 1)
    if _uniform(gen) < 0.6:
        sigma = _uniform(gen, 0, 2.5)
        if sigma > 0.05:
            x = _gaussian_blur(x[None], sigma)[0]
    x = x + _uniform(gen, 0, 0.02) * torch.randn(x.shape, generator=gen)
    return x.clamp(0, 1)


def _train_layout(images: torch.Tensor, seed: int, epochs: int, channels: Sequence[int], batch: int = 32,
                  lr: float = 3e-3, log: Any = None) -> LayoutNet:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = LayoutNet(channels)
    n = len(images)
    steps = epochs * math.ceil(n / batch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr / 1.5, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    labels = None
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        views = _grid(torch.stack([_augment(images[i], gen) for i in order.tolist()]))
        total = 0.0
        net.train()
        for start in range(0, n, batch):
            x = views[start:start + batch] * 2 - 1
            labels = torch.arange(4).repeat_interleave(len(x))
            loss = F.cross_entropy(net(_rotations(x)), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(x)
        if log is not None:
            log(f"layout net seed {seed}: epoch {epoch + 1}/{epochs} loss {total / n:.4f}")
    return net.eval()


class ChestGate:
    """The content gate: :meth:`score` ``(B, 1, 64, 64)`` in [0, 1] → ``(B,)``; above 1 is not a frontal chest.

    ``score`` is the largest of ``component / threshold`` over the three components of :meth:`components`
    (layout, intensity, roughness; see the module docstring). ``thresholds`` and ``calibration`` (where they came
    from) travel with the fitted statistics in the file (:meth:`save` / :meth:`load`, ``weights_only``).
    """

    COMPONENTS = ("layout", "intensity", "roughness")

    def __init__(self, nets: Sequence[LayoutNet], intensity_mean: torch.Tensor, intensity_precision: torch.Tensor,
                 thresholds: Mapping[str, float] | None = None, calibration: Mapping[str, Any] | None = None,
                 training: Mapping[str, Any] | None = None) -> None:
        if not nets:
            raise ValueError("a ChestGate needs at least one layout network.")
        self.nets = [net.eval() for net in nets]
        self.intensity_mean = intensity_mean.double()
        self.intensity_precision = intensity_precision.double()
        self.thresholds = dict(thresholds or {})
        self.calibration = dict(calibration or {})
        self.training = dict(training or {})

    # ----------------------------------------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, images: torch.Tensor, members: int = 1, epochs: int = 10, seed: int = 0,
            channels: Sequence[int] = (16, 32, 64), log: Any = None) -> ChestGate:
        """Fit on training chests ``(N, 1, 64, 64)`` in [0, 1] only: ``members`` layout networks (seeds ``seed``,
        ``seed + 1``, ...; their scores are averaged) and the intensity Gaussian. Thresholds are not set here
        (:meth:`calibrate`). Deterministic for a given seed and thread count."""
        images = images.float()
        nets = [_train_layout(images, seed + m, epochs, channels, log=log) for m in range(members)]
        feats = intensity_features(images)
        mean = feats.mean(0)
        cov = torch.cov((feats - mean).T) + 1e-9 * torch.eye(feats.shape[1], dtype=torch.float64)
        training = {"images": int(len(images)), "members": int(members), "epochs": int(epochs), "seed": int(seed),
                    "channels": [int(c) for c in channels], "threads": int(torch.get_num_threads())}
        return cls(nets, mean, torch.linalg.inv(cov), training=training)

    def calibrate(self, chests: Mapping[str, torch.Tensor], quantiles: Mapping[str, float],
                  roughness_margin: float = 2.0, note: str = "") -> dict[str, float]:
        """Set the thresholds from held-out chests: ``chests`` names sets ``(N, 1, 64, 64)`` in [0, 1] (e.g. sharp
        and blurred val chests, another collection's); a component's threshold is the largest over the sets of its
        ``quantiles[name]`` quantile (layout, intensity), roughness's ``roughness_margin`` × its largest value.
        Returns the thresholds (also stored, with where they came from, in ``calibration``)."""
        per_set = {name: self.components(x) for name, x in chests.items()}
        thresholds = {}
        for comp in ("layout", "intensity"):
            thresholds[comp] = max(float(torch.quantile(s[comp].double(), float(quantiles[comp])))
                                   for s in per_set.values())
        thresholds["roughness"] = roughness_margin * max(float(s["roughness"].max()) for s in per_set.values())
        self.thresholds = thresholds
        self.calibration = {"sets": {name: int(len(x)) for name, x in chests.items()},
                            "quantiles": {k: float(v) for k, v in quantiles.items()},
                            "roughness_margin": float(roughness_margin), "note": note}
        return thresholds

    # ----------------------------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def components(self, images: torch.Tensor, chunk: int = 512) -> dict[str, torch.Tensor]:
        """The raw statistics ``{"layout", "intensity", "roughness"}``, each ``(B,)`` float64, of ``(B, 1, 64, 64)``
        images in [0, 1] (a ``MetaTensor`` is read as a plain tensor)."""
        plain = images.as_tensor() if hasattr(images, "as_tensor") else images
        plain = plain.detach().float().cpu()
        layout = []
        for start in range(0, len(plain), chunk):
            grid = _grid(plain[start:start + chunk])
            layout.append(sum(_layout_nll(net, grid) for net in self.nets).double() / len(self.nets))
        feats = intensity_features(plain) - self.intensity_mean
        return {"layout": torch.cat(layout) if layout else torch.zeros(0, dtype=torch.float64),
                "intensity": ((feats @ self.intensity_precision) * feats).sum(1),
                "roughness": roughness(plain).double()}

    def _ratios(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if set(self.thresholds) != set(self.COMPONENTS):
            raise RuntimeError("the gate has no thresholds: calibrate() it or load() a calibrated file.")
        comps = self.components(images)
        return {k: comps[k] / self.thresholds[k] for k in self.COMPONENTS}

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 64, 64)`` in [0, 1] → ``(B,)`` float64 ≥ 0: the largest component / threshold; > 1: not chest."""
        ratios = self._ratios(images)
        return torch.stack([ratios[k] for k in self.COMPONENTS]).max(0).values

    def finding(self, images: torch.Tensor) -> list[str | None]:
        """Per input, why its content is not a frontal chest radiograph (None: it passes)."""
        ratios = self._ratios(images)
        what = {"layout": "its layout is not that of a frontal chest radiograph",
                "intensity": "its grey levels are not those of a chest radiograph",
                "roughness": "it is noise-like, not a radiograph"}
        out: list[str | None] = []
        for i in range(len(images)):
            comp = max(self.COMPONENTS, key=lambda k: float(ratios[k][i]))
            ratio = float(ratios[comp][i])
            out.append(None if ratio <= 1.0 else
                       f"content: {what[comp]} ({comp} score {ratio * self.thresholds[comp]:.3g}, "
                       f"threshold {self.thresholds[comp]:.3g})")
        return out

    # ----------------------------------------------------------------------------------------------- files
    def state(self) -> dict[str, Any]:
        """Everything :meth:`from_state` needs: tensors, numbers and text only (``torch.load(weights_only=True)``)."""
        return {"format": "xray_restore.anatomy.ChestGate/1", "channels": list(self.nets[0].channels),
                "members": [{k: v.clone() for k, v in net.state_dict().items()} for net in self.nets],
                "intensity_mean": self.intensity_mean.clone(), "intensity_precision": self.intensity_precision.clone(),
                "thresholds": dict(self.thresholds), "calibration": dict(self.calibration),
                "training": dict(self.training)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ChestGate:
        if state.get("format") != "xray_restore.anatomy.ChestGate/1":
            raise ValueError(f"not a ChestGate state (format {state.get('format')!r}).")
        nets = []
        for member in state["members"]:
            net = LayoutNet(state["channels"])
            net.load_state_dict(member)
            nets.append(net)
        return cls(nets, state["intensity_mean"], state["intensity_precision"], state["thresholds"],
                   state.get("calibration"), state.get("training"))

    def save(self, path: str | os.PathLike) -> None:
        """``torch.save`` of :meth:`state` (to a temporary name beside ``path``, then renamed)."""
        from .atomic import atomic_path

        with atomic_path(path) as tmp:
            torch.save(self.state(), tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ChestGate:
        """A gate saved by :meth:`save`. Raises :class:`~xray_restore.errors.InputError` naming the file if it is
        missing, not loadable with ``weights_only=True``, or not a gate."""
        from .errors import InputError
        from .networks import read_state_file

        state = read_state_file(path, "anatomy gate")
        try:
            if not isinstance(state, Mapping):
                raise ValueError(f"expected a dict, got {type(state).__name__}")
            return cls.from_state(state)
        except (ValueError, KeyError, RuntimeError, TypeError) as e:
            raise InputError(path, f"not an anatomy gate ({e})") from e
