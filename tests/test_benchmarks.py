"""The evaluation benchmark's code path, end to end on a handful of real test images (the test tests; the
``--limit 50`` smoke run and the full run are documented commands that measure, see the README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_deblur_benchmark_smoke_run(tmp_path):
    cmd = [sys.executable, str(REPO / "benchmarks" / "deblur_benchmark.py"), "--limit", "8", "--samples", "2",
           "--steps", "10", "--sweep", "0.01", "--out-dir", str(tmp_path)]
    # the README's command as a user runs it: no thread caps inherited from the test process (2 threads, --threads)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "deblur_benchmark_limit8.json").read_text())
    assert data["n_test"] == 8 and data["command"].endswith("--limit 8")
    expected = {"blurred", "pinv", "tikhonov", "lmmse", "richardson_lucy", "richardson_lucy_skimage", "ddrm_1sample",
                "ddrm_mean2", "deepinv_ddrm_1sample", "conditional_1sample", "conditional_mean2"}
    for protocol in ("case_study", "realistic"):
        rows = data["protocols"][protocol]
        assert set(rows) == expected
        for row in rows.values():
            assert {"psnr", "ssim", "lpips", "kid", "seconds"} <= set(row)
        # the anchors every method must respect on real images
        assert rows["lmmse"]["psnr"] > rows["tikhonov"]["psnr"] > rows["blurred"]["psnr"]
        assert rows["ddrm_mean2"]["psnr"] > rows["lmmse"]["psnr"] - 0.5  # K = 2 on 8 images: near LMMSE or above
        assert rows["ddrm_1sample"]["eta"] == (1.0 if protocol == "case_study" else 0.85)  # the bundle's, per protocol
        assert rows["ddrm_1sample"]["floor_ratio"] > 0.5
    # the protocol anchors of the issue (test split, float64): pinv ≈ 30.6 dB case study, ≈ 9.5 dB realistic
    assert abs(data["protocols"]["case_study"]["pinv"]["psnr"] - 30.6) < 1.0
    assert abs(data["protocols"]["realistic"]["pinv"]["psnr"] - 9.5) < 1.0
    assert len(data["sigma_sweep"]) == 1
    table = (tmp_path / "deblur_benchmark_limit8.md").read_text()
    assert data["commit"] in table and "| ddrm_mean2 |" in table
    for suffix in ("_sigma_sweep.png", "_panel.png"):
        assert (tmp_path / f"deblur_benchmark_limit8{suffix}").stat().st_size > 10_000
