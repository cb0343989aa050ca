"""One lent accelerator, several training runs at once, each on a wall-clock budget (prior 2.0, issue 16).

A device session is short (minutes) and the 64×64 UNets are too small to fill an H200 alone, so the runs named
on the command line train side by side, each in its own process, with this package's own :class:`Trainer`
(``device=device``: the same loop, loss, EMA, validation and checkpoints as ``xray-restore train-prior``). Each
run measures its step rate over a short warm-up, then sets its step count so that a cosine cooldown over its
second half ends at ``--deadline`` (a Unix time). Bundle settings (operator, noise range, paddings, EMA, clipping,
shifts) come from the bundles' ``train.json``; only what a run changes is stated here.

    python training/gpu_session.py RUN --data DIR --out DIR --deadline UNIX_TIME
    python training/gpu_session.py --export OUT_DIR --out DIR   # best EMA weights, float16, for the trip back
    python training/gpu_session.py --evaluate OUT_DIR --out DIR --data DIR   # DDRM val of each prior run

A device session (15 minutes of device time, starting the machine included), from the repository root here:
``mkdir -p gpu_data && cp ../shared/data/*_64.npz gpu_data/``, the monai wheel in ``.whl/`` (``pip download
--no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 -d .whl monai==<version>``),
both ignored (``.git/info/exclude``) and carried; then one ``run`` (timeout ~560 s)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    export PYTHONUNBUFFERED=1; D=$(( $(date +%s) + 330 )); mkdir -p gpu_runs
    for r in w64r2 w64r2_other cond48; do timeout 380 python3 training/gpu_session.py $r --data gpu_data \
        --out gpu_runs --deadline $D > gpu_runs/$r.out 2>&1 & done; wait
    python3 training/gpu_session.py --export $OUT --out gpu_runs
    python3 training/gpu_session.py --evaluate $OUT --out gpu_runs --data gpu_data
    tar czf $OUT/logs.tgz gpu_runs/*.out gpu_runs/*/log.csv gpu_runs/*/*.json

The device image has torch but not the DICOM stack that ``import xray_restore`` pulls in; the training modules
need only torch, numpy and MONAI, so where the package import fails they are imported without its ``__init__``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The runs: network overrides of ``build_prior_unet`` (prior) or of the bundle's ``build_conditional`` arguments,
#: batch size, and where a run starts. ``other_until``: fraction of the run trained with ``cxr_other_64.npz`` too.
RUNS: dict[str, dict] = {
    "w64r2": {"kind": "prior", "network": {"channels": [64, 128, 128], "num_res_blocks": 2}, "batch_size": 128},
    "w64r2_other": {"kind": "prior", "network": {"channels": [64, 128, 128], "num_res_blocks": 2},
                    "batch_size": 128, "other_until": 0.5},
    "cond48": {"kind": "conditional", "network": {"channels": [48, 96, 96], "norm_num_groups": 16},
               "batch_size": 128},
}
#: Steps before the step rate is timed (cuDNN autotuning), and steps timed.
WARMUP_STEPS, TIMED_STEPS = 30, 60
#: Validation images (None: all 165 of val).
VAL_LIMIT: int | None = None


def _import_training_modules() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        importlib.import_module("xray_restore")
    except Exception as e:  # the device image: no pydicom, highdicom, ...; the training modules need none of them
        print(f"[gpu_session] package import failed ({e}); importing the training modules alone", flush=True)
        for name in [m for m in sys.modules if m == "xray_restore" or m.startswith("xray_restore.")]:
            del sys.modules[name]
        package = types.ModuleType("xray_restore")
        package.__path__ = [str(ROOT / "xray_restore")]
        sys.modules["xray_restore"] = package


def _bundle_json(name: str, config: str = "train.json") -> dict:
    return json.loads((ROOT / "bundles" / name / "configs" / config).read_text())


def _train(name: str, data_dir: Path, out_root: Path, deadline: float, device: str = "cuda") -> None:
    import torch

    _import_training_modules()
    from xray_restore.datasets import extra_archives, load_cxr14_cache, load_training_pool, to_model_space
    from xray_restore.networks import NETWORK_FILE, build_prior_unet, build_scheduler
    from xray_restore.training import TrainConfig, Trainer, epsilon_loss, fixed_epsilon_loss

    torch.backends.cudnn.benchmark = True
    spec = RUNS[name]
    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    data = data_dir / "cxr14_64.npz"
    extra = extra_archives(data)  # the training-only archives beside the cache, as the bundles' train.json reads them
    bundle = "xray_ddrm" if spec["kind"] == "prior" else "xray_conditional"
    settings = _bundle_json(bundle)
    base = {k: v for k, v in settings["train_config"].items() if k != "_target_"}
    config = TrainConfig(**{**base, "batch_size": spec["batch_size"], "max_steps": 10**9, "val_every": 10**9,
                            "checkpoint_every": 10**9})
    pool = to_model_space(load_training_pool(data, extra))
    val = to_model_space(load_cxr14_cache(data, "val")["images"])[:VAL_LIMIT]
    torch.manual_seed(config.seed)
    scheduler = build_scheduler()
    if spec["kind"] == "prior":
        network = build_prior_unet(**spec["network"])
        (out / NETWORK_FILE).write_text(json.dumps(spec["network"]) + "\n")
        trainer = Trainer(network, epsilon_loss(scheduler), pool, out, config, device=device,
                          val_fn=lambda ema: fixed_epsilon_loss(ema, scheduler, val, autocast=config.autocast))
    else:
        from xray_restore.conditional import blur_condition, build_conditional, predict_and_refine_loss
        from xray_restore.operators import GaussianBlur

        op_args = {k: v for k, v in settings["operator"].items() if k != "_target_"}
        net_args = {k: v for k, v in settings["network_def"].items() if k not in ("_target_", "operator")}
        net_args.update(spec["network"])
        operator = GaussianBlur(**op_args)
        network = build_conditional(**{**net_args, "channels": tuple(net_args["channels"])}, operator=operator)
        (out / "conditional.json").write_text(json.dumps(net_args) + "\n")
        loss_fn = predict_and_refine_loss(
            scheduler, blur_condition(operator, settings["sigma_y_max"], paddings=settings["condition_paddings"]))

        @torch.inference_mode()
        def val_fn(ema: torch.nn.Module) -> float:
            g = torch.Generator().manual_seed(1234)
            batches = [val[i : i + 64].to(device) for i in range(0, len(val), 64)]
            return float(sum(loss_fn(ema, b, g) for b in batches) / len(batches))

        trainer = Trainer(network, loss_fn, pool, out, config, device=device, val_fn=val_fn)
    if spec.get("init"):
        trainer.warm_start(ROOT / spec["init"], step=spec["init_step"])
    full_pool = trainer.train_images
    if spec.get("other_until"):
        other = load_training_pool(data, [*extra, data_dir / "cxr_other_64.npz"])
        trainer.train_images = to_model_space(other).to(device)
    params = sum(p.numel() for p in network.parameters())
    print(f"[{name}] {params / 1e6:.2f} M parameters, {len(trainer.train_images)} training images", flush=True)

    start = trainer.step
    trainer.fit(max_steps=start + WARMUP_STEPS, progress=False)  # cudnn autotuning, allocator warm-up
    _sync(device)
    t0, s0 = time.time(), trainer.step
    trainer.fit(max_steps=s0 + TIMED_STEPS, progress=False)
    _sync(device)
    rate = (trainer.step - s0) / (time.time() - t0)
    remaining = max(0.0, deadline - time.time())
    total = trainer.step + int(0.9 * rate * remaining)
    run_steps = total - start
    trainer.config.max_steps = total
    trainer.config.decay_steps = run_steps // 2
    trainer.config.val_every = max(100, run_steps // 16)
    trainer.config.checkpoint_every = trainer.config.val_every
    print(f"[{name}] {rate:.1f} steps/s -> steps {start}..{total} (cooldown over the last {run_steps // 2})",
          flush=True)
    if spec.get("other_until"):
        trainer.fit(max_steps=start + int(spec["other_until"] * run_steps), progress=False)
        trainer.train_images = full_pool
        print(f"[{name}] step {trainer.step}: ChestX-ray14 only from here", flush=True)
    last = trainer.fit(progress=False)
    print(f"[{name}] done: {last} best val {trainer.best_val:.6f}", flush=True)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _export(out_root: Path, export_dir: Path) -> None:
    """Each run's best EMA weights as a float16 state dict (half the bytes; widened back to float32 on arrival)."""
    import torch

    export_dir.mkdir(parents=True, exist_ok=True)
    for run in sorted(p for p in out_root.iterdir() if (p / "model.pt").is_file()):
        state = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
        half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        torch.save(half, export_dir / f"{run.name}.fp16.pt")
        print(f"[export] {run.name}: {sum(v.numel() for v in state.values()) / 1e6:.2f} M values", flush=True)


