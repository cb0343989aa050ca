"""Evaluation runners: restorers against the linear baselines on a split, under the measurement protocols.

A top-level runner: nothing in the package below it imports it (the measurement model lives in
:mod:`xray_restore.measurement`, PSNR/SSIM in :mod:`xray_restore.metrics`)."""

from __future__ import annotations

import math

import os
from collections.abc import Callable

import torch

from .locate import CONDITIONAL_BUNDLE, DDRM_BUNDLE
from .measurement import PROTOCOLS, Protocol, degrade, make_operator
from .metrics import psnr, ssim
from .networks import prior_network_beside
from .operators import GaussianBlur

__all__ = ["TIKHONOV_GRID", "LMMSE_GRID", "LMMSE_FLIPS", "linear_prior_pool", "evaluate_methods", "evaluate_prior",
           "evaluate_conditional", "evaluation_ids", "format_results", "Protocol"]

#: The linear baselines' settings: one home for the library and the benchmarks (tuned on val, never on test).
TIKHONOV_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
#: LMMSE shrinkage λ; the val optimum (1e-3 realistic, 1e-2 case study on 2,039 images with flips) is interior.
LMMSE_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
#: The Gaussian prior's moments include the flipped copy of every training image (val, 165 images: +0.18 dB realistic,
#: +0.12 dB case study on the 2,039-image pool).
LMMSE_FLIPS = True


def linear_prior_pool(data: str | os.PathLike, extra: tuple | list | None = None) -> torch.Tensor:
    """The training images the linear baselines' Gaussian prior is fitted on, ``(M, 1, N, N)`` in [0, 1]: the
    cache's train split plus ``extra`` archives (None: the training-only archives beside the cache,
    :func:`~xray_restore.datasets.extra_archives`) — the pool the prior itself was trained on."""
    from .datasets import extra_archives, load_training_pool, to_unit_range

    return to_unit_range(load_training_pool(data, extra_archives(data) if extra is None else extra))


Restorer = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def evaluate_methods(
    data: str,
    make_methods: Callable[[str, GaussianBlur, float], dict[str, Restorer]],
    split: str = "val",
    protocols: tuple[str, ...] = ("case_study", "realistic"),
    limit: int | None = None,
    batch_size: int = 16,
    seed: int = 0,
    baselines: bool = True,
    lmmse_grid: tuple[float, ...] = LMMSE_GRID,
    tikhonov_grid: tuple[float, ...] = TIKHONOV_GRID,
    out_file: str | None = None,
    settings: dict | None = None,
    progress: bool = False,
    extra: tuple | list | None = None,
) -> dict:
    """Restorers from ``make_methods(protocol, operator, sigma_y)`` against blurred / pinv / Tikhonov / LMMSE
    (``progress``: a tqdm bar over protocols and methods on stderr). LMMSE's Gaussian prior is fitted on
    :func:`linear_prior_pool` (``extra``: training-only archives; None: those beside ``data``), with flips.

    Each restorer maps a batch ``y`` ``(B, 1, N, N)`` in [0, 1] (and a generator seeded once per method) to its
    estimate. The linear baselines' hyper-parameters are tuned on val (grid search), never on test: evaluating val
    tunes on the evaluated images (which favours the baselines), evaluating test tunes on an independently degraded
    val set of the same size — the policy of ``benchmarks/deblur_benchmark.py``. Returns
    ``{"protocols": {name: {"sigma_y", "methods": {method: metrics}}}, ...}``, also written as JSON to ``out_file``
    when given.
    """
    import time

    from .baselines import GaussianLMMSE, SpectralGaussian, tikhonov
    from .datasets import load_cxr14_cache, to_unit_range

    train = linear_prior_pool(data, extra) if baselines else None  # only LMMSE needs the training pool
    x = to_unit_range(load_cxr14_cache(data, split)["images"])[:limit]
    x_tune = x if split == "val" else to_unit_range(load_cxr14_cache(data, "val")["images"])[:limit]
    results: dict = {"split": split, "n_images": int(x.shape[0]), "protocols": {}}
    from tqdm.auto import tqdm

    bar = tqdm(desc="evaluate", disable=not progress, dynamic_ncols=True, unit="method")
    for protocol in protocols:
        op = make_operator(protocol)  # type: ignore[arg-type]
        sigma_y = PROTOCOLS[protocol]["sigma_y"]
        y = degrade(x, protocol, torch.Generator().manual_seed(seed))  # type: ignore[arg-type]
        y_tune = y if split == "val" else degrade(x_tune, protocol, torch.Generator().manual_seed(seed + 100))
        rows: dict[str, dict] = {}

        def record(name: str, estimate: torch.Tensor, seconds: float, **extra) -> None:
            p, s = psnr(estimate, x), ssim(estimate, x)
            rows[name] = {"psnr": p.mean().item(), "psnr_std": p.std().item(), "ssim": s.mean().item(),
                          "seconds": round(seconds, 2), **extra}

        record("blurred", y, 0.0)
        if baselines:
            record("pinv", op.pinv(y), 0.0)
            lam = max(tikhonov_grid, key=lambda v: psnr(tikhonov(op, y_tune, v), x_tune).mean().item())
            record("tikhonov", tikhonov(op, y, lam), 0.0, lam=lam)
            exact = protocol == "realistic"
            moments = SpectralGaussian(op, train, flips=LMMSE_FLIPS)
            # one estimator alive at a time (each holds two n × n float64 arrays); the first best on the tune set
            best, best_score, shrink = None, -math.inf, None
            for v in lmmse_grid:
                estimator = GaussianLMMSE(op, moments, v, sigma_y, exact=exact)
                score = psnr(estimator(y_tune), x_tune).mean().item()
                if score > best_score:
                    best, best_score, shrink = estimator, score, v
                del estimator
            record("lmmse", best(y), 0.0, shrinkage=shrink)
            del best
        for name, restorer in make_methods(protocol, op, sigma_y).items():
            g = torch.Generator().manual_seed(seed + 1)
            start = time.time()
            bar.set_postfix_str(f"{protocol}: {name}")
            out = torch.cat([restorer(y[i : i + batch_size], g) for i in range(0, x.shape[0], batch_size)])
            record(name, out, time.time() - start)
            bar.update(1)
        reference = rows["lmmse" if baselines else "blurred"]["psnr"]
        for row in rows.values():
            row["gain_over_lmmse_db" if baselines else "gain_over_blurred_db"] = row["psnr"] - reference
        results["protocols"][protocol] = {"sigma_y": sigma_y, "methods": rows}
    bar.close()
    results["settings"] = {"seed": seed, "threads": torch.get_num_threads(), **(settings or {})}
    if baselines:
        results["settings"]["linear_prior"] = {"images": int(train.shape[0]), "flips": LMMSE_FLIPS,
                                               "lmmse_grid": list(lmmse_grid)}
    return _write(results, out_file)


