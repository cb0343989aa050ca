"""Resumable diffusion training: AdamW, gradient clipping, EMA, bf16 autocast, CSV log, checkpoints.

The loop is shared by the unconditional prior and the conditional baseline: each supplies a
``loss_fn(model, batch, generator) -> loss``. A checkpoint holds model, EMA, optimizer, step and
every RNG state, so ``train(..., resume=True)`` continues exactly where the last run stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from monai.inferers import DiffusionInferer
from monai.networks.schedulers import Scheduler
from torch import nn
from tqdm.auto import tqdm

from ._compat import bf16_autocast
from .networks import make_ema
from .atomic import atomic_path

__all__ = [
    "TrainConfig",
    "lr_factor",
    "lr_schedule",
    "latest_checkpoint",
    "loss_iteration",
    "Trainer",
    "epsilon_loss",
    "random_shift",
    "random_crop",
    "fixed_epsilon_loss",
    "atomic_save",
]


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of a training run (all recorded in the checkpoint). The bundles' ``train.json``
    ``train_config`` is the home of the values a run uses; these defaults equal it (a test checks)."""

    max_steps: int = 100000
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    decay_steps: int = 0  # cooldown: cosine decay of the lr over the last decay_steps before max_steps (0: constant)
    min_lr_ratio: float = 0.1  # lr at max_steps, as a fraction of lr (with decay_steps > 0)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    autocast: bool = True  # bf16 autocast (CPU with AVX512-BF16, or CUDA)
    val_every: int = 500
    checkpoint_every: int = 200
    seed: int = 0
    max_shift: int = 2  # augmentation: random translation in pixels (anatomy stays plausible)
    patch_size: int = 0  # > 0: train on random patch_size² crops of the images (a patch prior); 0: whole images

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1:
            raise ValueError(f"max_steps and batch_size must be >= 1, got {self.max_steps}, {self.batch_size}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        if self.patch_size < 0:
            raise ValueError(f"patch_size must be >= 0, got {self.patch_size}.")
        if not 0 <= self.decay_steps <= self.max_steps or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"need 0 <= decay_steps <= max_steps and 0 <= min_lr_ratio <= 1, got {self.decay_steps}, "
                             f"{self.min_lr_ratio}.")


def lr_factor(config: TrainConfig, step: int, warm_step: int = 0) -> float:
    """The learning rate at ``step`` as a fraction of ``config.lr``: linear warm-up over ``warmup_steps`` from the
    run's (warm-)start ``warm_step``, constant, then an optional cosine cooldown over the last ``decay_steps``."""
    since = step - warm_step
    factor = min(1.0, (since + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
    decay_start = config.max_steps - config.decay_steps
    if config.decay_steps > 0 and step >= decay_start:
        progress = min(1.0, (step - decay_start) / config.decay_steps)
        factor *= config.min_lr_ratio + (1.0 - config.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


def lr_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`lr_factor` as a per-iteration torch scheduler (for a MONAI ``LrScheduleHandler``)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step))


def latest_checkpoint(run_dir: str | os.PathLike, prefix: str = "checkpoint") -> str | None:
    """The newest ``<prefix>*.pt`` in ``run_dir`` (a MONAI ``CheckpointSaver``'s interval or final file), or None."""
    if not Path(run_dir).is_dir():
        return None
    found = sorted(Path(run_dir).glob(f"{prefix}*.pt"), key=lambda p: p.stat().st_mtime)
    return str(found[-1]) if found else None


def loss_iteration(loss_fn: Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor], seed: int = 0,
                   grad_clip: float | None = None) -> Callable:
    """A MONAI ``SupervisedTrainer`` ``iteration_update`` for a ``loss_fn(model, x, generator)`` of this module (e.g.
    the predict-and-refine joint loss, which one ``loss_function(pred, target)`` cannot express): clean batch
    ``batchdata["image"]`` in [-1, 1] → loss, backward, gradient clipping, optimiser step; returns
    ``{"image", "loss"}`` for the trainer's handlers."""
    generator = torch.Generator().manual_seed(int(seed))

    def iteration(engine, batchdata: dict) -> dict:
        x = batchdata["image"].to(engine.state.device)
        x = x.as_tensor() if hasattr(x, "as_tensor") else x
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(engine.network, x, generator)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(engine.network.parameters(), grad_clip)
        engine.optimizer.step()
        return {"image": x, "loss": loss.detach()}

    return iteration


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary name in the same folder, then rename (never a half-written file)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of ``(B, C, H, W)`` by up to ``max_shift`` pixels (reflect padding).

    The offsets come from ``generator`` (a CPU generator, so a run is reproducible on any device); the crop is one
    gather on ``x``'s device.
    """
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4, mode="reflect")
    offsets = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=generator).to(x.device)
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def random_crop(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One ``size × size`` crop of each image of ``(B, C, H, W)`` at a uniform position drawn from ``generator``."""
    b, _, h, w = x.shape
    if size > min(h, w):
        raise ValueError(f"patch size {size} exceeds the images' {h}x{w}.")
    span = torch.arange(size, device=x.device)
    rows = torch.randint(0, h - size + 1, (b, 1), generator=generator).to(x.device) + span
    cols = torch.randint(0, w - size + 1, (b, 1), generator=generator).to(x.device) + span
    batch = torch.arange(b, device=x.device)[:, None, None]
    return x[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def epsilon_loss(scheduler: Scheduler) -> Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]:
    """The DDPM ε-prediction MSE for clean ``(B, 1, N, N)`` batches in [-1, 1], via MONAI's ``DiffusionInferer``."""
    inferer = DiffusionInferer(scheduler)

    def loss(model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator).to(x.device)  # CPU draws: the same run on any device
        t = torch.randint(0, scheduler.num_train_timesteps, (x.shape[0],), generator=generator).to(x.device)
        pred = inferer(inputs=x, diffusion_model=model, noise=noise, timesteps=t)
        return nn.functional.mse_loss(pred.float(), noise)

    return loss


