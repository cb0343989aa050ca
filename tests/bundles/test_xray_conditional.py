"""The conditional-baseline bundle: metadata, shipped weights, and real runs of its three configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import verify_metadata
from PIL import Image

from xray_restore.conditional import PredictAndRefine, build_conditional
from xray_restore.metrics import psnr
from xray_restore.networks import load_weights

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "xray_conditional"


def test_metadata_and_layout():
    verify_metadata(meta_file=str(BUNDLE / "configs" / "metadata.json"), filepath=str(BUNDLE / "eval" / "schema.json"))
    for rel in ("configs/inference.json", "configs/train.json", "configs/evaluate.json", "models/model.pt",
                "docs/README.md", "docs/data_license.txt", "LICENSE"):
        assert (BUNDLE / rel).is_file(), rel
    import tomllib

    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert meta["version"] in meta["changelog"]
    assert meta["required_packages_version"]["xray_restore"] == version  # the package it is tested with


def test_shipped_weights_load_with_weights_only_into_the_config_network():
    state = torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    config = json.loads((BUNDLE / "configs" / "inference.json").read_text())["network_def"]
    net = load_weights(build_conditional(channels=tuple(config["channels"]),
                                         front_end_lam=config["front_end_lam"], residual_std=config["residual_std"]),
                       BUNDLE / "models" / "model.pt")
    assert isinstance(net, PredictAndRefine)
    assert float(net.residual_std) == pytest.approx(config["residual_std"], rel=1e-5)  # EMA-averaged fp32 buffer


def test_inference_config_restores_real_blurred_xrays(blurred_val_images, tmp_path, run_config):
    folder, x, y = blurred_val_images
    run_config("inference.json", input_dir=str(folder), output_dir=str(tmp_path))
    outputs = sorted(tmp_path.glob("*_conditional.png"))
    assert [p.name for p in outputs] == [f"val_{i}_conditional.png" for i in range(4)]
    restored = torch.stack([torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 255)[None] for p in outputs])
    assert restored.shape == x.shape
    assert psnr(restored, x).mean() > psnr(y, x).mean() + 4.0


def test_inference_runs_as_a_monai_bundle_command_and_hands_back_what_restore_hands_back(tmp_path):
    from .conftest import check_bundle_run_hands_back_as_restore

    check_bundle_run_hands_back_as_restore(BUNDLE, "conditional", tmp_path, num_samples=1, num_steps=2)


def test_train_config_is_a_monai_trainer_that_resumes(cxr14_cache, tmp_path, check_trainer_resumes):
    check_trainer_resumes(BUNDLE, cxr14_cache, tmp_path)


def test_train_cli_runs_as_a_bundle_command(cxr14_cache, tmp_path, check_train_cli_runs):
    check_train_cli_runs(BUNDLE, cxr14_cache, tmp_path)


def test_evaluate_config_is_a_monai_evaluator_with_metric_handlers(cxr14_cache, tmp_path,
                                                                  check_evaluator_beats_its_input):
    check_evaluator_beats_its_input(BUNDLE, cxr14_cache, tmp_path, {})


def test_evaluate_config_runs(cxr14_cache, tmp_path, run_config):
    out = tmp_path / "val.json"
    run_config("evaluate.json", run_id="compare", data_file=str(cxr14_cache), limit=4, num_samples=[1, 2],
               inference_overrides={"num_steps": 5},
               output_file=str(out))
    result = json.loads(out.read_text())
    methods = result["protocols"]["realistic"]["methods"]
    assert {"blurred", "lmmse", "predictor", "conditional_1sample", "conditional_mean2"} <= set(methods)
    assert result["split"] == "val" and result["n_images"] == 4
    assert methods["predictor"]["psnr"] > methods["blurred"]["psnr"] + 4
