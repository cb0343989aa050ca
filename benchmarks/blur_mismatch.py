"""Blurs that are not Gaussian: what restoring them as Gaussian does, and what the misfit and anisotropy checks save.

    python benchmarks/blur_mismatch.py                  # about 26 min on 2 cores
    python benchmarks/blur_mismatch.py --ddrm-limit 8 --full-limit 2 --out /tmp/quick.json

The product restores a Gaussian blur. Real blurs need not be one: a defocus or a uniform focal spot is a disk, a
patient who moves leaves a streak. Their transfer functions have zeros and sign-flipped side lobes, which a
Gaussian deconvolution amplifies into ringing: the output is worse than its input. The estimator's
``blur_misfit`` (:func:`xray_restore.checks.blur_misfit`) measures how far the best Gaussian model falls short of
an input's spectrum, ring by ring, and ``blur_anisotropy`` (:func:`xray_restore.checks.blur_anisotropy`) how
unevenly it does so by direction (a motion streak takes power from one direction only); above the bundle's
``max_blur_misfit`` or ``max_blur_anisotropy`` the input is handed back (``blur_mismatch``).

1. **Calibration**, Gaussian blurs only, on development images: (a) val, all images at 64×64, σ ∈ {0.75, 1, 1.5, 2,
   2.5, 3} px, noise σ_y ∈ {0.002, 0.005, 0.01, 0.02}, 8-bit; (b) the 3 developer-side originals of
   ``../shared/data/cxr14_png/`` (patients of the training split) as the product sees a file: 896×896 cuts (4
   offsets, and their mirror images) blurred at 14·σ px, noise {0.001, 0.002, 0.005}, 8-bit, area-resized to 64×64
   (their spectra are richer than the 64×64 training images', so a Gaussian fits them less well). The misfit of
   every input the product would restore (σ̂ ≥ ``no_blur_sigma``, spectral fit kept), for each check: percentiles, and
   the share the bundle's limit hands back (false alarms: a restorable blur given back). Each limit is chosen from
   this alone: the larger of the two sets' 99.9th percentiles, rounded up to 0.5 (misfit) or 0.1 (anisotropy).
2. **Evaluation on val** (the first ``--ddrm-limit`` images): disk and motion blurs (random direction) of std σ ∈
   {1, 1.5, 2, 3} px (:func:`xray_restore.measurement.non_gaussian_kernel`), motion along a row or a column
   (``motion_axis``, σ ∈ {1.5, 2, 3}: an axis-aligned streak, which an axis-aligned Gaussian fits best), Gaussian
   σ ∈ {1, 2} as the control,
   anisotropic Gaussians (σ, 1.5σ) and (σ, 2σ) with σ ∈ {1, 2} and {1, 1.5},
   σ_y ∈ {0.002, 0.01}, 8-bit. DDRM (1 sample, the bundle's settings, estimated σ̂ and σ̂_y) restores every input
   σ̂ puts above the no-blur gate; PSNR gain over the input of that restoration, and of the default output (the
   input itself where the check hands it back).
   The anisotropy limit must also let most mildly anisotropic Gaussians through (a CR plate reads its scan and
   sub-scan directions with different sharpness, and restored as an isotropic blur they gain): val blurred with
   std σ and 1.5σ along the two axes (σ ∈ {1, 1.5, 2}, the same noises); its limit is the larger of the above and
   their 90th percentile in the condition where it is largest, rounded up to 0.1.
   The axis checks (``max_axis_misfit``, ``max_axis_anisotropy``: the same statistics on the axis-aligned model of an
   input read as an axis-aligned blur, the misfit over rings and sectors) are chosen on axis-aligned Gaussians of val,
   (σ, 1.5σ) as above and (σ, 2σ) with σ ∈ {0.75, 1, 1.5}: each limit is their 95th percentile in the condition
   where it is largest (of those with 10 or more inputs read axis-aligned), rounded up to 0.1.
   The axis ratio (``max_axis_ratio``: how far apart the axis-aligned fit of an input restored as isotropic reads its
   two axes; above ``max_axis_noise`` no axes are restored, and a streak along a row or a column reads 3–8 apart) is
   chosen on the same sets: the larger of the isotropic Gaussians' 99.9th percentile (val, developer-side cuts) and
   the 90th percentile of each axis-aligned set in the condition where it is largest (restored as isotropic they
   gain, so at most 10 % of them may be handed back), rounded up to 0.1.
   The evidence for a blur that is not Gaussian (``max_non_gaussian_evidence``: the log-likelihood of the best disk
   or streak of :func:`xray_restore.spectrum.alternative_kernels` over the best Gaussian, isotropic or
   axis-aligned) is chosen on every restorable Gaussian of val, the developer-side cuts and the axis-aligned sets:
   the largest of their 99.5th percentiles (:data:`EVIDENCE_SHARE`), rounded up to 5.
3. **Source resolution** (the first ``--full-limit`` NIH originals of ``../shared/data/cxr14_full/``, evaluation
   only, cut to 896×896 so that 14 px are one model pixel): Gaussian, disk, motion, anisotropic Gaussian (σ and
   2σ) and scatter (70 % Gaussian σ + 30 % Gaussian 6 px: a veiling glare) blurs at 14·σ_64 px, noise 0.002,
   8-bit PNG, restored by ``Restorer`` with its defaults and with the check off; PSNR at 1/16 and on the source grid.

``--bundle bundles/xray_conditional`` runs the same three parts on the conditional bundle (with ``--samples 4``: it
averages samples): restorable there also means not milder than its ``min_blur_sigma``, and only the checks it has a
limit for, and its estimator reads, are calibrated (its shipped spectrum has no alternatives; ``--set
degradation_spectrum=… max_non_gaussian_evidence=…`` tries them).

Writes ``benchmarks/results/blur_mismatch.json`` and prints the tables. Tuned on val only; test is never read.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from real_geometry import area  # the sibling benchmark's block means and PSNR (this folder is on sys.path)
from real_geometry import psnr as psnr_np
from paths import DEFAULT_DATA, FULL_DATA, PNG_DATA
from xray_restore.cli import set_ids
from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.measurement import (REAL_BORDERS, convolve_mirrored, degrade, non_gaussian_kernel,
                                      quantise)
from xray_restore.metrics import psnr
from xray_restore.operators import GaussianBlur
from xray_restore.provenance import run_info, write_json
from xray_restore.restore import Restorer

CALIBRATION_SIGMAS = (0.75, 1.0, 1.5, 2.0, 2.5, 3.0)
CALIBRATION_NOISES = (0.002, 0.005, 0.01, 0.02)
DEVELOPER_NOISES = (0.001, 0.002, 0.005)  # at the source grid
EVALUATION = {"gaussian": (1.0, 2.0), "disk": (1.0, 1.5, 2.0, 3.0), "motion": (1.0, 1.5, 2.0, 3.0),
              "motion_axis": (1.5, 2.0, 3.0), "anisotropic": (1.0, 2.0), "anisotropic_2": (1.0, 1.5)}
#: Axis ratio of the mildly anisotropic Gaussians the anisotropy limit must let through (a CR plate's scan and
#: sub-scan directions differ in sharpness), their short-axis σ (px) and the share of them it may hand back.
ANISOTROPIC_RATIO, ANISOTROPIC_SIGMAS, ANISOTROPIC_SHARE = 1.5, (1.0, 1.5, 2.0), 0.1
#: The strongly anisotropic Gaussians (σ, 2σ) the axis checks must let through, and the share of them they may hand
#: back (in the worst condition); a condition counts from this many inputs read axis-aligned.
ANISOTROPIC_2_SIGMAS, AXIS_SHARE, AXIS_MIN_READ = (0.75, 1.0, 1.5), 0.05, 10
NOISES = (0.002, 0.01)
FULL_BLURS = {"gaussian": (1.0, 2.0), "disk": (1.0, 2.0), "motion": (1.0, 2.0), "anisotropic": (1.0, 2.0),
              "scatter": (1.0, 2.0)}
FACTOR, CUT = 14, 896  # source px per model px, the square cut (PSNR also at 1/16: real_geometry.area)


def blur_val(x: torch.Tensor, kind: str, sigma: float, sigma_y: float, g: torch.Generator, padding: str
             ) -> torch.Tensor:
    """``Q₈(k * x + σ_y n)`` of val images ``(B, 1, 64, 64)``: a Gaussian (``padding`` its borders); an axis-aligned
    anisotropic Gaussian of std σ and ``ANISOTROPIC_RATIO``·σ (``"anisotropic"``; ``"anisotropic_2"``: 2σ), the
    longer axis along rows or columns per image; or a disk / motion kernel (one random direction per image;
    ``"motion_axis"``: along a row or a column); mirrored borders."""
    if kind == "gaussian":
        return degrade(x, "realistic", g, sigma_y=sigma_y, operator=GaussianBlur(64, sigma, padding=padding))
    if kind.startswith("anisotropic"):
        ratio = 2.0 if kind == "anisotropic_2" else ANISOTROPIC_RATIO
        axes = [(sigma, ratio * sigma) if bool(torch.rand(1, generator=g) < 0.5) else (ratio * sigma, sigma)
                for _ in range(len(x))]
        blurred = torch.from_numpy(np.stack([gaussian_filter(im[0].double().numpy(), a, mode="mirror", truncate=4.0)
                                             for im, a in zip(x, axes)])[:, None])
    elif kind == "motion_axis":
        blurred = torch.cat([convolve_mirrored(x[i : i + 1], non_gaussian_kernel(
            "motion", sigma, 0.0 if bool(torch.rand(1, generator=g) < 0.5) else math.pi / 2)) for i in range(len(x))])
    else:
        blurred = torch.cat([convolve_mirrored(x[i : i + 1], non_gaussian_kernel(
            kind, sigma, float(torch.rand(1, generator=g)) * math.pi)) for i in range(len(x))])
    noisy = blurred + sigma_y * torch.randn(blurred.shape, generator=g, dtype=torch.float64)
    return quantise(noisy, 8).to(x.dtype)


def blur_full(x: np.ndarray, kind: str, sigma_64: float, rng: np.random.Generator) -> np.ndarray:
    """A source-resolution blur of ``x`` (float32, [0, 1]) whose std is ``FACTOR · sigma_64`` px, mirrored borders."""
    s = FACTOR * sigma_64
    if kind == "gaussian":
        return gaussian_filter(x, s, mode="reflect")
    if kind == "anisotropic":
        return gaussian_filter(x, (2 * s, s), mode="reflect")
    if kind == "scatter":
        return 0.7 * gaussian_filter(x, s, mode="reflect") + 0.3 * gaussian_filter(x, FACTOR * 6.0, mode="reflect")
    kernel = non_gaussian_kernel(kind, s, float(rng.uniform(0, math.pi)), supersample=1).numpy()
    r = kernel.shape[0] // 2
    return fftconvolve(np.pad(x, r, mode="reflect"), kernel, mode="valid").astype(np.float32)


def developer_cuts(folder: str, sigma: float, sigma_y: float, rng: np.random.Generator) -> torch.Tensor:
    """The developer-side originals as the product reads a file: 896×896 cuts (4 offsets, each also mirrored),
    Gaussian blur 14·σ px, noise, 8-bit, area-resized to ``(B, 1, 64, 64)``."""
    out = []
    for path in sorted(Path(folder).glob("*.png")):
        x = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
        for top, left in ((0, 0), (128, 128), (64, 0), (0, 64)):
            for mirrored in (False, True):
                cut = x[top : top + CUT, left : left + CUT]
                cut = np.ascontiguousarray(cut[:, ::-1] if mirrored else cut)
                y = blur_full(cut, "gaussian", sigma, rng) + sigma_y * rng.standard_normal(cut.shape)
                out.append(area(np.round(np.clip(y, 0, 1) * 255) / 255, FACTOR))
    return torch.tensor(np.stack(out), dtype=torch.float32)[:, None]


#: The share of restorable Gaussians the evidence for a blur that is not Gaussian may hand back (in each set).
EVIDENCE_SHARE = 0.005
#: The axis-aligned anisotropic sets: what the axis checks are calibrated on.
AXIS_SETS = ("val_anisotropic", "val_anisotropic_2")
#: The checks calibrated here: the estimate's statistic → (the bundle's limit id, the step its limit is rounded up
#: to, the calibration sets it reads: Gaussian blurs that the product must restore).
CHECKS = {"blur_misfit": ("max_blur_misfit", 0.5, ("val", "developer_cuts", "val_anisotropic")),
          "blur_anisotropy": ("max_blur_anisotropy", 0.1, ("val", "developer_cuts", "val_anisotropic")),
          "axis_misfit": ("max_axis_misfit", 0.1, ("val", "developer_cuts", *AXIS_SETS)),
          "axis_anisotropy": ("max_axis_anisotropy", 0.1, ("val", "developer_cuts", *AXIS_SETS)),
          "axis_ratio": ("max_axis_ratio", 0.1, ("val", "developer_cuts", *AXIS_SETS)),
          "non_gaussian_evidence": ("max_non_gaussian_evidence", 5.0, ("val", "developer_cuts", *AXIS_SETS))}


def _restores(inferer, plan) -> bool:
    """Whether the product restores this input (its :class:`~xray_restore.plan.RestorationPlan`) if no shape check
    hands it back: above the no-blur gate, and (the conditional bundle) not milder than the blur its network takes
    (the policy's ``min_blur_sigma``, which the plan reports as a ``blur_mismatch`` too)."""
    floor = inferer.policy.min_blur_sigma
    return plan.status != "no_blur" and (floor is None or plan.estimate.blur_sigma >= floor)


def _checks(inferer) -> dict:
    """The :data:`CHECKS` this bundle's estimator reads (the evidence needs a spectrum with alternatives; the axis
    ratio an axis fit; the axis model's misfit and anisotropy an estimator that restores axis-aligned blurs, which
    the conditional bundle's does not)."""
    estimator = inferer.policy.estimator
    alternatives = estimator.alternative_signal is not None
    axes = estimator.min_axis_ratio is not None
    return {k: v for k, v in CHECKS.items()
            if (k != "non_gaussian_evidence" or alternatives) and (k != "axis_ratio" or alternatives or axes)
            and (k not in ("axis_misfit", "axis_anisotropy") or axes)}


def _restorable(inferer, plans: list, statistic: str) -> np.ndarray:
    return np.array([getattr(p.estimate, statistic) for p in plans
                     if _restores(inferer, p) and getattr(p.estimate, statistic) is not None])


def calibration(x: torch.Tensor, developer: str, inferer, seed: int) -> dict:
    """Each check's statistic (:data:`CHECKS`) on Gaussian-blurred development inputs the product would restore,
    and the share the bundle's limit hands back; the limit this suggests (the larger 99.9th percentile of the two
    sets, rounded up to the check's step)."""
    g, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    rows = []
    for sigma_y in CALIBRATION_NOISES:
        for sigma in CALIBRATION_SIGMAS:
            plans = inferer.plan(blur_val(x, "gaussian", sigma, sigma_y, g, REAL_BORDERS), 8)
            rows.append({"set": "val", "sigma": sigma, "sigma_y": sigma_y, "plans": plans})
    for sigma_y in CALIBRATION_NOISES:
        for sigma in ANISOTROPIC_SIGMAS:
            y = blur_val(x, "anisotropic", sigma, sigma_y, g, REAL_BORDERS)
            rows.append({"set": "val_anisotropic", "sigma": sigma, "sigma_y": sigma_y,
                         "plans": inferer.plan(y, 8)})
        for sigma in ANISOTROPIC_2_SIGMAS:
            y = blur_val(x, "anisotropic_2", sigma, sigma_y, g, REAL_BORDERS)
            rows.append({"set": "val_anisotropic_2", "sigma": sigma, "sigma_y": sigma_y,
                         "plans": inferer.plan(y, 8)})
    for sigma_y in DEVELOPER_NOISES:
        for sigma in CALIBRATION_SIGMAS:
            cuts = developer_cuts(developer, sigma, sigma_y, rng)
            rows.append({"set": "developer_cuts", "sigma": sigma, "sigma_y": sigma_y,
                         "plans": inferer.plan(cuts, 8, float(FACTOR**2))})
    out: dict = {}
    for statistic, (limit_id, step, sets) in _checks(inferer).items():
        limit = getattr(inferer.policy.limits, limit_id)
        values: dict = {name: [] for name in sets}
        for row in rows:
            if row["set"] not in values:
                continue
            v = _restorable(inferer, row["plans"], statistic)
            values[row["set"]].append(v)
            row.update({f"n_{statistic}": len(v),
                        f"{statistic}_median": float(np.median(v)) if len(v) else None,
                        f"{statistic}_max": float(v.max()) if len(v) else None,
                        f"handed_back_{statistic}": int(np.sum(v > limit)) if limit is not None else 0})
        out[statistic] = {"bundle_limit": limit}
        for name, parts in values.items():
            every = np.concatenate(parts)
            out[statistic][name] = {"n": len(every), "false_alarm_rate":
                                    float(np.mean(every > limit)) if limit is not None and len(every) else 0.0}
            if len(every):
                out[statistic][name].update({"percentiles": {p: float(np.percentile(every, p))
                                                             for p in (50, 90, 99, 99.5, 99.9)},
                                             "max": float(every.max())})
        if statistic == "axis_ratio":  # where axes are not restored (noisy inputs): the isotropic Gaussians' 99.9th
            # percentile, and all but ANISOTROPIC_SHARE of the axis-aligned Gaussians (restored as isotropic, they
            # gain) in every condition where enough of them are read so
            kept = max(float(np.percentile(v, 100 * (1 - ANISOTROPIC_SHARE))) for name in AXIS_SETS
                       for v in values[name] if len(v) >= AXIS_MIN_READ)
            out[statistic]["percentile_kept_worst_condition"] = kept
            worst = max(kept, *(out[statistic][k]["percentiles"][99.9] for k in ("val", "developer_cuts")))
        elif statistic.startswith("axis_"):  # let all but AXIS_SHARE of the axis-aligned Gaussians through, in every
            # condition where enough of them are read as axis-aligned
            worst = max(float(np.percentile(v, 100 * (1 - AXIS_SHARE))) for name in AXIS_SETS
                        for v in values[name] if len(v) >= AXIS_MIN_READ)
            out[statistic]["percentile_kept_worst_condition"] = worst
        elif statistic == "non_gaussian_evidence":  # all but EVIDENCE_SHARE of the Gaussians the product restores,
            # axis-aligned ones too, in every set (a Gaussian handed back loses its gain; a disk or streak restored
            # as a Gaussian comes back worse than its input)
            worst = max(out[statistic][k]["percentiles"][round(100 * (1 - EVIDENCE_SHARE), 3)] for k in sets
                        if out[statistic][k]["n"])
        else:
            worst = max(out[statistic][k]["percentiles"][99.9] for k in ("val", "developer_cuts"))
        if statistic == "blur_anisotropy":  # and let all but ANISOTROPIC_SHARE of the mildly anisotropic through,
            # in every (σ, σ_y) condition
            kept = max(float(np.percentile(v, 100 * (1 - ANISOTROPIC_SHARE))) for v in values["val_anisotropic"])
            out[statistic]["val_anisotropic"]["percentile_kept_worst_condition"] = kept
            worst = max(worst, kept)
        out[statistic]["suggested_limit"] = round(math.ceil(worst / step) * step, 6)
    for row in rows:  # how often an isotropic blur is read as an axis-aligned one (restored with those axes)
        restorable = [p for p in row["plans"] if _restores(inferer, p)]
        row["n_restorable"] = len(restorable)
        row["read_axis_aligned"] = sum(p.estimate.blur_sigma_axes is not None for p in restorable)
        row["handed_back"] = sum(p.status == "blur_mismatch" for p in restorable)
    out["axis_aligned"] = {name: {"read": sum(r["read_axis_aligned"] for r in rows if r["set"] == name),
                                  "handed_back": sum(r["handed_back"] for r in rows if r["set"] == name),
                                  "n": sum(r["n_restorable"] for r in rows if r["set"] == name)}
                           for name in ("val", "developer_cuts", *AXIS_SETS)}
    out["rows"] = [{k: v for k, v in row.items() if k != "plans"} for row in rows]
    return out


def _gains(inferer, network, x: torch.Tensor, y: torch.Tensor, plans: list, seed: int, restores,
           samples: int = 1) -> np.ndarray:
    """PSNR gain (dB) of the mean of ``samples`` samples over its input for each input ``restores(plan)`` keeps
    (0 elsewhere), restored as its plan says even where the plan hands it back (a check's verdict: its blur)."""
    todo = [i for i, p in enumerate(plans) if restores(p)]
    gain = np.zeros(len(y))
    if todo:
        gens = [torch.Generator().manual_seed(seed + i) for i in todo]
        forced = [dataclasses.replace(plans[i], status="restore", reason=None) for i in todo]
        mean, _ = inferer.sampler.restore(y[todo], network, forced, num_samples=samples, generator=gens)
        gain[todo] = (psnr(mean, x[todo]) - psnr(y[todo], x[todo])).numpy()
    return gain


def evaluation(x: torch.Tensor, restorer: Restorer, seed: int, isotropic=None, samples: int = 1) -> list[dict]:
    """The bundle (DDRM, or the conditional network) on non-Gaussian (and, as the control, Gaussian) blurs of val
    images, with and without the checks; the axis-aligned anisotropic blurs also as an ``isotropic`` inferer (no
    axis-aligned estimates) restores them."""
    inferer = restorer.inferer
    g = torch.Generator().manual_seed(seed + 1)
    rows = []
    for sigma_y in NOISES:
        for kind, sigmas in EVALUATION.items():
            for sigma in sigmas:
                y = blur_val(x, kind, sigma, sigma_y, g, REAL_BORDERS)
                plans = inferer.plan(y, 8)
                gain_unchecked = _gains(inferer, restorer.network, x, y, plans, seed,
                                        lambda p: _restores(inferer, p), samples)
                restored = np.array([_restores(inferer, p) for p in plans])
                flagged = np.array([p.status == "blur_mismatch" for p in plans]) & restored
                by_axes = np.array([p.estimate.blur_sigma_axes is not None for p in plans]) & flagged
                limits = inferer.policy.limits
                directional = np.array([p.estimate.findings(max_blur_anisotropy=limits.max_blur_anisotropy) != []
                                        and p.estimate.findings(max_blur_misfit=limits.max_blur_misfit) == []
                                        for p in plans]) & flagged & ~by_axes
                gain_default = np.where(flagged, 0.0, gain_unchecked)
                worse = restored & (gain_unchecked < 0)
                gain_isotropic = None
                if isotropic is not None and kind.startswith("anisotropic"):  # what one isotropic σ gives
                    gain_isotropic = float(_gains(isotropic, restorer.network, x, y, isotropic.plan(y, 8),
                                                  seed, lambda p: p.restores, samples).mean())
                rows.append({
                    "kind": kind, "sigma": sigma, "sigma_y": sigma_y, "n": len(y),
                    "sigma_hat_mean": float(np.mean([p.blur_sigma for p in plans])),
                    "restored_unchecked": int(restored.sum()), "worse_unchecked": int(worse.sum()),
                    "handed_back": int(flagged.sum()), "handed_back_by_anisotropy_only": int(directional.sum()),
                    "handed_back_by_axis_checks": int(by_axes.sum()),
                    "worse_handed_back": int((worse & flagged).sum()),
                    "better_handed_back": int((restored & flagged & (gain_unchecked > 0)).sum()),
                    "worse_default": int((restored & ~flagged & (gain_unchecked < 0)).sum()),
                    "gain_unchecked_mean": float(gain_unchecked.mean()),
                    "gain_default_mean": float(gain_default.mean()),
                    "gain_unchecked_worst": float(gain_unchecked.min()),
                    "gain_default_worst": float(gain_default.min()),
                    "read_axis_aligned": int(sum(p.estimate.blur_sigma_axes is not None for p in plans)),
                    "gain_default_isotropic_only_mean": gain_isotropic,
                    "gains_unchecked": [round(float(v), 3) for v in gain_unchecked],
                    **{f"{k}s": [None if getattr(p.estimate, k) is None else round(getattr(p.estimate, k), 3)
                                 for p in plans] for k in _checks(inferer)}})
                r = rows[-1]
                print(f"{kind} σ {sigma:g} σ_y {sigma_y:g}: restored {r['restored_unchecked']}/{r['n']}, worse "
                      f"{r['worse_unchecked']}, handed back {r['handed_back']} "
                      f"({r['handed_back_by_anisotropy_only']} by "
                      f"anisotropy only, {r['handed_back_by_axis_checks']} by the axis checks; worse "
                      f"{r['worse_handed_back']}, "
                      f"better {r['better_handed_back']}); gain {r['gain_unchecked_mean']:+.2f} -> "
                      f"{r['gain_default_mean']:+.2f} dB, worst {r['gain_unchecked_worst']:+.2f} -> "
                      f"{r['gain_default_worst']:+.2f}; read axis-aligned {r['read_axis_aligned']}"
                      + (f", isotropic only {gain_isotropic:+.2f} dB" if gain_isotropic is not None else ""),
                      flush=True)
    return rows


def source_resolution(full: str, limit: int, bundle: str, seed: int, overrides: dict | None = None) -> list[dict]:
    """The NIH originals blurred at the source grid and restored as files, with the check and without it."""
    sources = sorted(Path(full).glob("*.png"))[:limit]
    top = [(np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255.0) for p in sources]
    sharp = [x[(x.shape[0] - CUT) // 2 : (x.shape[0] + CUT) // 2, (x.shape[1] - CUT) // 2 : (x.shape[1] + CUT) // 2]
             for x in top]
    checked = Restorer.from_bundle(bundle, **(overrides or {}))
    checks = _checks(checked.inferer)
    unchecked = Restorer.from_bundle(bundle, **{**(overrides or {}),
                                                **{limit_id: None for limit_id, *_ in checks.values()}})
    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, sigmas in FULL_BLURS.items():
            for sigma_64 in sigmas:
                files = []
                for i, x in enumerate(sharp):
                    y = blur_full(x, kind, sigma_64, rng) + 0.002 * rng.standard_normal(x.shape).astype(np.float32)
                    path = Path(tmp) / f"{kind}_{sigma_64:g}_{i}.png"
                    Image.fromarray(np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)).save(path)
                    files.append(path)
                default, plain = checked.restore(files), unchecked.restore(files)
                row = {"kind": kind, "sigma_64": sigma_64, "n": len(files),
                       "statuses": [r.status for r in default],
                       "axes": [None if r.estimate is None or r.estimate["blur_sigma_axes"] is None
                                else [round(v, 3) for v in r.estimate["blur_sigma_axes"]] for r in default],
                       **{f"{k}s": [None if r.estimate is None or r.estimate[k] is None
                                    else round(r.estimate[k], 3) for r in default] for k in checks}}
                for name, results in (("default", default), ("unchecked", plain)):
                    for scale, f in (("16", area), ("source", lambda a: a)):
                        gains = [psnr_np(f(r.restored), f(s)) - psnr_np(f(r.image), f(s))
                                 for r, s in zip(results, sharp)]
                        row[f"gain_{scale}_{name}_mean"] = float(np.mean(gains))
                        row[f"gain_{scale}_{name}_worst"] = float(np.min(gains))
                rows.append(row)
                print(f"source grid, {kind} σ_64 {sigma_64:g}: {row['statuses'].count('blur_mismatch')} handed back;"
                      f" gain 1/16 {row['gain_16_unchecked_mean']:+.2f} -> {row['gain_16_default_mean']:+.2f} dB "
                      f"(worst {row['gain_16_unchecked_worst']:+.2f} -> {row['gain_16_default_worst']:+.2f})",
                      flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--full", default=FULL_DATA)
    parser.add_argument("--developer", default=PNG_DATA,
                        help="developer-side originals (training patients) for the calibration")
    parser.add_argument("--bundle", default=DDRM_BUNDLE)
    parser.add_argument("--ddrm-limit", type=int, default=48, help="val images restored in part 2")
    parser.add_argument("--samples", type=int, default=1,
                        help="samples averaged per restored input in part 2 (the conditional bundle's benchmark: 4)")
    parser.add_argument("--full-limit", type=int, default=8, help="NIH originals in part 3 (0: skip it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="ID=JSON",
                        help="bundle ids to override for an ablation, e.g. operator_uncertainty=0")
    parser.add_argument("--out", default="benchmarks/results/blur_mismatch.json")
    args = parser.parse_args()
    overrides = set_ids(args.set)
    torch.set_num_threads(args.threads)
    started = time.time()
    restorer = Restorer.from_bundle(args.bundle, **overrides)
    x = to_unit_range(load_cxr14_cache(args.data, "val")["images"])
    calibrated = calibration(x, args.developer, restorer.inferer, args.seed)
    for statistic, (*_, sets) in _checks(restorer.inferer).items():
        for name in sets:
            c = calibrated[statistic][name]
            if not c["n"]:
                continue
            print(f"calibration, {name}: {c['n']} restorable Gaussian-blurred inputs, {statistic} p50 "
                  f"{c['percentiles'][50]:.2f}, p99.9 {c['percentiles'][99.9]:.2f}, max {c['max']:.2f}; the bundle's "
                  f"limit {calibrated[statistic]['bundle_limit']} hands back {100 * c['false_alarm_rate']:.2f} %",
                  flush=True)
        print(f"suggested limit for {statistic}: {calibrated[statistic]['suggested_limit']:g}", flush=True)
    for name, count in calibrated["axis_aligned"].items():
        print(f"calibration, {name}: {count['read']} of {count['n']} restorable inputs read as axis-aligned; "
              f"{count['handed_back']} of the {count['n']} handed back (by any check)", flush=True)
    isotropic = (Restorer.from_bundle(args.bundle, **{**overrides, "min_axis_ratio": None}).inferer
                 if getattr(restorer.inferer.policy.estimator, "min_axis_ratio", None) is not None else None)
    evaluated = evaluation(x[: args.ddrm_limit], restorer, args.seed, isotropic, args.samples)
    full = source_resolution(args.full, args.full_limit, args.bundle, args.seed, overrides) if args.full_limit else []
    result = {**run_info(), "wall_seconds": round(time.time() - started, 1), "bundle": args.bundle,
              "model_version": restorer.provenance["model_version"], "overrides": overrides,
              "calibration": calibrated,
              "evaluation": evaluated, "source_resolution": full,
              "command": f"python benchmarks/blur_mismatch.py --bundle {args.bundle} --ddrm-limit {args.ddrm_limit} "
                         f"--samples {args.samples} "
                         f"--full-limit {args.full_limit} --threads {args.threads} --seed {args.seed}"
                         + (f" --set {' '.join(args.set)}" if args.set else "")}
    print("\n| blur | σ (px) | σ_y | restored | worse than input | handed back (worse / better) | "
          "gain, no check (dB) | gain, default | worst, no check | worst, default | axis-aligned | isotropic only |")
    print("| --- |" + " ---: |" * 11)
    for r in evaluated:
        iso = r["gain_default_isotropic_only_mean"]
        print(f"| {r['kind']} | {r['sigma']:g} | {r['sigma_y']:g} | {r['restored_unchecked']}/{r['n']} | "
              f"{r['worse_unchecked']} | {r['handed_back']} ({r['worse_handed_back']} / {r['better_handed_back']}) | "
              f"{r['gain_unchecked_mean']:+.2f} | {r['gain_default_mean']:+.2f} | {r['gain_unchecked_worst']:+.2f} | "
              f"{r['gain_default_worst']:+.2f} | {r['read_axis_aligned']} | {'' if iso is None else f'{iso:+.2f}'} |")
    if full:
        print("\n| blur (source grid) | σ_64 | handed back | gain 1/16, no check | default | worst, no check | "
              "default | gain source grid, no check | default |")
        print("| --- |" + " ---: |" * 8)
        for r in full:
            print(f"| {r['kind']} | {r['sigma_64']:g} | {r['statuses'].count('blur_mismatch')}/{r['n']} | "
                  f"{r['gain_16_unchecked_mean']:+.2f} | {r['gain_16_default_mean']:+.2f} | "
                  f"{r['gain_16_unchecked_worst']:+.2f} | {r['gain_16_default_worst']:+.2f} | "
                  f"{r['gain_source_unchecked_mean']:+.2f} | {r['gain_source_default_mean']:+.2f} |")
    write_json(args.out, result)
    print(f"\nwrote {args.out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