@torch.inference_mode()
def fixed_epsilon_loss(
    model: nn.Module,
    scheduler: Scheduler,
    images: torch.Tensor,
    timesteps: tuple[int, ...] = (25, 100, 200, 350, 500, 650, 800, 950),
    batch_size: int = 64,
    autocast: bool = True,
    seed: int = 1234,
) -> float:
    """Mean ε-MSE of ``model`` on ``images`` (``(N, 1, H, W)`` in [-1, 1]) at fixed timesteps and noise.

    Deterministic for a given model, so it compares checkpoints (validation / early stopping). Runs on the
    model's device (the noise is drawn on the CPU, so the figure does not depend on the device).
    """
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for t in timesteps:
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device)
            noise = torch.randn(x.shape, generator=g).to(device)
            tt = torch.full((x.shape[0],), t, dtype=torch.long, device=device)
            xt = scheduler.add_noise(x, noise, tt)
            with bf16_autocast(device.type, enabled=autocast):
                pred = model(xt, tt)
            total += nn.functional.mse_loss(pred.float(), noise, reduction="sum").item()
            count += noise.numel()
    return total / count


class Trainer:
    """Resumable training of a diffusion ``model`` on an in-memory image tensor.

    Files in ``out_dir``: ``checkpoint.pt`` (full state, for resuming), ``model.pt`` (best-on-validation
    EMA state dict, ``weights_only``-loadable), ``ema_last.pt`` (latest EMA state dict), ``log.csv``.

    Args:
        model: network trained in place.
        loss_fn: ``loss_fn(model, batch, generator) -> scalar`` (e.g. :func:`epsilon_loss`).
        train_images: ``(N, 1, H, W)`` float in [-1, 1].
        val_fn: ``val_fn(ema_model) -> float`` (lower is better) or None.
        out_dir: where checkpoints and the log go.
        config: :class:`TrainConfig`.
        device: where the model, its EMA and the training images live (e.g. ``"cuda"``); random draws stay on a
            CPU generator, so a run resumes identically on another device. Checkpoints load onto any device.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor],
        train_images: torch.Tensor,
        out_dir: str | os.PathLike,
        config: TrainConfig,
        val_fn: Callable[[nn.Module], float] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if train_images.ndim != 4:
            raise ValueError(f"train_images must be (N, C, H, W), got {tuple(train_images.shape)}.")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.train_images = train_images.to(self.device)
        self.val_fn = val_fn
        self.config = config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.ema = make_ema(model, config.ema_decay)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.warm_step = 0  # step at which this run's learning-rate warm-up began (non-zero after warm_start)
        self.best_val = math.inf

    # ----------------------------------------------------------------------------------------- state
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "best_val": self.best_val,
            "warm_step": self.warm_step,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "config": dataclasses.asdict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.best_val = float(state["best_val"])
        self.warm_step = int(state.get("warm_step", 0))
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])

    def save_checkpoint(self) -> None:
        atomic_save(self.state_dict(), self.checkpoint_path)
        atomic_save(self.ema.module.state_dict(), self.out_dir / "ema_last.pt")

    def maybe_resume(self, reset_ema: bool = False) -> bool:
        """Load ``checkpoint.pt`` if present; returns whether it did.

        ``reset_ema`` restarts the average from the current weights (e.g. after changing the EMA schedule).
        """
        if not self.checkpoint_path.is_file():
            return False
        self.load_state_dict(torch.load(self.checkpoint_path, map_location="cpu", weights_only=True))
        if reset_ema:
            self.ema = make_ema(self.model, self.config.ema_decay)
            self.best_val = math.inf
        return True

    def warm_start(self, weights: str | os.PathLike, step: int = 0) -> None:
        """Start a new run from saved weights (e.g. a shipped EMA ``model.pt``): model and EMA both take them.

        The optimizer starts fresh (with warm-up); ``step`` continues the step count of the run that made them.
        Only for a run with no checkpoint yet: resuming a checkpoint restores far more state.
        """
        if self.checkpoint_path.is_file():
            raise RuntimeError(f"{self.checkpoint_path} exists: resume it instead of warm-starting.")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.ema = make_ema(self.model, self.config.ema_decay)
        self.step = int(step)
        self.warm_step = int(step)

    # ------------------------------------------------------------------------------------------ loop
    def _lr(self, step: int) -> float:
        return self.config.lr * lr_factor(self.config, step, self.warm_step)

    def _log(self, row: dict) -> None:
        path = self.out_dir / "log.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "loss", "val", "best_val", "lr", "seconds"])
            if new:
                writer.writeheader()
            writer.writerow(row)

    def train_step(self) -> float:
        cfg = self.config
        idx = torch.randint(0, self.train_images.shape[0], (cfg.batch_size,), generator=self.generator)
        batch = self.train_images[idx.to(self.device)]
        if cfg.patch_size:  # a patch prior: one random crop per drawn image, no shift (the crop moves anyway)
            batch = random_crop(batch, cfg.patch_size, self.generator)
        else:
            batch = random_shift(batch, cfg.max_shift, self.generator)
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(self.step)
        self.model.train()
        with bf16_autocast(self.device.type, enabled=cfg.autocast):
            loss = self.loss_fn(self.model, batch, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        return float(loss.detach())

    def validate(self) -> float | None:
        if self.val_fn is None:
            return None
        self.ema.module.eval()
        value = float(self.val_fn(self.ema.module))
        if value < self.best_val:
            self.best_val = value
            atomic_save(self.ema.module.state_dict(), self.out_dir / "model.pt")
        return value

    def fit(self, max_steps: int | None = None, progress: bool = True) -> dict:
        """Train until ``max_steps`` (default ``config.max_steps``); returns the last logged row."""
        max_steps = self.config.max_steps if max_steps is None else max_steps
        cfg = self.config
        start, running, last = time.time(), [], {}
        bar = tqdm(total=max_steps, initial=self.step, disable=not progress, desc="train", dynamic_ncols=True)
        while self.step < max_steps:
            running.append(self.train_step())
            bar.update(1)
            bar.set_postfix(loss=f"{sum(running[-50:]) / len(running[-50:]):.4f}")
            is_val = self.step % cfg.val_every == 0 or self.step == max_steps
            if is_val or self.step % cfg.checkpoint_every == 0:
                val = self.validate() if is_val else None
                last = {
                    "step": self.step,
                    "loss": sum(running) / len(running),
                    "val": "" if val is None else f"{val:.6f}",
                    "best_val": f"{self.best_val:.6f}" if math.isfinite(self.best_val) else "",
                    "lr": self._lr(self.step - 1),
                    "seconds": round(time.time() - start, 1),
                }
                self._log(last)
                running = []
                self.save_checkpoint()
        bar.close()
        return last
