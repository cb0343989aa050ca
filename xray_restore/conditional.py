"""The conditional diffusion deblurrer trained on (blurred, sharp) pairs: predict-and-refine.

- **Predict-and-refine** (Whang et al., CVPR 2022): a deterministic predictor ``g(y)`` plus a small ε-model that
  diffuses the residual ``x − g(y)`` conditioned on ``g(y)`` (channel concat); both trained jointly
  (``‖g(y) − x‖² + ε-MSE``). The mean of K samples is the distortion-optimised output; their std the uncertainty.
  Our predictor sees the blur through the operator: ``g(y) = w + UNet(w)`` with ``w`` a fixed Tikhonov
  deconvolution of ``y`` (:class:`TikhonovFrontEnd`), so the network learns a correction, not the inverse filter.

Pairs are made on the fly from clean images in [-1, 1]: ``y = Q₈(H x + σ_y n)`` with ``σ_y ~ U[0, σ_max]``
per image (in [0, 1] units), so one model serves noisy and noiseless inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from monai.inferers import DiffusionInferer, Inferer
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, Scheduler
from torch import nn

from ._compat import bf16_autocast
from .plan import RestorationPlan
from .measurement import measure
from .operators import SVDOperator

__all__ = [
    "blur_condition",
    "TikhonovFrontEnd",
    "PredictAndRefine",
    "predict_and_refine_loss",
    "ConditionalSampler",
    "ConditionalInferer",
    "build_conditional",
    "train_conditional",
]


def blur_condition(
    operator: SVDOperator, sigma_y_max: float = 0.05, quantize_bits: int | None = 8, paddings: Sequence[str] = ()
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """``condition_fn(x, g)``: clean ``(B, 1, N, N)`` in [-1, 1] → blurred, noisy, quantised y in [-1, 1].

    ``paddings``: border models each image's blur is drawn from, uniformly (e.g. ``("zeros", "symmetric")``: the
    benchmark protocols' dark borders and the mirrored borders a real radiograph's blur leaves at the model scale),
    each a :class:`~xray_restore.operators.GaussianBlur` like ``operator``; empty: ``operator`` alone.
    """
    operators = [operator]
    if paddings:
        from .operators import GaussianBlur

        if not isinstance(operator, GaussianBlur):
            raise ValueError(f"paddings need a GaussianBlur operator, got {type(operator).__name__}.")
        operators = [GaussianBlur(operator.size, operator.sigma, operator.threshold, operator.radius,
                                  operator.threshold_on, padding=p) for p in paddings]

    def condition(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x01 = (x.detach().float().cpu() + 1) / 2  # measured on the CPU (its operators, its generator), any device
        sigma = torch.rand((x.shape[0], 1, 1, 1), generator=generator) * sigma_y_max
        noise = torch.randn(x01.shape, generator=generator)
        if len(operators) == 1:
            y = measure(x01, operators[0], sigma, noise, quantize_bits)
        else:
            pick = torch.randint(len(operators), (x.shape[0],), generator=generator)
            y = torch.empty_like(x01)
            for k, op in enumerate(operators):  # each image blurred once, by its own border model
                chosen = pick == k
                if chosen.any():
                    y[chosen] = measure(x01[chosen], op, sigma[chosen], noise[chosen], quantize_bits)
        return (2 * y - 1).to(device=x.device, dtype=x.dtype)

    return condition


class TikhonovFrontEnd(nn.Module):
    """Fixed Tikhonov deconvolution ``V diag(s/(s²+λ)) Uᵀ`` of the operator, on [-1, 1] images ``(B, 1, N, N)``.

    Always computed in float32 (never under bf16 autocast: 8-bit measurements times gains up to ``1/(2√λ)``
    need the precision). The gains are a buffer, so saved weights record the filter they were trained with.
    """

    def __init__(self, operator: SVDOperator, lam: float = 1e-2) -> None:
        super().__init__()
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam}.")
        self.operator = operator
        self.lam = float(lam)
        s = operator.full_singulars().float()
        self.register_buffer("gain", s / (s**2 + lam))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(y.device.type, enabled=False):
            y01 = (y.float() + 1) / 2
            return 2 * self.operator.V(self.gain * self.operator.Ut(y01)) - 1


class PredictAndRefine(nn.Module):
    """``g(y)`` (a time-free UNet: it is called with t = 0) plus a residual ε-model on ``[r_t, g(y)]``.

    Args:
        predictor: 1-channel UNet of the initial predictor, used as a residual ``w + predictor(w)``.
        denoiser: 2-channel ε-UNet of the residual ``x − g(y)``, conditioned on ``g(y)``.
        front_end: optional fixed map ``y → w`` (e.g. :class:`TikhonovFrontEnd`); identity if None.
        residual_std: scale of the residual in [-1, 1] units (≈ the predictor's RMSE); the diffusion runs on
            ``(x − g(y)) / residual_std`` so a standard unit-variance schedule fits it.
    """

    def __init__(self, predictor: DiffusionModelUNet, denoiser: DiffusionModelUNet,
                 front_end: nn.Module | None = None, residual_std: float = 1.0) -> None:
        super().__init__()
        if not residual_std > 0:
            raise ValueError(f"residual_std must be > 0, got {residual_std}.")
        self.predictor = predictor
        self.denoiser = denoiser
        self.front_end = front_end
        # the residual x − g(y) is divided by this before diffusion, so the ε-model sees roughly unit variance
        self.register_buffer("residual_std", torch.tensor(float(residual_std)))

    def predict(self, y: torch.Tensor) -> torch.Tensor:
        """Deterministic estimate ``g(y)`` in [-1, 1] space: ``w + predictor(w)``, ``w = front_end(y)``."""
        w = self.front_end(y) if self.front_end is not None else y
        t = torch.zeros(y.shape[0], dtype=torch.long, device=y.device)
        return w + self.predictor(w, t)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The residual ε-model on ``x = [r_t, g(y)]`` (2 channels), so it plugs into the concat sampler."""
        return self.denoiser(x, timesteps, context=context)


def predict_and_refine_loss(
    scheduler: Scheduler, condition_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
) -> Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]:
    """Joint loss ``‖g(y) − x‖² + ε-MSE(residual diffusion)`` for :class:`PredictAndRefine` models."""
    inferer = DiffusionInferer(scheduler)

    def loss(model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        y = condition_fn(x, generator)
        prediction = model.predict(y)
        residual = (x - prediction).detach() / model.residual_std
        noise = torch.randn(x.shape, generator=generator).to(x.device)  # CPU draws: the same run on any device
        t = torch.randint(0, scheduler.num_train_timesteps, (x.shape[0],), generator=generator).to(x.device)
        eps = inferer(inputs=residual, diffusion_model=model, noise=noise, timesteps=t,
                      condition=prediction.detach(), mode="concat")
        return nn.functional.mse_loss(prediction.float(), x.float()) + nn.functional.mse_loss(eps.float(), noise)

    return loss


class ConditionalSampler:
    """DDIM sampling of the residual of predict-and-refine (a concat-conditioned ε-model).

    The DDIM schedule has the training betas (linear, 1000 steps) and ``num_steps`` strided timesteps.

    Args:
        network: a :class:`PredictAndRefine`.
        num_steps: sampling steps.
        eta: DDIM η (0 deterministic given the initial noise, 1 ancestral).
        autocast: bf16 autocast for the network on CPU.
        temperature: scale of the initial noise (1 = the model's distribution; < 1 pulls samples toward the
            conditional mean, but puts the first step's input off the distribution the network was trained on).
            Per-step noise (η > 0) is not tempered.
        strength: where on the schedule the residual diffusion starts, as a fraction of its 1000 steps (as in
            SDEdit / CCDF, and the ``strength`` of diffusers' image-to-image pipelines): 1 starts from pure noise
            at t = 999; s < 1 starts from the predictor's output (residual 0) noised to t ≈ 1000·s, so the
            refiner only works where its ε is accurate (low noise levels) and ``num_steps`` steps cover [0, 1000·s].
    """

    def __init__(self, network: nn.Module, num_steps: int, eta: float = 1.0, autocast: bool = False,
                 temperature: float = 1.0, strength: float = 1.0) -> None:
        if not 0.0 <= temperature <= 1.0:
            raise ValueError(f"temperature must be in [0, 1], got {temperature}.")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}.")
        if not isinstance(network, PredictAndRefine):
            raise TypeError(f"ConditionalSampler samples a PredictAndRefine network, got {type(network).__name__}.")
        self.network = network.eval()
        self.num_steps = int(num_steps)
        self.eta = float(eta)
        self.autocast = autocast
        self.temperature = float(temperature)
        self.strength = float(strength)

    def timesteps(self, scheduler: DDIMScheduler) -> list[int]:
        """The DDIM timesteps run, from ≈ ``strength``·T down to 0: the schedule of ⌈num_steps / strength⌉
        steps (so each step's DDIM stride is the scheduler's own), cut at ``strength``·T."""
        scheduler.set_timesteps(math.ceil(self.num_steps / self.strength))
        return [int(t) for t in scheduler.timesteps if t <= self.strength * scheduler.num_train_timesteps]

    @torch.inference_mode()
    def sample(self, y: torch.Tensor, num_samples: int = 1, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``y`` ``(B, 1, N, N)`` in [0, 1] → (mean, std) of ``num_samples`` samples, in [0, 1]."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        scheduler = DDIMScheduler(num_train_timesteps=1000, schedule="linear_beta", clip_sample=False)
        timesteps = self.timesteps(scheduler)
        device = next(self.network.parameters()).device  # sampled where the network lives
        cond = (2 * y.to(device).float() - 1).repeat_interleave(num_samples, dim=0)
        base = self.network.predict(cond)
        # the residual's diffusion at the first timestep, started from residual 0 (the predictor's output)
        start_std = float((1 - scheduler.alphas_cumprod[timesteps[0]]).sqrt())
        x = self.temperature * start_std * torch.randn(cond.shape, generator=generator).to(device)
        step_generator = generator
        if generator is not None and device.type != "cpu":  # the scheduler draws on the device: a generator there,
            seed = int(torch.randint(2**62, (1,), generator=generator))  # seeded from this one (reproducible)
            step_generator = torch.Generator(device).manual_seed(seed)
        for t in timesteps:
            t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=device)
            with bf16_autocast(device.type, enabled=self.autocast):
                eps = self.network(torch.cat([x, base], dim=1), t_batch).float()
            x, _ = scheduler.step(eps, t, x, eta=self.eta, generator=step_generator)
        images = ((base + self.network.residual_std * x + 1) / 2).clamp(0, 1)
        images = images.reshape(y.shape[0], num_samples, *y.shape[1:])
        images = images.to(y.device)
        mean = images.mean(dim=1)
        std = images.std(dim=1, correction=1) if num_samples > 1 else torch.zeros_like(mean)
        return mean, std


