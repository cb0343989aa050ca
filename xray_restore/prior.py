"""Training the unconditional 64×64 ChestX-ray14 prior (train split only; selection on val)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .datasets import load_cxr14_cache, to_model_space
from .networks import build_prior_unet, build_scheduler
from .training import Trainer, TrainConfig, epsilon_loss, fixed_epsilon_loss

__all__ = ["train_prior"]


def train_prior(
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    network_config: dict | None = None,
    resume: bool = True,
    num_threads: int | None = None,
    progress: bool = True,
    val_limit: int | None = None,
) -> Trainer:
    """Train (or resume) the DDPM prior on the ``train`` split of a ChestX-ray14 cache.

    Validation is the EMA model's ε-MSE on the ``val`` split at fixed timesteps and noise; the best
    EMA weights go to ``out_dir/model.pt``. ``network_config`` overrides the UNet architecture.
    """
    if num_threads:
        torch.set_num_threads(num_threads)
    config = config or TrainConfig()
    train = to_model_space(load_cxr14_cache(data, "train")["images"])
    val = to_model_space(load_cxr14_cache(data, "val")["images"])
    if val_limit:
        val = val[:val_limit]
    torch.manual_seed(config.seed)
    model = build_prior_unet(**(network_config or {}))
    scheduler = build_scheduler()
    trainer = Trainer(
        model,
        epsilon_loss(scheduler),
        train,
        Path(out_dir),
        config,
        val_fn=lambda ema: fixed_epsilon_loss(ema, scheduler, val, autocast=config.autocast),
    )
    if resume:
        trainer.maybe_resume()
    trainer.fit(progress=progress)
    return trainer
