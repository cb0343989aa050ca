"""Quality per network call of DDRM's sampler settings on val (never test), against DeepInverse's ``DDRM``.

    python benchmarks/ddrm_sampler_val.py --limit 80                      # the ablation (20 NFE)
    python benchmarks/ddrm_sampler_val.py --limit 80 --nfe 5 10 20 50 --variants shipped deepinv_like

Each variant overrides ids of the DDRM bundle's ``inference.json`` (its sampler settings: ``temperature``,
``max_component_noise``, ``eta``); every variant and DeepInverse's ``DDRM`` (same UNet, same SVD, same timesteps,
the bundle's η per protocol) restore the same degraded val images, 1 sample and the mean of K. Also the
uncertainty map's calibration: the fraction of pixels whose error lies within ±1 and ±2 posterior std (mean of K).

Writes ``benchmarks/results/ddrm_sampler_val.json`` (``--out``) and prints one row per (protocol, NFE, method).
"""

from __future__ import annotations

import argparse
import time

import torch

import xray_restore  # noqa: F401  (torchvision shim before deepinv)
from paths import DEFAULT_DATA
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.deepinv_bridge import as_decomposable_physics, deepinv_ddrm
from xray_restore.evaluation import _bundle_model, evaluation_ids
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.measurement import PROTOCOLS, degrade, make_operator
from xray_restore.metrics import psnr
from xray_restore.provenance import run_info, write_json


#: each a set of inference.json overrides; "deepinv" (DeepInverse's own sampler) is run beside them
VARIANTS = {
    "shipped": {},
    "temperature_0.71": {"temperature": 2 ** -0.5},
    "temperature_0.5": {"temperature": 0.5},
    "temperature_0": {"temperature": 0.0},
}


def variant(spec: str) -> tuple[str, dict]:
    """A named variant of :data:`VARIANTS`, or ``key=value,key=value`` (values as JSON) named by itself."""
    import json

    if spec in VARIANTS:
        return spec, VARIANTS[spec]
    try:
        return spec, {k: json.loads(v) for k, v in (item.split("=", 1) for item in spec.split(","))}
    except ValueError as e:
        raise SystemExit(f"--variants: {spec!r} is neither a known variant nor key=value pairs ({e})") from None


def coverage(mean: torch.Tensor, std: torch.Tensor, x: torch.Tensor) -> dict:
    """Fraction of pixels whose error |mean − x| lies within ±1 and ±2 std, and the factor on std that would put 95 %
    of them within ±2 std (``uncertainty_scale`` × this is the calibrated one)."""
    err = (mean - x).abs().double().flatten()
    ratio = err / std.double().flatten().clamp_min(1e-12)
    return {"within_1std": (err <= std.flatten()).double().mean().item(),
            "within_2std": (err <= 2 * std.flatten()).double().mean().item(),
            "scale_for_95": torch.quantile(ratio, 0.95).item() / 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--limit", type=int, default=80)
    parser.add_argument("--nfe", type=int, nargs="+", default=[20])
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 8], help="K: 1 sample and means of K")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        help=f"of {list(VARIANTS)}, or key=value,... overrides")
    parser.add_argument("--deepinv", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--protocols", nargs="+", default=["realistic", "case_study"],
                        choices=["case_study", "realistic"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/ddrm_sampler_val.json")
    parser.add_argument("--plot", help="also write PSNR against network calls per image (all samples) to this PNG")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = to_unit_range(load_cxr14_cache(args.data, args.split)["images"])[: args.limit]
    protocol_settings = evaluation_ids(DDRM_BUNDLE).get("protocol_settings", {})
    variants = dict(variant(v) for v in args.variants)
    rows = []
    for protocol in args.protocols:
        op, sigma_y = make_operator(protocol), PROTOCOLS[protocol]["sigma_y"]
        y = degrade(x, protocol, torch.Generator().manual_seed(args.seed))
        for nfe in args.nfe:
            def row(method: str, k: int, out: torch.Tensor, seconds: float, **extra) -> None:
                p = psnr(out, x)
                rows.append({"protocol": protocol, "nfe_per_sample": nfe, "method": method, "samples": k,
                             "psnr": p.mean().item(), "psnr_sem": (p.std() / len(p) ** 0.5).item(),
                             "seconds_per_image": seconds / len(x), **extra})
                print(f"{protocol:<10} NFE {nfe:>3} {method:<18} K={k} PSNR {p.mean():.3f}"
                      + "".join(f"  {n} {v:.3f}" for n, v in extra.items()), flush=True)

            unet = None
            for name, overrides in variants.items():
                settings = {**protocol_settings.get(protocol, {}), "num_steps": nfe, **overrides}
                unet, inferer = _bundle_model(DDRM_BUNDLE, None, None, settings)
                for k in args.samples:
                    g = torch.Generator().manual_seed(args.seed + 1)
                    start, outs, stds = time.perf_counter(), [], []
                    b = max(1, args.batch_size // k)
                    for i in range(0, len(x), b):
                        mean, std = inferer.sample(y[i: i + b], unet, num_samples=k, generator=g, operator=op,
                                                   sigma_y=sigma_y)
                        outs.append(mean)
                        stds.append(std)
                    out, std = torch.cat(outs), torch.cat(stds)
                    extra = coverage(out, std, x) if k > 1 else {}
                    row(name, k, out, time.perf_counter() - start, **extra)
            if args.deepinv and unet is not None:
                eta = protocol_settings.get(protocol, {}).get("eta", inferer.eta)
                physics = as_decomposable_physics(op, sigma_y)
                peer = deepinv_ddrm(unet, inferer.scheduler.alphas_cumprod, num_steps=nfe, eta=eta,
                                    autocast=inferer.autocast, spacing=inferer.spacing)
                torch.manual_seed(args.seed + 2)
                draws, start = [], time.perf_counter()
                with torch.inference_mode():
                    for _ in range(max(args.samples)):
                        draws.append(torch.cat([peer(y[i: i + args.batch_size], physics).clamp(0, 1)
                                                for i in range(0, len(x), args.batch_size)]))
                        if len(draws) in args.samples:
                            stack = torch.stack(draws)
                            extra = coverage(stack.mean(0), stack.std(0), x) if len(draws) > 1 else {}
                            row("deepinv", len(draws), stack.mean(0), time.perf_counter() - start, **extra)
    write_json(args.out, {**run_info(), "split": args.split, "limit": args.limit, "variants": variants,
                          "protocol_settings": protocol_settings, "rows": rows})
    if args.plot:
        plot(rows, args.plot)


def plot(rows: list[dict], path: str) -> None:
    """PSNR against network calls per image (NFE × samples), one panel per protocol, one line per (method, K)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = sorted({r["protocol"] for r in rows})
    fig, axes = plt.subplots(1, len(protocols), figsize=(5.5 * len(protocols), 4), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        lines: dict[tuple, list] = {}
        for r in rows:
            if r["protocol"] == protocol:
                calls = r["nfe_per_sample"] * r["samples"]
                lines.setdefault((r["method"], r["samples"]), []).append((calls, r["psnr"]))
        for (method, k), points in sorted(lines.items()):
            points.sort()
            ax.plot(*zip(*points), marker="o", label=f"{method}, {'1 sample' if k == 1 else f'mean of {k}'}")
        ax.set(xscale="log", xlabel="network calls per image", ylabel="PSNR (dB)", title=protocol)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
