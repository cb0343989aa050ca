"""``Restorer``: the composition root (bundle → chain → degradation estimate → DDRM → source grid → outputs).

    >>> restorer = Restorer.from_bundle("bundles/xray_ddrm")            # doctest: +SKIP
    >>> results = restorer.restore(["chest.dcm"], output_dir="out/")    # doctest: +SKIP

Every setting comes from the bundle's ``inference.json`` (their one home); keyword arguments of
:meth:`Restorer.from_bundle` override its ids, as ``monai.bundle run --id value`` does (e.g. ``sigma_y=0.02``,
``blur_sigma=2.0``, ``force=True``, ``output_mode="upsample"``).

By default the blur σ and noise σ_y of each input are estimated from the input itself
(:mod:`xray_restore.estimation`). An input whose blur is below the bundle's ``no_blur_sigma`` has "no blur at the
model scale": it is reported and nothing is written for it unless ``force``; so is an input whose blur is not
Gaussian (a defocus disk, motion: its spectral misfit exceeds ``max_blur_misfit``, or its anisotropy
``max_blur_anisotropy``), which restoring as a Gaussian blur would make worse. On the source grid the default
output replaces only the band the model saw: ``out = src + up(restored − down(src))`` (``output_mode="detail"``),
so no detail finer than the 64×64 grid is lost; ``"upsample"`` writes ``up(restored)`` instead.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from typing import Literal
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.transforms import Compose

from .atomic import all_or_nothing, remove_stale_temporaries
from .dicom_writer import derivation_description as derivation_text
from .errors import InputError, os_reason
from .locate import DDRM_BUNDLE
from .plan import RestorationPlan
from .policy import PlannedInferer
from .readers import identifying_values, is_own_output
from .stored import output_bits, to_stored
from .transforms import apply_chain, load_chain, model_window

__all__ = ["Restoration", "Restorer", "restore", "OUTPUT_MODES", "file_digest", "check_writable"]

OUTPUT_MODES = ("detail", "upsample")
#: ``source``: the input's own kind (a derived DICOM series for DICOM, a PNG for PNG); ``nifti``: NIfTI-1 images
#: (``.nii.gz``, restored and, with several samples, the posterior std) for research pipelines.
OUTPUT_FORMATS = ("source", "nifti")


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove it writable before any compute; a clear error naming it otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".xray_restore-write-check-"):
            pass
    except OSError as e:
        raise InputError(folder, f"output folder is not writable ({e.strerror or e})") from None
    return folder


def _parsed(parser: ConfigParser, config_file: Path, key: str):
    """A bundle component; a failure inside it (e.g. a corrupt model.pt) becomes one InputError naming the file."""
    try:
        return parser.get_parsed_content(key)
    except Exception as e:  # noqa: BLE001 - MONAI wraps the real cause in RuntimeError chains
        cause: BaseException | None = e
        while cause is not None:
            if isinstance(cause, InputError):  # the file and the reason travel as they were raised
                raise cause from None
            root = cause
            cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
        # the innermost error says what is wrong (e.g. "sigma_y must be ..."); MONAI's wrappers only say where
        reason = (str(root).splitlines() or [""])[0]
        raise InputError(config_file, f"cannot build {key!r} ({type(root).__name__}: {reason})") from None


def _spacing(meta: dict) -> tuple[float, float] | None:
    """(row, column) spacing in mm of the source grid, or None when the source does not give it."""
    if not bool(np.asarray(meta.get("pixel_spacing_known", False)).reshape(-1)[0]):
        return None
    values = np.asarray(torch.as_tensor(meta["pixel_spacing"]), dtype=float).reshape(-1)[:2]
    return float(values[0]), float(values[1])


def _error_text(error: Exception) -> str:
    """An error in one line: the OS's words for an OS error (``"OSError: File too large (errno 27): <path>"``), else
    the error's type and the first line of its text (a library may put a whole traceback in it)."""
    if isinstance(error, OSError) and error.errno and error.strerror:
        where = f": {error.filename}" if error.filename else ""  # the report scrubs paths; the console keeps them
        return f"{type(error).__name__}: {os_reason(error)}{where}"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _input_generator(seed: int, digest: str) -> torch.Generator:
    """A generator of its own for each input: its samples depend on its content and the seed, not on its batch."""
    value = int.from_bytes(hashlib.sha256(f"{int(seed)}:{digest}".encode()).digest()[:8], "big") & (2**63 - 1)
    return torch.Generator().manual_seed(value)


