"""The restoration policy: per input, restore or hand back, and with what (:class:`RestorationPlan`).

:class:`RestorationPolicy` is the one gate. From each input and the estimator's reading of it, it decides whether
there is a blur to restore (``no_blur_sigma``), whether that blur is the Gaussian restored here (the check registry,
:mod:`xray_restore.checks`, with its :class:`~xray_restore.checks.GaussianLimits`), whether the sampler can take it
(``min_blur_sigma``), and builds the operator the sampler restores with. Samplers only sample what the plans say;
every entry point (CLI, ``restore()``, batch, PACS, ``monai.bundle run`` through :class:`PlannedInferer`) goes through
the same plans. The values of every setting live in the bundle's ``inference.json``, next to their evidence
(docs/estimation.md, docs/restoration.md).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type
from torch import nn

from .anatomy import NOT_CHEST, ChestGate, batch_headers, header_finding
from .checks import GaussianLimits, mismatch
from .operators import SVDOperator, blur_operator, snap_sigma
from .plan import RestorationPlan, Sampler, Window

__all__ = ["AUTO", "PlannedInferer", "RestorationPolicy", "input_context"]

AUTO = "auto"


def input_context(inputs: torch.Tensor) -> tuple[torch.Tensor, list[int] | None, float | list[float], list | None]:
    """``(plain, bits_stored, averaged, windows)`` of a model-grid batch ``(B, 1, N, N)``: the tensor, and what its
    ``MetaTensor`` meta data say of each source (Bits Stored; source pixels area-averaged into one input pixel;
    the source's footprint in the padded square, :func:`~xray_restore.transforms.model_window`)."""
    from .transforms import model_window

    plain = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
    bits, averaged, windows = None, 1.0, None
    if isinstance(inputs, MetaTensor) and "bits_stored" in inputs.meta:
        bits = [int(b) for b in torch.as_tensor(inputs.meta["bits_stored"]).reshape(-1)]
    if isinstance(inputs, MetaTensor) and "spatial_shape" in inputs.meta:  # the source's grid, before resizing
        shapes = torch.as_tensor(inputs.meta["spatial_shape"]).reshape(len(plain), -1)
        averaged = [(float(s[-2:].max()) / plain.shape[-1]) ** 2 for s in shapes]  # the padded square's
        windows = [model_window(tuple(int(v) for v in s[-2:]), plain.shape[-1]) for s in shapes]
    return plain, bits, averaged, windows


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


class RestorationPolicy:
    """Decide, per input, whether and how it is restored.

    Args:
        operator: the sampler's operator: the template of the blurs built per input (its size, threshold and padding),
            or, with ``fixed_operator``, the one operator every input is restored with (a network trained for one
            blur).
        estimator: a :class:`~xray_restore.estimation.SpectralDegradationEstimator`, needed for ``"auto"``.
        blur_sigma: ``"auto"`` (estimated per input), a number (px, every input), or None (the operator's own).
        sigma_y: ``"auto"`` (estimated per input) or a noise std in [0, 1] units.
        fixed_operator: restore every input with ``operator`` whatever its blur (the conditional baseline: the
            estimate then only gates and is recorded); False: each with a blur of its own σ (DDRM).
        no_blur_sigma: an estimated blur below this (px) is no blur at this scale: handed back (``no_blur``);
            0 disables it.
        limits: the limits of the checks that hand back a blur that is not Gaussian (``blur_mismatch``;
            :class:`~xray_restore.checks.GaussianLimits` or a mapping of its fields; None: no check).
        min_blur_sigma: an estimated blur below this (px, ≥ ``no_blur_sigma``) is milder than a fixed operator's
            network restores (it would come back over-sharpened): handed back (``blur_mismatch``); None: off.
        operator_uncertainty: likely error (px) of an estimated σ̂, which DDRM counts as noise in the components it
            would corrupt; 0: trust σ̂ as exact.
        blur_backoff, blur_backoff_until: an estimated σ̂ is restored with ``max(0, σ̂ − backoff)``, the back-off in
            full up to half ``blur_backoff_until`` and fading to none at it (0: the same at every σ̂); over-estimating
            σ costs DDRM more than under-estimating it by as much (docs/restoration.md).
        sigma_resolution: blurs are built on this σ grid (px) and cached; 0: to 1e-6.
        unknown_borders: blurs built here treat the scene beyond the image (or a padded source's footprint) as
            unknown: DDRM restores on a canvas with a margin and trusts only what the whole kernel explains.
        border_error: with unknown borders, the restoration's mean squared error on the outermost observed ring,
            blended with the input by inverse error variance (:func:`~xray_restore.ddrm.blend_outer_ring`).
        anatomy: the :class:`~xray_restore.anatomy.ChestGate` (or the path of its file): an input its header or its
            content says is not a frontal chest radiograph is handed back (``not_chest``) before any other check;
            None: every input is taken for a chest.
    """

    def __init__(
        self,
        operator: SVDOperator | None = None,
        estimator=None,
        blur_sigma: float | Literal["auto"] | None = AUTO,
        sigma_y: float | Literal["auto"] = AUTO,
        fixed_operator: bool = False,
        no_blur_sigma: float = 0.0,
        limits: GaussianLimits | Mapping[str, float | None] | None = None,
        min_blur_sigma: float | None = None,
        operator_uncertainty: float = 0.0,
        blur_backoff: float = 0.0,
        blur_backoff_until: float = 0.0,
        sigma_resolution: float = 0.0,
        unknown_borders: bool = False,
        border_error: float = 0.0,
        anatomy: ChestGate | str | os.PathLike | None = None,
    ) -> None:
        if operator is not None and not isinstance(operator, SVDOperator):
            raise TypeError(f"operator must be an SVDOperator (or None), got {type(operator).__name__}.")
        if blur_sigma not in (None, AUTO):
            blur_sigma = _non_negative("blur_sigma", blur_sigma)
        if sigma_y != AUTO and not (isinstance(sigma_y, numbers.Real) and 0.0 <= sigma_y <= 1.0):
            raise ValueError(f"sigma_y must be 'auto' or a noise std in [0, 1] intensity units, got {sigma_y!r}.")
        if AUTO in (sigma_y, blur_sigma) and estimator is None:
            raise ValueError("blur_sigma/sigma_y 'auto' needs an estimator (the bundle's degradation spectrum).")
        if not fixed_operator and blur_sigma is not None and not hasattr(operator, "threshold"):
            raise TypeError("a blur per input needs a GaussianBlur operator (size, threshold) as its template, got "
                            f"{type(operator).__name__}.")
        if blur_sigma is None and operator is None:
            raise ValueError("blur_sigma None restores with the operator's own blur: give the operator.")
        self.no_blur_sigma = _non_negative("no_blur_sigma", no_blur_sigma)
        if min_blur_sigma is not None and (operator is None or not fixed_operator
                                           or not min_blur_sigma >= self.no_blur_sigma):
            raise ValueError(f"min_blur_sigma is for a fixed operator (fixed_operator True) and must be >= "
                             f"no_blur_sigma ({self.no_blur_sigma}), or None; got {min_blur_sigma}.")
        self.operator = operator
        self.estimator = estimator
        self.blur_sigma = blur_sigma
        self.sigma_y = sigma_y if sigma_y == AUTO else float(sigma_y)
        self.fixed_operator = bool(fixed_operator)
        self.limits = limits if isinstance(limits, GaussianLimits) else GaussianLimits(**dict(limits or {}))
        self.min_blur_sigma = None if min_blur_sigma is None else float(min_blur_sigma)
        self.operator_uncertainty = _non_negative("operator_uncertainty", operator_uncertainty)
        self.blur_backoff = _non_negative("blur_backoff", blur_backoff)
        self.blur_backoff_until = _non_negative("blur_backoff_until", blur_backoff_until)
        self.sigma_resolution = _non_negative("sigma_resolution", sigma_resolution)
        self.unknown_borders = bool(unknown_borders)
        self.border_error = _non_negative("border_error", border_error)
        self.anatomy = ChestGate.load(anatomy) if isinstance(anatomy, (str, os.PathLike)) else anatomy

    @property
    def estimates_blur(self) -> bool:
        return self.blur_sigma == AUTO

    @property
    def config(self) -> dict:
        """The policy's settings, for provenance (reports, DICOM Derivation Description)."""
        return {"blur_sigma": self.operator_sigma() if self.blur_sigma is None else self.blur_sigma,
                "sigma_y": self.sigma_y, "fixed_operator": self.fixed_operator, "no_blur_sigma": self.no_blur_sigma,
                **self.limits.as_dict(), "min_blur_sigma": self.min_blur_sigma,
                "operator_uncertainty": self.operator_uncertainty, "blur_backoff": self.blur_backoff,
                "blur_backoff_until": self.blur_backoff_until, "sigma_resolution": self.sigma_resolution,
                "unknown_borders": self.unknown_borders, "border_error": self.border_error,
                "anatomy_gate": self.anatomy is not None}

    @property
    def estimated(self) -> list[str]:
        """Which of ``blur_sigma`` and ``sigma_y`` are read from each input."""
        return [name for name in ("blur_sigma", "sigma_y") if getattr(self, name) == AUTO]

    def operator_sigma(self) -> float | None:
        """σ of the operator (None for one that is not a Gaussian, or none)."""
        return getattr(self.operator, "sigma", None)

    def restoring_sigma(self, blur_sigma: float | tuple[float, float] | None) -> float | tuple[float, float] | None:
        """The blur restored with for an input whose blur is ``blur_sigma`` (or ``(σ_v, σ_h)``): less the back-off
        where it is estimated, on the ``sigma_resolution`` grid; as given for a fixed operator."""
        if self.blur_sigma is None or blur_sigma is None:
            return blur_sigma
        if isinstance(blur_sigma, (tuple, list)):
            return snap_sigma(tuple(self.restoring_sigma(float(s)) for s in blur_sigma), self.sigma_resolution)
        backoff = self.blur_backoff if self.blur_sigma == AUTO else 0.0
        if self.blur_backoff_until > 0:
            backoff *= min(1.0, max(0.0, 2.0 * (1.0 - blur_sigma / self.blur_backoff_until)))
        return snap_sigma(blur_sigma - backoff, self.sigma_resolution)

    def operator_for(self, blur_sigma: float | tuple[float, float], window: Window | None = None,
                     device: torch.device | str | None = None) -> SVDOperator:
        """A cached blur of σ or ``(σ_v, σ_h)`` with the operator's size and threshold, on ``device`` (default: the
        operator's); with ``unknown_borders``, one that observes only ``window`` (default: all) of a larger canvas."""
        size = self.operator.size
        if self.unknown_borders and window is None:
            window = ((0, size), (0, size))
        return blur_operator(size, blur_sigma, threshold=self.operator.threshold, resolution=self.sigma_resolution,
                             padding=getattr(self.operator, "padding", "zeros"),
                             device=self.operator.device if device is None else device,
                             window=window if self.unknown_borders else None)

    def _gate(self, estimate, anatomy: str | None = None) -> tuple[str, str | None]:
        """``(status, reason)`` of an input from its anatomy finding and its estimate: the one gate."""
        if anatomy is not None:
            return NOT_CHEST, anatomy
        if estimate is None or not self.estimates_blur:
            return "restore", None
        if estimate.blur_sigma < self.no_blur_sigma:
            return "no_blur", (f"no blur at the model scale (estimated blur {estimate.blur_sigma:.2f} px < "
                               f"{self.no_blur_sigma:g} px)")
        found = mismatch(estimate, self.limits)
        if found is not None:
            return "blur_mismatch", found
        if self.min_blur_sigma is not None and estimate.blur_sigma < self.min_blur_sigma:
            return "blur_mismatch", (
                f"the blur (estimated {estimate.blur_sigma:.2f} px) is milder than this model restores (from "
                f"{self.min_blur_sigma:g} px: it restores every input as for its training blur of "
                f"{self.operator_sigma():g} px, and a milder one would come back over-sharpened, worse than it "
                "came in)")
        return "restore", None

    def anatomy_findings(self, inputs: torch.Tensor, headers: Sequence[Mapping | None] | None = None
                         ) -> list[str | None]:
        """Why each input ``(B, 1, N, N)`` in [0, 1] is not a frontal chest radiograph (None: it is, or there is no
        gate): its header where it says so, else its content."""
        if self.anatomy is None:
            return [None] * len(inputs)
        headers = [None] * len(inputs) if headers is None else list(headers)
        if len(headers) != len(inputs):
            raise ValueError(f"got {len(headers)} headers for {len(inputs)} inputs.")
        by_header = [None if h is None else header_finding(h) for h in headers]
        by_content = self.anatomy.finding(inputs.detach().float().cpu())
        return [h or c for h, c in zip(by_header, by_content)]

    def plan(self, inputs: torch.Tensor, bits_stored=None, averaged: float | Sequence[float] = 1.0,
             windows: Sequence[Window | None] | None = None, device: torch.device | str | None = None,
             headers: Sequence[Mapping | None] | None = None) -> list[RestorationPlan]:
        """One :class:`~xray_restore.plan.RestorationPlan` per input ``(B, 1, N, N)`` in [0, 1].

        ``bits_stored``: the sources' Bits Stored (one or one per input) for the estimator's noise floor;
        ``averaged``: source pixels area-averaged into one input pixel (one or one per input); ``windows``: each
        input's footprint in the N × N grid (:func:`~xray_restore.transforms.model_window`); ``device``: where the
        operators are built (the sampler's); ``headers``: each input's header meta data (the reader's ``modality``,
        ``body_part_examined``, ``view_position``) for the anatomy gate. A handed-back input's plan still carries
        the operator it would be restored with if forced (its blur, or none for an input with no blur: denoise only).
        """
        windows = [None] * len(inputs) if windows is None else list(windows)
        if len(windows) != len(inputs):
            raise ValueError(f"got {len(windows)} windows for {len(inputs)} inputs.")
        needs = AUTO in (self.blur_sigma, self.sigma_y)
        estimates = (self.estimator(inputs.detach().float().cpu(), bits_stored, averaged, windows) if needs
                     else [None] * len(inputs))
        anatomy = self.anatomy_findings(inputs, headers)
        plans = []
        for e, window, finding in zip(estimates, windows, anatomy):
            blur = e.blur_sigma if self.blur_sigma == AUTO else (self.operator_sigma() if self.blur_sigma is None
                                                                 else self.blur_sigma)
            noise = e.sigma_y if self.sigma_y == AUTO else self.sigma_y
            status, reason = self._gate(e, finding)
            if self.fixed_operator:
                operator, restoring = None, self.operator_sigma()
            else:
                axes = e.blur_sigma_axes if self.blur_sigma == AUTO and e.blur_sigma_axes is not None else blur
                restoring = 0.0 if status == "no_blur" else self.restoring_sigma(axes)
                operator = None if self.blur_sigma is None else self.operator_for(restoring, window, device)
            adapted = self.estimates_blur and not self.fixed_operator  # a blur of its own, estimated: not exact
            plans.append(RestorationPlan(
                status=status, blur_sigma=blur, sigma_y=noise, estimate=e, operator=operator,
                operator_sigma=restoring, operator_uncertainty=self.operator_uncertainty if adapted else 0.0,
                border_error=self.border_error if self.unknown_borders and operator is not None else 0.0,
                window=window, reason=reason))
        return plans


class PlannedInferer(Inferer):
    """A MONAI ``Inferer`` that restores what each input's plan restores and hands back the others unchanged.

    ``inferer(inputs=y, network=net)``: ``y`` ``(B, 1, N, N)`` in [0, 1] → ``(B, 1, N, N)`` in [0, 1]; a
    ``MetaTensor`` in gives a ``MetaTensor`` out with the same meta data (so ``Invertd`` / ``SaveImaged`` work in a
    bundle). Handed-back inputs cost no network call. :class:`~xray_restore.restore.Restorer` drives the same pair.

    Args:
        sampler: a :class:`~xray_restore.plan.Sampler` (``DDRMInferer``, ``ConditionalInferer``).
        policy: the :class:`RestorationPolicy` that plans each input.
    """

    def __init__(self, sampler: Sampler, policy: RestorationPolicy) -> None:
        super().__init__()
        if not isinstance(sampler, Sampler):
            raise TypeError(f"sampler must offer num_samples, config and restore(), got {type(sampler).__name__}.")
        if not isinstance(policy, RestorationPolicy):
            raise TypeError(f"policy must be a RestorationPolicy, got {type(policy).__name__}.")
        self.sampler, self.policy = sampler, policy

    @property
    def num_samples(self) -> int:
        return int(self.sampler.num_samples)

    @property
    def seed(self) -> int | None:
        return getattr(self.sampler, "seed", None)

    @property
    def config(self) -> dict:
        """The sampler's and the policy's settings, for provenance."""
        return {**self.sampler.config, **self.policy.config}

    def plan(self, inputs: torch.Tensor, bits_stored=None, averaged: float | Sequence[float] = 1.0,
             windows: Sequence | None = None, headers: Sequence[Mapping | None] | None = None
             ) -> list[RestorationPlan]:
        """The policy's plans, with operators built where the sampler restores."""
        return self.policy.plan(inputs, bits_stored, averaged, windows, device=getattr(self.sampler, "device", None),
                                headers=headers)

    def __call__(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        network: nn.Module | Callable[..., torch.Tensor],
        *args,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> torch.Tensor:
        plain, bits, averaged, windows = input_context(inputs)
        # the header's word on each input's anatomy, where the reader carried it
        headers = batch_headers(inputs.meta, len(plain)) if isinstance(inputs, MetaTensor) else None
        plans = self.plan(plain, bits, averaged, windows, headers)
        out = plain.detach().clone()
        todo = [i for i, p in enumerate(plans) if p.restores]
        if todo:
            mean, _ = self.sampler.restore(plain[todo], network, [plans[i] for i in todo], generator=generator)
            out[todo] = mean.to(out)
        if isinstance(inputs, MetaTensor):
            out = convert_to_dst_type(out, inputs, dtype=out.dtype)[0]
        return out
