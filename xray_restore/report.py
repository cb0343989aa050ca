"""Run report: ``metrics.csv`` (a row per image), ``summary.json`` and a self-contained ``report.html``.

Images are identified as ``image-<n>`` (plus a short hash of the path) unless ``include_identifiers=True``:
file names and DICOM text can carry patient names, and nothing identifying goes into the report by default.
Panels are embedded as base64 PNG and plots as inline SVG, so the HTML renders offline.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write_text

__all__ = ["ReportWriter"]


def _png_data_uri(image: np.ndarray, size: int = 192) -> str:
    from PIL import Image

    pil = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    scale = size / max(pil.size)
    pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _svg_bars(labels: list[str], series: dict[str, list[float]], title: str, unit: str) -> str:
    """A grouped bar chart as inline SVG (no plotting dependency)."""
    colours = ["#8a8a8a", "#1f77b4", "#2ca02c", "#d62728"]
    values = [v for vs in series.values() for v in vs if np.isfinite(v)]
    if not values:
        return ""
    top = max(values) * 1.1 or 1.0
    width, height, left, bottom = max(320, 60 + 44 * len(labels) * len(series)), 220, 40, 30
    group = (width - left - 10) / max(1, len(labels))
    bar = group * 0.8 / max(1, len(series))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}"><text x="{left}" y="14" font-size="12">{html.escape(title)} '
             f'({html.escape(unit)})</text>']
    for i, label in enumerate(labels):
        for j, (name, vs) in enumerate(series.items()):
            v = vs[i]
            if not np.isfinite(v):
                continue
            h = (height - bottom - 24) * v / top
            x = left + i * group + j * bar
            parts.append(f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colours[j % len(colours)]}"><title>{html.escape(name)}: {v:.3f}</title></rect>')
        parts.append(f'<text x="{left + i * group:.1f}" y="{height - 12}" font-size="10">{html.escape(label)}</text>')
    for j, name in enumerate(series):
        parts.append(f'<rect x="{width - 150}" y="{20 + 14 * j}" width="10" height="10" '
                     f'fill="{colours[j % len(colours)]}"/><text x="{width - 136}" y="{29 + 14 * j}" '
                     f'font-size="10">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


class ReportWriter:
    """Collects restorations (and references when known) and writes the three report files atomically."""

    def __init__(self, output_dir: str | os.PathLike, settings: dict | None = None,
                 include_identifiers: bool = False, compute_lpips: bool = True) -> None:
        self.output_dir = Path(output_dir)
        self.settings = settings or {}
        self.include_identifiers = include_identifiers
        self.compute_lpips = compute_lpips
        self.rows: list[dict] = []
        self.panels: list[dict] = []
        self.started = time.time()
        self.lpips_unavailable: str | None = None

    def image_id(self, source: str) -> str:
        n = len(self.rows) + 1
        if self.include_identifiers:
            return Path(source).name
        return f"image-{n}-{hashlib.sha256(str(source).encode()).hexdigest()[:8]}"

    def add(self, source: str, model_input: np.ndarray, restored: np.ndarray, std: np.ndarray | None = None,
            reference: np.ndarray | None = None, seconds: float = float("nan"), outputs: list[str] | None = None,
            status: str = "done", error: str = "", blur_sigma: float | None = None, sigma_y: float | None = None,
            estimate: dict | None = None) -> dict:
        """Add one image (64×64 arrays in [0, 1]); metrics are computed when ``reference`` is given.

        ``status``: ``done`` (restored) or ``no_blur`` (no blur at the model scale, nothing written);
        ``blur_sigma`` (model-scale px) and ``sigma_y`` ([0, 1] units) are the settings used for this image.
        """
        from .metrics import MissingWeightsError, image_metrics

        row: dict = {"image": self.image_id(source), "status": status,
                     "blur_sigma": "" if blur_sigma is None else round(float(blur_sigma), 3),
                     "sigma_y": "" if sigma_y is None else round(float(sigma_y), 6),
                     "blur_sigma_std": "" if not estimate or not np.isfinite(estimate["blur_sigma_std"])
                     else round(float(estimate["blur_sigma_std"]), 3),  # "" where the likelihood gave no curvature
                     "seconds": round(seconds, 3), "outputs": len(outputs or []), "error": error}
        if reference is not None:
            ref = torch.from_numpy(np.asarray(reference, dtype=np.float32))[None, None]
            for name, image in (("input", model_input), ("restored", restored)):
                est = torch.from_numpy(np.asarray(image, dtype=np.float32))[None, None]
                with_lpips = self.compute_lpips and self.lpips_unavailable is None
                try:
                    values = image_metrics(est, ref, with_lpips=with_lpips)
                except MissingWeightsError as e:  # reported in the summary, never silently replaced
                    self.lpips_unavailable = str(e)
                    values = image_metrics(est, ref, with_lpips=False)
                for metric, value in values.items():
                    row[f"{metric}_{name}"] = value[0]
        if std is not None:
            row["mean_std"] = float(np.mean(std))
        self.rows.append(row)
        self.panels.append({"id": row["image"], "input": model_input, "restored": restored, "std": std,
                            "reference": reference})
        return row

    def add_failure(self, source: str, reason: str, stage: str = "") -> None:
        """Record an input that could not be processed: the reason (never the file name unless identifiers are
        allowed) and the stage (load, restore, write)."""
        error = f"{Path(source).name}: {reason}" if self.include_identifiers else reason
        self.rows.append({"image": self.image_id(source), "status": "failed", "error": error, "stage": stage})

    def summary(self) -> dict:
        import xray_restore

        done = [r for r in self.rows if r.get("status") == "done"]
        estimated = [r for r in self.rows if r.get("blur_sigma", "") != ""]
        degradation = {key: {"mean": float(np.mean([r[key] for r in estimated])),
                             "min": float(np.min([r[key] for r in estimated])),
                             "max": float(np.max([r[key] for r in estimated])), "n": len(estimated)}
                       for key in ("blur_sigma", "sigma_y")} if estimated else {}
        means = {}
        for key in sorted({k for r in done for k in r if k.startswith(("psnr_", "ssim_", "lpips_", "mean_std"))}):
            values = [r[key] for r in done if key in r]
            means[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}
        return {
            "kid": self.kid(),
            "lpips": "squeeze" if self.lpips_unavailable is None else {"unavailable": self.lpips_unavailable},
            "n_images": len(self.rows),
            "n_done": len(done),
            "n_failed": sum(r.get("status") == "failed" for r in self.rows),
            "n_no_blur": sum(r.get("status") == "no_blur" for r in self.rows),
            "degradation": degradation,
            "images": [{k: r.get(k, "") for k in ("image", "status", "blur_sigma", "sigma_y", "blur_sigma_std",
                                                  "error")} for r in self.rows],
            "metrics": means,
            "settings": self.settings,
            "versions": {"xray_restore": xray_restore.__version__, "torch": torch.__version__,
                         "python": platform.python_version()},
            "timing": {"wall_seconds": round(time.time() - self.started, 2),
                       "model_load_seconds": getattr(self, "load_seconds", None),
                       "seconds_per_image": float(np.nanmean([r["seconds"] for r in done])) if done else None},
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def kid(self) -> dict | None:
        """KID between the references and the restorations (input as a baseline), when ≥ 2 references exist.

        The features used are named in the result; missing weights are reported as such, never replaced."""
        from .metrics import MissingWeightsError, kid

        pairs = [p for p in self.panels if p["reference"] is not None]
        if len(pairs) < 2:
            return None

        def stack(key: str) -> torch.Tensor:
            return torch.stack([torch.from_numpy(np.asarray(p[key], dtype=np.float32))[None] for p in pairs])

        try:
            restored = kid(stack("reference"), stack("restored"))
            baseline = kid(stack("reference"), stack("input"))
        except MissingWeightsError as e:
            return {"unavailable": str(e)}
        return {"restored": restored, "input": baseline}

    def _html(self, summary: dict) -> str:
        cells = []
        for p in self.panels:
            figs = [("input (64×64)", p["input"]), ("restored", p["restored"])]
            if p["std"] is not None:
                figs.append(("uncertainty (std ×4)", np.clip(p["std"] * 4, 0, 1)))
            if p["reference"] is not None:
                figs.append(("reference", p["reference"]))
            figures = "".join(f'<figure><img src="{_png_data_uri(img)}" alt="{html.escape(cap)}">'
                              f"<figcaption>{html.escape(cap)}</figcaption></figure>" for cap, img in figs)
            cells.append(f'<section class="panel"><h3>{html.escape(p["id"])}</h3>{figures}</section>')
        keys = [k for k in ("image", "status", "blur_sigma", "sigma_y", "psnr_input", "psnr_restored", "ssim_input", "ssim_restored",
                            "lpips_input", "lpips_restored", "mean_std", "seconds", "error")
                if any(k in r for r in self.rows)]
        table = "<tr>" + "".join(f"<th>{k}</th>" for k in keys) + "</tr>" + "".join(
            "<tr>" + "".join(f"<td>{r[k]:.4f}</td>" if isinstance(r.get(k), float) else
                             f"<td>{html.escape(str(r.get(k, '')))}</td>" for k in keys) + "</tr>" for r in self.rows)
        done = [r for r in self.rows if "psnr_restored" in r]
        plots = ""
        if done:
            labels = [str(i + 1) for i in range(len(done))]
            plots = _svg_bars(labels, {"input": [r["psnr_input"] for r in done],
                                       "restored": [r["psnr_restored"] for r in done]}, "PSNR per image", "dB")
            if "lpips_restored" in done[0]:
                plots += _svg_bars(labels, {"input": [r["lpips_input"] for r in done],
                                            "restored": [r["lpips_restored"] for r in done]}, "LPIPS per image",
                                   "squeeze, lower is better")
        settings = html.escape(json.dumps(summary["settings"], indent=2, default=str))
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>xray_restore report</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}} .panel{{display:inline-block;margin:0 1em 1em 0;
vertical-align:top}} figure{{display:inline-block;margin:0 .4em;text-align:center}} img{{image-rendering:pixelated;
border:1px solid #ccc}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 6px;
font-size:12px}} .note{{color:#a00}}</style></head><body>
<h1>xray_restore: DDRM restoration report</h1>
<p class="note">Computer-restored images, research use only, not for diagnosis. Images are identified by
anonymous ids.</p>
<p>{summary['n_done']} restored, {summary['n_no_blur']} with no blur at the model scale (reported, not written),
{summary['n_failed']} failed, {summary['timing']['wall_seconds']} s. blur_sigma: estimated (or given) Gaussian blur
std in 64×64 model-scale pixels; sigma_y: noise std in [0, 1] intensity units.</p>
<h2>Images</h2>{''.join(cells)}
<h2>Metrics</h2><table>{table}</table>
<h2>Plots</h2>{plots or '<p>No reference images: no metrics to plot.</p>'}
<h2>KID</h2><pre>{html.escape(json.dumps(summary.get("kid"), indent=2)) if summary.get("kid") else "n/a (needs 2+ references)"}</pre>
<h2>Settings</h2><pre>{settings}</pre>
</body></html>"""

    def write(self) -> dict[str, Path]:
        """Write ``metrics.csv``, ``summary.json`` and ``report.html`` (temp names, then rename)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        summary = self.summary()
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        files = {"metrics.csv": buffer.getvalue(), "summary.json": json.dumps(summary, indent=2, default=str),
                 "report.html": self._html(summary)}
        written = {}
        for name, text in files.items():
            written[name] = atomic_write_text(self.output_dir / name, text)
        return written
