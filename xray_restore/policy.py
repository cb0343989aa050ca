"""The restoration policy of a batch run through a MONAI ``Inferer`` (``monai.bundle run``): restore or hand back.

Each input's plan comes from its sampler's ``settings_for`` (blur and noise read from the input, and the checks that
hand back a sharp input or a blur that is not Gaussian); :func:`gated_call` applies it the same way for every
sampler, so a bundle run hands back exactly what ``xray-restore restore`` hands back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.data import MetaTensor
from monai.utils import convert_to_dst_type
from torch import nn

__all__ = ["input_context", "handed_back", "gated_call"]


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


def handed_back(settings: list[dict]) -> list[bool]:
    """Per input plan (``settings_for``): whether it is handed back unchanged (no blur, or not a Gaussian blur)."""
    return [bool(st["no_blur"] or st["blur_mismatch"]) for st in settings]


def gated_call(sampler, inputs: torch.Tensor, network: nn.Module | Callable[..., torch.Tensor],
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Restore the inputs their plan restores, hand back the others unchanged; ``(B, 1, N, N)`` in [0, 1].

    ``sampler``: a DDRM or conditional inferer (``settings_for`` and ``restore``). A ``MetaTensor`` in gives a
    ``MetaTensor`` out with the same meta data. Handed-back inputs cost no network call.
    """
    plain, bits, averaged, windows = input_context(inputs)
    settings = sampler.settings_for(plain, bits, averaged, windows)
    back = handed_back(settings)
    out = plain.detach().clone()
    todo = [i for i, b in enumerate(back) if not b]
    if todo:
        mean, _ = sampler.restore(plain[todo], network, [settings[i] for i in todo], generator=generator)
        out[todo] = mean.to(out)
    if isinstance(inputs, MetaTensor):
        out = convert_to_dst_type(out, inputs, dtype=out.dtype)[0]
    return out
