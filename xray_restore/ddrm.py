"""DDRM (Kawar et al., 2022) as a MONAI ``Inferer`` over any ε-prediction diffusion UNet.

Notation (paper ↔ code), all in the operator's spectral space, image-shaped ``(B, 1, N, N)``:

    s_i        ``s``          kept singular values of H (0 where dropped by the threshold)
    σ_y        ``sigma0``     measurement noise std in the model's [-1, 1] units (= 2 · ``sigma_y``); per component
                              when an estimated blur's likely error is counted as noise (``operator_uncertainty``)
    ȳ_i        ``y_bar``      (Uᵀy)_i / s_i on informative components, 0 elsewhere
    σ_y/s_i    ``ratio``      the noise std of ȳ_i
    σ_t        ``sigma_t``    VE noise level √((1-ᾱ_t)/ᾱ_t) of DDPM step t; the VE state is x_t / √ᾱ_t
    x̄_θ        ``x0_bar``     Vᵀ x₀ of the network's clean estimate
    x̄_t        ``x_bar``      Vᵀ of the current VE state

A component is *informative* if s_i > 0 and σ_y/s_i < σ_T (its own σ_y where that is per component); every
other component (dropped by the threshold, or noisier than the initial noise) takes the "missing" update at every
step, so no division by a zeroed singular value ever happens and σ_y = 0 works.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from torch import nn

from ._compat import bf16_autocast
from .operators import SVDOperator
from .plan import RestorationPlan

__all__ = ["DDRMInferer", "TimestepSpacing", "ddrm_timesteps", "blend_outer_ring"]


TimestepSpacing = Literal["uniform", "quadratic"]


def blend_outer_ring(
    restored: torch.Tensor,
    inputs: torch.Tensor,
    window: tuple[tuple[int, int], tuple[int, int]],
    border_error: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's outermost observed pixel ring as the inverse-error-variance blend of restoration and input.

    Where the scene beyond the edge is unknown, the restoration of the outermost ring leans on the prior's guess of
    what lies past it, with a mean squared error of about ``b = border_error`` ([0, 1]² units); the input there is as
    wrong as the blur it carries. Per image, that error ``v`` is read from the restoration's own corrections: at
    least their mean square one pixel further in (what the blur does just inside), and at least their mean square
    on the ring less ``b`` (what a scene past the edge bled in). Blended with ``w = v / (v + b)``, the two errors
    partly cancel (``benchmarks/border_ring.py``).

    Args:
        restored: ``(B, C, N, N)`` restoration in [0, 1].
        inputs: ``(B, C, N, N)`` the measurement y in [0, 1], same grid.
        window: ``((r0, r1), (c0, c1))``, the observed footprint in the ``N × N`` grid (its edge is the ring).
        border_error: the restoration's mean squared error on that ring (>= 0; 0 returns ``restored``).

    Returns:
        ``(blended, weight)``: the images, and the restoration's weight per pixel ``(B, 1, N, N)`` (``w`` on the
        ring, 1 elsewhere, and everywhere for a footprint under 3 pixels a side).
    """
    weight = torch.ones(restored.shape[0], 1, *restored.shape[-2:], dtype=restored.dtype, device=restored.device)
    (r0, r1), (c0, c1) = window
    if border_error <= 0 or min(r1 - r0, c1 - c0) < 3:
        return restored, weight
    rows = torch.arange(restored.shape[-2], device=restored.device)[:, None]
    cols = torch.arange(restored.shape[-1], device=restored.device)[None, :]
    depth = torch.minimum(torch.minimum(rows - r0, r1 - 1 - rows), torch.minimum(cols - c0, c1 - 1 - cols))
    ring, inner = depth == 0, depth == 1  # (N, N); outside the footprint depth < 0
    squared = (restored - inputs) ** 2
    inside, edge = (squared[..., mask].flatten(1).mean(1).reshape(-1, 1, 1, 1) for mask in (inner, ring))
    input_error = torch.maximum(inside, edge - border_error)  # (B, 1, 1, 1)
    weight = torch.where(ring, input_error / (input_error + border_error), weight)
    return weight * restored + (1 - weight) * inputs, weight


@dataclasses.dataclass
class _Chain:
    """The state of one DDRM run over inputs that share an operator (``(B·k, 1, N, N)`` spectral tensors)."""

    op: SVDOperator
    image_inputs: torch.Tensor  # y as given (its device and dtype are the output's)
    shape: torch.Size  # of y on the operator's grid (a canvas with unknown borders)
    k: int  # samples per input
    randn: Callable[[torch.Size], torch.Tensor]
    informative: torch.Tensor
    y_bar: torch.Tensor
    ratio: torch.Tensor
    safe_ratio: torch.Tensor
    x_bar: torch.Tensor
    x_ve: torch.Tensor
    border_error: float = 0.0


