"""The DDRM bundle: metadata, shipped weights, config drift, and real runs on blurred ChestX-ray14 images."""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow, verify_metadata
from PIL import Image

from xray_restore.ddrm import DDRMInferer
from xray_restore.metrics import psnr
from xray_restore.networks import PRIOR_UNET_CONFIG, build_prior_unet, load_weights
from xray_restore.operators import GaussianBlur
from xray_restore.policy import RestorationPolicy

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "xray_ddrm"


def load_config(name: str) -> dict:
    return json.loads((BUNDLE / "configs" / name).read_text())


def test_metadata_verifies_offline_against_shipped_schema():
    verify_metadata(meta_file=str(BUNDLE / "configs" / "metadata.json"), filepath=str(BUNDLE / "eval" / "schema.json"))
    meta = load_config("metadata.json")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert meta["version"] in meta["changelog"]
    assert meta["required_packages_version"]["xray_restore"] == version


def test_bundle_layout():
    for rel in ("configs/inference.json", "configs/train.json", "configs/evaluate.json", "configs/metadata.json",
                "models/model.pt", "models/anatomy_gate.pt", "docs/README.md", "docs/data_license.txt", "LICENSE"):
        assert (BUNDLE / rel).is_file(), rel


def test_shipped_weights_load_with_weights_only():
    state = torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    net = load_weights(build_prior_unet(), BUNDLE / "models" / "model.pt")
    assert sum(p.numel() for p in net.parameters()) == 1_112_801


def test_configs_match_python_defaults():
    """Drift guard: the bundle is the source of truth, and it must agree with the package defaults."""
    for name in ("inference.json", "train.json"):  # evaluate.json takes the network from inference.json
        net = dict(load_config(name)["network_def"])
        assert net.pop("_target_") == "monai.networks.nets.DiffusionModelUNet"
        assert {k: tuple(v) if isinstance(v, list) else v for k, v in net.items()} == PRIOR_UNET_CONFIG
    inference = load_config("inference.json")
    op_defaults = inspect.signature(GaussianBlur).parameters
    for key in ("size", "sigma", "threshold"):
        assert inference["operator"][key] == op_defaults[key].default
    ddrm_defaults = inspect.signature(DDRMInferer).parameters
    for key in ("eta", "eta_b", "num_steps", "spacing", "num_samples", "temperature", "uncertainty_scale"):
        assert inference[key] == ddrm_defaults[key].default
        assert inference["sampler"][key] == f"@{key}"  # every tunable is an id that overrides reach
    policy_parameters = inspect.signature(RestorationPolicy).parameters
    for key in ("blur_sigma", "sigma_y", "no_blur_sigma", "num_samples", "seed", "force", "output_mode"):
        assert key in inference, key
        # the policy's settings reach the policy (sigma_y too: the sampler's own is only a default), the others the
        # sampler's
        if key in policy_parameters:
            assert inference["policy"][key] == f"@{key}" and key not in inference["sampler"], key
        elif key in ddrm_defaults:
            assert inference["sampler"][key] == f"@{key}", key
    for key, value in inference["policy"].items():  # every setting given to the policy is an id overrides reach
        if key not in ("_target_", "operator"):
            assert key in policy_parameters and str(value).startswith("@") and value[1:] in inference, (key, value)
    assert inference["inferer"] == {"_target_": "xray_restore.policy.PlannedInferer", "sampler": "@sampler",
                                    "policy": "@policy"}


def test_every_bundle_id_is_reachable_from_the_restorer():
    from xray_restore.restore import Restorer

    restorer = Restorer.from_bundle(BUNDLE, eta=0.5, num_steps=7, blur_sigma=1.5, sigma_y=0.02, force=True,
                                    no_blur_sigma=0.5, max_blur_misfit=None, border_error=2e-4)
    sampler, policy = restorer.inferer.sampler, restorer.inferer.policy
    assert (sampler.eta, sampler.num_steps, policy.blur_sigma) == (0.5, 7, 1.5)
    assert policy.sigma_y == 0.02 and restorer.force
    assert (policy.no_blur_sigma, policy.limits.max_blur_misfit, policy.border_error) == (0.5, None, 2e-4)
    with pytest.raises(ValueError, match="no id 'etaa'"):
        Restorer.from_bundle(BUNDLE, etaa=0.5)


def test_inference_config_restores_real_blurred_xrays(real_blurred_val_images, tmp_path, run_config):
    folder, x, y = real_blurred_val_images
    run_config("inference.json", input_dir=str(folder), output_dir=str(tmp_path))
    outputs = sorted(tmp_path.glob("*_ddrm.png"))
    assert [p.name for p in outputs] == [f"val_{i}_ddrm.png" for i in range(4)]
    restored = torch.stack([torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 255)[None] for p in outputs])
    assert restored.shape == x.shape
    # The restoration must be closer to the truth than the blurred input (the prior actually helps).
    assert psnr(restored, x).mean() > psnr(y, x).mean() + 2.0


