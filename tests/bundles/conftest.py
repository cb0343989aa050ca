"""Fixtures shared by the bundle tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from xray_restore.datasets import load_cxr14_cache, to_unit_range
from xray_restore.measurement import degrade


@pytest.fixture(scope="module")
def blurred_val_images(cxr14_cache, tmp_path_factory):
    """Four real val radiographs, blurred by the realistic protocol and stored as 8-bit PNG."""
    folder = tmp_path_factory.mktemp("blurred")
    x = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:4])
    y = degrade(x, "realistic", torch.Generator().manual_seed(0))
    for i in range(x.shape[0]):
        Image.fromarray((y[i, 0].numpy() * 255).round().astype(np.uint8)).save(folder / f"val_{i}.png")
    return folder, x, y


@pytest.fixture(scope="module")
def real_blurred_val_images(cxr14_cache, tmp_path_factory):
    """Four real val radiographs blurred as real radiographs are (σ = 2 px, mirrored borders: no dark frame),
    σ_y = 0.01, stored as 8-bit PNG: the physics the DDRM bundle's operator assumes."""
    from xray_restore.operators import GaussianBlur

    folder = tmp_path_factory.mktemp("real_blurred")
    x = to_unit_range(load_cxr14_cache(cxr14_cache, "val")["images"][:4])
    y = degrade(x, "realistic", torch.Generator().manual_seed(0), operator=GaussianBlur(64, 2.0, padding="symmetric"))
    for i in range(x.shape[0]):
        Image.fromarray((y[i, 0].numpy() * 255).round().astype(np.uint8)).save(folder / f"val_{i}.png")
    return folder, x, y


def run_bundle_config(bundle, name: str, workflow_type: str = "infer", **overrides):
    """Initialize, run and finalize one config of ``bundle`` as ``monai.bundle run`` does; the workflow back."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(config_file=str(bundle / "configs" / name), meta_file=str(bundle / "configs" /
                              "metadata.json"), workflow_type=workflow_type, bundle_root=str(bundle), **overrides)
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


@pytest.fixture
def run_config(request):
    """``run_config(name, workflow_type="infer", **overrides)``: :func:`run_bundle_config` for the bundle of the
    test module (its ``BUNDLE``)."""
    bundle = request.module.BUNDLE
    return lambda name, workflow_type="infer", **overrides: run_bundle_config(bundle, name, workflow_type, **overrides)


def _check_trainer_resumes(bundle, cxr14_cache, run_dir) -> None:
    """train.json is a MONAI ``SupervisedTrainer`` with checkpoint handlers: a second run with more steps continues
    from the first run's checkpoint (iteration count carried on), and the EMA weights it writes load with
    ``weights_only=True`` into the bundle's network."""
    overrides = {"dataset_dir": str(cxr14_cache.parent), "run_dir": str(run_dir), "train_config#max_steps": 2,
                 "train_config#batch_size": 4, "train_config#checkpoint_every": 2, "epoch_length": 2}
    first = run_bundle_config(bundle, "train.json", "train", **overrides)
    assert first.check_properties() == []
    assert first.parser.get_parsed_content("train#trainer").state.iteration == 2
    assert (run_dir / "bundle_checkpoint_final.pt").is_file()
    second = run_bundle_config(bundle, "train.json", "train", **{**overrides, "train_config#max_steps": 4})
    assert second.parser.get_parsed_content("train#trainer").state.iteration == 4  # resumed at 2, not restarted
    network = second.parser.get_parsed_content("network_def", instantiate=True)
    network.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))


def _check_train_cli_runs(bundle, cxr14_cache, run_dir) -> None:
    """``monai.bundle run train_cli`` (the package's training loop with the bundle's train_config, network and data)
    runs as a bundle command: two steps, a logged validation, EMA weights that load into the bundle's network."""
    import subprocess
    import sys

    from monai.bundle import ConfigParser

    cmd = [sys.executable, "-m", "monai.bundle", "run", "train_cli", "--config_file",
           str(bundle / "configs" / "train.json"), "--bundle_root", str(bundle), "--dataset_dir",
           str(cxr14_cache.parent), "--run_dir", str(run_dir), "--train_config#max_steps", "2",
           "--train_config#batch_size", "4", "--val_limit", "4"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = (run_dir / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,") and rows[-1].startswith("2,") and rows[-1].split(",")[2], rows
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "train.json"))
    network = parser.get_parsed_content("network_def", instantiate=True)
    network.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))