def evaluation_ids(bundle: str | os.PathLike) -> dict:
    """The evaluation settings of a bundle (``configs/evaluate.json``: their one home), parsed."""
    from monai.bundle import ConfigParser

    from .locate import locate_bundle

    bundle = locate_bundle(bundle)
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "evaluate.json"))
    parser["bundle_root"] = str(bundle)
    keys = ("split", "protocols", "num_samples", "seed", "protocol_settings")
    return {k: parser.get_parsed_content(k) for k in keys if k in parser.config}


def _with_defaults(defaults: dict, split: str | None, protocols: tuple[str, ...] | None,
                   samples: tuple[int, ...] | None, seed: int | None
                   ) -> tuple[str, tuple[str, ...], tuple[int, ...], int]:
    """``split, protocols, samples, seed``, each left as None taken from a bundle's ``evaluate.json`` ``defaults``."""
    return (split or defaults.get("split", "val"), tuple(protocols or defaults["protocols"]),
            tuple(samples or defaults["num_samples"]), defaults.get("seed", 0) if seed is None else seed)


def _bundle_model(bundle, weights, network, settings: dict):
    """Network and sampler of a bundle through the composition root; ``weights`` into ``network`` if given."""
    from .networks import load_weights
    from .restore import Restorer

    restorer = Restorer.from_bundle(bundle, **settings)
    model = restorer.network
    if weights is not None or network is not None:
        from .locate import locate_bundle

        model = load_weights(network if network is not None else model,
                             weights if weights is not None else locate_bundle(bundle) / "models" / "model.pt")
    return model, restorer.inferer.sampler


