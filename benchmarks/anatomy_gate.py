"""Fit, calibrate and measure the anatomy gate (:mod:`xray_restore.anatomy`): is an input a frontal chest radiograph?

    python benchmarks/anatomy_gate.py                 # fit + calibrate + write the model file and the results
    python benchmarks/anatomy_gate.py --no-fit        # measure the committed model file only

Data (``benchmarks/paths.py``), every image at the model grid through the product's own load chain
(``xray_restore.transforms.load_chain``: mirror-pad to a square, area resize to 64×64, [0, 1]):

- fit: the training pool only (``cxr14_64.npz`` train + ``cxr14_extra_64.npz``): the layout networks and the
  intensity Gaussian. No other anatomy is ever seen in fitting;
- thresholds: ``cxr14_64.npz`` val and a calibration half of ``cxr_other_64.npz`` (split per collection with a fixed
  seed), each sharp and blurred (σ = 2 model pixels, mirrored borders, noise σ_y = 0.01, 8-bit), against
  ``nonchest/`` (calibration only): among the quantile pairs of the grid that hand back at most ``--max-false``
  of each calibration set (sharp and blurred separately), the one that catches the most of the worst-caught body part;
- reported only: the held-out half of ``cxr_other_64.npz``, ``cxr14_full/`` (76 NIH originals, evaluation only),
  val chests made non-square (a 14×17" portrait or 17×14" landscape source, mirror-padded), uniform noise, and every
  shared DICOM (header check and content score). The test split is never read.

Prints a table and writes ``benchmarks/results/anatomy_gate.json`` (date, commit, CPU) and the model file
(``bundles/xray_ddrm/models/anatomy_gate.pt`` by default).
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import xray_restore  # noqa: F401  (before deepinv / torchmetrics)
from paths import DEFAULT_DATA, DICOM_DATA, EXTRA_DATA, FULL_DATA, SHARED_DATA
from xray_restore.anatomy import GATE_FILE, ChestGate, header_finding
from xray_restore.datasets import load_cxr14_cache, load_training_pool, to_unit_range
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.measurement import quantise
from xray_restore.operators import blur_operator
from xray_restore.provenance import run_info, write_json
from xray_restore.transforms import apply_chain, load_chain

BLUR_SIGMA = 2.0  # model pixels
LAYOUT_QUANTILES = (0.99, 0.993, 0.995, 0.996, 0.997, 0.998, 0.999)
INTENSITY_QUANTILES = (0.995, 0.998, 0.999, 1.0)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def blurred(x: torch.Tensor, seed: int) -> torch.Tensor:
    """σ = 2 Gaussian blur (symmetric borders, as a blurred source area-resized leaves it), noise 0.01, 8-bit."""
    op = blur_operator(x.shape[-1], BLUR_SIGMA, padding="symmetric")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return quantise(op.H(x.double()).float() + 0.01 * noise, 8)


def non_square(x: torch.Tensor, keep: int, dim: int) -> torch.Tensor:
    """The model-grid image of a non-square source: ``keep`` of the 64 rows/columns, mirror-padded back."""
    from xray_restore.anatomy import _mirror_pad

    size = x.shape[-1]
    start = (size - keep) // 2
    return _mirror_pad(x.narrow(dim, start, keep), size - keep, dim)


def load_nonchest(folder: Path) -> tuple[torch.Tensor, list[dict]]:
    chain = load_chain("cxr14_png", "unit_range")
    with open(folder / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    images = [apply_chain(chain, {"image": str(folder / r["file"])})["image"].as_tensor() for r in rows]
    return torch.stack(images).float(), rows


def load_folder_pngs(folder: Path) -> torch.Tensor:
    chain = load_chain("cxr14_png", "unit_range")
    files = sorted(folder.glob("*.png"))
    return torch.stack([apply_chain(chain, {"image": str(p)})["image"].as_tensor() for p in files]).float()


def load_dicoms(folder: Path) -> list[dict]:
    """Every shared DICOM: its header fields and finding, and its model-grid image where it has pixels."""
    import pydicom

    chain = load_chain("dicom", "unit_range")
    out = []
    for path in sorted(folder.glob("*.dcm")):
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        entry = {"file": path.name, "modality": str(header.get("Modality", "")),
                 "body_part_examined": str(header.get("BodyPartExamined", "")),
                 "view_position": str(header.get("ViewPosition", "")),
                 "series_description": str(header.get("SeriesDescription", "")),
                 "header_finding": header_finding(header), "image": None, "load_error": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entry["image"] = apply_chain(chain, {"image": str(path)})["image"].as_tensor().float()
        except Exception as e:  # noqa: BLE001 - a header-only object is reported, not fatal
            entry["load_error"] = f"{type(e).__name__}: {e}".split("\n")[0][:200]
        out.append(entry)
    return out


#: What each shared DICOM is (from its header and a look at it): what the gate must answer.
DICOM_TRUTH = {
    "CR-MONO1-10-chest.dcm": "chest", "CR-RSNA-chest-JPEGbaseline.dcm": "chest", "DX-NIH-chest-8bit.dcm": "chest",
    "RG1_J2KI.dcm": "chest", "CR-Issue44_Monochrome1-Jpeg.dcm": "chest (no header; PA chest by content)",
    "CR-RSNA-Fake_MONOHR1.dcm": "chest, but inverted by its deliberately wrong MONOCHROME1 tag",
    "MG-GH133-VOILUT-JPEGLL.dcm": "MG", "MG-OutOfBoundsOverlay.dcm": "MG", "MG_Explicit_Little.dcm": "MG (phantom)",
    "RF-KarstenHilbert-MLUT.dcm": "RF", "RG3_J2KR.dcm": "extremity (tibia)",
    "DX-Issue56-NoPixelData.dcm": "extremity (elbow; header only)",
    "CR-HeaderOnly-CR000000.dcm": "pelvis (header only)",
    "CR-ModalitySequenceLUT.dcm": "dental panoramic (no body part; series 'MODALITYLUT - TEETH')",
    "CR-tiny16x16-dicomdirtests-6154.dcm": "cervical spine, lateral (16x16)", "JLSL_16_15_1_1F.dcm": "CT slice",
}


def rates(score: torch.Tensor) -> float:
    return float((score > 1.0).double().mean()) if len(score) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--extra", default=EXTRA_DATA)
    parser.add_argument("--model", default=str(Path(DDRM_BUNDLE) / GATE_FILE))
    parser.add_argument("--no-fit", action="store_true", help="measure the existing --model file")
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-false", type=float, default=0.005,
                        help="largest share of a calibration chest set the gate may hand back (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/anatomy_gate.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    shared = Path(SHARED_DATA)

    train = to_unit_range(load_training_pool(args.data, [args.extra]))
    val = to_unit_range(load_cxr14_cache(args.data, "val")["images"])
    with np.load(shared / "cxr_other_64.npz", allow_pickle=False) as o:
        other, other_ds = to_unit_range(o["images"]), o["dataset"].astype(str)
    calibration_half = np.zeros(len(other), bool)
    split = np.random.default_rng(args.seed)
    for name in np.unique(other_ds):
        idx = np.where(other_ds == name)[0]
        calibration_half[split.permutation(idx)[: len(idx) // 2]] = True
    nonchest, nc_rows = load_nonchest(shared / "nonchest")
    parts = np.array([r["body_part"] for r in nc_rows])
    full = load_folder_pngs(Path(FULL_DATA))
    dicoms = load_dicoms(Path(DICOM_DATA))
    noise = torch.rand(100, 1, 64, 64, generator=torch.Generator().manual_seed(args.seed))
    print(f"data: train {len(train)}, val {len(val)}, cxr_other {len(other)} ({calibration_half.sum()} calibration), "
          f"nonchest {len(nonchest)}, cxr14_full {len(full)}, DICOMs {len(dicoms)} ({time.time() - start:.0f} s)")

    sets = {"val": val, "cxr_other_cal": other[calibration_half], "cxr_other_heldout": other[~calibration_half],
            "cxr14_full": full, "nonchest": nonchest,
            "val_portrait": non_square(val, 52, -1), "val_landscape": non_square(val, 52, -2)}
    sets.update({f"{k}_blurred": blurred(v, args.seed + i + 1) for i, (k, v) in enumerate(list(sets.items()))})
    sets["noise"] = noise

    fit_seconds = None
    if args.no_fit:
        gate = ChestGate.load(args.model)
    else:
        t0 = time.time()
        gate = ChestGate.fit(train, members=args.members, epochs=args.epochs, seed=args.seed, log=print)
        fit_seconds = round(time.time() - t0, 1)
    t0 = time.time()
    comps = {name: gate.components(x) for name, x in sets.items()}
    per_image_ms = 1000 * (time.time() - t0) / sum(len(x) for x in sets.values())

    cal_sets = ("val", "val_blurred", "cxr_other_cal", "cxr_other_cal_blurred")

    def combined(thresholds: dict, name: str) -> torch.Tensor:
        return torch.stack([comps[name][k] / thresholds[k] for k in ChestGate.COMPONENTS]).max(0).values

    def thresholds_for(q_layout: float, q_intensity: float) -> dict:
        pools = [torch.cat([comps[a][k], comps[b][k]]) for a, b in (("val", "val_blurred"),
                                                                  ("cxr_other_cal", "cxr_other_cal_blurred"))
                 for k in ("layout", "intensity")]
        layout = max(float(torch.quantile(p, q_layout)) for p in pools[0::2])
        intensity = max(float(torch.quantile(p, q_intensity)) for p in pools[1::2])
        rough = 2.0 * max(float(comps[s]["roughness"].max()) for s in cal_sets)
        return {"layout": layout, "intensity": intensity, "roughness": rough}

    def part_rates(thresholds: dict) -> dict:
        out = {}
        for suffix in ("", "_blurred"):
            s = combined(thresholds, "nonchest" + suffix)
            for part in sorted(set(parts)):
                out[f"{part}{suffix}"] = rates(s[torch.from_numpy(parts == part)])
        return out

    grid = []
    if args.no_fit:
        chosen = dict(gate.thresholds)
    else:
        for q_l in LAYOUT_QUANTILES:
            for q_i in INTENSITY_QUANTILES:
                th = thresholds_for(q_l, q_i)
                false = {s: rates(combined(th, s)) for s in cal_sets}
                caught = part_rates(th)
                grid.append({"q_layout": q_l, "q_intensity": q_i, "thresholds": th, "handed_back": false,
                             "caught": caught, "worst_part": min(caught.values()),
                             "admissible": max(false.values()) <= args.max_false})
        best = max((g for g in grid if g["admissible"]), key=lambda g: (g["worst_part"], g["q_layout"]))
        chosen = best["thresholds"]
        gate.thresholds = chosen
        gate.calibration = {
            "sets": {"val (sharp + blurred)": 2 * len(val),
                     "cxr_other_64 calibration half (sharp + blurred)": int(2 * calibration_half.sum())},
            "quantiles": {"layout": best["q_layout"], "intensity": best["q_intensity"]}, "roughness_margin": 2.0,
            "note": (f"each threshold the larger over the two sets of its quantile; the quantile pair of the grid "
                     f"that hands back <= {args.max_false} of each set (sharp and blurred separately) and catches "
                     f"the most of the worst-caught nonchest/ body part; benchmarks/anatomy_gate.py "
                     f"{time.strftime('%Y-%m-%d')}")}
        gate.save(args.model)
        print(f"wrote {args.model} ({Path(args.model).stat().st_size / 1024:.0f} KiB)")

    table = {name: rates(combined(chosen, name)) for name in sets}
    by_part = part_rates(chosen)
    dicom_rows = []
    for d in dicoms:
        row = {k: v for k, v in d.items() if k != "image"}
        row["truth"] = DICOM_TRUTH.get(d["file"], "")
        if d["image"] is not None:
            x = d["image"][None]
            xb = blurred(x, args.seed)
            row["content_score"], row["content_score_blurred"] = (round(float(gate.score(x)[0]), 3),
                                                                  round(float(gate.score(xb)[0]), 3))
            row["content_finding"], row["content_finding_blurred"] = gate.finding(x)[0], gate.finding(xb)[0]
            row["components"] = {k: round(float(v[0]), 4) for k, v in gate.components(x).items()}
        row["not_chest"] = bool(row["header_finding"] or row.get("content_score", 0) > 1)
        row["not_chest_blurred"] = bool(row["header_finding"] or row.get("content_score_blurred", 0) > 1)
        dicom_rows.append(row)

    print("\nthresholds: " + ", ".join(f"{k} {v:.4g}" for k, v in chosen.items()))
    print(f"\n{'set':28s} {'n':>5s} {'sharp':>7s} {'blurred':>8s}   (share handed back as not_chest)")
    for name in [s for s in sets if not s.endswith("_blurred")]:
        blur = table.get(f"{name}_blurred")
        print(f"{name:28s} {len(sets[name]):5d} {table[name]:7.3f} " + ("" if blur is None else f"{blur:8.3f}"))
    print("\nnonchest/ by body part      sharp  blurred")
    for part in sorted(set(parts)):
        print(f"  {part:24s} {int((parts == part).sum()):4d} {by_part[part]:6.3f} {by_part[part + '_blurred']:8.3f}")
    cal = torch.from_numpy(calibration_half)
    other_by = {}
    for suffix in ("", "_blurred"):
        score = torch.empty(len(other), dtype=torch.float64)
        score[cal], score[~cal] = (combined(chosen, f"cxr_other_cal{suffix}"),
                                   combined(chosen, f"cxr_other_heldout{suffix}"))
        for name in np.unique(other_ds):
            m = torch.from_numpy(other_ds == name)
            other_by.setdefault(str(name), {"n": int(m.sum())})["sharp" if not suffix else "blurred"] = rates(score[m])
        table[f"cxr_other{suffix}"] = rates(score)
    print("\ncxr_other_64 by collection  sharp  blurred")
    for name, r in other_by.items():
        print(f"  {name:24s} {r['n']:4d} {r['sharp']:6.3f} {r['blurred']:8.3f}")
    print("\nshared DICOMs: header finding | content score sharp / blurred (> 1: not chest)")
    for r in dicom_rows:
        score = (f"{r['content_score']:.2f} / {r['content_score_blurred']:.2f}" if "content_score" in r
                 else "no pixels")
        print(f"  {r['file']:38s} {r['modality'] or '-':3s} {'NOT CHEST' if r['not_chest'] else 'chest':9s} "
              f"{score:14s} {r['header_finding'] or ''}")
    results = {**run_info(), "cpu": cpu_model(), "wall_seconds": round(time.time() - start, 1),
               "fit_seconds": fit_seconds, "score_ms_per_image": round(per_image_ms, 3),
               "command": "python benchmarks/anatomy_gate.py " + " ".join(f"--{k.replace('_', '-')}={v}"
                                                                        for k, v in vars(args).items()),
               "model": args.model, "model_bytes": Path(args.model).stat().st_size,
               "blur": {"sigma_model_px": BLUR_SIGMA, "borders": "symmetric", "sigma_y": 0.01, "bits": 8},
               "thresholds": chosen, "calibration": gate.calibration, "training": gate.training,
               "sizes": {k: len(v) for k, v in sets.items()},
               "handed_back": table, "nonchest_by_part": by_part,
               "nonchest_caught_overall": {"sharp": table["nonchest"], "blurred": table["nonchest_blurred"]},
               "cxr_other_by_collection": other_by, "dicoms": dicom_rows, "grid": grid}
    write_json(args.out, results)
    print(f"\nwrote {args.out}  ({results['wall_seconds']} s)")


if __name__ == "__main__":
    main()