def _check_evaluator_beats_its_input(bundle, cxr14_cache, out_dir, inference_overrides: dict) -> None:
    """evaluate.json is a MONAI ``SupervisedEvaluator`` whose PSNR/SSIM handlers and ``MetricsSaver`` write the
    metrics (per image too), and the restorer beats the blurred input on 4 val images."""
    from xray_restore.datasets import protocol_pairs
    from xray_restore.metrics import psnr

    workflow = run_bundle_config(bundle, "evaluate.json", "eval", dataset_dir=str(cxr14_cache.parent), limit=4,
                                 output_dir=str(out_dir), inference_overrides=inference_overrides)
    assert workflow.check_properties() == []
    rows = dict(line.split(",") for line in (out_dir / "metrics.csv").read_text().splitlines())
    pairs = protocol_pairs(cxr14_cache, "val", "realistic", limit=4)  # what the evaluator restored
    blurred = float(psnr(torch.stack([p["image"].as_tensor() for p in pairs]),
                         torch.stack([p["label"] for p in pairs])).mean())
    assert float(rows["val_psnr"]) > blurred + 2.0 and 0.0 < float(rows["val_ssim"]) <= 1.0
    assert len((out_dir / "val_psnr_raw.csv").read_text().splitlines()) == 1 + 4  # header + one row per image


@pytest.fixture
def check_trainer_resumes():
    return _check_trainer_resumes


@pytest.fixture
def check_train_cli_runs():
    return _check_train_cli_runs


@pytest.fixture
def check_evaluator_beats_its_input():
    return _check_evaluator_beats_its_input


def check_bundle_run_hands_back_as_restore(bundle, postfix: str, tmp_path, **overrides) -> None:
    """``python -m monai.bundle run`` of ``bundle``'s inference.json from another folder, on its default inputs
    (``samples/``: sharp and blurred), hands back (output pixels = input pixels) exactly the inputs that
    :func:`xray_restore.restore` hands back, and restores the others."""
    import subprocess
    import sys

    from xray_restore import restore

    out, cwd = tmp_path / "out", tmp_path / "elsewhere"
    cwd.mkdir()
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json"),
           "--bundle_root", str(bundle), "--output_dir", str(out)]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    samples = sorted((bundle / "samples").glob("*/*.png"))
    assert {p.parent.name for p in samples} == {"sharp", "blurred"}
    statuses = {r.source: r.status for r in restore([str(p) for p in samples], bundle=str(bundle), **overrides)}
    for p in samples:
        written = out / p.parent.name / f"{p.stem}_{postfix}.png"
        assert written.is_file(), (written, sorted(str(q) for q in out.rglob("*")))
        same = np.array_equal(np.asarray(Image.open(written)), np.asarray(Image.open(p)))
        assert same == (statuses[str(p)] != "restored"), (p, statuses[str(p)])
    assert "restored" not in {statuses[str(p)] for p in samples if p.parent.name == "sharp"}  # handed back, any reason
    # every blurred sample is restored, except one the anatomy gate reads as not a chest (then its sharp twin too)
    blurred = {p.name: statuses[str(p)] for p in samples if p.parent.name == "blurred"}
    sharp = {p.name: statuses[str(p)] for p in samples if p.parent.name == "sharp"}
    assert "restored" in blurred.values() and set(blurred.values()) <= {"restored", "not_chest"}, blurred
    assert all(sharp[name] == "not_chest" for name, status in blurred.items() if status == "not_chest"), sharp


@pytest.fixture
def check_bundle_run_hands_back():
    """:func:`check_bundle_run_hands_back_as_restore`."""
    return check_bundle_run_hands_back_as_restore
