"""The built wheel works outside the repository: its bundles travel with it (xray_restore/locate.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DICOM = REPO.parent / "shared" / "data" / "dicom"


def test_the_wheel_restores_a_dicom_from_another_folder(tmp_path):
    import importlib.util

    wheels = tmp_path / "wheels"
    # the venv's own setuptools when it has one (offline, fast); otherwise pip's isolated build (a package registry)
    local = all(importlib.util.find_spec(m) is not None for m in ("setuptools", "wheel"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *(["--no-build-isolation"] if local
                            else []), "-q", "-w", str(wheels), str(REPO)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("xray_restore-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"  # not the repository: no bundles/ folder here
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # the wheel's package shadows the repository's
    where = subprocess.run([sys.executable, "-c", "import xray_restore, xray_restore.locate as l; "
                            "print(xray_restore.__file__); print(l.locate_bundle('bundles/xray_ddrm'))"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert where.returncode == 0, where.stderr[-2000:]
    module, bundle = where.stdout.split()
    assert Path(module).is_relative_to(site) and Path(bundle).is_relative_to(site)
    done = subprocess.run([sys.executable, "-m", "xray_restore", "restore", str(DICOM / "CR-MONO1-10-chest.dcm"),
                           "-o", "out", "--force", "--blur-sigma", "2", "--set", "num_steps=4"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((elsewhere / "out" / "summary.json").read_text())
    assert summary["n_done"] == 1 and list((elsewhere / "out").rglob("*.dcm"))
    assert summary["versions"]["xray_restore"] == summary["settings"]["software_version"] != "0+unknown"
