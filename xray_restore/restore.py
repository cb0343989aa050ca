"""``Restorer``: the composition root for notebooks and the CLI (bundle → chain → DDRM → inverse → outputs).

    >>> restorer = Restorer.from_bundle("bundles/xray_ddrm")            # doctest: +SKIP
    >>> results = restorer.restore(["chest.dcm"], num_samples=4, output_dir="out/")  # doctest: +SKIP

Hyper-parameters come from the bundle's ``inference.json`` (the single source of truth); keyword arguments
of :meth:`Restorer.from_bundle` override its ids, as ``monai.bundle run`` does.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from .errors import InputError
from .readers import read_radiograph
from .transforms import apply_chain, load_chain

__all__ = ["Restoration", "Restorer", "restore"]


@dataclass(frozen=True)
class Restoration:
    """One restored radiograph. Arrays are ``(rows, cols)`` float32 in [0, 1] (bright = dense)."""

    source: str
    image: np.ndarray  # the input on its own grid (after the reader's LUT pipeline)
    restored: np.ndarray  # DDRM posterior mean, resampled to the source grid
    std: np.ndarray | None  # per-pixel posterior std on the source grid (num_samples > 1)
    model_input: np.ndarray  # the 64×64 measurement y the inferer saw
    model_output: np.ndarray  # the 64×64 posterior mean
    model_std: np.ndarray | None
    meta: dict
    seconds: float
    outputs: list[str] = field(default_factory=list)


class Restorer:
    """DDRM restoration of DICOM / PNG radiographs with a bundle's network, operator and inferer."""

    def __init__(self, network: torch.nn.Module, inferer, provenance: dict, chain: str = "dicom") -> None:
        self.network = network.eval()
        self.inferer = inferer
        self.provenance = provenance
        self.forward = load_chain(chain, id="unit_range")
        self.backward = load_chain("output", id="postprocessing", preprocessing=self.forward)

    @classmethod
    def from_bundle(cls, bundle_root: str | os.PathLike = "bundles/xray_ddrm", **overrides) -> Restorer:
        """Build from ``<bundle_root>/configs/inference.json``; ``overrides`` replace ids (e.g. ``sigma_y=0.02``)."""
        import json

        import xray_restore

        bundle_root = Path(bundle_root)
        config_file = bundle_root / "configs" / "inference.json"
        if not config_file.is_file():
            raise InputError(config_file, "bundle inference config not found")
        parser = ConfigParser()
        parser.read_config(str(config_file))
        parser["bundle_root"] = str(bundle_root)
        for key, value in overrides.items():
            parser[key] = value
        meta = json.loads((bundle_root / "configs" / "metadata.json").read_text())
        inferer = parser.get_parsed_content("inferer")
        provenance = {
            "method": "DDRM",
            "inferer": inferer.config,
            "operator": parser.get_parsed_content("operator").config,
            "model_version": f"{meta.get('name', bundle_root.name)} {meta.get('version', '')}".strip(),
            "software_version": xray_restore.__version__,
        }
        return cls(parser.get_parsed_content("network"), inferer, provenance)

    def _load(self, item: str | os.PathLike) -> dict:
        return apply_chain(self.forward, {"image": str(item)})

    def restore(
        self,
        inputs: Sequence[str | os.PathLike] | str | os.PathLike,
        num_samples: int | None = None,
        seed: int = 0,
        output_dir: str | os.PathLike | None = None,
        batch_size: int = 8,
        on_error: str = "raise",
    ) -> list[Restoration]:
        """Restore files (DICOM or PNG paths) or pydicom ``Dataset`` objects.

        With ``output_dir``, each DICOM source gets derived objects (restored, and uncertainty when
        ``num_samples > 1``) via :func:`~xray_restore.dicom_writer.write_derived`; PNG sources get a PNG.
        ``on_error="skip"`` logs a bad input and continues with the others; ``"raise"`` stops.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
        items = [inputs] if isinstance(inputs, (str, os.PathLike)) or hasattr(inputs, "SOPInstanceUID") else inputs
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, item in enumerate(items):
                if hasattr(item, "save_as"):  # a pydicom Dataset: materialise it for the reader
                    path = Path(tmp) / f"dataset_{i}.dcm"
                    item.save_as(path, enforce_file_format=True)
                    paths.append(path)
                else:
                    paths.append(Path(item))
            loaded, failures = [], []
            for path in paths:
                try:
                    loaded.append(self._load(path))
                except InputError as e:
                    if on_error == "raise":
                        raise
                    failures.append(str(e))
            self.failures = failures
            results = []
            generator = torch.Generator().manual_seed(seed)
            for start in range(0, len(loaded), batch_size):
                results.extend(self._restore_batch(loaded[start : start + batch_size], num_samples, generator,
                                                   output_dir))
        return results

    def _restore_batch(self, batch: list[dict], num_samples, generator, output_dir) -> list[Restoration]:
        from monai.data import MetaTensor

        y = torch.stack([d["image"].as_tensor() for d in batch])
        start = time.time()
        mean, std = self.inferer.sample(y, self.network, num_samples=num_samples, generator=generator)
        seconds = (time.time() - start) / len(batch)
        k = self.inferer.num_samples if num_samples is None else num_samples
        results = []
        for d, m, s in zip(batch, mean, std):
            image = d["image"]
            grid = {"image": image, "pred": MetaTensor(m, meta=image.meta, applied_operations=image.applied_operations)}
            back = self.backward(grid)
            bits = back["pred_bits_stored"]
            restored = back["pred"][0].float().numpy() / (2**bits - 1)
            std_grid = None
            if k > 1:
                grid_s = {"image": image, "pred": MetaTensor(s, meta=image.meta,
                                                             applied_operations=image.applied_operations)}
                back_s = self.backward(grid_s)
                std_grid = back_s["pred"][0].float().numpy() / (2 ** back_s["pred_bits_stored"] - 1)
            source = image.meta["filename_or_obj"]
            original, meta = read_radiograph(source)
            outputs = self._write(source, meta, restored, std_grid, output_dir) if output_dir else []
            results.append(Restoration(source, original, restored.astype(np.float32), std_grid,
                                       y[len(results), 0].numpy(), m[0].numpy(), s[0].numpy() if k > 1 else None,
                                       {k_: v for k_, v in meta.items() if k_ != "filename_or_obj"}, seconds,
                                       outputs))
        return results

    def _write(self, source: str, meta: dict, restored: np.ndarray, std: np.ndarray | None, output_dir) -> list[str]:
        out = Path(output_dir)
        if meta.get("format") == "dicom":
            from .dicom_writer import write_derived

            return [str(o.path) for o in write_derived(source, restored, out, self.provenance, uncertainty=std)]
        import hashlib

        from PIL import Image

        out.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(str(Path(source).resolve()).encode()).hexdigest()[:10]
        target = out / f"{Path(source).stem}_{digest}_restored.png"  # unique per source path
        tmp = target.with_name(f".{target.name}.tmp.png")
        Image.fromarray(np.round(np.clip(restored, 0, 1) * 255).astype(np.uint8)).save(tmp)
        os.replace(tmp, target)
        return [str(target)]


def restore(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    bundle: str | os.PathLike = "bundles/xray_ddrm",
    num_samples: int = 1,
    seed: int = 0,
    include_identifiers: bool = False,
    **overrides,
) -> list[Restoration]:
    """Restore DICOM/PNG files, folders or pydicom Datasets; with ``output_dir``, also write derived DICOMs (PNG
    for PNG inputs) and the report (``metrics.csv``, ``summary.json``, ``report.html``). A bad input is recorded
    as failed in the report and does not stop the others; inspect ``len(results)`` against the inputs."""
    from .datasets import find_images
    from .report import ReportWriter

    items = [inputs] if isinstance(inputs, (str, os.PathLike)) or hasattr(inputs, "SOPInstanceUID") else list(inputs)
    expanded: list = []
    for item in items:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            expanded.extend(d["image"] for d in find_images(item))
        else:
            expanded.append(item)
    restorer = Restorer.from_bundle(bundle, **overrides)
    report = ReportWriter(Path(output_dir or "."), settings={**restorer.provenance, "num_samples": num_samples,
                                                             "seed": seed}, include_identifiers=include_identifiers)
    results = restorer.restore(expanded, num_samples=num_samples, seed=seed, output_dir=output_dir, on_error="skip")
    if output_dir is not None:
        for r in results:
            report.add(r.source, r.model_input, r.model_output, r.model_std, seconds=r.seconds, outputs=r.outputs)
        for failure in restorer.failures:
            source, _, _ = failure.partition(": ")
            report.add_failure(source, failure)
        report.write()
    return results
