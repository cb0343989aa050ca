"""What the policy decides for one input, and what a sampler must offer to carry it out.

A :class:`RestorationPlan` is made per input by :class:`~xray_restore.policy.RestorationPolicy` (the one gate) and
read by a :class:`Sampler` (DDRM, the conditional baseline), by :class:`~xray_restore.restore.Restorer` (records,
derived objects) and by the report. It is frozen: what was decided is what is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from .estimation import DegradationEstimate
    from .operators import SVDOperator

__all__ = ["HANDED_BACK", "PlanStatus", "RestorationPlan", "Sampler", "Scale", "Window"]

#: ``restore``: the sampler restores it; the others hand it back unchanged (reported, nothing written unless forced):
#: ``not_chest`` (not a frontal chest radiograph: :mod:`xray_restore.anatomy`), ``no_blur`` (no blur at the plan's
#: scale), ``blur_mismatch`` (a blur that is not the Gaussian restored here, or one the sampler cannot take).
PlanStatus = Literal["restore", "not_chest", "no_blur", "blur_mismatch"]
HANDED_BACK: tuple[str, ...] = ("not_chest", "no_blur", "blur_mismatch")
#: The grid the blur is read and restored at: the 64×64 model grid, or the source's own.
Scale = Literal["model", "source"]
#: An input's footprint ``((r0, r1), (c0, c1))`` in the restoration grid (None: all of it).
Window = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class RestorationPlan:
    """The policy's decision for one input.

    Attributes:
        status: what happens to it (:data:`PlanStatus`); ``reason`` says why where it is handed back.
        blur_sigma: the blur found in the input (or given), px at ``scale``; None where unknown (a fixed operator
            that is not a Gaussian).
        sigma_y: its noise std in [0, 1] intensity units.
        estimate: the estimator's reading (None where nothing was estimated).
        operator: the operator the sampler restores with (None: the sampler's own).
        operator_sigma: that operator's blur (px; ``(σ_v, σ_h)`` for an axis-aligned one; 0 for a forced input with
            no blur: denoise only), for the records.
        operator_uncertainty: the likely error (px) of an estimated blur, which DDRM counts as noise (0: exact).
        border_error: the restoration's mean squared error on the outermost observed ring, with unknown borders
            (:func:`~xray_restore.ddrm.blend_outer_ring`; 0: no blend).
        window: the input's footprint in the grid (None: all of it).
        scale: where the blur was read (:data:`Scale`).
        reason: why it is handed back (None where it is restored).
    """

    status: PlanStatus
    blur_sigma: float | None
    sigma_y: float
    estimate: DegradationEstimate | None = None
    operator: SVDOperator | None = None
    operator_sigma: float | tuple[float, float] | None = None
    operator_uncertainty: float = 0.0
    border_error: float = 0.0
    window: Window | None = None
    scale: Scale = "model"
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("restore", *HANDED_BACK):
            raise ValueError(f"status must be 'restore' or one of {HANDED_BACK}, got {self.status!r}.")
        if (self.status == "restore") != (self.reason is None):
            raise ValueError("a plan that hands its input back says why (reason); one that restores it does not.")

    @property
    def restores(self) -> bool:
        """Whether the sampler restores this input (else it is handed back unchanged)."""
        return self.status == "restore"


@runtime_checkable
class Sampler(Protocol):
    """What :class:`~xray_restore.restore.Restorer` and :class:`~xray_restore.policy.PlannedInferer` need from a
    sampler: samples of the restoration of inputs ``(B, 1, N, N)`` in [0, 1] as their plans say."""

    num_samples: int

    @property
    def config(self) -> dict: ...

    def restore(
        self,
        inputs: torch.Tensor,
        network: nn.Module | Callable[..., torch.Tensor],
        plans: Sequence[RestorationPlan],
        num_samples: int | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...