def _whole(value, minimum: int) -> bool:
    """Whether ``value`` is a whole number (``20``, ``20.0``; not ``True`` or ``"20"``) of at least ``minimum``."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer() \
        and value >= minimum


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


class DDRMInferer(Inferer, nn.Module):
    """Restore ``y = H x + σ_y n`` with DDRM, using an ε-model trained on [-1, 1] images.

    An ``nn.Module``: ``inferer.to(device)`` moves its operator (a submodule) and every blur it builds for an
    estimated σ is made on that device; inputs are restored on the device of the inferer.

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
        num_samples: samples per input; ``__call__`` returns their mean and :meth:`sample` also their std (the
            uncertainty map). At ``temperature`` 1, 4 samples gain +0.8 dB over one on val; at 0.25 about +0.02 dB
            (``benchmarks/ddrm_sampler_val.py``, docs/sampler.md).
        clip_denoised: clamp the network's x₀ estimate to [-1, 1] at every step.
        autocast: run the network under bf16 autocast (fast on CPUs with AVX512-BF16).
        seed: if given, calls without an explicit ``generator`` draw from one generator seeded once here, so a
            whole run (e.g. a MONAI evaluator over a dataset) is reproducible.
        temperature: τ ∈ [0, 1], the scale of every fresh Gaussian draw (the initial state's and each step's): 1 is
            DDRM as published (a posterior sample; the mean of several is the posterior mean); below 1 each chain
            keeps less noise than the network is told, so a single chain lands nearer the posterior mean (τ = 1/√2 is
            DeepInverse's ``DDRM``, τ = 0 the deterministic path: every sample alike). The spread of samples shrinks
            with τ, so their std is only an uncertainty once calibrated (``uncertainty_scale``).
        uncertainty_scale: the factor on the samples' per-pixel std that :meth:`sample` returns (the uncertainty
            map), chosen on val so that the restoration's error lies within ±2 std at about 95 % of the pixels
            (``benchmarks/ddrm_sampler_val.py``); 1: the raw spread of the samples.

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
        num_steps: int = 10,
        spacing: TimestepSpacing = "quadratic",
        eta: float = 0.85,
        eta_b: float = 1.0,
        sigma_y: float = 0.0,
        num_samples: int = 2,
        clip_denoised: bool = True,
        autocast: bool = False,
        seed: int | None = None,
        temperature: float = 0.25,
        uncertainty_scale: float = 33.0,
    ) -> None:
        Inferer.__init__(self)
        nn.Module.__init__(self)
        if not isinstance(operator, SVDOperator):
            raise TypeError(f"operator must be an SVDOperator, got {type(operator).__name__}.")
        if not hasattr(scheduler, "alphas_cumprod"):
            raise TypeError("scheduler must define alphas_cumprod (a VP DDPM schedule), got "
                            f"{type(scheduler).__name__}.")
        for name, value in (("eta", eta), ("eta_b", eta_b)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}.")
        if not (isinstance(sigma_y, numbers.Real) and 0.0 <= sigma_y <= 1.0):
            raise ValueError(f"sigma_y must be a noise std in [0, 1] intensity units, got {sigma_y!r}.")
        if not _whole(num_steps, minimum=1):
            raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}.")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        if not (isinstance(temperature, numbers.Real) and 0.0 <= temperature <= 1.0):
            raise ValueError(f"temperature must be in [0, 1], got {temperature!r}.")
        self.temperature = float(temperature)
        if not (math.isfinite(uncertainty_scale) and uncertainty_scale > 0):
            raise ValueError(f"uncertainty_scale must be a finite number > 0, got {uncertainty_scale!r}.")
        self.uncertainty_scale = float(uncertainty_scale)
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
            "temperature": self.temperature,
            "uncertainty_scale": self.uncertainty_scale,
        }

    @property
    def device(self) -> torch.device:
        """Where this inferer restores: the device of its operator."""
        return self.operator.device

    def operator_sigma(self) -> float | None:
        """σ of the fixed operator (None for a non-Gaussian operator)."""
        return getattr(self.operator, "sigma", None)

    @torch.inference_mode()
    def restore(
        self,
        inputs: torch.Tensor,
        network: nn.Module | Callable[..., torch.Tensor],
        plans: Sequence[RestorationPlan],
        num_samples: int | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`sample` of each input as its plan says (its operator, noise, operator uncertainty and border
        blend: :meth:`~xray_restore.policy.RestorationPolicy.plan`), grouped by operator.

        Each group keeps its own spectral state, but every reverse step makes one network call for the inputs of
        all groups (of one grid size), so a batch whose images need many different blurs costs about what one
        blur's batch does. With one generator per input the result of an input does not depend on its batch
        neighbours (beyond the network's batch-size-dependent rounding).
        """
        if len(plans) != inputs.shape[0]:
            raise ValueError(f"got {len(plans)} plans for {inputs.shape[0]} inputs.")
        mean, std = torch.empty_like(inputs), torch.empty_like(inputs)
        groups: dict[int, tuple[SVDOperator, list[int]]] = {}  # held here, so no operator's id is reused
        for i, plan in enumerate(plans):
            op = self.operator if plan.operator is None else plan.operator
            groups.setdefault(id(op), (op, []))[1].append(i)
        per_input = isinstance(generator, Sequence)
        k = self._samples_per_input(num_samples)
        shared = self._generator if generator is None else generator
        chains = []
        for op, index in groups.values():
            chains.append(self._begin(inputs[index], op, k, [generator[i] for i in index] if per_input else shared,
                                      [plans[i].sigma_y for i in index],
                                      [plans[i].operator_uncertainty for i in index],
                                      max(plans[i].border_error for i in index)))
        self._run(chains, network)  # every group's inputs in each network call
        for (_, index), chain in zip(groups.values(), chains):
            mean[index], std[index] = self._end(chain)
        return mean, std

    def __call__(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        network: nn.Module | Callable[..., torch.Tensor],
        *args,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """Posterior mean of ``num_samples`` DDRM samples, ``(B, 1, N, N)`` in [0, 1], for ``inputs`` y in [0, 1],
        with this inferer's operator and ``sigma_y`` (every input restored: the gate is
        :class:`~xray_restore.policy.PlannedInferer`'s).

        A ``MetaTensor`` input gives a ``MetaTensor`` output with the same meta data (file names, affine), so
        MONAI post-processing (``SaveImaged``, ``Invertd``) works on the result.
        """
        from monai.utils import convert_to_dst_type

        mean, _ = self.sample(inputs, network, generator=generator)
        return convert_to_dst_type(mean, inputs, dtype=mean.dtype)[0] if isinstance(inputs, MetaTensor) else mean

    # ------------------------------------------------------------------------------------------------
    @staticmethod
    def _per_input(value: float | Sequence[float] | torch.Tensor, batch: int, name: str = "sigma_y") -> torch.Tensor:
        """A setting ``name`` ≥ 0 (one value, or one per input) as a ``(B, 1, 1, 1)`` float64 tensor, checked."""
        values = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
        if values.numel() == 1:
            values = values.expand(batch)
        if values.numel() != batch:
            raise ValueError(f"got {values.numel()} {name} values for {batch} inputs.")
        if not (torch.isfinite(values).all() and (values >= 0).all()):
            raise ValueError(f"{name} must be finite and >= 0, got {values.tolist()}.")
        return values.reshape(batch, 1, 1, 1).clone()

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
        with bf16_autocast(x_vp.device.type, enabled=self.autocast):
            eps = network(x_vp, timesteps)
        x0 = x_ve - self._sigma(t) * eps.to(x_ve.dtype)
        return x0.clamp(-1.0, 1.0) if self.clip_denoised else x0

    @torch.inference_mode()
    def sample(
        self,
        inputs: torch.Tensor,
        network: nn.Module | Callable[..., torch.Tensor],
        num_samples: int | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        operator: SVDOperator | None = None,
        sigma_y: float | Sequence[float] | torch.Tensor | None = None,
        operator_uncertainty: float | Sequence[float] = 0.0,
        border_error: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw DDRM posterior samples for each input.

        Args:
            inputs: y, ``(B, 1, N, N)`` degraded images in [0, 1] intensity units.
            network: ε-model ``network(x, t)`` trained on [-1, 1] data.
            num_samples: samples per input (default: the inferer's ``num_samples``).
            generator: source of randomness (CPU ``torch.Generator``) for reproducible samples, or one generator
                per input, so that an input's samples never depend on the other inputs of its batch.
            operator: the blur of this call (default: the inferer's), e.g. one built for an estimated σ.
            sigma_y: noise std of this call in [0, 1] units, one value or one per input (default: the inferer's).
            operator_uncertainty: likely error δ (pixels) of the operator's blur σ, one value or one per input
                (0: the operator is exact). A Gaussian transfer ``s(ω) = exp(−σ²ω²/2)`` gives
                ``∂ log s_i/∂σ = 2 log s_i / σ``, so component i of ``Uᵀy`` carries a model error of about
                ``δ · 2|log s_i|/σ · |(Uᵀy)_i|``; it is added to that component's noise, and DDRM trusts the
                components a slightly wrong blur would corrupt less (the prior fills them in).
            border_error: for an operator with unknown borders, the restoration's mean squared error on the outermost
                observed ring, blended with the input (:func:`blend_outer_ring`; 0: no blend).

        Returns:
            ``(mean, std)``, each ``(B, 1, N, N)``: the sample mean in [0, 1] and the per-pixel standard
            deviation over samples (zeros for one sample), both in [0, 1] intensity units.
        """
        op = self.operator if operator is None else operator
        if not isinstance(op, SVDOperator):
            raise TypeError(f"operator must be an SVDOperator, got {type(op).__name__}.")
        k = self._samples_per_input(num_samples)
        chain = self._begin(inputs, op, k, self._generator if generator is None else generator,
                            self.sigma_y if sigma_y is None else sigma_y, operator_uncertainty, border_error)
        self._run([chain], network)
        return self._end(chain)

    def _samples_per_input(self, num_samples: int | None) -> int:
        k = self.num_samples if num_samples is None else int(num_samples)
        if k < 1:
            raise ValueError(f"num_samples must be >= 1, got {k}.")
        return k

    def _begin(self, inputs: torch.Tensor, op: SVDOperator, k: int, generator, sigma_y, operator_uncertainty,
               border_error: float = 0.0) -> _Chain:
        """Steps 1–3 of :meth:`sample` for inputs that share ``op``: the spectral measurement, the initial state."""
        image_inputs = inputs
        if getattr(op, "margin", 0):  # an operator with unknown borders acts on a canvas around the image
            inputs = op.to_canvas(inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs)
        op.check_input(inputs, "inputs (y)")
        batch, dtype = inputs.shape[0], torch.float64
        device = op.device  # restored where the operator lives
        if isinstance(generator, Sequence):
            if len(generator) != batch:
                raise ValueError(f"got {len(generator)} generators for {batch} inputs.")
            generators = list(generator)
        else:
            generators = None

        def randn(shape: torch.Size) -> torch.Tensor:
            if generators is None:
                return torch.randn(shape, generator=generator, dtype=dtype).to(device)
            per_input = (k, *shape[1:])  # rows of input i are i·k … i·k + k − 1
            return torch.cat([torch.randn(per_input, generator=g, dtype=dtype) for g in generators]).to(device)

        noise_std = self._per_input(sigma_y, batch)

        # 1. Measurement in model space: x' = 2x - 1 ⇒ H x' = 2 H x - H 1, noise std doubles.
        y = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        y = y.to(device=device, dtype=dtype)
        y_model = 2.0 * y - op.H(torch.ones_like(y))
        sigma0 = (2.0 * noise_std).to(device).repeat_interleave(k, dim=0)  # (B·k, 1, 1, 1)
        y_model = y_model.repeat_interleave(k, dim=0)

        # 2. Spectral measurement (float64) and the static split informative / missing.
        s = op.singulars().to(device=device, dtype=dtype)
        u_t_y = op.Ut(y_model)
        delta = self._per_input(operator_uncertainty, batch, "operator_uncertainty").to(device)
        if bool((delta > 0).any()):
            blur = getattr(op, "sigma", None)
            if isinstance(blur, tuple):  # (σ_v, σ_h): δ is the error of their common scale (root mean square)
                blur = math.sqrt(0.5 * (blur[0] ** 2 + blur[1] ** 2))
            if not isinstance(blur, (int, float)):
                raise ValueError(f"operator_uncertainty is the error of a Gaussian blur's σ; {type(op).__name__} "
                                 "has none.")
            if blur > 0:
                slope = torch.where(s > 0, 2.0 * s.clamp_min(1e-30).log().abs() / blur, torch.zeros_like(s))
                model_error = delta.repeat_interleave(k, dim=0) * slope * u_t_y.abs()
                sigma0 = torch.sqrt(sigma0**2 + model_error**2)  # (B·k, 1, N, N): per component
        sigma_T = self._sigma(self.timesteps[-1])
        informative = (s > 0) & (s * sigma_T > sigma0)
        safe_s = torch.where(informative, s, torch.ones_like(s))
        y_bar = torch.where(informative, u_t_y / safe_s, torch.zeros_like(y_model))
        ratio = torch.where(informative, sigma0 / safe_s, torch.zeros_like(y_model))  # σ_y / s_i
        safe_ratio = torch.where(ratio > 0, ratio, torch.ones_like(ratio))

        # 3. Initialisation (paper eq. 5-6 at t = T): informative ~ N(ȳ, σ_T² - σ_y²/s²), missing ~ N(0, σ_T²).
        z = self.temperature * randn(y_model.shape)
        init_std = torch.sqrt((sigma_T**2 - ratio**2).clamp_min(0.0))
        x_bar = torch.where(informative, y_bar + init_std * z, sigma_T * z)
        return _Chain(op, image_inputs, inputs.shape, k, randn, informative, y_bar, ratio, safe_ratio, x_bar,
                      op.V(x_bar), float(border_error))

    def _run(self, chains: list[_Chain], network: nn.Module | Callable[..., torch.Tensor]) -> None:
        """The reverse steps of every chain; chains of one state shape and device share each network call (one
        batch however many operators the inputs need)."""
        buckets: dict[tuple, list[_Chain]] = {}
        for chain in chains:
            buckets.setdefault((tuple(chain.x_ve.shape[1:]), chain.x_ve.device), []).append(chain)
        steps = list(reversed(self.timesteps))
        for t, t_next in zip(steps, steps[1:] + [-1]):
            for bucket in buckets.values():
                x0 = self._denoise(network, torch.cat([c.x_ve for c in bucket]), t)
                for chain, part in zip(bucket, x0.split([c.x_ve.shape[0] for c in bucket])):
                    self._advance(chain, part, t, t_next)

    def _advance(self, chain: _Chain, x0: torch.Tensor, t: int, t_next: int) -> None:
        """Steps 4–7 of :meth:`sample`: one reverse step of ``chain`` given the network's clean estimate ``x0``."""
        op, c = chain.op, math.sqrt(1.0 - self.eta**2)
        sigma_t, sigma_next = self._sigma(t), self._sigma(t_next)
        # 4. Network: clean estimate x̄_θ and the implied noise direction ε̄ = (x̄_t − x̄_θ)/σ_t.
        x0_bar = op.Vt(x0)
        eps_bar = (chain.x_bar - x0_bar) / sigma_t
        z = self.temperature * chain.randn(x0_bar.shape)
        # 5. Missing components (eq. 7): DDIM-like step with η-weighted fresh noise.
        missing = x0_bar + sigma_next * (c * eps_bar + self.eta * z)
        # 6. Informative, less noisy than y (σ_{t'} < σ_y/s_i, eq. 8 top): move towards ȳ.
        after = x0_bar + sigma_next * (c * (chain.y_bar - x0_bar) / chain.safe_ratio + self.eta * z)
        # 7. Informative, noisier than y (σ_{t'} >= σ_y/s_i, eq. 8 bottom): η_b-mix with ȳ, add the rest.
        before_std = torch.sqrt((sigma_next**2 - (self.eta_b * chain.ratio) ** 2).clamp_min(0.0))
        before = (1.0 - self.eta_b) * x0_bar + self.eta_b * chain.y_bar + before_std * z
        less_noisy = chain.informative & (chain.ratio > sigma_next)
        chain.x_bar = torch.where(chain.informative, torch.where(less_noisy, after, before), missing)
        chain.x_ve = op.V(chain.x_bar)

    def _end(self, chain: _Chain) -> tuple[torch.Tensor, torch.Tensor]:
        """Step 8 of :meth:`sample`: back to [0, 1]; mean and per-pixel std over each input's k samples; with
        unknown borders, the footprint's outermost ring blended with the input (:func:`blend_outer_ring`)."""
        batch, k, op, image_inputs = chain.shape[0], chain.k, chain.op, chain.image_inputs
        images = ((chain.x_ve + 1.0) / 2.0).clamp(0.0, 1.0).reshape(batch, k, *chain.shape[1:])
        mean = images.mean(dim=1)
        std = self.uncertainty_scale * images.std(dim=1, correction=1) if k > 1 else torch.zeros_like(mean)
        if getattr(op, "margin", 0):
            mean, std = op.from_canvas(mean), op.from_canvas(std)
            y = image_inputs.as_tensor() if isinstance(image_inputs, MetaTensor) else image_inputs
            mean, weight = blend_outer_ring(mean, y.to(mean.device, mean.dtype), op.window, chain.border_error)
            std = weight * std  # the input adds no spread
        return mean.to(image_inputs.device, image_inputs.dtype), std.to(image_inputs.device, image_inputs.dtype)
