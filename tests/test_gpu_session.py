"""``training/gpu_session.py`` (several runs on one lent accelerator, each on a wall-clock budget), dry-run on the
CPU with tiny networks, so the script a rare device session depends on cannot rot between sessions."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import torch

from xray_restore.networks import load_weights, prior_network_beside

REPO = Path(__file__).resolve().parents[1]
TINY = {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 8}


def _script(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_session", REPO / "training" / "gpu_session.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "WARMUP_STEPS", 1)
    monkeypatch.setattr(module, "TIMED_STEPS", 2)
    monkeypatch.setattr(module, "VAL_LIMIT", 4)
    monkeypatch.setattr(module, "RUNS", {
        "prior": {"kind": "prior", "network": TINY, "batch_size": 2, "other_until": 0.5},
        "conditional": {"kind": "conditional", "network": {"channels": [8, 16], "norm_num_groups": 8},
                        "batch_size": 2},
    })
    return module


def test_each_run_trains_to_its_deadline_and_exports_loadable_half_weights(cxr14_cache, tmp_path, monkeypatch):
    script = _script(monkeypatch)
    data = cxr14_cache.parent  # cxr14_64.npz, cxr14_extra_64.npz and cxr_other_64.npz side by side
    for run in ("prior", "conditional"):
        script._train(run, data, tmp_path / "runs", time.time() + 3.0, device="cpu")
    rows = (tmp_path / "runs" / "prior" / "log.csv").read_text().strip().splitlines()
    assert len(rows) >= 3 and rows[-1].split(",")[2], rows  # a validated last row
    script._export(tmp_path / "runs", tmp_path / "out")
    half = torch.load(tmp_path / "out" / "prior.fp16.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in half.values() if v.is_floating_point())
    # the run folder says which network the weights are for
    network = prior_network_beside(tmp_path / "runs" / "prior" / "model.pt")
    load_weights(network, tmp_path / "runs" / "prior" / "model.pt")
    conditional = json.loads((tmp_path / "runs" / "conditional" / "conditional.json").read_text())
    assert conditional["channels"] == [8, 16] and conditional["residual_std"] == 0.05  # the bundle's, not restated


def test_its_ddrm_val_gives_the_figures_of_the_bundles_composition_root(cxr14_cache, monkeypatch):
    """The device cannot import the DICOM stack that ``Restorer.from_bundle`` needs, so the script builds the inferer
    from the bundle's ids itself: it must measure exactly what ``xray-restore evaluate`` measures."""
    from xray_restore.evaluation import evaluate_prior

    script = _script(monkeypatch)
    weights = REPO / "bundles" / "xray_ddrm" / "models" / "model.pt"
    # DDRM only: the linear baselines are one shared function on both sides (evaluation.evaluate_methods)
    mine = script.ddrm_val(weights, cxr14_cache.parent, device="cpu", limit=1, baselines=False)
    theirs = evaluate_prior(str(cxr14_cache), limit=1, baselines=False)
    for protocol in ("case_study", "realistic"):
        a, b = mine["protocols"][protocol]["methods"], theirs["protocols"][protocol]["methods"]
        assert set(a) == set(b) == {"blurred", "ddrm_1sample", "ddrm_mean8"}
        for method in a:
            assert abs(a[method]["psnr"] - b[method]["psnr"]) < 1e-4, (protocol, method, a[method], b[method])
