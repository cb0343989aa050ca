"""The diffusion prior: MONAI UNet factory, EMA, and safe weight loading."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDPMScheduler
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["PRIOR_UNET_CONFIG", "build_prior_unet", "build_scheduler", "make_ema", "read_state_file", "load_weights",
           "NETWORK_FILE", "prior_network_beside"]

#: The shipped prior's architecture (1.1 M parameters): small enough to train on 2 CPU cores.
PRIOR_UNET_CONFIG: dict = {
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 1,
    "channels": (32, 64, 64),
    "attention_levels": (False, False, True),
    "num_res_blocks": 1,
    "num_head_channels": 32,
}


def build_prior_unet(**overrides) -> DiffusionModelUNet:
    """A MONAI ``DiffusionModelUNet`` ε-model with :data:`PRIOR_UNET_CONFIG`, updated by ``overrides``."""
    config = {**PRIOR_UNET_CONFIG, **overrides}
    for key in ("channels", "attention_levels"):
        if isinstance(config[key], Sequence):
            config[key] = tuple(config[key])
    return DiffusionModelUNet(**config)


def build_scheduler(num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The variance-preserving linear-β DDPM schedule (β 1e-4 → 2e-2) used for training and DDRM."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, schedule="linear_beta", clip_sample=True)


#: Written by ``xray-restore train-prior --network`` into its run folder: the ``build_prior_unet`` overrides that
#: load the run's weights.
NETWORK_FILE = "network.json"


def prior_network_beside(weights: str | os.PathLike) -> DiffusionModelUNet | None:
    """The prior UNet described by :data:`NETWORK_FILE` in the folder of ``weights`` (None if there is none).

    Lets a run's (or a committed candidate's) weights be evaluated without restating its architecture.
    Raises :class:`~xray_restore.errors.InputError` naming the file if it is not a JSON object of UNet arguments.
    """
    from .errors import InputError

    path = Path(weights).parent / NETWORK_FILE
    if not path.is_file():
        return None
    try:
        overrides = json.loads(path.read_text())
        if not isinstance(overrides, dict):
            raise TypeError(f"expected a JSON object, got {type(overrides).__name__}")
        return build_prior_unet(**overrides)
    except (ValueError, TypeError) as e:
        raise InputError(str(path), f"not a prior network description ({e})") from e


def make_ema(model: nn.Module, decay: float = 0.999, warmup: bool = True) -> AveragedModel:
    """Exponential moving average of ``model``'s parameters and buffers (torch's ``AveragedModel``).

    With ``warmup`` the decay after n updates is ``min(decay, (1 + n) / (10 + n))``, so the average follows the
    fast-changing early weights instead of lagging ~1/(1-decay) steps behind them.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}.")
    if not warmup:
        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def multi_avg_fn(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        # one call per device and dtype, so at most one host sync per update (on an accelerator)
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1.0 - d)  # d·averaged + (1 − d)·current
        else:
            torch._foreach_copy_(averaged, current)

    return AveragedModel(model, multi_avg_fn=multi_avg_fn, use_buffers=True)


def read_state_file(path: str | os.PathLike, what: str = "weights file") -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, with the two failures a user can cause named: ``what``
    (e.g. ``"degradation spectrum"``) not found, or a file that is not a ``torch.save`` file loadable with
    ``weights_only=True``. Raises :class:`~xray_restore.errors.InputError` (the file and the reason)."""
    from .errors import InputError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(path, f"{what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several unrelated types for a corrupt / non-torch file
        raise InputError(path, f"not a loadable {what} ({type(e).__name__}; expected a state dict saved "
                               "with torch.save, loadable with weights_only=True)") from e


def load_weights(network: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load a plain state dict into ``network`` with ``torch.load(weights_only=True)``; returns it in eval mode.

    Raises:
        InputError: the weights file does not exist, is not a state dict, or does not fit the network (the error
            carries the file and the reason separately, end to end).
    """
    from .errors import InputError

    state = read_state_file(path)
    if not isinstance(state, Mapping):
        raise InputError(path, f"expected a state dict, got {type(state).__name__}")
    try:
        network.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise InputError(path, f"weights do not match the network: {e}") from e
    return network.eval()
