"""The evaluation benchmark: every method side by side on the test split, under both protocols, in one run.

    python benchmarks/deblur_benchmark.py                  # full test split (165 images), README table updated
    python benchmarks/deblur_benchmark.py --limit 50       # smoke run (first 50 test / val images)

Protocols (``xray_restore.evaluation``): ``case_study`` (the reference study's thresholded 9-tap operator, float y,
σ_y = 5e-6: the inverse crime) and ``realistic`` (exact 13-tap blur, σ_y = 0.01, y quantised to 8 bits).
Methods: blurred input, thresholded pseudo-inverse, Tikhonov, Gaussian LMMSE (mean/covariance of the training pool
with flips), Richardson-Lucy (ours, for the zero-padded operator, and scikit-image's), DDRM (ours, 1 sample and
mean of K), the conditional predict-and-refine baseline (1 sample and mean of K), and DeepInverse's ``DDRM`` over the
same UNet and SVD.
Every hyper-parameter of a baseline (λ, shrinkage, iterations) is tuned on the val split, never on test; the
diffusion models use the settings shipped in their bundles. Metrics: PSNR, SSIM, LPIPS (squeeze), KID (features
labelled), wall time and images/s on this CPU; DDRM's time is also given as a ratio to the UNet floor (forward time
per image × NFE) and to DeepInverse's. A σ_y sweep (5e-8 … 5e-1, case-study operator, as the study's Figure 1)
plots PSNR and LPIPS against σ_y.

Writes ``benchmarks/results/deblur_benchmark[_limitN].{json,md}``, ``…_sigma_sweep.png`` and ``…_panel.png``;
``--update-readme`` puts the Markdown table (with date and commit) between the README's benchmark markers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

import xray_restore  # noqa: F401  (torchvision shim before torchmetrics / deepinv)
from xray_restore._compat import bf16_autocast
from xray_restore.baselines import (
    GaussianLMMSE,
    SpectralGaussian,
    richardson_lucy,
    richardson_lucy_skimage,
    tikhonov,
)
from paths import DEFAULT_DATA, TORCH_HOME
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.deepinv_bridge import as_decomposable_physics, deepinv_ddrm
from xray_restore.evaluation import LMMSE_FLIPS, LMMSE_GRID, TIKHONOV_GRID, evaluation_ids, linear_prior_pool
from xray_restore.locate import CONDITIONAL_BUNDLE, DDRM_BUNDLE
from xray_restore.measurement import PROTOCOLS, degrade, make_operator
from xray_restore.metrics import psnr, ssim
from xray_restore.metrics import kid, lpips
from xray_restore.networks import load_weights
from xray_restore.provenance import run_info, write_json
from xray_restore.restore import Restorer

ROOT = Path(__file__).resolve().parents[1]
REPORTED = {  # the reference case study (../shared/seeds/000), its table: reported numbers, not ours
    "ddrm (case study, reported)": {"psnr": 31.65, "ssim": 0.946, "lpips": 0.0132, "kid": 0.00265},
    "conditional (case study, reported)": {"psnr": 12.52},
}
SWEEP_SIGMAS = (5e-8, 5e-7, 5e-6, 5e-5, 5e-4, 5e-3, 5e-2, 5e-1)
GRIDS = {  # the linear baselines' grids are the library's (one home); Richardson-Lucy is the benchmark's own
    "tikhonov": TIKHONOV_GRID,
    "lmmse": LMMSE_GRID,
    "richardson_lucy": (10, 30, 100, 300, 1000),
    "richardson_lucy_skimage": (1, 3, 10, 30),
}


def batched(fn: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(y[i : i + batch_size]) for i in range(0, y.shape[0], batch_size)])


def timed(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def tune(name: str, make: Callable[[float], Callable[[torch.Tensor], torch.Tensor]], y_val: torch.Tensor,
         x_val: torch.Tensor) -> float:
    """The grid value of ``GRIDS[name]`` with the best mean val PSNR."""
    return max(GRIDS[name], key=lambda v: psnr(make(v)(y_val), x_val).mean().item())


def unet_floor(unet: torch.nn.Module, batch_size: int, nfe: int, autocast: bool, repeats: int = 3) -> float:
    """Seconds per image of ``nfe`` UNet evaluations at ``batch_size`` (best of ``repeats``)."""
    x, t = torch.randn(batch_size, 1, 64, 64), torch.full((batch_size,), 500, dtype=torch.long)
    best = float("inf")
    with torch.inference_mode(), bf16_autocast("cpu", enabled=autocast):
        unet(x, t)
        for _ in range(repeats):
            start = time.perf_counter()
            unet(x, t)
            best = min(best, time.perf_counter() - start)
    return best / batch_size * nfe


def summarise(estimate: torch.Tensor, x: torch.Tensor, seconds: float, with_kid: bool = True, **extra) -> dict:
    p, s, lp = psnr(estimate, x), ssim(estimate, x), lpips(estimate, x)
    row = {"psnr": p.mean().item(), "psnr_std": p.std().item(), "ssim": s.mean().item(), "lpips": lp.mean().item(),
           "seconds": round(seconds, 3),
           "images_per_second": round(x.shape[0] / seconds, 2) if seconds >= 1e-3 else None,  # None: nothing to time
           **extra}
    if with_kid:
        k = kid(x, estimate, subset_size=50)
        row.update(kid=k["mean"], kid_std=k["std"], kid_features=k["features"])
    return row


def ddrm_of(protocol: str, args: argparse.Namespace):
    """The DDRM bundle's network and inferer for ``protocol`` through the composition root (its inference.json,
    its evaluate.json per-protocol settings), with the overrides given on the command line."""
    given = {"num_steps": args.steps, "eta": args.eta, "autocast": False if args.fp32 else None}
    overrides = {**evaluation_ids(args.bundle).get("protocol_settings", {}).get(protocol, {}),
                 **{k: v for k, v in given.items() if v is not None}}
    restorer = Restorer.from_bundle(args.bundle, **overrides)
    unet = restorer.network if args.prior_weights is None else load_weights(restorer.network, args.prior_weights)
    return unet, restorer.inferer.sampler


def run_protocol(protocol: str, data: dict, models: dict, args: argparse.Namespace, bar: tqdm) -> tuple[dict, dict]:
    """All methods under one protocol; returns (rows, estimates for the panel)."""
    x, x_val, train = data["test"], data["val"], data["train"]
    op = make_operator(protocol)  # type: ignore[arg-type]
    sigma_y = PROTOCOLS[protocol]["sigma_y"]
    exact = protocol == "realistic"
    y = degrade(x, protocol, torch.Generator().manual_seed(args.seed))  # type: ignore[arg-type]
    y_val = degrade(x_val, protocol, torch.Generator().manual_seed(args.seed + 100))  # type: ignore[arg-type]
    rows: dict[str, dict] = {}
    estimates: dict[str, torch.Tensor] = {"original": x, "blurred": y}

    def record(name: str, fn: Callable[[], torch.Tensor], **extra) -> None:
        bar.set_postfix_str(f"{protocol}: {name}")
        estimate, seconds = timed(fn)
        rows[name] = summarise(estimate, x, seconds, **extra)
        estimates[name] = estimate
        bar.update(1)

    record("blurred", lambda: y)
    record("pinv", lambda: op.pinv(y))
    lam = tune("tikhonov", lambda v: lambda yy: tikhonov(op, yy, v), y_val, x_val)
    record("tikhonov", lambda: tikhonov(op, y, lam), lam=lam)
    fit_start = time.perf_counter()
    # the sweep reuses the case-study fit
    moments = models["moments"][protocol] = SpectralGaussian(op, train, flips=LMMSE_FLIPS)
    estimators = {v: GaussianLMMSE(op, moments, v, sigma_y, exact=exact) for v in GRIDS["lmmse"]}
    fit_seconds = (time.perf_counter() - fit_start) / len(estimators)
    shrink = tune("lmmse", lambda v: estimators[v], y_val, x_val)
    record("lmmse", lambda: estimators[shrink](y), shrinkage=shrink, fit_seconds=round(fit_seconds, 2),
           note="fit on the training pool with flips (fit time not in seconds), shrinkage tuned on val")
    iters = tune("richardson_lucy", lambda v: lambda yy: richardson_lucy(op, yy, int(v)), y_val, x_val)
    record("richardson_lucy", lambda: richardson_lucy(op, y, int(iters)), num_iter=iters)
    iters_sk = tune("richardson_lucy_skimage", lambda v: lambda yy: richardson_lucy_skimage(op, yy, int(v)), y_val,
                    x_val)
    record("richardson_lucy_skimage", lambda: richardson_lucy_skimage(op, y, int(iters_sk)), num_iter=iters_sk)

    unet, inferer = ddrm_of(protocol, args)  # the bundle's network and inferer (its settings for this protocol)
    eta, steps = inferer.eta, inferer.num_steps
    for k in (1, args.samples):
        g = torch.Generator().manual_seed(args.seed + 1)
        record("ddrm_1sample" if k == 1 else f"ddrm_mean{k}",
               lambda: batched(lambda b: inferer.sample(b, unet, num_samples=k, generator=g, operator=op,
                                                        sigma_y=sigma_y)[0], y, max(1, args.batch_size // k)),
               num_samples=k, eta=eta, spacing=inferer.spacing, nfe_per_image=steps * k)
    physics = as_decomposable_physics(op, sigma_y)
    peer = deepinv_ddrm(unet, inferer.scheduler.alphas_cumprod, num_steps=steps, eta=eta, autocast=inferer.autocast,
                        spacing=inferer.spacing)

    def run_peer() -> torch.Tensor:
        torch.manual_seed(args.seed + 2)
        with torch.inference_mode():
            return batched(lambda b: peer(b, physics).clamp(0, 1), y, args.batch_size)

    record("deepinv_ddrm_1sample", run_peer, eta=eta, spacing=inferer.spacing, nfe_per_image=steps)

    cond, cond_inferer = models["conditional"], models["conditional_inferer"]
    for k in (1, args.samples):
        sampler = cond_inferer.sampler(cond)
        g = torch.Generator().manual_seed(args.seed + 3)
        record("conditional_1sample" if k == 1 else f"conditional_mean{k}",
               lambda: batched(lambda b: sampler.sample(b, num_samples=k, generator=g)[0], y,
                               max(1, args.batch_size // k)),
               num_samples=k, **models["conditional_settings"],
               note="predict-and-refine, trained on the realistic blur")

    floor = unet_floor(unet, args.batch_size, steps, autocast=inferer.autocast)
    ddrm = rows["ddrm_1sample"]["seconds"] / x.shape[0]
    peer_seconds = rows["deepinv_ddrm_1sample"]["seconds"]
    rows["ddrm_1sample"].update(unet_floor_seconds_per_image=floor, floor_ratio=ddrm / floor,
                                ratio_to_deepinv=rows["ddrm_1sample"]["seconds"] / peer_seconds)
    lmmse_psnr = rows["lmmse"]["psnr"]
    for row in rows.values():
        row["gain_over_lmmse_db"] = row["psnr"] - lmmse_psnr
    return rows, estimates


def sigma_sweep(data: dict, models: dict, args: argparse.Namespace, bar: tqdm) -> dict:
    """PSNR / LPIPS vs σ_y under the case-study operator (float y): DDRM 1 sample, pinv, Tikhonov, LMMSE."""
    x, x_val, train = data["test"], data["val"], data["train"]
    moments = models["moments"].get("case_study") or SpectralGaussian(make_operator("case_study"), train,
                                                                                   flips=LMMSE_FLIPS)
    op = moments.operator
    unet, inferer = ddrm_of("case_study", args)
    out: dict[str, dict] = {}
    for sigma in args.sweep:
        y = degrade(x, "case_study", torch.Generator().manual_seed(args.seed), sigma_y=sigma)
        y_val = degrade(x_val, "case_study", torch.Generator().manual_seed(args.seed + 100), sigma_y=sigma)
        lam = tune("tikhonov", lambda v: lambda yy: tikhonov(op, yy, v, exact=False), y_val, x_val)
        estimators = {v: GaussianLMMSE(op, moments, v, sigma, exact=False) for v in GRIDS["lmmse"]}
        shrink = tune("lmmse", lambda v: estimators[v], y_val, x_val)
        g = torch.Generator().manual_seed(args.seed + 1)
        methods = {
            "pinv": op.pinv(y),
            "tikhonov": tikhonov(op, y, lam, exact=False),
            "lmmse": estimators[shrink](y),
            "ddrm_1sample": batched(lambda b: inferer.sample(b, unet, num_samples=1, generator=g, operator=op,
                                                             sigma_y=sigma)[0], y, args.batch_size),
        }
        out[f"{sigma:g}"] = {name: {"psnr": psnr(e, x).mean().item(), "lpips": lpips(e, x).mean().item()}
                             for name, e in methods.items()}
        bar.update(1)
    return out


def plot_sweep(sweep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sigmas = [float(s) for s in sweep]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for metric, ax in zip(("psnr", "lpips"), axes):
        for method in next(iter(sweep.values())):
            ax.plot(sigmas, [sweep[s][method][metric] for s in sweep], marker="o", label=method)
        ax.set_xscale("log")
        ax.set_xlabel("σ_y (noise std, [0, 1] units)")
        ax.set_ylabel("PSNR (dB)" if metric == "psnr" else "LPIPS (squeeze), lower is better")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("σ_y sweep, case-study operator, test split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_panel(estimates: dict[str, dict[str, torch.Tensor]], path: Path, n: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    block = estimates["realistic"]
    means = [m for m in block if m.startswith(("ddrm_mean", "conditional_mean"))]
    names = [m for m in ["original", "blurred", "lmmse", "ddrm_1sample", *means] if m in block]
    fig, axes = plt.subplots(n, len(names), figsize=(1.8 * len(names), 1.9 * n), squeeze=False)
    for i in range(n):
        for j, name in enumerate(names):
            axes[i][j].imshow(block[name][i, 0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            axes[i][j].set_axis_off()
            if i == 0:
                axes[i][j].set_title(name, fontsize=8)
    fig.suptitle("realistic protocol, test images")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict) -> str:
    lines = [f"Benchmark of {results['date']} at commit `{results['commit']}`: {results['n_test']} test images, "
             f"{results['threads']} CPU threads, wall time {results['wall_seconds'] / 60:.1f} min "
             f"(`{results['command']}`).", ""]
    for protocol, rows in results["protocols"].items():
        sigma = PROTOCOLS[protocol]["sigma_y"]
        lines += [f"**{protocol}** (σ_y = {sigma:g}{', 8-bit y' if protocol == 'realistic' else ', float y'})", "",
                  "| method | PSNR | SSIM | LPIPS | KID | Δ LMMSE (dB) | img/s |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in rows.items():
            ips = "—" if r["images_per_second"] is None or r["seconds"] < 1e-3 else f"{r['images_per_second']:.2f}"
            lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['lpips']:.4f} | {r['kid']:.4f} | "
                         f"{r['gain_over_lmmse_db']:+.2f} | {ips} |")
        if protocol == "case_study":
            for name, r in REPORTED.items():
                cells = [f"{r[m]:.4g}" if m in r else "" for m in ("psnr", "ssim", "lpips", "kid")]
                lines.append(f"| *{name}* | " + " | ".join(cells) + " | | |")
        ddrm = rows["ddrm_1sample"]
        lines += ["", f"DDRM 1 sample: {ddrm['seconds'] / results['n_test'] * 1000:.0f} ms/image, "
                  f"{ddrm['floor_ratio']:.2f}× the UNet floor, {ddrm['ratio_to_deepinv']:.2f}× DeepInverse's time.", ""]
    kid_label = next(iter(next(iter(results["protocols"].values())).values()))["kid_features"]
    lines += [f"KID features: {kid_label}.", ""]
    if results.get("sigma_sweep"):
        lines += ["σ_y sweep (case-study operator), PSNR dB:", "",
                  "| σ_y | " + " | ".join(next(iter(results["sigma_sweep"].values()))) + " |",
                  "| --- |" + " ---: |" * len(next(iter(results["sigma_sweep"].values())))]
        for sigma, row in results["sigma_sweep"].items():
            lines.append(f"| {sigma} | " + " | ".join(f"{m['psnr']:.2f}" for m in row.values()) + " |")
    return "\n".join(lines) + "\n"


def update_readme(table: str, readme: Path) -> None:
    start, end = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{readme}: no {start} … {end} markers to put the table between.")
    text = re.sub(f"{re.escape(start)}.*?{re.escape(end)}", lambda _: f"{start}\n{table}{end}", text, flags=re.S)
    readme.write_text(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--bundle", default=str(ROOT / DDRM_BUNDLE), help="the DDRM bundle (its settings)")
    parser.add_argument("--conditional-bundle", default=str(ROOT / CONDITIONAL_BUNDLE))
    parser.add_argument("--prior-weights", help="other weights for the DDRM bundle's network (default: its own)")
    parser.add_argument("--conditional-weights", help="other weights for the conditional bundle's network")
    parser.add_argument("--limit", type=int, help="first N test and N val images (smoke run)")
    parser.add_argument("--samples", type=int, default=8, help="K of the mean-of-K rows")
    parser.add_argument("--steps", type=int, help="DDRM steps (NFE per sample; default: the bundle's)")
    parser.add_argument("--eta", type=float, help="DDRM η (default: the bundle's per-protocol value)")
    parser.add_argument("--cond-steps", type=int, default=None, help="conditional sampler steps (default: bundle's)")
    parser.add_argument("--cond-eta", type=float, default=None, help="default: the conditional bundle's")
    parser.add_argument("--cond-temperature", type=float, default=None, help="default: the conditional bundle's")
    parser.add_argument("--cond-strength", type=float, default=None, help="default: the conditional bundle's")
    parser.add_argument("--sweep", type=float, nargs="*", default=list(SWEEP_SIGMAS), help="σ_y values (none: skip)")
    parser.add_argument("--batch-size", type=int, default=32, help="network batch (images × samples per call)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fp32", action="store_true", help="UNets in fp32 (default bf16 autocast)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks/results"))
    parser.add_argument("--update-readme", action="store_true", help="write the table into README.md")
    parser.add_argument("--render", metavar="JSON", help="only re-render the Markdown (and README) from a results JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.render:
        results = json.loads(Path(args.render).read_text())
        table = markdown(results)
        Path(args.render).with_suffix(".md").write_text(table)
        if args.update_readme:
            update_readme(table, ROOT / "README.md")
        print(table)
        return results
    torch.set_num_threads(args.threads)
    if Path(TORCH_HOME).is_dir():  # LPIPS / KID backbones, never downloaded
        os.environ.setdefault("TORCH_HOME", TORCH_HOME)
    start = time.time()
    data = {split: to_unit_range(load_cxr14_cache(args.data, split)["images"]) for split in ("val", "test")}
    data["train"] = linear_prior_pool(args.data)  # train + the training-only archives beside it
    data["test"], data["val"] = data["test"][: args.limit], data["val"][: args.limit]
    given = {"num_steps": args.cond_steps, "eta": args.cond_eta, "temperature": args.cond_temperature,
             "strength": args.cond_strength}
    conditional = Restorer.from_bundle(args.conditional_bundle, **{k: v for k, v in given.items() if v is not None})
    cond_inferer = conditional.inferer.sampler
    settings = {k: getattr(cond_inferer, k) for k in ("num_steps", "eta", "temperature", "strength")}
    cond_net = (conditional.network if args.conditional_weights is None
                else load_weights(conditional.network, args.conditional_weights))
    models = {"conditional": cond_net, "conditional_inferer": cond_inferer, "conditional_settings": settings,
              "moments": {}}
    protocols = ("case_study", "realistic")
    bar = tqdm(total=11 * len(protocols) + len(args.sweep), desc="benchmark", dynamic_ncols=True)
    results: dict = {"n_test": int(data["test"].shape[0]), "n_val_for_tuning": int(data["val"].shape[0]),
                     "protocols": {}}
    estimates, stage_seconds = {}, {}
    with torch.inference_mode():
        for protocol in protocols:
            stage_start = time.time()
            results["protocols"][protocol], estimates[protocol] = run_protocol(protocol, data, models, args, bar)
            stage_seconds[protocol] = round(time.time() - stage_start, 1)
        stage_start = time.time()
        results["sigma_sweep"] = sigma_sweep(data, models, args, bar) if args.sweep else {}
        stage_seconds["sigma_sweep"] = round(time.time() - stage_start, 1)
    bar.close()
    command = "python benchmarks/deblur_benchmark.py" + (f" --limit {args.limit}" if args.limit else "")
    results.update(**run_info(ROOT), wall_seconds=round(time.time() - start, 1), stage_seconds=stage_seconds,
                   command=command, settings={k: v for k, v in vars(args).items() if k not in ("update_readme",)})
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / ("deblur_benchmark" + (f"_limit{args.limit}" if args.limit else ""))
    table = markdown(results)
    write_json(f"{stem}.json", results)
    Path(f"{stem}.md").write_text(table)
    if results["sigma_sweep"]:
        plot_sweep(results["sigma_sweep"], Path(f"{stem}_sigma_sweep.png"))
    plot_panel(estimates, Path(f"{stem}_panel.png"))
    if args.update_readme:
        update_readme(table, ROOT / "README.md")
    print(table)
    print(f"wrote {stem}.json / .md / _sigma_sweep.png / _panel.png ({results['wall_seconds']} s)")
    return results


if __name__ == "__main__":
    main()
