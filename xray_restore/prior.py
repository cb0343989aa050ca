"""Training the unconditional 64×64 ChestX-ray14 prior (train split only; selection on val)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from ._compat import bf16_autocast
from .datasets import load_cxr14_cache, load_training_pool, to_model_space
from .networks import build_prior_unet, build_scheduler
from .training import TrainConfig, Trainer, epsilon_loss, fixed_epsilon_loss

__all__ = ["SourceTrainConfig", "train_prior", "train_patch_prior", "fixed_patches", "sample_prior",
           "write_synthetic_samples"]


def train_prior(
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    network: torch.nn.Module | None = None,
    resume: bool = True,
    reset_ema: bool = False,
    num_threads: int | None = None,
    progress: bool = True,
    val_limit: int | None = None,
    init_weights: str | os.PathLike | None = None,
    init_step: int = 0,
    extra_data: tuple[str | os.PathLike, ...] | list[str | os.PathLike] = (),
    device: str | torch.device = "cpu",
) -> Trainer:
    """Train (or resume) the DDPM prior on the ``train`` split of a ChestX-ray14 cache.

    Validation is the EMA model's ε-MSE on the ``val`` split at fixed timesteps and noise; the best
    EMA weights go to ``out_dir/model.pt``. ``network`` defaults to :func:`build_prior_unet` (the shipped
    architecture). ``data`` may be any cache in the ``cxr14_64.npz`` layout, e.g. one built from the full
    ChestX-ray14 release. ``init_weights`` (with ``init_step``, the step count that made them) warm-starts a new
    run from saved weights, e.g. the bundle's ``models/model.pt``, when ``out_dir`` has no checkpoint yet.
    ``extra_data`` are training-only archives (e.g. ``cxr14_extra_64.npz``) added to the train split. ``device``:
    where the network trains and validates (e.g. ``"cuda"``); checkpoints resume on any device.
    """
    if num_threads:
        torch.set_num_threads(num_threads)
    config = config or TrainConfig()
    train = to_model_space(load_training_pool(data, extra_data))
    val = to_model_space(load_cxr14_cache(data, "val")["images"])
    if val_limit:
        val = val[:val_limit]
    torch.manual_seed(config.seed)
    model = network if network is not None else build_prior_unet()
    scheduler = build_scheduler()
    trainer = Trainer(
        model,
        epsilon_loss(scheduler),
        train,
        Path(out_dir),
        config,
        val_fn=lambda ema: fixed_epsilon_loss(ema, scheduler, val, autocast=config.autocast),
        device=device,
    )
    resumed = trainer.maybe_resume(reset_ema=reset_ema) if resume else False
    if not resumed and init_weights is not None:
        trainer.warm_start(init_weights, step=init_step)
    trainer.fit(progress=progress)
    return trainer


@dataclasses.dataclass
class SourceTrainConfig(TrainConfig):
    """:class:`~xray_restore.training.TrainConfig` of the patch prior at the source grid (``xray_ddrm_source``'s
    ``train.json`` is the home of these values; a test checks they agree): 64² patches, no shift (the crop moves),
    batch 16, val and checkpoints more often (a step costs ~3 s on one CPU core)."""

    batch_size: int = 16
    val_every: int = 500
    checkpoint_every: int = 100
    max_shift: int = 0
    patch_size: int = 64


def fixed_patches(images: torch.Tensor, size: int, count: int) -> torch.Tensor:
    """``count`` non-overlapping ``size²`` patches of ``images`` ``(N, 1, H, W)``, spread evenly over the tiling
    (deterministic: the same patches every call), ``(count, 1, size, size)``."""
    tiles = images.unfold(2, size, size).unfold(3, size, size)  # (N, 1, H/size, W/size, size, size)
    tiles = tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1], size, size)
    pick = torch.linspace(0, len(tiles) - 1, min(count, len(tiles))).round().long()
    return tiles[pick].contiguous()


def train_patch_prior(
    crops: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    network: torch.nn.Module,
    resume: bool = True,
    num_threads: int | None = None,
    progress: bool = True,
    val_patches: int = 256,
    device: str | torch.device = "cpu",
    init_weights: str | os.PathLike | None = None,
    init_step: int = 0,
) -> Trainer:
    """Train (or resume) a DDPM of ``config.patch_size``² patches of radiographs at their own grid.

    ``crops``: a folder of source-resolution crops (``cxr14_crops_1024/``, :func:`~xray_restore.datasets.
    load_source_crops`); its held-out patients' crops give ``val_patches`` fixed patches whose EMA ε-MSE (fixed
    timesteps and noise) selects ``out_dir/model.pt``. ``network`` must be fully convolutional (no attention), so
    the trained model denoises a tile or a whole image of any size that its depth divides. ``init_weights`` (with
    ``init_step``) warm-starts a new run from committed EMA weights (``training/source_prior/``) when ``out_dir``
    has no checkpoint.
    """
    from .datasets import load_source_crops

    if not config.patch_size:
        raise ValueError("a patch prior needs config.patch_size > 0.")
    if num_threads:
        torch.set_num_threads(num_threads)
    data = load_source_crops(crops)
    val = fixed_patches(data["val"], config.patch_size, val_patches)
    torch.manual_seed(config.seed)
    scheduler = build_scheduler()
    trainer = Trainer(network, epsilon_loss(scheduler), data["train"], Path(out_dir), config,
                      val_fn=lambda ema: fixed_epsilon_loss(ema, scheduler, val, autocast=config.autocast),
                      device=device)
    resumed = trainer.maybe_resume() if resume else False
    if not resumed and init_weights is not None:
        trainer.warm_start(init_weights, step=init_step)
    trainer.fit(progress=progress)
    return trainer


@torch.inference_mode()
def sample_prior(
    network: torch.nn.Module,
    num_images: int,
    size: int = 64,
    num_steps: int = 100,
    seed: int = 0,
    autocast: bool = True,
) -> torch.Tensor:
    """Unconditional samples from the prior with MONAI's DDIM sampler (η = 0), ``(B, 1, N, N)`` in [0, 1]."""
    from monai.inferers import DiffusionInferer
    from monai.networks.schedulers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=1000, schedule="linear_beta", clip_sample=True)
    scheduler.set_timesteps(num_steps)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((num_images, 1, size, size), generator=g)
    with bf16_autocast("cpu", enabled=autocast):
        x = DiffusionInferer(scheduler).sample(noise, network.eval(), scheduler=scheduler, verbose=False)
    return ((x.float() + 1) / 2).clamp(0, 1)


