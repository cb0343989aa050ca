"""DDRM (Kawar et al., 2022) as a MONAI ``Inferer`` over any ε-prediction diffusion UNet.

Notation (paper ↔ code), all in the operator's spectral space, image-shaped ``(B, 1, N, N)``:

    s_i        ``s``          kept singular values of H (0 where dropped by the threshold)
    σ_y        ``sigma0``     measurement noise std in the model's [-1, 1] units (= 2 · ``sigma_y``)
    ȳ_i        ``y_bar``      (Uᵀy)_i / s_i on informative components, 0 elsewhere
    σ_y/s_i    ``ratio``      the noise std of ȳ_i
    σ_t        ``sigma_t``    VE noise level √((1-ᾱ_t)/ᾱ_t) of DDPM step t; the VE state is x_t / √ᾱ_t
    x̄_θ        ``x0_bar``     Vᵀ x₀ of the network's clean estimate
    x̄_t        ``x_bar``      Vᵀ of the current VE state

A component is *informative* if s_i > 0 and σ_y/s_i < σ_T; every other component (dropped by the
threshold, or noisier than the initial noise) takes the "missing" update at every step, so no division by
a zeroed singular value ever happens and σ_y = 0 works.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type
from torch import nn

from .operators import SVDOperator

__all__ = ["DDRMInferer", "TimestepSpacing", "ddrm_timesteps"]


TimestepSpacing = Literal["uniform", "quadratic"]


def ddrm_timesteps(num_train_timesteps: int, num_steps: int, spacing: TimestepSpacing = "uniform") -> list[int]:
    """The increasing timesteps at which DDRM evaluates the network, from 0 to ``T - T // num_steps``.

    ``uniform`` is the official DDRM grid ``0, skip, 2·skip, …`` with ``skip = T // num_steps`` (20 of 1000: 0, 50,
    …, 950). ``quadratic`` (DDIM's "quad" skip) spans the same range with ``t_i = t_max · (i / (n-1))²``, so it
    spends more network evaluations at low noise, where the detail is decided (20 of 1000: 0, 3, 11, …, 950).
    """
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"num_steps must be in [1, {num_train_timesteps}], got {num_steps}.")
    skip = num_train_timesteps // num_steps
    if spacing == "uniform":
        return list(range(0, num_train_timesteps, skip))[:num_steps]
    if spacing != "quadratic":
        raise ValueError(f"spacing must be 'uniform' or 'quadratic', got {spacing!r}.")
    t_max = num_train_timesteps - skip
    grid = [0] + [round(t_max * (i / (num_steps - 1)) ** 2) for i in range(1, num_steps)]
    for i in range(1, num_steps):  # keep it strictly increasing where rounding collides (many steps)
        grid[i] = max(grid[i], grid[i - 1] + 1)
    if grid[-1] >= num_train_timesteps:
        raise ValueError(f"{num_steps} quadratic steps do not fit in {num_train_timesteps} timesteps; use 'uniform'.")
    return grid


class DDRMInferer(Inferer):
    """Restore ``y = H x + σ_y n`` with DDRM, using an ε-model trained on [-1, 1] images.

    Args:
        operator: an :class:`~xray_restore.operators.SVDOperator` (on the same device as ``y``).
        scheduler: a variance-preserving scheduler with ``alphas_cumprod`` and ``num_train_timesteps``
            (e.g. MONAI ``DDPMScheduler``, 1000 steps).
        num_steps: number of network evaluations.
        spacing: where they go in [0, T): ``"quadratic"`` (default; denser at low noise, chosen on val) or
            ``"uniform"`` (the official DDRM grid 0, T/n, …); see :func:`ddrm_timesteps`.
        eta: η ∈ [0, 1], stochasticity of the "missing" and "less noisy" updates (paper eq. 7-8).
        eta_b: η_b ∈ [0, 1], weight of the measurement in the "noisier than y" update.
        sigma_y: measurement noise std in [0, 1] intensity units (>= 0).
        num_samples: posterior samples per input; ``__call__`` returns their mean.
        clip_denoised: clamp the network's x₀ estimate to [-1, 1] at every step.
        autocast: run the network under bf16 autocast (fast on CPUs with AVX512-BF16).
        seed: if given, calls without an explicit ``generator`` draw from one generator seeded once here, so a
            whole run (e.g. a MONAI evaluator over a dataset) is reproducible.

    Example:
        >>> from monai.networks.schedulers import DDPMScheduler
        >>> from xray_restore.operators import GaussianBlur
        >>> op = GaussianBlur(size=16, sigma=1.0)
        >>> inferer = DDRMInferer(op, DDPMScheduler(1000), num_steps=5, sigma_y=0.01)
        >>> zero_eps = lambda x, t: torch.zeros_like(x)
        >>> inferer(inputs=torch.full((1, 1, 16, 16), 0.5), network=zero_eps).shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(
        self,
        operator: SVDOperator,
        scheduler,
        num_steps: int = 20,
        spacing: TimestepSpacing = "quadratic",
        eta: float = 0.85,
        eta_b: float = 1.0,
        sigma_y: float = 0.0,
        num_samples: int = 1,
        clip_denoised: bool = True,
        autocast: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(operator, SVDOperator):
            raise TypeError(f"operator must be an SVDOperator, got {type(operator).__name__}.")
        if not hasattr(scheduler, "alphas_cumprod"):
            raise TypeError(f"scheduler must define alphas_cumprod (a VP DDPM schedule), got {type(scheduler).__name__}.")
        for name, value in (("eta", eta), ("eta_b", eta_b)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}.")
        if not (sigma_y >= 0.0 and math.isfinite(sigma_y)):
            raise ValueError(f"sigma_y must be a finite number >= 0, got {sigma_y}.")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        self.operator = operator
        self.scheduler = scheduler
        self.num_train_timesteps = int(scheduler.num_train_timesteps)
        self.timesteps = ddrm_timesteps(self.num_train_timesteps, int(num_steps), spacing)
        self.spacing = spacing
        self.num_steps = int(num_steps)
        self.eta = float(eta)
        self.eta_b = float(eta_b)
        self.sigma_y = float(sigma_y)
        self.num_samples = int(num_samples)
        self.clip_denoised = bool(clip_denoised)
        self.autocast = bool(autocast)
        self.seed = seed
        self._generator = None if seed is None else torch.Generator().manual_seed(int(seed))

    @property
    def config(self) -> dict:
        """Hyper-parameters, for provenance (reports, DICOM DerivationDescription)."""
        return {
            "method": "DDRM",
            "num_steps": self.num_steps,
            "eta": self.eta,
            "eta_b": self.eta_b,
            "sigma_y": self.sigma_y,
            "num_samples": self.num_samples,
            "clip_denoised": self.clip_denoised,
            "seed": self.seed,
            "spacing": self.spacing,
            "timesteps": f"{self.timesteps[0]}..{self.timesteps[-1]}",
        }

    def __call__(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        network: nn.Module | Callable[..., torch.Tensor],
        *args,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """Posterior mean of ``num_samples`` DDRM samples, ``(B, 1, N, N)`` in [0, 1], for ``inputs`` y in [0, 1].

        A ``MetaTensor`` input gives a ``MetaTensor`` output with the same meta data (file names, affine), so
        MONAI post-processing (``SaveImaged``, ``Invertd``) works on the result.
        """
        mean, _ = self.sample(inputs, network, generator=generator)
        if isinstance(inputs, MetaTensor):
            mean = convert_to_dst_type(mean, inputs, dtype=mean.dtype)[0]
        return mean

    # ------------------------------------------------------------------------------------------------
    def _alpha_bar(self, t: int) -> float:
        return 1.0 if t < 0 else float(self.scheduler.alphas_cumprod[t])

    def _sigma(self, t: int) -> float:
        a = self._alpha_bar(t)
        return math.sqrt((1.0 - a) / a)

    def _denoise(self, network, x_ve: torch.Tensor, t: int) -> torch.Tensor:
        """x₀ estimate from the VE state via the VP ε-model: x_vp = √ᾱ_t x_ve, x₀ = x_ve − σ_t ε."""
        alpha_bar = self._alpha_bar(t)
        x_vp = (math.sqrt(alpha_bar) * x_ve).float()
        timesteps = torch.full((x_vp.shape[0],), t, dtype=torch.long, device=x_vp.device)
        with torch.autocast(x_vp.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            eps = network(x_vp, timesteps)
        x0 = x_ve - self._sigma(t) * eps.to(x_ve.dtype)
        return x0.clamp(-1.0, 1.0) if self.clip_denoised else x0

    @torch.inference_mode()
    def sample(
        self,
        inputs: torch.Tensor,
        network: nn.Module | Callable[..., torch.Tensor],
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw DDRM posterior samples for each input.

        Args:
            inputs: y, ``(B, 1, N, N)`` degraded images in [0, 1] intensity units.
            network: ε-model ``network(x, t)`` trained on [-1, 1] data.
            num_samples: samples per input (default: the inferer's ``num_samples``).
            generator: source of randomness (CPU ``torch.Generator``) for reproducible samples.

        Returns:
            ``(mean, std)``, each ``(B, 1, N, N)``: the sample mean in [0, 1] and the per-pixel standard
            deviation over samples (zeros for one sample), both in [0, 1] intensity units.
        """
        self.operator.check_input(inputs, "inputs (y)")
        k = self.num_samples if num_samples is None else int(num_samples)
        generator = self._generator if generator is None else generator
        if k < 1:
            raise ValueError(f"num_samples must be >= 1, got {k}.")
        batch, dtype = inputs.shape[0], torch.float64
        device = inputs.device

        def randn(shape: torch.Size) -> torch.Tensor:
            return torch.randn(shape, generator=generator, dtype=dtype).to(device)

        # 1. Measurement in model space: x' = 2x - 1 ⇒ H x' = 2 H x - H 1, noise std doubles.
        y = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        y = y.to(dtype)
        y_model = 2.0 * y - self.operator.H(torch.ones_like(y))
        sigma0 = 2.0 * self.sigma_y
        y_model = y_model.repeat_interleave(k, dim=0)

        # 2. Spectral measurement (float64) and the static split informative / missing.
        s = self.operator.singulars().to(device=device, dtype=dtype)
        sigma_T = self._sigma(self.timesteps[-1])
        informative = (s > 0) & (s * sigma_T > sigma0)
        safe_s = torch.where(informative, s, torch.ones_like(s))
        y_bar = torch.where(informative, self.operator.Ut(y_model) / safe_s, torch.zeros_like(y_model))
        ratio = torch.where(informative, sigma0 / safe_s, torch.zeros_like(s))  # σ_y / s_i
        safe_ratio = torch.where(ratio > 0, ratio, torch.ones_like(ratio))

        # 3. Initialisation (paper eq. 5-6 at t = T): informative ~ N(ȳ, σ_T² - σ_y²/s²), missing ~ N(0, σ_T²).
        z = randn(y_model.shape)
        init_std = torch.sqrt((sigma_T**2 - ratio**2).clamp_min(0.0))
        x_bar = torch.where(informative, y_bar + init_std * z, sigma_T * z)
        x_ve = self.operator.V(x_bar)

        c = math.sqrt(1.0 - self.eta**2)
        steps = list(reversed(self.timesteps))
        for t, t_next in zip(steps, steps[1:] + [-1]):
            sigma_t, sigma_next = self._sigma(t), self._sigma(t_next)
            # 4. Network: clean estimate x̄_θ and the implied noise direction ε̄ = (x̄_t − x̄_θ)/σ_t.
            x0 = self._denoise(network, x_ve, t)
            x0_bar = self.operator.Vt(x0)
            eps_bar = (x_bar - x0_bar) / sigma_t
            z = randn(x0_bar.shape)
            # 5. Missing components (eq. 7): DDIM-like step with η-weighted fresh noise.
            missing = x0_bar + sigma_next * (c * eps_bar + self.eta * z)
            # 6. Informative, less noisy than y (σ_{t'} < σ_y/s_i, eq. 8 top): move towards ȳ.
            after = x0_bar + sigma_next * (c * (y_bar - x0_bar) / safe_ratio + self.eta * z)
            # 7. Informative, noisier than y (σ_{t'} >= σ_y/s_i, eq. 8 bottom): η_b-mix with ȳ, add the rest.
            before_std = torch.sqrt((sigma_next**2 - (self.eta_b * ratio) ** 2).clamp_min(0.0))
            before = (1.0 - self.eta_b) * x0_bar + self.eta_b * y_bar + before_std * z
            less_noisy = informative & (ratio > sigma_next)
            x_bar = torch.where(informative, torch.where(less_noisy, after, before), missing)
            x_ve = self.operator.V(x_bar)

        # 8. Back to [0, 1] intensities; mean and per-pixel std over the k samples of each input.
        images = ((x_ve + 1.0) / 2.0).clamp(0.0, 1.0).reshape(batch, k, *inputs.shape[1:])
        mean = images.mean(dim=1)
        std = images.std(dim=1, correction=1) if k > 1 else torch.zeros_like(mean)
        return mean.to(inputs.dtype), std.to(inputs.dtype)
