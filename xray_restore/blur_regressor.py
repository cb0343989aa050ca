"""A learned second opinion on the degradation: a small CNN that reads the blur σ and log σ_y from one input.

The spectral estimator (:mod:`xray_restore.estimation`) sees only second-order statistics, so an image whose own
spectrum is a little steeper or flatter than the training average looks a little blurred or sharp, and fine texture
of a sharp image looks like noise. Edges and texture tell these apart; a CNN trained on the training pool with
random blurs, noise and quantisation learns to read them. The estimator uses it to refine its own estimate where the
two agree (see :class:`~xray_restore.estimation.SpectralDegradationEstimator`).

Training data (:func:`random_degradations`): training radiographs ``x`` (64×64, [0, 1], random horizontal flips),
``y = Q_b(h_σ * x + σ_y n)`` with σ ~ U[0, σ_max] (15 % exactly 0), log σ_y ~ U[log 3e-4, log 0.05], the operator's
mirrored borders, and Q_b 8-bit (60 %), 12-bit (20 %) or none. The network sees each input normalised to zero mean
and unit std (a contrast gain or offset of the source does not change the answer).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import torch
from torch import nn

from .atomic import atomic_path

if TYPE_CHECKING:
    from .operators import Padding

__all__ = ["RegressorConfig", "DegradationRegressor", "random_degradations", "train_regressor", "load_regressor",
           "checkpoint_path", "sigma_loss", "cut_blur", "SigmaLoss"]

LOG_SIGMA_Y_RANGE = (math.log(3e-4), math.log(0.05))
#: The narrowest footprint side the regressor trains on (of 64): a 1.75 : 1 source (e.g. 788 × 1318 MG) is 37 wide.
FOOTPRINT_MIN = 36
#: The σ losses :func:`sigma_loss` knows: ``"l1"`` (the shipped regressor's first 19,000 steps) and ``"sensitivity"``
#: (its steps since bundle 0.8.0).
SigmaLoss = Literal["l1", "sensitivity"]


@dataclasses.dataclass
class RegressorConfig:
    """How the regressor is trained. Home of the values: the DDRM bundle's ``train.json`` ``regressor_config``
    (these defaults equal it; a test checks)."""

    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3  # peak of the one-cycle schedule
    seed: int = 0
    width: int = 32
    # "l1": |σ̂ − σ|. "sensitivity": DDRM's expected PSNR loss, which is quadratic in σ̂ − σ with a curvature that
    # falls with σ and σ_y (benchmarks/blur_sensitivity.py): see sigma_loss()
    sigma_loss: SigmaLoss = "sensitivity"
    # fraction of training blurs whose scene does not mirror at the border (a real detector cuts the scene: what lies
    # beyond is unknown); the rest have the operator's mirrored borders. 0 lets the regressor read a large blur from
    # the mirror symmetry at the edge, which no real radiograph has (σ 3 read as 2.3 on cut NIH originals)
    cut_borders: float = 0.5
    # fraction of training batches read through a non-square footprint (a portrait or landscape source, padded to
    # the square, is read only where it has pixels): the centred 64 × L or L × 64 crop, L ~ U{FOOTPRINT_MIN, …, 63}.
    # 0 leaves the regressor reading only squares, and landscape footprints then read σ 3 as 2.65
    footprints: float = 0.5

    def __post_init__(self) -> None:
        for name in ("cut_borders", "footprints"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a fraction in [0, 1], got {getattr(self, name)}.")
        if self.sigma_loss not in get_args(SigmaLoss):
            raise ValueError(f"sigma_loss must be one of {get_args(SigmaLoss)}, got {self.sigma_loss!r}.")


#: Error (px) at which the "sensitivity" loss has the slope of the L1 loss (it is steeper beyond, flatter within).
SENSITIVITY_SCALE = 0.05


def sigma_loss(predicted: torch.Tensor, sigma: torch.Tensor, sigma_y: torch.Tensor, config: RegressorConfig
               ) -> torch.Tensor:
    """Per-sample loss of a blur estimate ``predicted`` for the truth ``sigma`` (px) at noise ``sigma_y`` ([0, 1]).

    ``"l1"``: ``|σ̂ − σ|``. ``"sensitivity"``: the PSNR that DDRM loses to an error δ = σ̂ − σ grows as
    ``k(σ, σ_y)·δ²`` (measured, dB/px², 32 val images: 600 / 171 / 55 at σ = 0.5 / 1 / 2 with σ_y 0.002, 58 / 27 at
    σ = 1 / 2 with σ_y 0.01); the loss is ``w·δ²/(2·0.05)`` with
    ``w = (1.25/(max(σ, 0.5) + 0.25))² · 1.4/(1 + σ_y/0.005)`` (1 at σ = 1, σ_y 0.002; the measured ratios within
    ~25 %, held at its σ = 0.5 value below, where a blur is gated as "no blur" anyway), so large errors, which L1
    tolerates, cost what they cost DDRM.
    """
    error = predicted - sigma
    if config.sigma_loss == "l1":
        return error.abs()
    weight = (1.25 / (sigma.clamp_min(0.5) + 0.25)) ** 2 * 1.4 / (1 + sigma_y / 0.005)  # "sensitivity" (checked)
    return weight * error**2 / (2 * SENSITIVITY_SCALE)


class DegradationRegressor(nn.Module):
    """``(B, 1, 64, 64)`` in [0, 1] → ``(B, 2)``: blur σ (model-scale pixels) and log σ_y ([0, 1] units).

    Six 3×3 conv layers (GroupNorm, GELU; stride 2 at layers 2, 4, 6), mean- and max-pooled features, a 2-layer
    head; 0.32 M parameters for ``width=32``.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for i, out in enumerate((width, width, 2 * width, 2 * width, 4 * width, 4 * width)):
            layers += [nn.Conv2d(channels, out, 3, stride=2 if i in (1, 3, 5) else 1, padding=1),
                       nn.GroupNorm(8, out), nn.GELU()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * channels, 128), nn.GELU(), nn.Linear(128, 2))

    @staticmethod
    def normalise(y: torch.Tensor) -> torch.Tensor:
        y = y - y.mean(dim=(-1, -2), keepdim=True)
        return y / y.std(dim=(-1, -2), keepdim=True).clamp_min(1e-6)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        z = self.features(self.normalise(y))
        return self.head(torch.cat([z.mean(dim=(-1, -2)), z.amax(dim=(-1, -2))], dim=1))