@dataclass(frozen=True, repr=False, kw_only=True)
class Restoration:
    """One input and what became of it. Arrays are ``(rows, cols)`` float32 in [0, 1] (bright = dense).

    ``status`` is ``"restored"``, ``"not_chest"`` (not a frontal chest radiograph), ``"no_blur"`` (no blur at the
    model scale) or ``"blur_mismatch"`` (a blur the model
    does not restore: not Gaussian, or, for a network trained on one blur, milder than it can take); for the latter
    two ``restored`` is the input, written only when forced. ``blur_sigma`` (model-scale pixels) and ``sigma_y``
    ([0, 1] units) are the blur and noise of the input, estimated from it unless given; ``estimate`` holds the
    estimator's full record (or None).
    """

    source: str
    image: np.ndarray | None  # the input on its own grid (after the reader's LUT pipeline); None if not kept
    restored: np.ndarray | None  # the output on the source grid (see output_mode); None if not kept
    std: np.ndarray | None  # per-pixel posterior std on the source grid (num_samples > 1)
    model_input: np.ndarray  # the 64×64 measurement y the inferer saw
    model_output: np.ndarray  # the 64×64 posterior mean
    model_std: np.ndarray | None
    meta: dict
    seconds: float
    outputs: list[str] = field(default_factory=list)
    blur_sigma: float | None = None
    sigma_y: float | None = None
    estimate: dict | None = None
    status: str = "restored"
    reason: str = ""
    grid: tuple[int, ...] = ()  # the source grid (rows, cols); kept when the arrays are dropped

    def __post_init__(self) -> None:
        if not self.grid and self.image is not None:
            object.__setattr__(self, "grid", tuple(int(v) for v in self.image.shape))  # frozen

    def __repr__(self) -> str:
        grid = "x".join(str(v) for v in self.grid)
        blur = "?" if self.blur_sigma is None else f"{self.blur_sigma:.2f}"
        noise = "?" if self.sigma_y is None else f"{self.sigma_y:.4f}"
        return (f"Restoration({Path(self.source).name!r}, {self.status}, grid {grid}, blur_sigma={blur} px, "
                f"sigma_y={noise}, outputs={len(self.outputs)}, {self.seconds:.2f} s)")


@dataclass(frozen=True)
class Failure:
    """An input that could not be processed, and why. The reason is the error's own text, which can quote the path or
    header values (e.g. an output path made of UIDs): the report scrubs it of the path and of ``identifiers`` (the
    input's identifying header values, read when it failed) unless identifiers are allowed."""

    source: str
    reason: str
    stage: str  # load, restore or write
    identifiers: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


class Restorations(list):
    """What :func:`restore` returns: the :class:`Restoration` of each input processed (a list), with the inputs that
    failed (``failures``: :class:`Failure`), the repeats of an input given more than once (``duplicates``:
    ``(repeat, first)``) and, with an output folder, the report's summary and what of it could not be written."""

    def __init__(self, results: Sequence[Restoration] = (), failures: Sequence[Failure] = (),
                 duplicates: Sequence[tuple[str, str]] = (), summary: dict | None = None,
                 not_written: dict[str, str] | None = None) -> None:
        super().__init__(results)
        self.failures: list[Failure] = list(failures)
        self.duplicates: list[tuple[str, str]] = list(duplicates)
        #: the report's ``summary.json`` document (also where it could not be written), None without a report
        self.summary = summary
        #: report files that could not be written, by name, with the reason
        self.not_written: dict[str, str] = dict(not_written or {})