def evaluate_prior(
    data: str,
    weights: str | os.PathLike | None = None,
    split: str | None = None,
    protocols: tuple[str, ...] | None = None,
    samples: tuple[int, ...] | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    seed: int | None = None,
    network: torch.nn.Module | None = None,
    out_file: str | None = None,
    baselines: bool = True,
    lmmse_grid: tuple[float, ...] = LMMSE_GRID,
    tikhonov_grid: tuple[float, ...] = TIKHONOV_GRID,
    bundle: str | os.PathLike = DDRM_BUNDLE,
    protocol_settings: dict | None = None,
    progress: bool = False,
    **settings,
) -> dict:
    """DDRM of a bundle (1 sample and means of ``samples``) under the val protocols, via :func:`evaluate_methods`.

    The network and inferer come from the bundle through :meth:`~xray_restore.restore.Restorer.from_bundle`, so
    the settings evaluated are the ones it ships; ``settings`` override ids of its ``inference.json`` (e.g.
    ``num_steps=50``, ``eta=0.7``: for every protocol) over ``protocol_settings`` ``{protocol: {id: value}}``. Arguments
    left as None (split, protocols, samples, seed, protocol_settings) are the bundle's ``evaluate.json`` values.
    ``weights`` (into ``network``, default the architecture in a ``network.json`` beside them, else the bundle's)
    evaluate other weights with the same settings.
    The blur of each protocol is the protocol's own operator (:func:`~xray_restore.measurement.make_operator`).
    """
    defaults = evaluation_ids(bundle)
    split, protocols, samples, seed = _with_defaults(defaults, split, protocols, samples, seed)
    protocol_settings = defaults.get("protocol_settings", {}) if protocol_settings is None else protocol_settings
    used: dict = {}
    if network is None and weights is not None:  # a run's weights carry their architecture beside them
        network = prior_network_beside(weights)

    def make_methods(protocol: str, op: GaussianBlur, sigma_y: float) -> dict[str, Restorer]:
        unet, inferer = _bundle_model(bundle, weights, network, {**protocol_settings.get(protocol, {}), **settings})
        used[protocol] = inferer.config
        methods = {}
        for k in samples:
            methods["ddrm_1sample" if k == 1 else f"ddrm_mean{k}"] = (
                lambda y, g, k=k: inferer.sample(y, unet, num_samples=k, generator=g, operator=op, sigma_y=sigma_y)[0])
        return methods

    results = evaluate_methods(data, make_methods, split=split, protocols=protocols, limit=limit,
                               batch_size=batch_size, seed=seed, baselines=baselines, lmmse_grid=lmmse_grid,
                               tikhonov_grid=tikhonov_grid, out_file=None, progress=progress,
                               settings={"bundle": str(bundle), "overrides": settings,
                                         "protocol_settings": protocol_settings})
    results["settings"]["inferer"] = used
    results["weights"] = str(weights if weights is not None else "the bundle's models/model.pt")
    return _write(results, out_file)


def evaluate_conditional(
    data: str,
    weights: str | os.PathLike | None = None,
    split: str | None = None,
    protocols: tuple[str, ...] | None = None,
    samples: tuple[int, ...] | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    seed: int | None = None,
    network: torch.nn.Module | None = None,
    out_file: str | None = None,
    baselines: bool = True,
    bundle: str | os.PathLike = CONDITIONAL_BUNDLE,
    progress: bool = False,
    **settings,
) -> dict:
    """The conditional baseline of a bundle (predictor alone, 1 sample, means of ``samples``) via
    :func:`evaluate_methods`; settings as in :func:`evaluate_prior` (``settings`` override ``inference.json`` ids,
    e.g. ``num_steps``, ``eta``, ``temperature``, ``strength``)."""
    from .conditional import PredictAndRefine

    split, protocols, samples, seed = _with_defaults(evaluation_ids(bundle), split, protocols, samples, seed)
    model, inferer = _bundle_model(bundle, weights, network, settings)

    def make_methods(protocol: str, op: GaussianBlur, sigma_y: float) -> dict[str, Restorer]:
        methods: dict[str, Restorer] = {}
        if isinstance(model, PredictAndRefine):  # a model given as a network may be anything
            methods["predictor"] = lambda y, g: ((model.predict(2 * y - 1) + 1) / 2).clamp(0, 1)
        for k in samples:
            sampler = inferer.sampler(model)
            methods["conditional_1sample" if k == 1 else f"conditional_mean{k}"] = (
                lambda y, g, sampler=sampler, k=k: sampler.sample(y, num_samples=k, generator=g)[0])
        return methods

    with torch.inference_mode():
        results = evaluate_methods(data, make_methods, split=split, protocols=protocols, limit=limit,
                                   batch_size=batch_size, seed=seed, baselines=baselines, out_file=None,
                                   progress=progress, settings={"bundle": str(bundle), "overrides": settings,
                                                                "inferer": inferer.config})
    results["weights"] = str(weights if weights is not None else "the bundle's models/model.pt")
    return _write(results, out_file)


def _write(results: dict, out_file: str | None) -> dict:
    from .provenance import write_json

    if out_file:
        write_json(out_file, results)
    return results


def format_results(results: dict) -> str:
    """A plain-text table of :func:`evaluate_methods` results."""
    lines = []
    for protocol, block in results["protocols"].items():
        lines.append(f"\n{protocol} (sigma_y={block['sigma_y']}, {results['n_images']} {results['split']} images)")
        lines.append(f"{'method':<14}{'PSNR':>8}{'SSIM':>8}{'dLMMSE':>9}{'sec':>8}")
        for name, row in block["methods"].items():
            gain = row.get("gain_over_lmmse_db", row.get("gain_over_blurred_db", float("nan")))
            lines.append(f"{name:<14}{row['psnr']:>8.2f}{row['ssim']:>8.4f}{gain:>9.2f}{row['seconds']:>8.1f}")
    return "\n".join(lines)