def cut_blur(x: torch.Tensor, sigma: float, mode: Literal["circular", "replicate"]) -> torch.Tensor:
    """Blur of one image ``(1, N, N)`` whose scene continues past its border as ``mode`` (``"circular"``: another
    scene's content, ``"replicate"``: flat), cut back to ``N × N`` as a detector cuts it."""
    from .operators import convolution_matrix, gaussian_kernel_1d

    size, radius = x.shape[-1], math.ceil(3 * sigma)
    canvas = torch.nn.functional.pad(x[None], (radius,) * 4, mode=mode)[0]
    rows = convolution_matrix(gaussian_kernel_1d(sigma, radius), size + 2 * radius, "zeros")[radius : radius + size]
    return rows @ canvas @ rows.T


def random_degradations(pool: torch.Tensor, batch_size: int, generator: torch.Generator, sigma_max: float = 4.0,
                        padding: Padding = "symmetric", cut_borders: float = 0.0, footprints: float = 0.0
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of ``(y, σ, log σ_y)`` from training images ``pool`` ``(N, 1, 64, 64)`` in [0, 1] (float64).

    A fraction ``cut_borders`` of the blurs (drawn per image) cut a scene that continues past the border as
    another scene (wrapped around) or flat (edge values), half each; the others have ``padding`` borders. With
    probability ``footprints`` the whole batch is the centred crop ``(B, 1, 64, L)`` or ``(B, 1, L, 64)``,
    ``FOOTPRINT_MIN <= L < 64``: the footprint of a non-square source, as the estimator reads it."""
    from .measurement import quantise
    from .operators import convolution_matrix, gaussian_kernel_1d

    size = pool.shape[-1]
    x = pool[torch.randint(len(pool), (batch_size,), generator=generator)]
    if bool(torch.rand(1, generator=generator) < 0.5):
        x = x.flip(-1)
    sigma = torch.rand(batch_size, generator=generator, dtype=torch.float64) * sigma_max
    sigma = torch.where(torch.rand(batch_size, generator=generator) < 0.15, torch.zeros_like(sigma), sigma)
    eye = torch.eye(size, dtype=torch.float64)
    blur = torch.stack([convolution_matrix(gaussian_kernel_1d(s, math.ceil(3 * s)), size, padding) if s > 0 else eye
                        for s in sigma.tolist()])[:, None]
    y = blur @ x @ blur.transpose(-1, -2)
    if cut_borders > 0:
        border = torch.rand(batch_size, generator=generator)
        for i in torch.nonzero((border < cut_borders) & (sigma > 0)).flatten().tolist():
            mode = "circular" if border[i] < cut_borders / 2 else "replicate"
            y[i] = cut_blur(x[i], float(sigma[i]), mode)
    log_sigma_y = torch.empty(batch_size, dtype=torch.float64).uniform_(*LOG_SIGMA_Y_RANGE, generator=generator)
    y = y + log_sigma_y.exp()[:, None, None, None] * torch.randn(y.shape, generator=generator, dtype=torch.float64)
    u = torch.rand(batch_size, generator=generator)[:, None, None, None]
    y = torch.where(u < 0.6, quantise(y, 8), torch.where(u < 0.8, quantise(y, 12), y))
    if footprints > 0 and bool(torch.rand(1, generator=generator) < footprints):
        side = int(torch.randint(FOOTPRINT_MIN, size, (1,), generator=generator))
        lo = (size - side) // 2
        y = y[..., lo : lo + side, :] if bool(torch.rand(1, generator=generator) < 0.5) else y[..., lo : lo + side]
    return y.float(), sigma.float(), log_sigma_y.float()


def load_regressor(path: str | os.PathLike) -> DegradationRegressor:
    """Weights written by :func:`train_regressor` (``weights_only``), in eval mode; a clear error names the file."""
    from .errors import InputError
    from .networks import read_state_file

    path = Path(path)
    state = read_state_file(path, "degradation regressor")
    try:
        model = DegradationRegressor(width=int(state.pop("_width", torch.tensor(32)).item()))
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - any failure means the same thing to the user
        raise InputError(path, f"not a degradation regressor ({type(e).__name__}: {e})") from None
    return model.eval()


def checkpoint_path(out: str | os.PathLike) -> Path:
    """Where :func:`train_regressor` keeps its resumable state while it runs: ``<out>.checkpoint.pt``."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoint.pt")


