"""``xray-restore`` command line: thin shells over the package (no pixel maths here).

Exit codes: 0 success, 1 a run failed on its input, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from .errors import InputError
from .locate import CONDITIONAL_BUNDLE
from .locate import DDRM_BUNDLE as DEFAULT_BUNDLE

#: Environment variable naming the 64×64 ``.npz`` cache that the training and evaluation commands read where
#: ``--data`` is not given (there is no default path).
DATA_ENV = "XRAY_RESTORE_DATA"


def _cmd_run(args: argparse.Namespace) -> int:
    from .jobs import run_inference_bundle
    from .locate import locate_bundle

    bundle = locate_bundle(args.bundle)
    reference = args.reference or (None if args.input else bundle / "samples" / "sharp")
    summary = run_inference_bundle(bundle, args.input or bundle / "samples" / "blurred", args.output,
                                   reference_dir=reference,
                                   num_samples=args.samples, seed=args.seed, quiet=args.quiet,
                                   progress=not args.quiet, **_overrides(args))
    return 0 if summary["n_failed"] == 0 and not summary["not_written"] else 1


def _cmd_restore(args: argparse.Namespace) -> int:
    from .plan import HANDED_BACK
    from .restore import restore

    results = restore(args.inputs, output_dir=args.output, bundle=args.bundle, num_samples=args.samples,
                      seed=args.seed, include_identifiers=args.include_identifiers, keep_images=False,
                      progress=not args.quiet, on_error="skip", **_overrides(args))
    summary = results.summary
    for failure in results.failures:
        print(f"xray-restore: {failure.stage} failed: {failure.source}: {failure.reason}", file=sys.stderr)
    for name, reason in results.not_written.items():
        print(f"xray-restore: report: {Path(args.output) / name} not written: {reason}", file=sys.stderr)
    ok = summary["n_failed"] == 0 and (results or not results.failures) and not results.not_written
    if args.quiet:
        return 0 if ok else 1
    for r in results:
        written = ", ".join(os.path.relpath(o, args.output) for o in r.outputs)
        if r.status in HANDED_BACK:
            print(f"{r.source}: {r.reason}" + (f" -> {written}" if written else ""))
        else:
            blur = "given" if r.blur_sigma is None else f"{r.blur_sigma:.2f} px"
            noise = "given" if r.sigma_y is None else f"{r.sigma_y:.4f}"
            print(f"{r.source}: blur {blur}, noise {noise}, {r.status} -> {written or 'nothing written'}")
    print(f"restored {summary['n_done']} image(s), {summary['n_not_chest']} not a frontal chest radiograph, "
          f"{summary['n_no_blur']} with no blur at the model scale, "
          f"{summary['n_blur_mismatch']} with a blur the model does not restore, {summary['n_failed']} failed; report: "
          f"{Path(args.output) / 'report.html'}" + (" (not written)" if "report.html" in results.not_written else ""))
    return 0 if ok else 1


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch

    common = {"bundle": args.bundle, "batch_size": args.batch_size, "num_samples": args.samples, "seed": args.seed,
              "workers": args.workers, "scheduler": args.scheduler, "retry_failed": args.retry_failed,
              **_overrides(args)}
    urls = [i for i in args.inputs if i.startswith(("http://", "https://", "dicom://"))]
    stored = None
    if urls:
        from .pacs import run_pacs_batch

        if len(urls) != 1 or len(args.inputs) != 1:
            print("xray-restore: error: give either one PACS address or files/folders", file=sys.stderr)
            return 2
        studies = None
        if args.studies:
            path = Path(args.studies)
            studies = path.read_text().split() if path.is_file() else args.studies.split(",")
        summary, stored = run_pacs_batch(urls[0], args.output, study_uids=studies, date_range=args.date,
                                         modality=args.modality, store_back=args.store_back, **common)
    else:
        summary = run_batch(args.inputs, args.output, manifest=args.manifest, **common)
    for failure in summary.failures:
        print(f"xray-restore: failed: {failure['source']}: {failure['reason']}", file=sys.stderr)
    print(json.dumps({"counts": summary.counts, "processed": summary.processed, "stored": stored,
                      "seconds": round(summary.seconds, 2), "images_per_second": round(summary.images_per_second, 3),
                      "failed": len(summary.failures)}))
    return 0 if summary.ok else 1


def _positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _setting(text: str):
    """A command-line value for a bundle id: JSON (numbers, true/false, lists) or else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def set_ids(items: list[str] | None) -> dict:
    """``--set id=value`` options as bundle-id overrides (values as :func:`_setting` reads them); the benchmarks'
    ``--set`` too."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"xray-restore: error: --set expects id=value, got {item!r}")
        out[key] = _setting(value)
    return out


def _overrides(args: argparse.Namespace) -> dict:
    """Bundle-id overrides from the restoration options; only what was given (the rest: the bundle's values)."""
    out = {**set_ids(args.set), **_device_override(args)}
    for name in ("blur_sigma", "sigma_y", "output_mode", "output_format"):
        value = getattr(args, name)
        if value is not None:
            out[name] = _setting(value)
    if args.force:
        out["force"] = True
    return out


def _add_restoration_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that override the bundle's restoration settings (each defaults to the bundle's value)."""
    parser.add_argument("--blur-sigma", dest="blur_sigma", metavar="PX|auto",
                        help="Gaussian blur std at the 64x64 model scale, in pixels (bundle default: auto, estimated "
                             "per image)")
    parser.add_argument("--sigma-y", dest="sigma_y", metavar="STD|auto",
                        help="noise std in [0, 1] intensity units at the model scale (bundle default: auto)")
    parser.add_argument("--force", action="store_true",
                        help="write an output for every input: one with no blur at the model scale is written "
                             "unchanged, one with a blur the model does not restore is restored anyway (default: "
                             "report them and write nothing)")
    parser.add_argument("--output-mode", dest="output_mode", choices=["detail", "upsample"],
                        help="detail: keep the source's detail finer than 64x64 (bundle default); upsample: write "
                             "the 64x64 result resampled to the source grid")
    parser.add_argument("--format", dest="output_format", choices=["source", "nifti"],
                        help="source: a derived DICOM series for DICOM inputs, a PNG for PNG or JPEG (bundle default); "
                             "nifti: .nii.gz images (restored, and the std with --samples > 1) with the pixel spacing")
    _add_device_argument(parser)
    parser.add_argument("--set", action="append", metavar="ID=VALUE",
                        help="override any id of the bundle's inference.json, e.g. --set num_steps=50")


def _add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", metavar="DEVICE",
                        help="torch device to restore on, e.g. cpu, cuda, cuda:1 (bundle default: cuda if available, "
                             "else cpu)")


def _device_override(args: argparse.Namespace) -> dict:
    """``--device`` as the bundle's ``device`` id (checked here, so a typo is one clear line)."""
    device = getattr(args, "device", None)
    if device is None:
        return {}
    return {"device": f"$torch.device({str(_checked_device(device))!r})"}