def ddrm_val(weights: Path, data_dir: Path, device: str = "cuda", limit: int | None = None,
             baselines: bool = True) -> dict:
    """DDRM with ``weights`` (the ``network.json`` beside them, else the shipped network) against the linear
    baselines on val, as ``xray-restore evaluate`` / ``benchmarks/prior_val.py`` measure it, on ``device``.

    Those build the inferer through the bundle's composition root (``Restorer.from_bundle``), which needs the DICOM
    stack; this reads the same ids (num_steps, spacing, eta, eta_b, autocast; evaluate.json's protocols, sample
    counts, seed and per-protocol settings) and builds the same :class:`DDRMInferer`. ``tests/test_gpu_session.py``
    checks that both give the same figures. ``baselines=False``: DDRM and the blurred input only (no LMMSE/Tikhonov).
    """
    _import_training_modules()
    from xray_restore.ddrm import DDRMInferer
    from xray_restore.evaluation import evaluate_methods
    from xray_restore.networks import build_prior_unet, build_scheduler, load_weights, prior_network_beside
    from xray_restore.operators import GaussianBlur

    inference, evaluate = _bundle_json("xray_ddrm", "inference.json"), _bundle_json("xray_ddrm", "evaluate.json")
    unet = load_weights(prior_network_beside(weights) or build_prior_unet(), weights).to(device)
    ids = ("num_steps", "spacing", "eta", "eta_b", "autocast")

    def make_methods(protocol: str, op, sigma_y: float) -> dict:
        settings = {**{k: inference[k] for k in ids}, **evaluate.get("protocol_settings", {}).get(protocol, {})}
        inferer = DDRMInferer(GaussianBlur(), build_scheduler(), **settings)
        op_here = op.to(device)

        def method(k: int):
            return lambda y, g: inferer.sample(y.to(device), unet, num_samples=k, generator=g, operator=op_here,
                                               sigma_y=sigma_y)[0].cpu()

        return {("ddrm_1sample" if k == 1 else f"ddrm_mean{k}"): method(k) for k in evaluate["num_samples"]}

    return evaluate_methods(str(data_dir / "cxr14_64.npz"), make_methods, split=evaluate["split"],
                            protocols=tuple(evaluate["protocols"]), limit=limit, seed=evaluate["seed"],
                            baselines=baselines, settings={"weights": str(weights), "device": device})