class Restorer:
    """DDRM restoration of DICOM / PNG radiographs with a bundle's network, estimator, operator and inferer.

    Args:
        network: the ε-UNet.
        inferer: a :class:`~xray_restore.policy.PlannedInferer`: the sampler (DDRM, the conditional baseline) and the
            policy that plans each input.
        provenance: what the derived objects and reports record (method, model version, software version).
        chain: the forward chain (``transforms/<chain>.json``), DICOM and PNG alike.
        output_mode: ``"detail"`` (default) or ``"upsample"``.
        force: restore (and write) inputs with no blur at the model scale too.
    """

    def __init__(self, network: torch.nn.Module, inferer: PlannedInferer, provenance: dict, chain: str = "dicom",
                 output_mode: str = "detail", force: bool = False, max_batch_pixels: int | None = None,
                 output_format: str = "source") -> None:
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}.")
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}.")
        self.output_format = output_format
        if max_batch_pixels is not None and not int(max_batch_pixels) > 0:
            raise ValueError(f"max_batch_pixels must be > 0 (or None), got {max_batch_pixels!r}.")
        # source-grid pixels decoded and held at once: a batch closes early when it reaches this (memory bound)
        self.max_batch_pixels = None if max_batch_pixels is None else int(max_batch_pixels)
        if not isinstance(inferer, PlannedInferer):
            raise TypeError(f"inferer must be a PlannedInferer (a sampler and its policy), got "
                            f"{type(inferer).__name__}.")
        self.network = network.eval()
        self.inferer = inferer
        self.provenance = provenance
        self.output_mode = output_mode
        self.force = bool(force)
        self.forward = load_chain(chain, id="unit_range")
        self._decode = Compose([self.forward.transforms[0]])  # LoadImaged: the source grid, decoded once
        self._to_model = Compose(self.forward.transforms[1:])
        self.upsample = load_chain("output", id="upsample", preprocessing=self.forward)
        self.failures: list[Failure] = []
        self.duplicates: list[tuple[str, str]] = []  # (input, the earlier input of the call it repeats)

    @property
    def seed(self) -> int:
        """The bundle's seed (inputs without one of their own derive their streams from it)."""
        seed = getattr(self.inferer, "seed", None)
        return 0 if seed is None else int(seed)

    @property
    def num_samples(self) -> int:
        """The bundle's number of posterior samples per input."""
        return int(self.inferer.num_samples)

    @classmethod
    def from_bundle(cls, bundle_root: str | os.PathLike = DDRM_BUNDLE, **overrides) -> Restorer:
        """Build from ``<bundle_root>/configs/inference.json``; ``overrides`` replace ids (e.g. ``sigma_y=0.02``)."""
        import json

        from .version import __version__

        from .locate import locate_bundle

        bundle_root = locate_bundle(bundle_root)
        config_file = bundle_root / "configs" / "inference.json"
        if not config_file.is_file():
            raise InputError(config_file, "bundle inference config not found")
        parser = ConfigParser()
        parser.read_config(str(config_file))
        parser["bundle_root"] = str(bundle_root)
        for key, value in overrides.items():
            if key not in parser.config:
                raise InputError(config_file, f"has no id {key!r}; ids: {', '.join(sorted(parser.config))}")
            parser[key] = value
        meta = json.loads((bundle_root / "configs" / "metadata.json").read_text())
        inferer = _parsed(parser, config_file, "inferer")
        network = _parsed(parser, config_file, "network")
        provenance = {
            "method": inferer.config.get("method", "DDRM"),
            "inferer": inferer.config,
            "operator": parser.get_parsed_content("operator").config,
            "model_version": f"{meta.get('name', bundle_root.name)} {meta.get('version', '')}".strip(),
            "software_version": __version__,
        }
        output_mode = parser.get_parsed_content("output_mode") if "output_mode" in parser.config else "detail"
        force = bool(parser.get_parsed_content("force")) if "force" in parser.config else False
        budget = parser.get_parsed_content("max_batch_pixels") if "max_batch_pixels" in parser.config else None
        output_format = parser.get_parsed_content("output_format") if "output_format" in parser.config else "source"
        return cls(network, inferer, provenance, chain=parser["input_chain"], output_mode=output_mode, force=force,
                   max_batch_pixels=budget, output_format=output_format)

    # -------------------------------------------------------------------------------------------- load
    def _load(self, path: Path) -> dict:
        """Decode once; keep the source grid and the 64×64 model input (with its inverse record)."""
        data = apply_chain(self._decode, {"image": str(path)})
        source = data["image"]  # the chain below makes new tensors and never writes into this one: no copy
        data = apply_chain(self._to_model, data)
        data["source_image"] = source
        data["digest"] = file_digest(path)
        return data

    # ----------------------------------------------------------------------------------------- restore
    def restore(
        self,
        inputs: Sequence[str | os.PathLike] | str | os.PathLike,
        num_samples: int | None = None,
        seed: int | None = None,
        output_dir: str | os.PathLike | None = None,
        batch_size: int = 8,
        on_error: str = "raise",
        force: bool | None = None,
        keep_images: bool = True,
        progress: bool = False,
    ) -> list[Restoration]:
        """Restore files (DICOM or PNG paths) or pydicom ``Dataset`` objects (``progress``: a tqdm bar on stderr).

        ``num_samples``: samples averaged per input (default: the bundle's). With ``output_dir``, each DICOM source
        gets derived objects (restored, and uncertainty when ``num_samples > 1``) via
        :func:`~xray_restore.dicom_writer.write_derived`; PNG sources get a PNG.
        ``on_error="skip"`` records a bad input in :attr:`failures` (load, restore or write) and goes on with the
        others; ``"raise"`` stops. An input's result never depends on the other inputs of its call.
        An input given again (the same resolved path: a second time, via ``..`` or a symlink; or the same bytes) is
        restored once: the repeat is listed in :attr:`duplicates` with the earlier input, and has no result.
        Memory: at most ``batch_size`` inputs, and no more source-grid pixels than the bundle's
        ``max_batch_pixels``, are held at once; ``keep_images=False`` (for writing jobs) drops each result's
        source-grid arrays once written, so a long run holds only the 64×64 ones.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
        force = self.force if force is None else bool(force)
        seed = self.seed if seed is None else int(seed)
        if output_dir is not None:
            check_writable(output_dir)
        items = [inputs] if isinstance(inputs, (str, os.PathLike)) or hasattr(inputs, "SOPInstanceUID") else inputs
        self.failures, self.duplicates = [], []
        results: list[Restoration] = []
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, item in enumerate(items):
                if hasattr(item, "save_as"):  # a pydicom Dataset: materialise it for the reader
                    path = Path(tmp) / f"dataset_{i}.dcm"
                    item.save_as(path, enforce_file_format=True)
                    paths.append(path)
                else:
                    paths.append(Path(item))
            loaded: list[dict] = []
            held = 0
            from tqdm.auto import tqdm

            bar = tqdm(total=len(paths), disable=not progress, desc="restore", unit="img", dynamic_ncols=True)
            first_of: dict[str, int] = {}  # resolved path or content digest -> index of the first input with it
            for index, path in enumerate(paths):
                first = first_of.setdefault(os.path.realpath(path), index)
                if first != index:  # this file again (the same path, or via ../ or a symlink): restored once
                    self.duplicates.append((str(path), str(paths[first])))
                else:
                    try:
                        start = time.time()
                        data = self._load(path)
                        data["load_seconds"] = time.time() - start  # this input's own decode, measured alone
                        first = first_of.setdefault(data["digest"], index)
                        if first != index:  # the same bytes under another name (a copy, a hard link)
                            self.duplicates.append((str(path), str(paths[first])))
                        else:
                            loaded.append(data)
                            held += data["source_image"].numel()
                        del data
                    except (InputError, OSError) as e:
                        self._fail(path, e, "load", on_error)
                full = len(loaded) >= batch_size or (self.max_batch_pixels is not None
                                                     and held >= self.max_batch_pixels)
                if loaded and (full or index == len(paths) - 1):
                    results.extend(self._restore_batch(loaded, num_samples, seed, output_dir, force, on_error,
                                                       keep_images))
                    loaded, held = [], 0
                    bar.update(index + 1 - bar.n)
            bar.update(len(paths) - bar.n)
            bar.close()
        return results

    def _fail(self, path, error: Exception, stage: str, on_error: str) -> None:
        if on_error == "raise":
            raise error
        reason = error.reason if isinstance(error, InputError) else _error_text(error)
        # read while the file is there (a Dataset's temporary copy goes when restore() returns)
        self.failures.append(Failure(str(path), reason, stage, identifying_values(path)))

    def _restore_batch(self, batch: list[dict], num_samples, seed: int, output_dir, force: bool, on_error: str,
                       keep_images: bool = True) -> list[Restoration]:
        k = self.inferer.num_samples if num_samples is None else int(num_samples)
        y = torch.stack([d["image"].as_tensor() for d in batch]).float()
        bits = [int(d["image"].meta.get("bits_stored", 8)) for d in batch]
        # source pixels per model pixel: the padded square's side over the model's, squared (not the pixel count
        # ratio, which a non-square source's padding would understate)
        averaged = [(max(d["source_image"].shape[-2:]) / y.shape[-1]) ** 2 for d in batch]
        windows = [model_window(d["source_image"].shape[-2:], y.shape[-1]) for d in batch]  # each footprint
        start = time.time()
        plans = self.inferer.plan(y, bits, averaged, windows, [d["image"].meta for d in batch])
        estimate_seconds = (time.time() - start) / len(batch)
        # nothing to restore in a sharp image; nothing a Gaussian deconvolution would not make worse in a non-Gaussian
        todo = [i for i, plan in enumerate(plans) if plan.restores]
        mean, std = y.clone(), torch.zeros_like(y)
        # per input: its own decode and (below) output/write time, plus an even share of the batched estimate/DDRM
        seconds = [estimate_seconds + d.get("load_seconds", 0.0) for d in batch]
        if todo:
            start = time.time()
            gens = [_input_generator(seed, batch[i]["digest"]) for i in todo]
            m, s = self.inferer.sampler.restore(y[todo], self.network, [plans[i] for i in todo], num_samples=k,
                                                generator=gens)
            mean[todo], std[todo] = m, s
            for i in todo:
                seconds[i] += (time.time() - start) / len(todo)
        results = []
        for i, (d, plan) in enumerate(zip(batch, plans)):
            source = str(d["image"].meta["filename_or_obj"])
            restored_here = i in todo
            try:
                start = time.time()
                done = self._finish(d, plan, y[i], mean[i], std[i] if k > 1 and restored_here else None,
                                    k, seconds[i], output_dir, restored_here, force, keep_images)
                results.append(replace(done, seconds=done.seconds + time.time() - start))
            except (InputError, OSError, ValueError) as e:
                self._fail(source, e, "write", on_error)
        return results

    def _to_source_grid(self, d: dict, image_64: torch.Tensor) -> np.ndarray:
        from monai.data import MetaTensor

        image = d["image"]
        grid = {"image": image, "pred": MetaTensor(image_64, meta=image.meta,
                                                   applied_operations=image.applied_operations)}
        return self.upsample(grid)["pred"][0].float().numpy()

    def _finish(self, d: dict, plan: RestorationPlan, y: torch.Tensor, m: torch.Tensor, s: torch.Tensor | None, k: int,
                seconds: float, output_dir, restored_here: bool, force: bool = False, keep_images: bool = True
                ) -> Restoration:
        """The source-grid output of one input, written; ``keep_images=False`` returns only its 64×64 arrays and
        lets each source-grid array go as soon as it is used (peak memory: about three source-grid float32 arrays)."""
        source = str(d["image"].meta["filename_or_obj"])
        src = d.pop("source_image")[0].float().numpy()  # the batch no longer holds it: freed once used here
        estimate = plan.estimate.as_dict() if plan.estimate is not None else None
        noise = plan.sigma_y
        meta = {key: v for key, v in d["image"].meta.items() if key in ("format", "bits_stored", "modality",
                                                                         "photometric_interpretation")}
        meta["pixel_spacing"] = _spacing(d["image"].meta)
        if not restored_here:
            # No blur at the model scale: DDRM would only resample the noise of the 64×64 band, so the pixels stay
            # the source's; a blur the model does not restore (not Gaussian, or outside what the network was trained
            # for): restoring it would make it worse. Forced, a derived object is still written (unchanged pixels, and
            # it says so).
            status, finding = plan.status, plan.reason
            outputs = []
            if force and output_dir is not None:
                provenance = {**self.provenance_for(plan, k, d["digest"]), "unchanged": finding}
                outputs = self._write(source, meta, src, None, output_dir, provenance)
            reason = finding + ("; written unchanged (forced)" if outputs else "; nothing written (--force writes it)")
            grid = tuple(int(v) for v in src.shape)
            if not keep_images:
                src = None
            return Restoration(source=source, image=src, restored=src, std=None, model_input=y[0].numpy(),
                               model_output=y[0].numpy(), model_std=None, meta=meta, seconds=seconds, outputs=outputs,
                               blur_sigma=plan.blur_sigma, sigma_y=noise, estimate=estimate, status=status,
                               reason=reason, grid=grid)
        # in place on the one source-grid float32 array the upsampling made: a 10000² image costs 400 MB per copy
        restored = np.asarray(self._to_source_grid(d, m - y if self.output_mode == "detail" else m), np.float32)
        if self.output_mode == "detail":
            np.add(restored, src, out=restored)
        np.clip(restored, 0.0, 1.0, out=restored)
        grid = tuple(int(v) for v in src.shape)
        if not keep_images:
            src = None  # written below from `restored` alone
            if self.output_format != "nifti" and output_dir is not None:
                # the stored values the writer would make, made now, so that the float image goes first (a 10000²
                # image: 400 MB of float32 against 100–200 MB of stored values)
                restored = to_stored(restored, output_bits(meta.get("bits_stored", 8)))
        std_grid = None
        if s is not None:
            std_grid = np.asarray(self._to_source_grid(d, s), np.float32)
            np.clip(std_grid, 0.0, None, out=std_grid)
            if not keep_images and self.output_format != "nifti" and meta.get("format") == "dicom":
                std_grid = to_stored(std_grid, 16)  # what the uncertainty map stores (std × (2¹⁶ − 1))
        outputs = []
        if output_dir is not None:
            provenance = self.provenance_for(plan, k, d["digest"])
            outputs = self._write(source, meta, restored, std_grid, output_dir, provenance)
        if not keep_images:
            restored = std_grid = None
        return Restoration(source=source, image=src, restored=restored, std=std_grid, model_input=y[0].numpy(),
                           model_output=m[0].numpy(), model_std=None if s is None else s[0].numpy(), meta=meta,
                           seconds=seconds, outputs=outputs, blur_sigma=plan.blur_sigma, sigma_y=noise,
                           estimate=estimate, grid=grid)

    def provenance_for(self, plan: RestorationPlan, num_samples: int, digest: str = "") -> dict:
        """What a derived object records for one input: the settings actually used and how they were found."""
        inferer = {**self.provenance["inferer"], "num_samples": num_samples, "sigma_y": round(plan.sigma_y, 6),
                   "blur_sigma": round(plan.blur_sigma, 3),
                   # the δ DDRM applied: 0 for a given blur (exact by assumption)
                   "operator_uncertainty": plan.operator_uncertainty}
        operator_sigma = plan.operator_sigma
        operator = {**self.provenance["operator"],
                    "sigma": [round(v, 3) for v in operator_sigma] if isinstance(operator_sigma, tuple)
                    else round(operator_sigma, 3)}
        estimated = self.inferer.policy.estimated
        return {**self.provenance, "inferer": inferer, "operator": operator, "estimated": estimated,
                "output_mode": self.output_mode, "source_sha256": digest}

    def _write(self, source: str, meta: dict, restored: np.ndarray, std: np.ndarray | None, output_dir,  # noqa: PLR0913
               provenance: dict) -> list[str]:
        """Write one input's outputs, all or none (:func:`~xray_restore.atomic.all_or_nothing`)."""
        with all_or_nothing():
            return self._write_outputs(source, meta, restored, std, output_dir, provenance)

    def _write_outputs(self, source: str, meta: dict, restored: np.ndarray, std: np.ndarray | None,  # noqa: PLR0913
                       output_dir, provenance: dict) -> list[str]:
        out = Path(output_dir)
        if self.output_format == "nifti":
            from .nifti import write_nifti

            return [str(p) for p in write_nifti(source, restored, out, meta["pixel_spacing"], std=std,
                                                description=derivation_text(provenance))]
        if meta.get("format") == "dicom":
            from .dicom_writer import write_derived

            return [str(o.path) for o in write_derived(source, restored, out, provenance, uncertainty=std)]
        from .png_writer import write_png

        return [str(write_png(source, restored, out, int(meta.get("bits_stored", 8)), derivation_text(provenance),
                              str(self.provenance.get("software_version", ""))))]