def train_regressor(data: str | os.PathLike, out: str | os.PathLike, extra: tuple | list = (),
                    config: RegressorConfig | None = None, padding: Padding = "zeros", progress: bool = True,
                    init: str | os.PathLike | None = None, resume: bool = True,
                    checkpoint_seconds: float = 180.0) -> Path:
    """Train :class:`DegradationRegressor` on the training pool (train split + ``extra``; val and test are never
    read) and write its weights to ``out`` (``weights_only``-loadable, temp name then rename) with a CSV log beside
    it. :func:`sigma_loss` on σ (``config.sigma_loss``) plus 0.3 × L1 on log σ_y;
    AdamW with a one-cycle schedule. ``padding``: the borders of the training blurs (the restoring operator's).
    ``init``: weights of ``config.width`` to continue from, with a new schedule. Every ``checkpoint_seconds`` the
    whole state (model, optimizer, schedule, RNGs, log) goes to :func:`checkpoint_path` (temp name, then rename); a
    rerun with the same run settings resumes there and continues exactly as if never stopped (``resume=False``
    starts over), and the file is removed once ``out`` is written. Returns ``out``."""
    from tqdm.auto import tqdm

    from .datasets import load_training_pool, to_unit_range

    config = config or RegressorConfig()
    steps, batch_size, lr, seed, width = config.steps, config.batch_size, config.lr, config.seed, config.width
    torch.manual_seed(seed)
    pool = to_unit_range(load_training_pool(data, extra)).double()
    model = DegradationRegressor(width)
    if init is not None:
        start = load_regressor(init)
        if start.features[0].out_channels != width:
            raise ValueError(f"{init}: width {start.features[0].out_channels}, not the config's width {width}.")
        model.load_state_dict(start.state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr / 2, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.05)
    generator = torch.Generator().manual_seed(seed + 1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, elapsed, running, first = [], 0.0, 0.0, 1
    ckpt = checkpoint_path(out)
    run = {"data": str(data), "extra": [str(e) for e in extra], "padding": padding,
           "init": None if init is None else str(init), **dataclasses.asdict(config)}
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state["run"] != run:
            raise ValueError(f"{ckpt}: a checkpoint of another run ({state['run']}); remove it or pass resume=False "
                             f"(CLI: --restart) to start this one ({run}).")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        rows, elapsed, running, first = state["rows"], state["seconds"], state["running"], state["step"] + 1

    def save_checkpoint(step: int) -> None:
        state = {"run": run, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "schedule": schedule.state_dict(), "generator": generator.get_state(),
                 "torch_rng": torch.get_rng_state(), "rows": rows, "running": running,
                 "seconds": elapsed + time.time() - started}
        with atomic_path(ckpt) as tmp:
            torch.save(state, tmp)

    started = last_save = time.time()
    for step in tqdm(range(first, steps + 1), desc="regressor", disable=not progress, initial=first - 1,
                     total=steps):
        y, sigma, log_sigma_y = random_degradations(pool, batch_size, generator, padding=padding,
                                                    cut_borders=config.cut_borders,
                                                    footprints=config.footprints)
        prediction = model(y)
        loss = (sigma_loss(prediction[:, 0], sigma, log_sigma_y.exp(), config).mean()
                + 0.3 * (prediction[:, 1] - log_sigma_y).abs().mean())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running = 0.98 * running + 0.02 * float(loss.detach()) if step > 1 else float(loss.detach())
        if step % 250 == 0 or step == steps:
            rows.append({"step": step, "loss": round(running, 5),
                         "seconds": round(elapsed + time.time() - started, 1)})
        if time.time() - last_save >= checkpoint_seconds and step < steps:
            save_checkpoint(step)
            last_save = time.time()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["_width"] = torch.tensor(width)
    with atomic_path(out) as tmp:
        torch.save(state, tmp)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "loss", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
    ckpt.unlink(missing_ok=True)
    return out