def _evaluate(out_root: Path, data_dir: Path, export_dir: Path, device: str) -> None:
    """:func:`ddrm_val` of every prior run's best EMA weights, one JSON for all (printed as a table too)."""
    results = {}
    for run in sorted(p for p in out_root.iterdir() if (p / "model.pt").is_file() and (p / "network.json").is_file()):
        results[run.name] = ddrm_val(run / "model.pt", data_dir, device)
        for protocol, block in results[run.name]["protocols"].items():
            row = ", ".join(f"{m} {v['psnr']:.2f} ({v['gain_over_lmmse_db']:+.2f})" for m, v in block["methods"].items()
                            if m == "lmmse" or m.startswith("ddrm"))
            print(f"[val] {run.name} {protocol}: {row}", flush=True)
    export_dir.mkdir(parents=True, exist_ok=True)
    (export_dir / "ddrm_val.json").write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", choices=sorted(RUNS))
    parser.add_argument("--data", type=Path, default=ROOT / "gpu_data")
    parser.add_argument("--out", type=Path, default=ROOT / "gpu_runs")
    parser.add_argument("--deadline", type=float, help="Unix time by which training ends")
    parser.add_argument("--device", default="cuda", help="torch device (cpu: a dry run of the script)")
    parser.add_argument("--export", type=Path, help="write each run's best EMA weights (float16) here")
    parser.add_argument("--evaluate", type=Path, help="DDRM val of each prior run (ddrm_val.json) written here")
    args = parser.parse_args()
    if args.evaluate:
        _evaluate(args.out, args.data, args.evaluate, args.device)
    elif args.export:
        _export(args.out, args.export)
    else:
        _train(args.run, args.data, args.out, args.deadline, args.device)


if __name__ == "__main__":
    main()
