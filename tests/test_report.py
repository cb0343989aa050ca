"""The report writer and the restore entry point, on real DICOMs, rendered in headless Chromium."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from xray_restore.report import ReportWriter
from xray_restore.restore import restore

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "xray_ddrm"


@pytest.fixture(scope="module")
def restored_run(tmp_path_factory):
    """Two real DICOMs (one given as a pydicom Dataset), one header-only file, restored with 2 samples."""
    out = tmp_path_factory.mktemp("run")
    named = tmp_path_factory.mktemp("in") / "Doe_John_chest.dcm"  # a file name that identifies a patient
    shutil.copy(SHARED / "dicom" / "CR-MONO1-10-chest.dcm", named)
    inputs = [named, pydicom.dcmread(SHARED / "dicom" / "DX-NIH-chest-8bit.dcm"),
              SHARED / "dicom" / "CR-HeaderOnly-CR000000.dcm"]
    results = restore(inputs, output_dir=out, bundle=BUNDLE, num_samples=2, seed=0, blur_sigma=2.0)
    return out, results


def test_restore_writes_derived_series_and_report(restored_run):
    out, results = restored_run
    assert len(results) == 2
    assert all(r.std is not None and r.restored.shape == r.image.shape for r in results)
    derived = sorted(out.rglob("*.dcm"))
    assert len(derived) == 4  # restored + uncertainty for each good input
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_done"] == 2 and summary["n_failed"] == 1
    assert summary["settings"]["inferer"]["num_steps"] == 20
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["status"] for r in rows].count("failed") == 1


def test_no_identifiers_in_report(restored_run):
    out, _ = restored_run
    text = (out / "report.html").read_text() + (out / "metrics.csv").read_text() + (out / "summary.json").read_text()
    assert "Doe_John" not in text and "Covid0000" not in text  # file name and PatientID of the sources
    assert "CR-HeaderOnly" not in text


def test_report_metrics_with_reference(tmp_path):
    writer = ReportWriter(tmp_path, settings={"test": True})
    ref = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    row = writer.add("a.png", ref * 0.9, ref, reference=ref, seconds=0.1)
    assert row["psnr_restored"] == pytest.approx(100.0, abs=1e-6) or row["psnr_restored"] > 60
    assert row["psnr_input"] < row["psnr_restored"] and row["lpips_restored"] < 1e-6
    files = writer.write()
    assert set(files) == {"metrics.csv", "summary.json", "report.html"}
    assert "<svg" in files["report.html"].read_text()


def test_report_renders_in_headless_chromium(restored_run, tmp_path):
    out, _ = restored_run
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is required for the rendering test; .ci/run installs Debian's chromium")
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600", f"--screenshot={shot}",
         (out / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert image.shape[0] >= 1000 and image.std() > 10  # not a blank page: panels and text were drawn