def _checked_device(device: str):
    """``--device`` as a ``torch.device`` that this torch can use, or exit with one clear line."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise SystemExit(f"xray-restore: error: --device {device!r} is not a torch device ({e})") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"xray-restore: error: --device {device}: this torch has no CUDA device "
                         f"(torch {torch.__version__}); use --device cpu")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise SystemExit(f"xray-restore: error: --device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    return parsed


def _bundle_section(bundle: str, section: str, cls, given: dict):
    """The dataclass ``cls`` of ``bundle``'s ``train.json`` ``section`` (their home), with the options given
    (``None``: the bundle's value)."""
    import dataclasses

    from monai.bundle import ConfigParser

    from .locate import locate_bundle

    parser = ConfigParser()
    parser.read_config(str(locate_bundle(bundle) / "configs" / "train.json"))
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in parser[section].items() if k in fields}
    values.update({k: v for k, v in given.items() if v is not None})
    return cls(**values)


def _train_config(args: argparse.Namespace, bundle: str):
    """The :class:`~xray_restore.training.TrainConfig` of ``bundle``'s ``train.json``, with the options given."""
    from .training import TrainConfig

    given = {"max_steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "decay_steps": args.decay_steps,
             "min_lr_ratio": args.min_lr_ratio, "autocast": False if args.fp32 else None}
    return _bundle_section(bundle, "train_config", TrainConfig, given)