def test_main_job_runs_on_embedded_default(tmp_path, render_report, per_input):
    readme = (REPO / "README.md").read_text()
    command = re.search(r"\.venv/bin/python (-W .*? -m monai\.bundle run .*?)\n", readme).group(1)
    cmd = [sys.executable, *shlex.split(command), "--output_dir", str(tmp_path)]  # the README's main job, as written
    done = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True, timeout=600)
    assert "ERROR" not in done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr and "nvImageCodec" not in done.stderr  # a clean story
    assert done.stdout.strip().splitlines()[-1] == f"report: {tmp_path / 'report.html'}"  # the file to open
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_images"] == len(list((BUNDLE / "samples" / "blurred").glob("*.png"))) > 0
    metrics = summary["metrics"]
    assert metrics["psnr_restored"]["mean"] > metrics["psnr_input"]["mean"]
    assert metrics["lpips_restored"]["mean"] < metrics["lpips_input"]["mean"]
    for name in ("metrics.csv", "report.html"):
        assert (tmp_path / name).is_file()
    page = render_report(tmp_path / "report.html")  # what a newcomer opens first
    assert page["scrollWidth"] <= page["width"] == 1280 and page["broken"] == 0 and page["console"] == [], page
    n, done = summary["n_images"], summary["n_done"]
    # the embedded sample 0 is not chest-shaped: the anatomy gate hands it back (bundle samples/README.md)
    assert done == n - 1 and summary["n_not_chest"] == 1, summary
    # input/restored/reference + zooms, and the uncertainty of a restored image when the bundle averages samples;
    # PSNR, SSIM, σ, σ_y
    assert page["images"] == n * (5 + per_input) - (n - done) * (per_input - 1) and page["charts"] == 4, page


def test_inference_runs_as_a_monai_bundle_command_and_hands_back_what_restore_hands_back(tmp_path):
    from .conftest import check_bundle_run_hands_back_as_restore

    check_bundle_run_hands_back_as_restore(BUNDLE, "ddrm", tmp_path, num_samples=1, num_steps=2)


def test_train_config_is_a_monai_trainer_that_resumes(cxr14_cache, tmp_path, check_trainer_resumes):
    check_trainer_resumes(BUNDLE, cxr14_cache, tmp_path)


def test_train_cli_runs_as_a_bundle_command(cxr14_cache, tmp_path, check_train_cli_runs):
    check_train_cli_runs(BUNDLE, cxr14_cache, tmp_path)


def test_evaluate_config_is_a_monai_evaluator_with_metric_handlers(cxr14_cache, tmp_path,
                                                                  check_evaluator_beats_its_input):
    check_evaluator_beats_its_input(BUNDLE, cxr14_cache, tmp_path, {"num_steps": 10})


def test_evaluate_config_runs(cxr14_cache, tmp_path, run_config):
    out = tmp_path / "val.json"
    run_config("evaluate.json", run_id="compare", data_file=str(cxr14_cache), limit=4, num_samples=[1],
               protocols=["realistic"],
               output_file=str(out))
    result = json.loads(out.read_text())
    methods = result["protocols"]["realistic"]["methods"]
    assert {"blurred", "pinv", "tikhonov", "lmmse", "ddrm_1sample"} <= set(methods)
    assert result["split"] == "val" and result["n_images"] == 4


def test_cli_evaluate_and_the_bundle_evaluate_config_report_the_same_numbers(cxr14_cache, tmp_path, run_config):
    """One composition root: ``xray-restore evaluate`` and ``monai.bundle run evaluate.json`` build the same model
    and inferer from the bundle, so the same settings give the same numbers (both protocols: the case study's η
    comes from evaluate.json's protocol_settings in both)."""
    cli_out, config_out = tmp_path / "cli.json", tmp_path / "config.json"
    cmd = [sys.executable, "-m", "xray_restore", "evaluate", "--data", str(cxr14_cache), "--bundle", str(BUNDLE),
           "--limit", "4", "--samples", "1", "--set", "num_steps=4", "--out", str(cli_out)]
    # one thread on both sides: float32 sums in another order differ in the 7th digit
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    run_config("evaluate.json", run_id="compare", data_file=str(cxr14_cache), limit=4, num_samples=[1],
               inference_overrides={"num_steps": 4}, output_file=str(config_out), num_threads=1)
    cli, config = json.loads(cli_out.read_text()), json.loads(config_out.read_text())
    assert set(cli["protocols"]) == set(config["protocols"]) == {"case_study", "realistic"}
    for protocol in cli["protocols"]:
        a, b = cli["protocols"][protocol]["methods"], config["protocols"][protocol]["methods"]
        assert a.keys() == b.keys()
        for method in a:
            assert a[method]["psnr"] == pytest.approx(b[method]["psnr"], abs=1e-9), (protocol, method)
    assert cli["settings"]["inferer"]["case_study"]["eta"] == 1.0  # the bundle's case-study choice, not 0.85
    assert cli["settings"]["inferer"]["realistic"]["eta"] == 0.85


def test_inference_configs_pass_monais_bundle_contract():
    """``ConfigWorkflow.check_properties()`` finds every required inference property in both bundles."""
    for bundle in (BUNDLE, REPO / "bundles" / "xray_conditional"):
        workflow = ConfigWorkflow(config_file=str(bundle / "configs" / "inference.json"),
                                  meta_file=str(bundle / "configs" / "metadata.json"), workflow_type="infer",
                                  bundle_root=str(bundle))
        workflow.initialize()
        assert workflow.check_properties() == [], bundle.name