class ConditionalInferer(Inferer):
    """MONAI ``Inferer`` over a conditional baseline: ``inferer(inputs=y, network=model)`` → mean of K samples.

    ``y`` ``(B, 1, N, N)`` in [0, 1] → ``(B, 1, N, N)`` in [0, 1]; a ``MetaTensor`` in gives a ``MetaTensor`` out (so
    ``Invertd`` / ``SaveImaged`` work in a bundle). ``seed`` makes runs reproducible. The network was trained for one
    degradation (``operator``'s σ, noise ``trained_sigma_y``, recorded in :attr:`config`) and always restores as for
    it. It is a :class:`~xray_restore.plan.Sampler`: which inputs it restores is the policy's decision
    (:class:`~xray_restore.policy.PlannedInferer`, with a fixed operator and ``min_blur_sigma``), so either bundle
    restores DICOM/PNG files the same way.
    """

    def __init__(self, num_steps: int, eta: float, num_samples: int, autocast: bool = False,
                 seed: int | None = None, temperature: float | None = None, strength: float | None = None,
                 operator: SVDOperator | None = None, trained_sigma_y: float | None = None) -> None:
        super().__init__()
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        self.num_steps, self.eta, self.num_samples = int(num_steps), float(eta), int(num_samples)
        self.autocast = autocast
        self.temperature = 1.0 if temperature is None else float(temperature)  # None: the model's distribution
        self.strength = 1.0 if strength is None else float(strength)  # None: from pure noise at t = 999
        self.seed = seed
        self._generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        self.operator = operator
        self.trained_sigma_y = trained_sigma_y

    @property
    def config(self) -> dict:
        """Hyper-parameters, for provenance (reports, DICOM DerivationDescription)."""
        return {"method": "predict_refine (conditional baseline)", "num_steps": self.num_steps, "eta": self.eta,
                "temperature": self.temperature, "strength": self.strength, "num_samples": self.num_samples,
                "seed": self.seed,
                "trained_blur_sigma": getattr(self.operator, "sigma", None), "trained_sigma_y": self.trained_sigma_y}

    def sampler(self, network: nn.Module) -> ConditionalSampler:
        """The :class:`ConditionalSampler` of ``network`` with this inferer's sampler settings."""
        return ConditionalSampler(network, num_steps=self.num_steps, eta=self.eta, autocast=self.autocast,
                                  temperature=self.temperature, strength=self.strength)

    def restore(self, inputs: torch.Tensor, network: nn.Module, plans: Sequence[RestorationPlan],
                num_samples: int | None = None, generator: torch.Generator | Sequence[torch.Generator] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of ``num_samples`` samples per input (the network restores as for its training degradation
        whatever the plan read); one generator per input keeps each input's result independent of its batch
        neighbours."""
        if len(plans) != inputs.shape[0]:
            raise ValueError(f"got {len(plans)} plans for {inputs.shape[0]} inputs.")
        k = self.num_samples if num_samples is None else int(num_samples)
        sampler = self.sampler(network)
        if not isinstance(generator, Sequence):
            return sampler.sample(inputs, num_samples=k, generator=self._generator if generator is None else generator)
        pairs = [sampler.sample(inputs[i : i + 1], num_samples=k, generator=g) for i, g in enumerate(generator)]
        return torch.cat([m for m, _ in pairs]), torch.cat([s for _, s in pairs])

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args, **kwargs) -> torch.Tensor:  # type: ignore[override]
        """Mean of ``num_samples`` samples for every input (the gate is
        :class:`~xray_restore.policy.PlannedInferer`'s)."""
        from monai.data import MetaTensor
        from monai.utils import convert_to_dst_type

        plain = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        mean, _ = self.sampler(network).sample(plain, num_samples=self.num_samples, generator=self._generator)
        return convert_to_dst_type(mean, inputs, dtype=mean.dtype)[0] if isinstance(inputs, MetaTensor) else mean


def build_conditional(channels: tuple[int, ...] = (32, 64, 64), operator: SVDOperator | None = None,
                      front_end_lam: float | None = 1e-2, residual_std: float = 0.05,
                      norm_num_groups: int = 32) -> "PredictAndRefine":
    """The baseline network: a :class:`PredictAndRefine` of two MONAI ``DiffusionModelUNet`` (predictor 1 → 1
    channel, residual denoiser 2 → 1), attention at the lowest level.

    A :class:`TikhonovFrontEnd` of ``operator`` (default :class:`GaussianBlur`) with ``front_end_lam`` comes before
    the predictor (``None``: the predictor sees y itself); ``residual_std`` (in [-1, 1] units, ≈ the predictor's
    RMSE at σ_y = 0.01) normalises the diffused residual; ``norm_num_groups`` must divide every channel count.
    """
    common = {"spatial_dims": 2, "out_channels": 1, "channels": channels,
              "attention_levels": (False,) * (len(channels) - 1) + (True,), "num_res_blocks": 1,
              "num_head_channels": channels[-1], "norm_num_groups": norm_num_groups}
    front_end = None
    if front_end_lam is not None:
        from .operators import GaussianBlur

        front_end = TikhonovFrontEnd(operator if operator is not None else GaussianBlur(), front_end_lam)
    return PredictAndRefine(DiffusionModelUNet(in_channels=1, **common), DiffusionModelUNet(in_channels=2, **common),
                            front_end, residual_std)


def train_conditional(
    data: str,
    out_dir: str,
    config=None,
    network: nn.Module | None = None,
    operator: SVDOperator | None = None,
    sigma_y_max: float = 0.05,
    resume: bool = True,
    num_threads: int | None = None,
    progress: bool = True,
    val_limit: int | None = None,
    init_weights: str | None = None,
    init_step: int = 0,
    extra_data: tuple[str, ...] | list[str] = (),
    paddings: Sequence[str] = (),
    device: str | torch.device = "cpu",
):
    """Train (or resume) the predict-and-refine baseline on the training pool only; validate on ``val`` pairs.

    ``paddings``: border models the training and validation blurs are drawn from (:func:`blur_condition`; empty:
    the operator's own).

    ``init_weights`` warm-starts a new run (no checkpoint in ``out_dir`` yet), as for the prior. ``device``: where
    the networks train (e.g. ``"cuda"``); the blurs are measured on the CPU.

    Returns the :class:`~xray_restore.training.Trainer` (``trainer.splits_used`` records the splits read).
    """
    from .datasets import load_cxr14_cache, load_training_pool, to_model_space
    from .networks import build_scheduler
    from .operators import GaussianBlur
    from .training import TrainConfig, Trainer

    if num_threads:
        torch.set_num_threads(num_threads)
    config = config or TrainConfig()
    train = to_model_space(load_training_pool(data, extra_data))
    val = to_model_space(load_cxr14_cache(data, "val")["images"])[:val_limit]
    scheduler = build_scheduler()
    operator = operator or GaussianBlur()
    torch.manual_seed(config.seed)
    model = network if network is not None else build_conditional(operator=operator)
    condition = blur_condition(operator, sigma_y_max, paddings=paddings)
    loss_fn = predict_and_refine_loss(scheduler, condition)

    @torch.inference_mode()
    def val_fn(ema: nn.Module) -> float:
        g = torch.Generator().manual_seed(1234)
        batches = [val[i : i + 64].to(trainer.device) for i in range(0, len(val), 64)]
        return float(sum(loss_fn(ema, batch, g) for batch in batches) / len(batches))

    trainer = Trainer(model, loss_fn, train, out_dir, config, val_fn=val_fn, device=device)
    trainer.splits_used = {"train": "train", "validation": "val"}
    resumed = trainer.maybe_resume() if resume else False
    if not resumed and init_weights is not None:
        trainer.warm_start(init_weights, step=init_step)
    trainer.fit(progress=progress)
    return trainer