def write_synthetic_samples(
    weights: str | os.PathLike, out_dir: str | os.PathLike, num_images: int = 4, seed: int = 0,
    candidates: int = 128, num_steps: int = 200, spectrum: str | os.PathLike | None = None,
) -> list[Path]:
    """Write prior samples (``sharp/``) and their blurs (``blurred/``) as 8-bit PNGs: the bundle's embedded default.

    ``candidates`` samples are drawn (DDIM, ``num_steps`` steps); the ``num_images`` kept are those the blur/noise
    estimator (with ``spectrum``, default the bundle's ``models/degradation_spectrum.pt`` beside ``weights``) finds
    sharpest and least noisy (lowest ``blur_sigma + 100·sigma_y``): a stated criterion, so the references look like
    real radiographs at the model scale. The blur is what the bundle's operator assumes for real inputs: Gaussian
    σ = 2 px with the borders of the bundle's operator (``configs/inference.json`` beside ``models/``), σ_y = 0.01,
    8-bit. Named ``synthetic_prior_sample_<i>.png``; no patient data.
    """
    import numpy as np
    from PIL import Image

    from .estimation import SpectralDegradationEstimator
    from .measurement import degrade
    from .networks import load_weights
    from .operators import GaussianBlur

    unet = load_weights(build_prior_unet(), weights)
    pool = sample_prior(unet, candidates, num_steps=num_steps, seed=seed)
    pool = torch.round(pool * 255) / 255
    estimator = SpectralDegradationEstimator(spectrum or Path(weights).with_name("degradation_spectrum.pt"))
    score = torch.tensor([e.blur_sigma + 100 * e.sigma_y for e in estimator(pool, 8)])
    sharp = pool[score.argsort()[:num_images]]
    from .locate import operator_padding

    padding = operator_padding(Path(weights).resolve().parents[1])
    blurred = degrade(sharp, "realistic", torch.Generator().manual_seed(seed),
                      operator=GaussianBlur(sharp.shape[-1], 2.0, padding=padding))
    written = []
    for folder, images in (("sharp", sharp), ("blurred", blurred)):
        target = Path(out_dir) / folder
        target.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            path = target / f"synthetic_prior_sample_{i}.png"
            Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8)).save(path)
            written.append(path)
    return written
