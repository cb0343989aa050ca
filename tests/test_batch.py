"""The batch job on real DICOMs: failures recorded, kill -9 at random points then resume, Dask workers.

The tests of the batch's mechanics (manifest, resume, outputs, workers) sample with the fewest DDRM steps
(``num_steps=2``): what they check does not depend on how many steps make each image.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from xray_restore.batch import Manifest, run_batch

DICOM_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"
BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "xray_ddrm"
SMALL = ["CR-MONO1-10-chest.dcm", "MG_Explicit_Little.dcm", "CR-tiny16x16-dicomdirtests-6154.dcm",
         "RF-KarstenHilbert-MLUT.dcm"]
#: The small shared DICOMs are one chest, a mammogram, a spine and a fluoroscopy frame: the tests of the batch's
#: mechanics restore them all (the anatomy gate off; two DDRM steps); the gate in a batch has its own test below.
NO_GATE = {"anatomy_gate": None, "num_steps": 2}


def make_inputs(folder: Path, n: int, bad: bool = False) -> list[str]:
    """``n`` real radiographs, each copy given its own SOP Instance UID (as distinct PACS instances have)."""
    folder.mkdir(parents=True, exist_ok=True)
    uids = []
    for i in range(n):
        ds = pydicom.dcmread(DICOM_DIR / SMALL[i % len(SMALL)], force=True)
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(folder), str(i)])
        ds.save_as(folder / f"instance_{i:02d}.dcm", enforce_file_format=True)
        uids.append(str(ds.SOPInstanceUID))
    if bad:
        shutil.copy(DICOM_DIR / "CR-HeaderOnly-CR000000.dcm", folder / "header_only.dcm")
    return uids


def outputs_by_source(out: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in out.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found.setdefault(str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID), []).append(path)
    return found


def batch_args(inputs: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", str(inputs), "-o", str(out), "--bundle", str(BUNDLE), "--batch-size", "1", "--blur-sigma", "2",
            "--set", "anatomy_gate=null", "--set", "num_steps=2", *extra]  # NO_GATE, as a CLI user


def batch_cmd(inputs: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "xray_restore", *batch_args(inputs, out, *extra)]


def test_batch_records_failures_and_exits_nonzero(tmp_path, capsys):
    """The command's exit status is 1 (``main``'s return, run here; a real process's exit status with failed inputs:
    tests/test_fault_injection.py), each failure is in the manifest with its reason, and the others are written."""
    from xray_restore.cli import main

    uids = make_inputs(tmp_path / "in", 3, bad=True)
    assert main(batch_args(tmp_path / "in", tmp_path / "out")) == 1, capsys.readouterr().err[-2000:]
    book = Manifest(tmp_path / "out" / "manifest.sqlite")
    assert book.counts() == {"pending": 0, "done": 3, "failed": 1, "skipped": 0, "stored": 0}
    failed = [r for r in book.rows() if r["state"] == "failed"]
    assert failed[0]["source"].endswith("header_only.dcm") and "no Pixel Data" in failed[0]["reason"]
    assert sorted(outputs_by_source(tmp_path / "out")) == sorted(uids)


def finished_outputs(out: Path) -> set[Path]:
    return {p for p in out.rglob("*.dcm") if ".tmp" not in p.name}


def test_kill_at_random_points_then_resume(tmp_path, per_input, capsys):
    """kill -9 three times at random moments of a run's work (after a random number of new outputs, 1 to 3, and a
    random fraction of a second more: while an input is sampled, written or recorded, whatever the machine's speed;
    never in the import, before anything happened), then finish (the resuming run: ``main`` here, on what the killed
    processes left): one restored (and uncertainty) object per input, manifest agrees with files."""
    from xray_restore.cli import main

    uids = make_inputs(tmp_path / "in", 8)
    out = tmp_path / "out"
    rng = random.Random(20261123)
    for i in range(3):
        before = finished_outputs(out)
        target, delay = rng.randint(1, 3), rng.uniform(0.0, 0.25)
        with open(tmp_path / f"run{i}.log", "w") as log:
            proc = subprocess.Popen(batch_cmd(tmp_path / "in", out), stdout=subprocess.DEVNULL, stderr=log,
                                    start_new_session=True)
        deadline = time.time() + 300
        while len(finished_outputs(out) - before) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        assert proc.poll() is None, ("the run ended before its kill", (tmp_path / f"run{i}.log").read_text()[-2000:])
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert main(batch_args(tmp_path / "in", out)) == 0, capsys.readouterr().err[-2000:]
    by_source = outputs_by_source(tmp_path / "out")
    assert sorted(by_source) == sorted(uids)
    assert all(len(paths) == per_input for paths in by_source.values()), by_source
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name]
    book = Manifest(tmp_path / "out" / "manifest.sqlite")
    rows = book.rows()
    assert {r["state"] for r in rows} == {"done"} and len(rows) == 8
    written = sorted(str(p) for paths in by_source.values() for p in paths)
    assert sorted(o for r in rows for o in r["outputs"]) == written



def test_two_dask_workers_match_single_process(tmp_path, per_input):
    """Four inputs in chunks of two on a local two-worker Dask cluster: the same files and (but for float summation
    order) the same pixels as in one process."""
    make_inputs(tmp_path / "in", 4)
    single = run_batch([tmp_path / "in"], tmp_path / "single", bundle=BUNDLE, **NO_GATE, batch_size=2,
                       progress=False,
                       blur_sigma=2.0)
    dask = run_batch([tmp_path / "in"], tmp_path / "dask", bundle=BUNDLE, **NO_GATE, batch_size=2, workers=2,
                     progress=False,
                     blur_sigma=2.0)
    assert single.ok and dask.ok and single.counts == dask.counts
    a = sorted(p.relative_to(tmp_path / "single") for p in (tmp_path / "single").rglob("*.dcm"))
    b = sorted(p.relative_to(tmp_path / "dask") for p in (tmp_path / "dask").rglob("*.dcm"))
    assert a == b and len(a) == 4 * per_input
    for rel in a:
        x = pydicom.dcmread(tmp_path / "single" / rel).pixel_array.astype(np.int64)
        y = pydicom.dcmread(tmp_path / "dask" / rel).pixel_array.astype(np.int64)
        levels = 2 ** pydicom.dcmread(tmp_path / "single" / rel).BitsStored - 1
        assert np.abs(x - y).max() <= max(2, levels // 100)  # same seeds; only float summation order may differ


def test_own_outputs_under_the_input_folder_are_skipped(tmp_path, per_input):
    make_inputs(tmp_path / "in", 2)
    first = run_batch([tmp_path / "in"], tmp_path / "in" / "restored", bundle=BUNDLE, **NO_GATE,
                      progress=False, blur_sigma=2.0)
    assert first.counts["done"] == 2
    second = run_batch([tmp_path / "in"], tmp_path / "in" / "restored", bundle=BUNDLE, **NO_GATE,
                      progress=False, blur_sigma=2.0)
    assert second.counts == {"pending": 0, "done": 2, "failed": 0, "skipped": 2 * per_input, "stored": 0}
    assert second.ok


def test_sharp_studies_are_skipped_with_their_estimates_and_not_redone(tmp_path):
    make_inputs(tmp_path / "in", 2)
    first = run_batch([tmp_path / "in"], tmp_path / "out", bundle=BUNDLE, **NO_GATE, progress=False)
    assert first.ok and first.counts == {"pending": 0, "done": 0, "failed": 0, "skipped": 2, "stored": 0}
    book = Manifest(tmp_path / "out" / "manifest.sqlite")
    rows = book.rows()
    book.close()
    assert all("no blur at the model scale" in r["reason"] and 0 <= r["blur_sigma"] < 0.7 and r["sigma_y"] > 0
               for r in rows)
    assert not list((tmp_path / "out").rglob("*.dcm"))  # a PACS does not fill up with copies of sharp studies
    second = run_batch([tmp_path / "in"], tmp_path / "out", bundle=BUNDLE, **NO_GATE, progress=False)
    assert second.processed == 0


def test_kill_during_the_write_then_resume(tmp_path, kill_switch, per_input, capsys):
    """kill -9 in the middle of writing a derived object (half of it on disk), twice (real processes: the second
    kill lands in the first one's resume); the resumed batch (``main`` here) leaves no partial file, exactly one
    complete set of outputs per input, and a manifest that agrees with the files."""
    from xray_restore.cli import main

    uids = make_inputs(tmp_path / "in", 3)
    for n in (2, 1):
        killed = subprocess.run(batch_cmd(tmp_path / "in", tmp_path / "out"), capture_output=True, text=True,
                                timeout=600, env=kill_switch("write", n))
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]  # the partial file is really there
    assert main(batch_args(tmp_path / "in", tmp_path / "out")) == 0, capsys.readouterr().err[-2000:]
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]
    by_source = outputs_by_source(tmp_path / "out")
    written = sorted(str(p) for paths in by_source.values() for p in paths)
    assert sorted(by_source) == sorted(uids) and all(len(p) == per_input for p in by_source.values())
    for path in written:
        ds = pydicom.dcmread(path)
        assert ds.pixel_array.shape[-2:] == (ds.Rows, ds.Columns)  # complete: every pixel decodes
    book = Manifest(tmp_path / "out" / "manifest.sqlite")
    rows = book.rows()
    book.close()
    assert {r["state"] for r in rows} == {"done"}
    assert sorted(o for r in rows for o in r["outputs"]) == written


def _a_png_and_its_copy(inputs: Path) -> Path:
    """``inputs/a.png`` (a 64×64 8-bit pattern) and ``inputs/b.png``, its byte-identical copy; returns ``inputs``."""
    from PIL import Image

    inputs.mkdir()
    rows, cols = np.mgrid[0:64, 0:64]
    Image.fromarray(np.round((0.5 + 0.3 * np.sin(cols / 5.0) * np.cos(rows / 7.0)) * 255).astype(np.uint8)).save(
        inputs / "a.png")
    shutil.copy(inputs / "a.png", inputs / "b.png")
    return inputs


def test_a_fifo_in_the_folder_fails_by_name_and_a_copy_is_a_duplicate(tmp_path):
    """A FIFO among the inputs is listed and fails alone as "not a regular file" (never opened: it would block); a
    byte-identical copy in the same chunk is restored once and recorded as skipped, a duplicate of the first."""
    inputs = _a_png_and_its_copy(tmp_path / "in")
    os.mkfifo(inputs / "pipe.png")
    summary = run_batch([inputs], tmp_path / "out", bundle=BUNDLE, **NO_GATE, batch_size=4, num_samples=1,
                        progress=False, blur_sigma=2.0, sigma_y=0.01)
    assert summary.counts == {"pending": 0, "done": 1, "failed": 1, "skipped": 1, "stored": 0}
    book = Manifest(tmp_path / "out" / "manifest.sqlite")
    rows = {Path(r["source"]).name: r for r in book.rows()}
    book.close()
    assert rows["b.png"]["reason"] == f"duplicate of {inputs.resolve() / 'a.png'}"
    assert rows["pipe.png"]["reason"] == "load: not a regular file (a FIFO); only regular files are read"


def test_a_copy_in_another_chunk_is_a_duplicate_restored_once(tmp_path):
    """Chunks of one input: the byte-identical copy goes to another chunk than its original, and is still skipped as
    a duplicate of the first (nothing written for it, counted once); a rerun processes nothing."""
    inputs = _a_png_and_its_copy(tmp_path / "in")
    run = dict(bundle=BUNDLE, **NO_GATE, batch_size=1, num_samples=1, progress=False, blur_sigma=2.0, sigma_y=0.01)
    summary = run_batch([inputs], tmp_path / "out", **run)
    assert summary.counts == {"pending": 0, "done": 1, "failed": 0, "skipped": 1, "stored": 0}, summary.counts
    book = Manifest(tmp_path / "out" / "manifest.sqlite")
    rows = {Path(r["source"]).name: r for r in book.rows()}
    book.close()
    assert rows["b.png"]["reason"] == f"duplicate of {inputs.resolve() / 'a.png'}" and not rows["b.png"]["outputs"]
    assert len(list((tmp_path / "out").rglob("*_restored.png"))) == 1
    assert run_batch([inputs], tmp_path / "out", **run).processed == 0


def test_a_study_that_is_not_a_chest_radiograph_is_skipped_with_the_reason_and_not_redone(tmp_path):
    """A mammogram (its header says MG) and a spine (Body Part Examined CSPINE) are handed back as not chest: no
    output, the manifest says why, a rerun processes nothing."""
    make_inputs(tmp_path / "in", 3)  # the chest, the mammogram, the spine
    first = run_batch([tmp_path / "in"], tmp_path / "out", bundle=BUNDLE, progress=False, blur_sigma=2.0,
                      num_samples=1, num_steps=2)
    book = Manifest(tmp_path / "out" / "manifest.sqlite")
    rows = {Path(r["source"]).name: r for r in book.rows()}
    book.close()
    assert first.ok and first.counts["skipped"] == 2 and first.counts["done"] == 1, first.counts
    assert "Modality MG" in rows["instance_01.dcm"]["reason"] and "CSPINE" in rows["instance_02.dcm"]["reason"]
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1
    assert run_batch([tmp_path / "in"], tmp_path / "out", bundle=BUNDLE, progress=False, blur_sigma=2.0,
                     num_samples=1, num_steps=2).processed == 0