def restore(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    bundle: str | os.PathLike = DDRM_BUNDLE,
    num_samples: int | None = None,
    seed: int | None = None,
    include_identifiers: bool = False,
    references: dict[str, np.ndarray] | None = None,
    keep_images: bool = True,
    progress: bool = False,
    on_error: Literal["warn", "skip", "raise"] = "warn",
    **overrides,
) -> Restorations:
    """Restore DICOM/PNG files, folders or pydicom Datasets; with ``output_dir``, also write derived DICOMs (PNG
    for PNG inputs) and the report (``metrics.csv``, ``summary.json``, ``report.html``).

    A bad input does not stop the others: it is recorded as failed in the report, left out of the results and, with
    ``on_error="warn"`` (the default), named with its problem in a :class:`UserWarning`; ``"skip"`` only records it
    (the result's ``failures``), ``"raise"`` raises its :class:`~xray_restore.errors.InputError`.
    An input given more than once (the same file by another path, or the same bytes) is restored once; each repeat
    is named in a warning and in the report (``duplicate``), and the result's ``duplicates`` lists ``(repeat, first)``.
    Temporaries a killed earlier run left in ``output_dir`` are removed first.

    ``overrides`` replace bundle ids: ``blur_sigma`` / ``sigma_y`` (numbers, or ``"auto"``: the default),
    ``force``, ``output_mode``, ``num_steps``, ``eta``, … ``references`` maps a source path to its sharp 64×64
    image in [0, 1] (adds PSNR/SSIM/LPIPS/KID to the report). ``keep_images=False``: the results keep only their
    64×64 arrays (the source-grid ones are on disk), so memory does not grow with the number of inputs.
    """
    from .datasets import find_images
    from .report import ReportWriter

    if on_error not in ("warn", "skip", "raise"):
        raise ValueError(f"on_error must be 'warn', 'skip' or 'raise', got {on_error!r}.")
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) or hasattr(inputs, "SOPInstanceUID") else list(inputs)
    expanded: list = []
    own: list = []  # xray_restore outputs: never restored again
    for item in items:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            for d in find_images(item):
                (own if is_own_output(d["image"]) else expanded).append(d["image"])
        elif isinstance(item, (str, os.PathLike)) and is_own_output(item):
            own.append(item)
        else:
            expanded.append(item)
    if own:
        warnings.warn(f"skipped {len(own)} xray_restore output(s), which are never restored again (e.g. {own[0]})",
                      UserWarning, stacklevel=2)
    start = time.time()
    restorer = Restorer.from_bundle(bundle, **overrides)  # a bad setting fails before any folder is made
    load_seconds = time.time() - start
    if output_dir is not None:
        check_writable(output_dir)
        remove_stale_temporaries(output_dir)  # what a killed earlier run (kill -9 mid-write) left there
        if (Path(output_dir) / "summary.json").is_file():
            warnings.warn(f"{output_dir}: replacing the report (metrics.csv, summary.json, report.html) of an "
                          "earlier run there; its image files stay", UserWarning, stacklevel=2)
    num_samples = restorer.num_samples if num_samples is None else int(num_samples)
    seed = restorer.seed if seed is None else int(seed)
    report = ReportWriter(Path(output_dir or "."), settings={**restorer.provenance, "num_samples": num_samples,
                                                             "seed": seed, "output_mode": restorer.output_mode,
                                                             "force": restorer.force},
                          include_identifiers=include_identifiers)
    report.load_seconds = round(load_seconds, 2)
    results = restorer.restore(expanded, num_samples=num_samples, seed=seed, output_dir=output_dir,
                               on_error="raise" if on_error == "raise" else "skip",
                               keep_images=keep_images or output_dir is None, progress=progress)
    if on_error == "warn":
        for failure in restorer.failures:
            warnings.warn(f"{failure.source}: {failure.stage} failed: {failure.reason}", UserWarning, stacklevel=2)
    for duplicate, first in restorer.duplicates:
        warnings.warn(f"{duplicate}: duplicate of {first}, not processed again", UserWarning, stacklevel=2)
    if output_dir is not None:
        for r in results:
            reference = (references or {}).get(str(r.source))
            report.add(r.source, r.model_input, r.model_output, r.model_std, reference=reference, seconds=r.seconds,
                       outputs=r.outputs, status="done" if r.status == "restored" else r.status, error=r.reason,
                       blur_sigma=r.blur_sigma, sigma_y=r.sigma_y, estimate=r.estimate)
        for failure in restorer.failures:
            report.add_failure(failure.source, failure.reason, stage=failure.stage, identifiers=failure.identifiers)
        for duplicate, first in restorer.duplicates:
            report.add_duplicate(duplicate, first)
        report.write()
        for name, reason in report.not_written.items() if on_error == "warn" else ():
            warnings.warn(f"{Path(output_dir) / name}: not written: {reason}", UserWarning, stacklevel=2)
    return Restorations(results, restorer.failures, restorer.duplicates, report.written_summary, report.not_written)