def _cmd_train_prior(args: argparse.Namespace) -> int:
    from .networks import NETWORK_FILE, build_prior_unet
    from .prior import train_prior

    device = _checked_device(args.device)
    config = _train_config(args, DEFAULT_BUNDLE)
    network = None
    if args.network:
        network = build_prior_unet(**json.loads(args.network))
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / NETWORK_FILE).write_text(args.network + "\n")  # what loads the run's weights
    train_prior(args.data, args.out, config, network=network, resume=not args.restart, num_threads=args.threads,
                init_weights=args.init_weights, init_step=args.init_step, extra_data=args.extra_data, device=device)
    return 0


def _cmd_train_source_prior(args: argparse.Namespace) -> int:
    from monai.bundle import ConfigParser

    from .locate import SOURCE_BUNDLE, locate_bundle
    from .prior import train_patch_prior

    device = _checked_device(args.device)
    config = _train_config(args, SOURCE_BUNDLE)
    if args.patch_size is not None:
        import dataclasses

        config = dataclasses.replace(config, patch_size=args.patch_size)
    parser = ConfigParser()
    parser.read_config(str(locate_bundle(SOURCE_BUNDLE) / "configs" / "train.json"))
    network = parser.get_parsed_content("network_def")
    train_patch_prior(args.crops, args.out, config, network, resume=not args.restart, num_threads=args.threads,
                      val_patches=parser["val_patches"], device=device, init_weights=args.init_weights,
                      init_step=args.init_step)
    return 0


def _cmd_fit_spectrum(args: argparse.Namespace) -> int:
    from .datasets import load_training_pool, to_unit_range
    from .estimation import fit_spectrum, save_spectrum
    from .locate import operator_padding

    padding = operator_padding(args.bundle)  # the training blurs have the restoring operator's borders
    output = args.output or str(Path(args.bundle) / "models" / "degradation_spectrum.pt")
    images = to_unit_range(load_training_pool(args.data, args.extra_data))
    spectrum = fit_spectrum(images, padding=padding)
    save_spectrum(spectrum, output)
    print(f"fitted the degradation spectrum on {spectrum['num_images']} training images ({padding} borders) "
          f"-> {output}")
    return 0


def _regressor_config(args: argparse.Namespace):
    """The bundle's ``regressor_config`` (train.json) with the ``fit-regressor`` options given."""
    from .blur_regressor import RegressorConfig

    given = {"steps": args.steps, "seed": args.seed, "lr": args.lr, "sigma_loss": args.sigma_loss}
    return _bundle_section(args.bundle, "regressor_config", RegressorConfig, given)


def _cmd_fit_regressor(args: argparse.Namespace) -> int:
    import torch

    from .blur_regressor import train_regressor
    from .locate import operator_padding

    padding = operator_padding(args.bundle)
    output = args.output or str(Path(args.bundle) / "models" / "degradation_regressor.pt")
    config = _regressor_config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_regressor(args.data, output, extra=args.extra_data, config=config, padding=padding, progress=not args.quiet,
                    init=args.init_weights, resume=not args.restart)
    print(f"trained the degradation regressor for {config.steps} steps ({padding} borders) -> {output}")
    return 0


def _cmd_train_conditional(args: argparse.Namespace) -> int:
    import torch
    from monai.bundle import ConfigParser

    from .conditional import train_conditional
    from .locate import locate_bundle

    device = _checked_device(args.device)
    config = _train_config(args, CONDITIONAL_BUNDLE)
    parser = ConfigParser()  # the network, blur and noise range of the bundle's train.json (their home)
    parser.read_config(str(locate_bundle(CONDITIONAL_BUNDLE) / "configs" / "train.json"))
    torch.manual_seed(config.seed)  # a fresh network's initial weights are reproducible
    train_conditional(args.data, args.out, config=config, network=parser.get_parsed_content("network_def"),
                      operator=parser.get_parsed_content("operator"), sigma_y_max=parser["sigma_y_max"],
                      resume=not args.restart, num_threads=args.threads, init_weights=args.init_weights,
                      init_step=args.init_step, extra_data=args.extra_data, paddings=parser["condition_paddings"],
                      device=device)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_conditional, evaluate_prior, format_results

    evaluate = evaluate_conditional if args.model == "conditional" else evaluate_prior
    bundle = args.bundle or (CONDITIONAL_BUNDLE if args.model == "conditional" else DEFAULT_BUNDLE)
    settings = {**set_ids(args.set), **_device_override(args)}
    results = evaluate(args.data, args.weights, split=args.split, limit=args.limit,
                       samples=tuple(args.samples) if args.samples else None,
                       protocols=tuple(args.protocols) if args.protocols else None, bundle=bundle,
                       out_file=args.out, progress=not args.quiet, **settings)
    print(format_results(results))
    return 0


