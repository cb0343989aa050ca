"""Image-quality metrics with torchmetrics: PSNR, SSIM (per image), LPIPS (squeeze) and KID (configurable features).

All inputs are ``(B, 1, N, N)`` in [0, 1]; LPIPS gets them as 3-channel [-1, 1]. Weights are read from
``$TORCH_HOME/hub/checkpoints`` and never downloaded here: a missing file raises :class:`MissingWeightsError`
naming it. KID uses torch-fidelity's Inception when its weights file is present, otherwise the squeezenet
features of the LPIPS backbone (mean-pooled); every KID number is labelled with the features that made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

__all__ = ["psnr", "ssim", "MissingWeightsError", "lpips", "kid", "checkpoint_dir", "SQUEEZENET_FILE", "INCEPTION_FILE"]

SQUEEZENET_FILE = "squeezenet1_1-b8a52dc0.pth"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


class MissingWeightsError(FileNotFoundError):
    """A metric's pretrained weights are not in ``$TORCH_HOME/hub/checkpoints`` (nothing is downloaded)."""


def psnr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) on [0, 1] after clamping the estimate, ``(B,)``."""
    return peak_signal_noise_ratio(
        estimate.clamp(0, 1).double(), reference.double(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )


def ssim(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM on [0, 1] (Gaussian window 11, σ 1.5), ``(B,)``."""
    return structural_similarity_index_measure(
        estimate.clamp(0, 1).double(), reference.double(), data_range=1.0, reduction="none"
    )


def checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch`` if TORCH_HOME is unset), as torch.hub uses it."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _require(name: str, metric: str) -> Path:
    path = checkpoint_dir() / name
    if not path.is_file():
        raise MissingWeightsError(f"{path}: {metric} needs these weights and they are not present; set TORCH_HOME "
                                  "to a folder whose hub/checkpoints holds them (offline: nothing is downloaded)")
    return path


_LPIPS: nn.Module | None = None


def lpips(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS (squeeze backbone), ``(B,)``; lower is better."""
    global _LPIPS
    _require(SQUEEZENET_FILE, "LPIPS (squeeze)")
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    if _LPIPS is None:
        _LPIPS = LearnedPerceptualImagePatchSimilarity(net_type="squeeze", reduction="mean").eval()

    def to_lpips(x: torch.Tensor) -> torch.Tensor:
        return (x.clamp(0, 1).float() * 2 - 1).expand(-1, 3, -1, -1)

    with torch.inference_mode():
        return torch.stack([_LPIPS(to_lpips(e[None]), to_lpips(r[None])) for e, r in zip(estimate, reference)])


class SqueezeFeatures(nn.Module):
    """Mean-pooled, L2-normalised (× √512) squeezenet1_1 features of [0, 1] grey images, for KID."""

    def __init__(self) -> None:
        super().__init__()
        import torchvision

        _require(SQUEEZENET_FILE, "KID (squeezenet features)")
        net = torchvision.models.squeezenet1_1(weights=torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1)
        self.features = net.features.eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.max() > 1.5:  # torchmetrics passes uint8-range images when normalize=False
            x = x / 255.0
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        f = self.features(x).mean(dim=(2, 3)).double()
        # unit-norm × √d: KID's cubic kernel (x·y/d + 1)³ then sees cosines; raw ReLU features have norms in the
        # tens and make the estimate's variance swamp its mean.
        return nn.functional.normalize(f, dim=1) * f.shape[1] ** 0.5


#: The feature extractors :func:`kid` knows.
KIDFeatures = Literal["auto", "inception", "squeezenet"]


def kid(real: torch.Tensor, fake: torch.Tensor, subset_size: int = 50, features: KIDFeatures = "auto") -> dict:
    """Kernel Inception Distance between two sets of ``(B, 1, N, N)`` [0, 1] images.

    ``features``: ``"inception"`` (torch-fidelity's, needs its weights), ``"squeezenet"`` (the LPIPS backbone), or
    ``"auto"`` (Inception if its weights are present). Returns ``{"mean", "std", "features", "subset_size"}``.

    ``subset_size`` is reduced to the smaller set's size when needed.

    Raises:
        MissingWeightsError: the requested features' weights are absent.
        ValueError: fewer than 2 images in a set, or unknown ``features``.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    n = min(len(real), len(fake))
    if n < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(real)} real and {len(fake)} fake.")
    subset_size = min(subset_size, n)
    if features == "auto":
        features = "inception" if (checkpoint_dir() / INCEPTION_FILE).is_file() else "squeezenet"
    if features == "inception":
        _require(INCEPTION_FILE, "KID (Inception)")
        metric = KernelInceptionDistance(feature=2048, subset_size=subset_size, normalize=True)
        label = "inception-v3 pool3 (torch-fidelity)"
    elif features == "squeezenet":
        metric = KernelInceptionDistance(feature=SqueezeFeatures(), subset_size=subset_size, normalize=True)
        label = "squeezenet1_1 features, mean-pooled, L2-normalised (NOT Inception: not comparable with published KID)"
    else:
        raise ValueError(f"features must be 'auto', 'inception' or 'squeezenet', got {features!r}.")
    with torch.inference_mode():
        metric.update(real.clamp(0, 1).float().expand(-1, 3, -1, -1), real=True)
        metric.update(fake.clamp(0, 1).float().expand(-1, 3, -1, -1), real=False)
        mean, std = metric.compute()
    return {"mean": float(mean), "std": float(std), "features": label, "subset_size": subset_size}


def image_metrics(estimate: torch.Tensor, reference: torch.Tensor, with_lpips: bool = True) -> dict[str, list]:
    """Per-image PSNR, SSIM (and LPIPS) lists for ``(B, 1, N, N)`` tensors in [0, 1]."""
    out = {"psnr": psnr(estimate, reference).tolist(), "ssim": ssim(estimate, reference).tolist()}
    if with_lpips:
        out["lpips"] = lpips(estimate, reference).tolist()
    return out
