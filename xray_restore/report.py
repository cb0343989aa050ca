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
import re
import time
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write_text
from .checks import CHECKS
from .errors import os_reason

__all__ = ["ReportWriter", "summary_schema", "unavailable", "SUMMARY_SCHEMA_VERSION"]


def _png_data_uri(image: np.ndarray, size: int = 256) -> str:
    """A [0, 1] image as a PNG data URI, enlarged to ``size`` px with nearest-neighbour (each model pixel visible)."""
    from PIL import Image

    pil = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    scale = size / max(pil.size)
    pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _zoom(image: np.ndarray) -> np.ndarray:
    """The central half of an image (rows and columns), e.g. 32×32 of 64×64: shown enlarged as the zoomed crop."""
    h, w = image.shape
    return image[h // 4 : h - h // 4, w // 4 : w - w // 4]


def _nice_ticks(top: float, n: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if not top > 0:
        return [0.0, 1.0]
    raw = top / n
    magnitude = 10 ** np.floor(np.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    count = int(np.ceil(top / step - 1e-9))
    return [round(i * step, 10) for i in range(count + 1)]


#: Characters next to which a path component is a name in a path (not a word of prose): separators and quotes.
_PATH_EDGE = re.escape("/\\'\"")


def _scrub(text: str, source: str, identifiers: tuple[str, ...] | list[str], replacement: str) -> str:
    """``text`` (an error's own text) with ``replacement`` for the input's path (as given, absolute, resolved), the
    names in it (file name, stem, each parent folder: where they stand as names, next to a separator, a quote or an
    extension, so that a folder called ``data`` leaves "pixel data" alone) and its identifying header values."""
    given = str(source)
    paths = {given, os.path.abspath(given), os.path.realpath(given)}
    names = {part for p in paths for part in Path(p).parts if part.strip("/\\.")} | {Path(given).stem}
    pieces = [(p, re.escape(p)) for p in paths if p]
    pieces += [(v, rf"(?<![A-Za-z0-9]){re.escape(v)}(?![A-Za-z0-9])") for v in identifiers if v]
    pieces += [(n, rf"(?:(?<=[{_PATH_EDGE}])|^){re.escape(n)}(?![A-Za-z0-9])"
                   rf"|(?<![A-Za-z0-9]){re.escape(n)}(?=[{_PATH_EDGE}_.]|$)") for n in names if n]
    if not pieces:
        return text
    # one pass, longest first: what was put in is never matched again
    pattern = "|".join(f"(?:{regex})" for _, regex in sorted(pieces, key=lambda piece: -len(piece[0])))
    return re.sub(pattern, lambda _: replacement, text)


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.4g}" if abs(v) < 100 else f"{v:.0f}"


def _svg_bars(labels: list[str], series: dict[str, list[float]], title: str, unit: str, max_width: int = 1100) -> str:
    """A grouped bar chart as inline SVG: y axis with ticks and its unit, x axis with image numbers, values on the
    bars (when they fit), a legend. At most ``max_width`` px wide, whatever the number of images."""
    colours = ["#8a8a8a", "#1f77b4", "#2ca02c", "#d62728"]
    values = [v for vs in series.values() for v in vs if np.isfinite(v)]
    if not values:
        return ""
    ticks = _nice_ticks(max(values))
    top = ticks[-1] or 1.0
    left, right, header, bottom = 56, 12, 40, 44
    group = min(90.0, (max_width - left - right) / max(1, len(labels)))
    width = int(left + right + group * len(labels)) + 1
    width = max(width, 360)
    height = 260
    plot_h = height - header - bottom
    bar = group * 0.8 / max(1, len(series))
    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(title)}" class="chart"><text x="{left}" y="14" font-size="13" font-weight="bold">'
             f'{esc(title)}</text>']
    for t in ticks:  # y axis: gridline, tick label
        y = header + plot_h * (1 - t / top)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{_fmt(t)}</text>')
    parts.append(f'<text x="12" y="{header + plot_h / 2:.0f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {header + plot_h / 2:.0f})">{esc(unit)}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{header}" y2="{header + plot_h}" stroke="#555"/>'
                 f'<line x1="{left}" x2="{width - right}" y1="{header + plot_h}" y2="{header + plot_h}" '
                 'stroke="#555"/>')
    for i, label in enumerate(labels):
        for j, (name, vs) in enumerate(series.items()):
            v = vs[i]
            if not np.isfinite(v):
                continue
            h = plot_h * max(v, 0.0) / top
            x = left + i * group + group * 0.1 + j * bar
            parts.append(f'<rect x="{x:.1f}" y="{header + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colours[j % len(colours)]}">'
                         f'<title>{esc(name)} {esc(label)}: {_fmt(v)}</title></rect>')
            if bar >= 22:
                parts.append(f'<text x="{x + bar / 2:.1f}" y="{header + plot_h - h - 3:.1f}" font-size="9" '
                             f'text-anchor="middle">{_fmt(v)}</text>')
        if group >= 14 or i % max(1, int(14 / group)) == 0:
            parts.append(f'<text x="{left + (i + 0.5) * group:.1f}" y="{header + plot_h + 14}" font-size="10" '
                         f'text-anchor="middle">{esc(label)}</text>')
    parts.append(f'<text x="{left + (width - left - right) / 2:.0f}" y="{height - 6}" font-size="11" '
                 f'text-anchor="middle">image (number in the table)</text>')
    for j, name in enumerate(series):
        x = left + 8 + 110 * j
        parts.append(f'<rect x="{x}" y="22" width="10" height="10" fill="{colours[j % len(colours)]}"/>'
                     f'<text x="{x + 14}" y="31" font-size="11">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


#: The estimate's check statistics, each a column of metrics.csv, summary.json's images and the HTML table.
CHECK_KEYS = tuple(check.statistic for check in CHECKS)  # the registry's statistics, in its order

#: Columns of the HTML metrics table: (metrics.csv key, heading with its unit, number format).
COLUMNS = (
    ("image", "image", ""), ("status", "status", ""), ("blur_sigma", "blur σ (px at 64×64)", ".2f"),
    ("blur_sigma_std", "± (px)", ".2f"), ("blur_sigma_vertical", "σ down columns (px)", ".2f"),
    ("blur_sigma_horizontal", "σ along rows (px)", ".2f"), ("sigma_y", "noise σ_y ([0, 1] units)", ".4f"),
    ("blur_misfit", "misfit of a Gaussian blur", ".2f"), ("blur_anisotropy", "anisotropy of the blur", ".2f"),
    ("axis_misfit", "misfit of its two axes", ".2f"), ("axis_anisotropy", "anisotropy beyond its axes", ".2f"),
    ("axis_ratio", "axis ratio, restored as isotropic", ".2f"),
    ("non_gaussian_evidence", "evidence against a Gaussian (nats)", ".1f"),
    ("alternative_blur", "closest blur that is not Gaussian (fits better only where the evidence is > 0)", ""),
    ("psnr_input", "PSNR input (dB)", ".2f"), ("psnr_restored", "PSNR restored (dB)", ".2f"),
    ("ssim_input", "SSIM input", ".3f"), ("ssim_restored", "SSIM restored", ".3f"),
    ("lpips_input", "LPIPS input", ".3f"), ("lpips_restored", "LPIPS restored", ".3f"),
    ("mean_std", "mean posterior std", ".4f"), ("seconds", "time (s)", ".2f"), ("stage", "failed at", ""),
    ("error", "note", ""),
)

#: Version of the ``summary.json`` layout (see ``xray_restore/schemas/summary.schema.json``).
SUMMARY_SCHEMA_VERSION = 8


def unavailable(reason: str) -> dict:
    """The one shape of a metric that was not computed: ``{"available": false, "reason": ...}``."""
    return {"available": False, "reason": reason}


class ReportWriter:
    """Collects restorations (and references when known) and writes the three report files atomically.

    ``load_seconds`` (set by the caller) is the one-off model load time; each row's ``seconds`` excludes it.
    """

    def __init__(self, output_dir: str | os.PathLike, settings: dict | None = None,
                 include_identifiers: bool = False, compute_lpips: bool = True) -> None:
        self.output_dir = Path(output_dir)
        self.settings = settings or {}
        self.not_written: dict[str, str] = {}  # by write(): report files that could not be written, and why
        self.written_summary: dict | None = None  # by write(): the summary.json document
        self.include_identifiers = include_identifiers
        self.compute_lpips = compute_lpips
        self.rows: list[dict] = []
        self.panels: list[dict] = []
        self.started = time.time()
        self.load_seconds: float | None = None
        self.lpips_unavailable: str | None = None
        self.ids: dict[str, str] = {}  # source -> the id of its (first) row

    def image_id(self, source: str) -> str:
        n = len(self.rows) + 1
        if self.include_identifiers:
            ident = Path(source).name
        else:
            ident = f"image-{n}-{hashlib.sha256(str(source).encode()).hexdigest()[:8]}"
        self.ids.setdefault(str(source), ident)  # a duplicate names its first row by this
        return ident

    def add(self, source: str, model_input: np.ndarray, restored: np.ndarray, std: np.ndarray | None = None,
            reference: np.ndarray | None = None, seconds: float = float("nan"), outputs: list[str] | None = None,
            status: str = "done", error: str = "", blur_sigma: float | None = None, sigma_y: float | None = None,
            estimate: dict | None = None) -> dict:
        """Add one image (64×64 arrays in [0, 1]); metrics are computed when ``reference`` is given.

        ``status``: ``done`` (restored), ``not_chest`` (not a frontal chest radiograph), ``no_blur`` (no blur at the
        model scale) or ``blur_mismatch`` (a blur the model does not restore: not Gaussian, or milder than its network
        takes), the last three written only when forced;
        ``blur_sigma`` (model-scale px) and ``sigma_y`` ([0, 1] units) are the settings used for this image;
        ``seconds`` is this image's own time (model load excluded).
        """
        from .metrics import MissingWeightsError, image_metrics

        row: dict = {"image": self.image_id(source), "status": status,
                     "blur_sigma": "" if blur_sigma is None else round(float(blur_sigma), 3),
                     "sigma_y": "" if sigma_y is None else round(float(sigma_y), 6),
                     "blur_sigma_std": "" if not estimate or not np.isfinite(estimate["blur_sigma_std"])
                     else round(float(estimate["blur_sigma_std"]), 3),  # "" where the likelihood gave no curvature
                     **{key: "" if not estimate or estimate.get(key) is None else round(float(estimate[key]), 3)
                        for key in CHECK_KEYS},
                     "alternative_blur": (estimate or {}).get("alternative_blur") or "",
                     # an axis-aligned anisotropic blur's two stds ("" for an isotropic one: blur_sigma says it all)
                     **{f"blur_sigma_{name}": "" if not estimate or estimate.get("blur_sigma_axes") is None
                        else round(float(estimate["blur_sigma_axes"][axis]), 3)
                        for axis, name in enumerate(("vertical", "horizontal"))},
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
                            "reference": reference, "row": row})
        return row

    def add_failure(self, source: str, reason: str, stage: str = "", identifiers: tuple[str, ...] = ()) -> None:
        """Record an input that could not be processed: the reason and the stage (load, restore, write). Unless
        identifiers are allowed, the reason is scrubbed of the input's path, its file and folder names and its
        identifying header values (``identifiers``: :func:`~xray_restore.readers.identifying_values`), each
        replaced by the row's id."""
        image = self.image_id(source)
        error = f"{Path(source).name}: {reason}" if self.include_identifiers else _scrub(reason, source, identifiers,
                                                                                          image)
        self.rows.append({"image": image, "status": "failed", "error": error, "stage": stage})

    def add_duplicate(self, source: str, first: str) -> None:
        """Record an input given again (the same file as ``first``, an input added before, or the same bytes): it
        was processed once, under ``first``'s row; this row says so by that row's id."""
        earlier = self.ids.get(str(first)) or (Path(first).name if self.include_identifiers else "an earlier input")
        self.rows.append({"image": self.image_id(source), "status": "duplicate", "error": f"duplicate of {earlier}",
                          "stage": ""})

    # ------------------------------------------------------------------------------------------ summary
    def availability(self, kid: dict) -> dict:
        """Per metric: ``{"available": true, "reason": null}`` or :func:`unavailable` (one shape for all)."""
        with_reference = [p for p in self.panels if p["reference"] is not None]
        no_reference = "no reference (sharp) images were given: full-reference metrics need them"
        out = {}
        for metric in ("psnr", "ssim"):
            out[metric] = {"available": True, "reason": None} if with_reference else unavailable(no_reference)
        if not with_reference:
            out["lpips"] = unavailable(no_reference)
        elif not self.compute_lpips:
            out["lpips"] = unavailable("not requested")
        elif self.lpips_unavailable is not None:
            out["lpips"] = unavailable(self.lpips_unavailable)
        else:
            out["lpips"] = {"available": True, "reason": None}
        out["kid"] = {"available": True, "reason": None} if kid.get("available") else unavailable(kid["reason"])
        return out

    def summary(self) -> dict:
        """The ``summary.json`` document (layout version :data:`SUMMARY_SCHEMA_VERSION`, JSON Schema in
        ``xray_restore/schemas/summary.schema.json``)."""
        from .version import __version__

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
        timed = [r["seconds"] for r in self.rows
                 if r.get("status") in ("done", "not_chest", "no_blur", "blur_mismatch")
                 and np.isfinite(r.get("seconds", float("nan")))]
        kid = self.kid()
        return {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "n_images": sum(r.get("status") != "duplicate" for r in self.rows),  # distinct images
            "n_done": len(done),
            "n_failed": sum(r.get("status") == "failed" for r in self.rows),
            "n_not_chest": sum(r.get("status") == "not_chest" for r in self.rows),
            "n_no_blur": sum(r.get("status") == "no_blur" for r in self.rows),
            "n_blur_mismatch": sum(r.get("status") == "blur_mismatch" for r in self.rows),
            "n_duplicate": sum(r.get("status") == "duplicate" for r in self.rows),
            "degradation": degradation,
            "images": [{k: r.get(k, "") for k in ("image", "status", "blur_sigma", "sigma_y", "blur_sigma_std",
                                                  "blur_sigma_vertical", "blur_sigma_horizontal", *CHECK_KEYS,
                                                  "alternative_blur", "seconds", "stage", "error")}
                       for r in self.rows],
            "metrics": means,
            "availability": self.availability(kid),
            "kid": kid,
            "settings": self.settings,
            "versions": {"xray_restore": __version__, "torch": torch.__version__,
                         "python": platform.python_version(),
                         "model": str(self.settings.get("model_version", ""))},
            "timing": {"wall_seconds": round(time.time() - self.started, 2),
                       "model_load_seconds": None if self.load_seconds is None else round(self.load_seconds, 2),
                       "seconds_per_image": round(float(np.mean(timed)), 3) if timed else None,
                       "per_image": "each image's own decode, source-grid output and write, plus an even share of "
                                    "its batch's degradation estimate and DDRM; the model load is excluded"},
        }

    def kid(self) -> dict:
        """KID between the references and the restorations (input as a baseline): ``{"available": true,
        "restored", "input"}`` or :func:`unavailable` with the reason (fewer than 2 references, missing weights)."""
        from .metrics import MissingWeightsError, kid

        pairs = [p for p in self.panels if p["reference"] is not None]
        if len(pairs) < 2:
            return unavailable(f"needs at least 2 images with references, got {len(pairs)}")

        def stack(key: str) -> torch.Tensor:
            return torch.stack([torch.from_numpy(np.asarray(p[key], dtype=np.float32))[None] for p in pairs])

        try:
            restored = kid(stack("reference"), stack("restored"))
            baseline = kid(stack("reference"), stack("input"))
        except MissingWeightsError as e:
            return unavailable(str(e))
        return {"available": True, "reason": None, "restored": restored, "input": baseline}

    # --------------------------------------------------------------------------------------------- html
    def _panel(self, number: int, p: dict) -> str:
        esc = html.escape
        row = p["row"]
        # a handed-back input (no blur, a blur the model does not restore) is its own output: say so
        output = "restored" if row["status"] == "done" else f"output: the input, unchanged ({row['status']})"
        figs = [("input y (64×64)", p["input"]), (output, p["restored"])]
        if p["std"] is not None:
            figs.append(("uncertainty: posterior std ×4", np.clip(p["std"] * 4, 0, 1)))
        if p["reference"] is not None:
            figs.append(("reference (sharp)", p["reference"]))
        zoomed = [(f"{cap.split(' ')[0].rstrip(':')}: centre, zoom ×2", _zoom(img))
                  for cap, img in figs if "std" not in cap]

        def row_of(items: list) -> str:
            return '<div class="figs">' + "".join(
                f'<figure><img src="{_png_data_uri(img)}" width="256" height="256" alt="{esc(cap)}">'
                f"<figcaption>{esc(cap)}</figcaption></figure>" for cap, img in items) + "</div>"

        figures = row_of(figs) + row_of(zoomed)
        facts = [f"status: {row['status']}"]
        if row.get("blur_sigma", "") != "":
            spread = f" ± {row['blur_sigma_std']}" if row.get("blur_sigma_std", "") != "" else ""
            facts.append(f"blur σ {row['blur_sigma']}{spread} px at 64×64")
        if row.get("sigma_y", "") != "":
            facts.append(f"noise σ_y {row['sigma_y']}")
        if "psnr_restored" in row:
            facts.append(f"PSNR {row['psnr_input']:.2f} → {row['psnr_restored']:.2f} dB, "
                         f"SSIM {row['ssim_input']:.3f} → {row['ssim_restored']:.3f}")
        facts.append(f"{row['seconds']} s")
        note = f'<p class="small">{esc(row["error"])}</p>' if row.get("error") else ""
        return (f'<section class="panel"><h3>{number}. {esc(p["id"])}</h3><p>{esc("; ".join(facts))}</p>{note}'
                f'{figures}</section>')

    def _html(self, summary: dict) -> str:
        esc = html.escape
        cells = [self._panel(self.rows.index(p["row"]) + 1, p) for p in self.panels]
        keys = [(k, h, f) for k, h, f in COLUMNS if any(r.get(k, "") != "" for r in self.rows)]
        table = "<tr><th>#</th>" + "".join(f"<th>{esc(h)}</th>" for _, h, _ in keys) + "</tr>" + "".join(
            f"<tr><td>{n}</td>" + "".join(f"<td>{r[k]:{f}}</td>" if f and isinstance(r.get(k), (int, float)) else
                                         f"<td>{esc(str(r.get(k, '')))}</td>" for k, _, f in keys) + "</tr>"
            for n, r in enumerate(self.rows, 1))
        numbered = [(str(n), r) for n, r in enumerate(self.rows, 1) if r.get("status") not in ("failed", "duplicate")]
        labels = [n for n, _ in numbered]
        plots = []
        scored = [(n, r) for n, r in numbered if "psnr_restored" in r]
        if scored:
            names = [n for n, _ in scored]
            plots.append(_svg_bars(names, {"input": [r["psnr_input"] for _, r in scored],
                                           "restored": [r["psnr_restored"] for _, r in scored]},
                                   "PSNR per image (against the reference, 64×64)", "PSNR (dB)"))
            plots.append(_svg_bars(names, {"input": [r["ssim_input"] for _, r in scored],
                                           "restored": [r["ssim_restored"] for _, r in scored]},
                                   "SSIM per image (against the reference, 64×64)", "SSIM"))
        estimated = [r for _, r in numbered if r.get("blur_sigma", "") != ""]
        if estimated:
            plots.append(_svg_bars(labels, {"blur σ": [float(r["blur_sigma"]) for _, r in numbered]},
                                   "Blur per image (estimated unless given)", "blur σ (px at 64×64)"))
            plots.append(_svg_bars(labels, {"noise σ_y": [float(r["sigma_y"]) for _, r in numbered]},
                                   "Noise per image (estimated unless given)", "σ_y ([0, 1] units)"))
        missing = "".join(f"<li><b>{esc(m.upper())}</b>: {esc(a['reason'])}</li>"
                          for m, a in summary["availability"].items() if not a["available"])
        kid = summary["kid"]
        if kid.get("available"):
            kid_text = (f"<p>KID (restored vs references) {kid['restored']['mean']:.4g} ± "
                        f"{kid['restored']['std']:.2g}; "
                        f"input vs references {kid['input']['mean']:.4g} ± {kid['input']['std']:.2g}; features: "
                        f"{esc(str(kid['restored'].get('features', '')))}; lower is better.</p>")
        else:
            kid_text = ""
        settings = self.settings
        model = esc(str(settings.get("model_version", "unknown model")))
        inferer = settings.get("inferer", {}) if isinstance(settings.get("inferer"), dict) else {}
        brief = ", ".join(f"{k} {v}" for k, v in inferer.items() if k in ("num_steps", "eta", "eta_b", "spacing",
                                                                             "blur_sigma", "sigma_y"))
        timing = summary["timing"]
        load = ("" if timing["model_load_seconds"] is None
                else f"model loaded once in {timing['model_load_seconds']} s; ")
        per_image = "" if timing["seconds_per_image"] is None else f"{timing['seconds_per_image']} s per image"
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>xray_restore report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px;overflow-wrap:anywhere}}
.panel{{margin:0 0 1.5em 0;padding:.5em 0;border-top:1px solid #ddd}} .panel h3{{margin:.2em 0}}
.figs{{display:flex;flex-wrap:wrap;gap:.6em;margin-bottom:.6em}} figure{{margin:0;text-align:center;max-width:256px}}
img{{image-rendering:pixelated;border:1px solid #bbb;max-width:100%;height:auto}}
figcaption{{font-size:12px;color:#444}} table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:2px 5px;font-size:12px;text-align:left;vertical-align:top}}
pre{{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:.5em;font-size:12px}}
.note{{color:#a00}} .small{{font-size:12px;color:#555}} svg.chart{{max-width:100%;height:auto;display:block;
margin:.5em 0 1em 0}}
</style></head><body>
<h1>xray_restore: DDRM restoration report</h1>
<p class="note">Computer-restored images, research use only, not for diagnosis.{"" if self.include_identifiers
           else " Images are identified by anonymous ids."}</p>
<p><b>{summary['n_done']}</b> restored, <b>{summary['n_not_chest']}</b> not a frontal chest radiograph (handed back),
<b>{summary['n_no_blur']}</b> with no blur at the model scale and
<b>{summary['n_blur_mismatch']}</b> with a blur the model does not restore (not Gaussian, or milder than its network
takes; both reported, not written unless forced),
<b>{summary['n_failed']}</b> failed{f", <b>{summary['n_duplicate']}</b> given again (duplicates: not processed again)"
                                        if summary['n_duplicate'] else ""}. Model: {model}; xray_restore
{esc(summary['versions']['xray_restore'])}{'; ' + esc(brief) if brief else ''}. {esc(load)}{esc(per_image)}
(its own decode and write, plus an even share of its batch's estimate and DDRM).</p>
<p class="small">Images are restored at the 64×64 model scale; panels show that grid (each model pixel as a
square), the zoomed crops its central 32×32. blur σ: Gaussian blur std in model-scale pixels (0 = none);
σ_y: noise std in [0, 1] intensity units; both estimated from each image unless given. Misfit: how far the
best Gaussian blur falls short of the image's spectrum (above the bundle's limit, no Gaussian blur explains it).
The uncertainty panel is the per-pixel std over the posterior samples, ×4 for visibility.</p>
<h2>Images</h2>{''.join(cells) or '<p>No image was restored.</p>'}
<h2>Metrics</h2><table>{table}</table>
{('<h2>Metrics not computed</h2><ul>' + missing + '</ul>') if missing else ''}
{kid_text}
<h2>Plots</h2>{''.join(plots) or '<p>Nothing to plot.</p>'}
<h2>Settings</h2><pre>{esc(json.dumps(settings, indent=2, default=str))}</pre>
</body></html>"""

    def write(self) -> dict[str, Path]:
        """Write ``report.html``, ``metrics.csv`` and, last, ``summary.json`` (each to a temporary name, then renamed).

        A file that cannot be written (disk full, no permission, a folder in its place) leaves nothing under its name:
        its reason goes to :attr:`not_written` and into ``summary.json`` (``not_written``), and the others are still
        written. Returns the files written.
        """
        self.not_written, self.written_summary = {}, None
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self.not_written = {name: os_reason(e) for name in ("report.html", "metrics.csv", "summary.json")}
            self.written_summary = {**self.summary(), "not_written": self.not_written}
            return {}
        summary = self.summary()
        self.written_summary = {**summary, "not_written": self.not_written}  # what summary.json holds
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        written = {}
        for name, text in (("report.html", lambda: self._html(summary)), ("metrics.csv", buffer.getvalue),
                           ("summary.json", lambda: json.dumps(self.written_summary, indent=2, default=str))):
            try:
                written[name] = atomic_write_text(self.output_dir / name, text())
            except OSError as e:
                self.not_written[name] = os_reason(e)
        return written


def summary_schema() -> dict:
    """The JSON Schema of ``summary.json`` (shipped as ``xray_restore/schemas/summary.schema.json``)."""
    from importlib import resources

    return json.loads(resources.files("xray_restore.schemas").joinpath("summary.schema.json").read_text())