def _cmd_build_cache(args: argparse.Namespace) -> int:
    from .cache import build_cache

    counts = build_cache(args.csv, args.images, args.out, seed=args.seed, workers=args.workers, missing=args.missing)
    print(json.dumps(counts))
    return 0


def _add_data_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--data``: required, unless the environment variable :data:`DATA_ENV` names the cache."""
    default = os.environ.get(DATA_ENV) or None
    parser.add_argument("--data", default=default, required=default is None,
                        help=f"{what} (default: ${DATA_ENV}; required where it is not set)")


def _add_training_arguments(parser: argparse.ArgumentParser, out_default: str, data: bool = True) -> None:
    """Options shared by the training commands (resumable runs on the ChestX-ray14 cache; ``data=False`` for one
    that reads other files)."""
    if data:
        _add_data_argument(parser, "64x64 .npz cache")
    parser.add_argument("-o", "--output", "--out", dest="out", default=out_default,
                        help="run folder: checkpoint, log, weights (default: %(default)s)")
    parser.add_argument("--extra-data", nargs="*", default=[],
                        help="training-only .npz archives (an 'images' array) added to the train split")
    parser.add_argument("--steps", type=int, help="total optimiser steps (default: the bundle's train.json)")
    parser.add_argument("--batch-size", type=int, help="images per step (default: the bundle's train.json)")
    parser.add_argument("--lr", type=float, help="peak AdamW learning rate (default: the bundle's train.json)")
    parser.add_argument("--decay-steps", type=int,
                        help="cosine cooldown of the lr over the last N steps before --steps (0: constant lr; "
                             "default: the bundle's train.json)")
    parser.add_argument("--min-lr-ratio", type=float,
                        help="lr at --steps as a fraction of --lr (default: the bundle's train.json)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu",
                        help="torch device to train on, e.g. cuda (default: %(default)s; a run resumes on any device)")
    parser.add_argument("--fp32", action="store_true",
                        help="no bf16 autocast (bf16 is used only where the CPU runs it natively)")
    parser.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    parser.add_argument("--init-weights", help="warm-start a new run from these weights (e.g. a bundle's model.pt)")
    parser.add_argument("--init-step", type=int, default=0, help="step count of the run that made --init-weights")


def _add_job_arguments(parser: argparse.ArgumentParser, output_default: str | None = None) -> None:
    """The options every restoring command shares (``run``, ``restore``, ``batch``): defined once."""
    if output_default is None:
        parser.add_argument("-o", "--output", required=True, help="output folder (created; must be writable)")
    else:
        parser.add_argument("-o", "--output", default=output_default, help="output folder (default: %(default)s)")
    parser.add_argument("--bundle", default=DEFAULT_BUNDLE,
                        help="MONAI bundle folder or name (default: %(default)s; a name is found beside the installed "
                             "package, see xray_restore/locate.py)")
    parser.add_argument("--samples", type=_positive_int, default=None,
                        help="posterior samples averaged per image; >1 adds an uncertainty series (default: the "
                             "bundle's num_samples)")
    parser.add_argument("--seed", type=int, default=None, help="random seed; each input gets its own stream derived "
                        "from it and its content, so results do not depend on the batch (default: the bundle's seed)")


MODEL_SCALE = ("Images are restored at the 64x64 model scale (blur and noise estimated there per image) and written "
               "back on the source grid with the source's own detail finer than 64x64 kept.")


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = argparse.ArgumentParser(prog="xray-restore", description="DDRM deblurring of chest radiographs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="store_true",
                       help="show everything, including third-party warnings hidden by default")
    noise.add_argument("-q", "--quiet", action="store_true", help="print only errors (and batch's JSON summary)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="deblur a folder of PNGs with the DDRM bundle (default: the embedded samples)",
                         description=MODEL_SCALE)
    run.add_argument("--input", help="folder of blurred 8-bit PNGs (default: the bundle's synthetic samples)")
    run.add_argument("--reference", help="folder of sharp PNGs with the same names (adds PSNR/SSIM)")
    _add_job_arguments(run, output_default="outputs/main")
    _add_restoration_arguments(run)
    run.set_defaults(func=_cmd_run)

    rest = sub.add_parser("restore", help="restore DICOM/PNG/JPEG files or folders; write derived DICOMs "
                          "(lossless PNGs for PNG/JPEG) and a report",
                          description=MODEL_SCALE)
    rest.add_argument("inputs", nargs="+", help="DICOM, PNG or JPEG files, or folders of them")
    _add_job_arguments(rest)
    rest.add_argument("--include-identifiers", action="store_true",
                      help="put file names and error texts in the report (may contain patient data)")
    _add_restoration_arguments(rest)
    rest.set_defaults(func=_cmd_restore)

    batch = sub.add_parser("batch", help="resumable batch restoration of folders (SQLite manifest, optional Dask)",
                           description=MODEL_SCALE)
    batch.add_argument("inputs", nargs="+", help="files or folders of DICOM / PNG radiographs, or one PACS: a "
                       "DICOMweb URL (http://host:port/dicom-web) or a DIMSE node (dicom://AET@host:port)")
    _add_job_arguments(batch)
    batch.add_argument("--manifest", help="SQLite manifest (default: <output>/manifest.sqlite)")
    batch.add_argument("--batch-size", type=_positive_int, default=8,
                       help="images per UNet call (default: %(default)s)")
    batch.add_argument("--workers", type=_positive_int, help="run on a local Dask cluster with this many workers")
    batch.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    batch.add_argument("--retry-failed", action="store_true", help="retry inputs the manifest records as failed")
    batch.add_argument("--studies", help="PACS: Study Instance UIDs, comma-separated or a file with one per line")
    batch.add_argument("--date", help="PACS: study date range YYYYMMDD-YYYYMMDD")
    batch.add_argument("--modality", help="PACS: modality filter, e.g. CR or DX")
    batch.add_argument("--store-back", action="store_true",
                       help="PACS: store the derived series back to the node (STOW-RS or C-STORE)")
    _add_restoration_arguments(batch)
    batch.set_defaults(func=_cmd_batch)

    train = sub.add_parser("train-prior", help="train or resume the 64x64 DDPM prior")
    _add_training_arguments(train, "runs/prior")
    train.add_argument("--network", metavar="JSON",
                       help="DiffusionModelUNet arguments that differ from the shipped prior's, e.g. "
                            "'{\"channels\": [48, 96, 96], \"norm_num_groups\": 16}' (default: the shipped network)")
    train.set_defaults(func=_cmd_train_prior)

    source = sub.add_parser("train-source-prior",
                            help="train or resume the patch prior of radiographs at their own grid")
    _add_training_arguments(source, "runs/source_prior", data=False)
    source.add_argument("--crops", required=True,
                        help="folder of source-resolution training crops with crops.csv (e.g. cxr14_crops_1024/)")
    source.add_argument("--patch-size", type=int, help="patch side in pixels (default: the bundle's train.json)")
    source.set_defaults(func=_cmd_train_source_prior)

    spec = sub.add_parser("fit-spectrum", help="fit the blur/noise estimator's image spectrum on training images")
    _add_data_argument(spec, "64x64 .npz cache whose train split is used")
    spec.add_argument("--extra-data", nargs="*", default=[], help="training-only .npz archives added to it")
    spec.add_argument("--bundle", default=DEFAULT_BUNDLE, help="bundle whose operator padding the blurs use")
    spec.add_argument("-o", "--output", default=None, help="default: <bundle>/models/degradation_spectrum.pt")
    spec.set_defaults(func=_cmd_fit_spectrum)

    reg = sub.add_parser("fit-regressor", help="train the estimator's learned blur/noise regressor on training images")
    _add_data_argument(reg, "64x64 .npz cache whose train split is used")
    reg.add_argument("--extra-data", nargs="*", default=[], help="training-only .npz archives added to it")
    reg.add_argument("--bundle", default=DEFAULT_BUNDLE, help="bundle whose operator padding the blurs use")
    reg.add_argument("--steps", type=int, help="optimiser steps (default: the bundle's train.json regressor_config)")
    reg.add_argument("--seed", type=int, help="random seed (default: the bundle's train.json regressor_config)")
    reg.add_argument("--lr", type=float, help="peak learning rate (default: the bundle's train.json regressor_config)")
    reg.add_argument("--sigma-loss", choices=("l1", "sensitivity"),
                     help="l1 (the shipped regressor's first 19,000 steps), or sensitivity: the squared σ error "
                          "weighted by what it costs DDRM (default: the bundle's train.json regressor_config)")
    reg.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    reg.add_argument("--init-weights", default=None,
                     help="continue from these regressor weights (a new schedule; the same width)")
    reg.add_argument("--restart", action="store_true",
                     help="ignore a checkpoint of an interrupted run (<output>.checkpoint.pt) and start over")
    reg.add_argument("-o", "--output", default=None, help="default: <bundle>/models/degradation_regressor.pt")
    reg.set_defaults(func=_cmd_fit_regressor)

    cond = sub.add_parser("train-conditional", help="train or resume a conditional (blurred, sharp) baseline")
    _add_training_arguments(cond, "runs/conditional")
    cond.set_defaults(func=_cmd_train_conditional)

    ev = sub.add_parser("evaluate", help="DDRM (or the conditional baseline) vs linear baselines on a split, with "
                        "the settings its bundle ships (configs/evaluate.json and inference.json)")
    ev.add_argument("--model", choices=["prior", "conditional"], default="prior",
                    help="prior: DDRM with the xray_ddrm bundle; conditional: the xray_conditional bundle")
    ev.add_argument("--bundle", help="bundle folder (default: the --model's bundle)")
    _add_data_argument(ev, "64x64 .npz cache")
    ev.add_argument("--weights", help="other weights (default: the bundle's models/model.pt); a prior run's "
                    "network.json beside them gives their architecture (e.g. runs/prior2_w48/model.pt)")
    ev.add_argument("--split", choices=["val", "test"],
                    help="split to evaluate (default: the bundle's, val; tune on val)")
    ev.add_argument("--protocols", nargs="+", choices=["case_study", "realistic"],
                    help="measurement protocols (default: the bundle's evaluate.json)")
    ev.add_argument("--limit", type=int, help="first N images of the split (default: all)")
    ev.add_argument("--samples", type=int, nargs="+", help="sample counts to average (default: the bundle's, 1 8)")
    ev.add_argument("--set", action="append", metavar="ID=VALUE",
                    help="override an id of the bundle's inference.json, e.g. --set num_steps=50")
    _add_device_argument(ev)
    ev.add_argument("-o", "--output", "--out", dest="out", default=None, help="write the results as JSON here")
    ev.set_defaults(func=_cmd_evaluate)

    cache = sub.add_parser("build-cache", help="build a 64x64 .npz cache from full-size ChestX-ray14 PNGs")
    cache.add_argument("--csv", required=True, help="Data_Entry_2017.csv")
    cache.add_argument("--images", required=True, help="folder of the PNGs")
    cache.add_argument("-o", "--output", "--out", dest="out", required=True, help="output .npz")
    cache.add_argument("--seed", type=int, default=0, help="seed of the patient-disjoint split (default: %(default)s)")
    cache.add_argument("--workers", type=int, default=None, help="decode processes (default: CPU count)")
    cache.add_argument("--missing", choices=["error", "skip"], default="error",
                       help="a listed PNG that is absent: stop or skip it (default: %(default)s)")
    cache.set_defaults(func=_cmd_build_cache)
    return parser


def _show_warning(message, *_, **__) -> None:
    """One ``xray-restore: warning: ...`` line on stderr, printed above a running progress bar, not into it."""
    from tqdm import tqdm

    tqdm.write(f"xray-restore: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # the caller's warning display is back as it was when main() returns
        if not args.verbose:  # a warning is one line about an input (the readers name the file); -v: Python's
            warnings.showwarning = _show_warning
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    if args.verbose:
        import logging

        from ._compat import quiet_known_noise

        quiet_known_noise(False)
        logging.basicConfig(level=logging.INFO)
    try:
        return args.func(args)
    except (InputError, FileNotFoundError) as e:
        print(f"xray-restore: error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # a value the package refused (bad settings are InputErrors above); -v shows where
        if args.verbose:
            raise
        print(f"xray-restore: error: {e} (-v shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
