"""The report writer and the restore entry point, on real DICOMs, rendered in headless Chromium."""

from __future__ import annotations

import csv
import json
import shutil
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
    assert summary["settings"]["inferer"]["num_steps"] == 10  # the bundle's
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


def test_report_renders_in_headless_chromium(restored_run, render_report):
    """A DICOM restore's report at 1280 px: no horizontal overflow, every image loads, no console message."""
    out, _ = restored_run
    page = render_report(out / "report.html")
    assert page["scrollWidth"] <= page["width"] == 1280, page
    assert page["images"] >= 2 * 5 and page["broken"] == 0, page  # 2 restored inputs: 3 panels + 2 zooms each
    assert page["charts"] >= 2 and page["console"] == [], page  # blur and noise per image are plotted
    image = np.asarray(Image.open(page["screenshot"]).convert("L"), dtype=np.float32)
    assert image.std() > 10  # not a blank page: panels and text were drawn


def test_summary_follows_its_schema_and_names_every_unavailable_metric(restored_run):
    import jsonschema

    from xray_restore.report import summary_schema

    out, _ = restored_run
    summary = json.loads((out / "summary.json").read_text())
    jsonschema.validate(summary, summary_schema())
    reason = "no reference (sharp) images were given"
    for metric in ("psnr", "ssim", "lpips"):
        assert summary["availability"][metric]["available"] is False
        assert reason in summary["availability"][metric]["reason"]
    assert summary["kid"] == summary["availability"]["kid"] == {
        "available": False, "reason": "needs at least 2 images with references, got 0"}
    html = (out / "report.html").read_text()
    assert "Metrics not computed" in html and "LPIPS" in html and "KID" in html
    assert summary["timing"]["model_load_seconds"] is not None
    done = [r for r in summary["images"] if r["status"] == "done"]
    assert all(0 < r["seconds"] < summary["timing"]["wall_seconds"] for r in done)


def test_unavailable_metrics_have_one_shape_whatever_the_reason(tmp_path, monkeypatch):
    """Missing weights (LPIPS/KID) and missing references give the same shape."""
    import jsonschema

    from xray_restore.report import summary_schema

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    writer = ReportWriter(tmp_path, settings={"model_version": "test"})
    ref = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    for k in range(2):
        writer.add(f"{k}.png", ref * 0.9, ref, reference=ref, seconds=0.1)
    summary = writer.summary()
    jsonschema.validate(summary, summary_schema())
    assert summary["availability"]["psnr"] == {"available": True, "reason": None}
    for metric in ("lpips", "kid"):
        assert summary["availability"][metric]["available"] is False
        assert "weights" in summary["availability"][metric]["reason"]


def test_a_handed_back_input_is_not_shown_as_restored(tmp_path):
    """An input handed back (no blur, or a blur the model does not restore) is its own output; the report's panel
    says so instead of calling it restored."""
    writer = ReportWriter(tmp_path, settings={"test": True})
    image = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    writer.add("a.png", image, image * 0.5 + 0.25, seconds=0.1)
    writer.add("b.png", image, image, status="blur_mismatch", seconds=0.1)
    page = writer.write()["report.html"].read_text()
    first, second = page.split('<section class="panel">')[1:3]
    assert "<figcaption>restored</figcaption>" in first and "unchanged" not in first
    assert "<figcaption>output: the input, unchanged (blur_mismatch)</figcaption>" in second
    assert "<figcaption>restored</figcaption>" not in second
