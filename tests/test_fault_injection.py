"""Fault injection: one batch over the 16 shared DICOMs plus 10 broken files and 2 with unusable UIDs.

It must finish in one run with every input ``done``/``skipped`` or ``failed`` with a reason naming the problem, write
nothing the manifest does not know, never leave a temporary file, and a re-run must process nothing. The batch is a
real ``python -m xray_restore`` process (a crash in a decoder would end it, not the tests), sampling with the fewest
DDRM steps (``num_steps=2``: the faults are in the inputs, not in the sampler); the re-run is ``main(argv)`` here.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from xray_restore.batch import Manifest

DICOM_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"
PNG_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr14_png"
BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "xray_ddrm"


def _bad_files(folder: Path) -> dict[str, str]:
    """Write the broken inputs; returns ``{file name: text its failure reason must contain}``."""
    rng = random.Random(0)
    dx = (DICOM_DIR / "DX-NIH-chest-8bit.dcm").read_bytes()
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "random.dcm").write_bytes(rng.randbytes(4096))
    (folder / "truncated.dcm").write_bytes(dx[: len(dx) // 2])
    (folder / "text.dcm").write_bytes(b"this is not a DICOM file\n")
    ds = pydicom.dcmread(DICOM_DIR / "DX-NIH-chest-8bit.dcm")
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    ds.save_as(folder / "short_pixels.dcm", enforce_file_format=True)
    ds = pydicom.dcmread(DICOM_DIR / "DX-NIH-chest-8bit.dcm")
    ds.Rows = ds.Columns = 65535
    ds.save_as(folder / "huge_declared.dcm", enforce_file_format=True)
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(folder / "transparent.png")
    Image.new("1", (20000, 20000)).save(folder / "bomb.png")  # 4·10⁸ pixels, a few kB on disk
    # a JPEG stream with its second half zeroed: the decoder may fill it in (done) or refuse it (failed); either way
    # it is accounted for
    png = sorted(PNG_DIR.glob("*.png"))[0].read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 3])
    ds = pydicom.dcmread(DICOM_DIR / "CR-RSNA-chest-JPEGbaseline.dcm")
    frames = bytearray(ds.PixelData)
    frames[len(frames) // 2 :] = bytes(len(frames) - len(frames) // 2)  # the JPEG stream's second half zeroed
    ds.PixelData = bytes(frames)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.save_as(folder / "corrupt_jpeg.dcm", enforce_file_format=True)
    return {"empty.dcm": "empty", "random.dcm": "", "truncated.dcm": "", "text.dcm": "", "short_pixels.dcm": "",
            "huge_declared.dcm": "", "transparent.png": "transparent", "bomb.png": "pixels",
            "truncated.png": ""}


def _uid_problems(folder: Path) -> None:
    """Readable radiographs whose UIDs cannot be referenced as they are (they must still be handled)."""
    ds = pydicom.dcmread(DICOM_DIR / "CR-MONO1-10-chest.dcm", force=True)
    ds.file_meta.TransferSyntaxUID = ds.file_meta.get("TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian)
    ds.StudyInstanceUID = "../../../tmp/evil"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.save_as(folder / "evil_study.dcm", enforce_file_format=True)
    ds = pydicom.dcmread(DICOM_DIR / "CR-MONO1-10-chest.dcm", force=True)
    ds.file_meta.TransferSyntaxUID = ds.file_meta.get("TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian)
    del ds.StudyInstanceUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.save_as(folder / "no_study.dcm", enforce_file_format=True)


@pytest.fixture(scope="module")
def faulty_batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    inputs = root / "in"
    inputs.mkdir()
    for path in sorted(DICOM_DIR.glob("*.dcm")):
        shutil.copy(path, inputs / path.name)
    bad = _bad_files(inputs)
    _uid_problems(inputs)
    out = root / "out"
    args = ["batch", str(inputs), "-o", str(out), "--bundle", str(BUNDLE), "--batch-size", "4", "--blur-sigma", "2",
            "--set", "num_steps=2",
            "--set", "anatomy_gate=null"]  # faults and UIDs here, on any anatomy (the gate: tests/test_anatomy.py)
    first = subprocess.run([sys.executable, "-m", "xray_restore", *args], capture_output=True, text=True,
                           timeout=1200)
    from xray_restore.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(args)
    again = subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())
    return inputs, out, bad, first, again


def test_the_batch_finishes_in_one_run_with_every_input_accounted_for(faulty_batch):
    inputs, out, bad, first, _ = faulty_batch
    assert first.returncode == 1, first.stderr[-3000:]  # failures, but no crash
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    report = json.loads(first.stdout.strip().splitlines()[-1])
    book = Manifest(out / "manifest.sqlite")
    rows = {Path(r["source"]).name: r for r in book.rows()}
    book.close()
    assert set(rows) == {p.name for p in inputs.iterdir()} and report["counts"]["pending"] == 0
    failed = {name for name, r in rows.items() if r["state"] == "failed"} - {"corrupt_jpeg.dcm"}
    assert failed == set(bad) | {"CR-HeaderOnly-CR000000.dcm", "DX-Issue56-NoPixelData.dcm"}, failed
    assert rows["corrupt_jpeg.dcm"]["state"] == "done" or rows["corrupt_jpeg.dcm"]["reason"]
    for name, must in bad.items():
        assert rows[name]["reason"] and must in rows[name]["reason"].lower(), (name, rows[name]["reason"])
    # unusable source UIDs (path-like, missing, not a UID): restored anyway, with new valid UIDs, and it says so
    for name in ("evil_study.dcm", "no_study.dcm", "JLSL_16_15_1_1F.dcm", "CR-ModalitySequenceLUT.dcm"):
        assert rows[name]["state"] == "done", rows[name]
        (path,) = [o for o in rows[name]["outputs"] if o.endswith(".dcm")
                   and "uncertainty" not in pydicom.dcmread(o, stop_before_pixels=True).SeriesDescription]
        assert "StudyInstanceUID" in pydicom.dcmread(path).ImageComments or "SOPInstanceUID" in pydicom.dcmread(
            path).ImageComments


def test_outputs_are_exactly_what_the_manifest_lists_and_valid(faulty_batch):
    _, out, _, _, _ = faulty_batch
    book = Manifest(out / "manifest.sqlite")
    listed = {Path(o) for r in book.rows() for o in r["outputs"]}
    book.close()
    written = {p for p in out.rglob("*") if p.is_file() and p.name not in ("manifest.sqlite",)
               and not p.name.startswith("manifest.sqlite")}
    assert listed == written and all(p.is_file() for p in listed)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    assert all(out in p.resolve().parents for p in written)  # nothing escaped the output folder
    for path in listed:
        ds = pydicom.dcmread(path)
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
            assert pydicom.uid.UID(str(uid)).is_valid, (path, uid)
        assert np.isfinite(ds.pixel_array).all()


def test_a_rerun_processes_nothing(faulty_batch):
    _, _, _, _, again = faulty_batch
    assert again.returncode == 1  # the same failures are still there, and only those
    assert json.loads(again.stdout.strip().splitlines()[-1])["processed"] == 0


def _limit_file_size(limit: int):
    """For a child process: files may grow to ``limit`` bytes; a write past it fails with an OSError (EFBIG, as a
    full disk fails with ENOSPC) instead of killing the process."""
    import resource
    import signal

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_outputs_and_report_that_cannot_be_written_fail_by_name_and_leave_nothing_half_written(tmp_path):
    """Writing stops at 2,600 bytes per file (as a full disk would stop it): each input whose output does not fit,
    and each report file that does not fit, is named with the OS's reason; the inputs whose output fits are written;
    no traceback, no temporary, no empty folder; rc 1."""
    inputs = tmp_path / "in"
    shutil.copytree(BUNDLE / "samples" / "blurred", inputs)
    dicom = inputs / "chest.dcm"  # a derived DICOM (and its folders) cannot fit in 2,600 bytes
    shutil.copy(DICOM_DIR / "DX-NIH-chest-8bit.dcm", dicom)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "xray_restore", "restore", str(inputs), "-o", str(out), "--samples",
                          "1", "--set", "num_steps=2", "--force"], capture_output=True, text=True, timeout=900,
                         preexec_fn=_limit_file_size(2600))
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    written = {p.name for p in out.glob("*_restored.png")}
    sizes = {p.name: p.stat().st_size for p in out.glob("*_restored.png")}
    assert all(size <= 2600 for size in sizes.values())
    failed = [line for line in run.stderr.splitlines() if "write failed" in line]
    assert len(written) + len(failed) == 5 and failed, (written, failed)  # every input accounted for
    assert any("chest.dcm" in line for line in failed) and all("File too large" in line for line in failed)
    assert all(len(line) < 400 for line in failed)  # one line each, no library traceback in it
    assert (out / "metrics.csv").is_file()  # what fits is still written: the run went on
    assert "report.html not written: File too large" in run.stderr
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]  # no temporary left
    assert not [p for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())]  # no empty study/series folder
    if (out / "summary.json").is_file():  # it fits or it is not there: never half written
        summary = json.loads((out / "summary.json").read_text())
        assert "report.html" in summary["not_written"] and summary["n_failed"] == len(failed)
