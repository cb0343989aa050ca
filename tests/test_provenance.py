"""Result provenance: the commit of this checkout, and JSON written by rename (never half-written)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from xray_restore.provenance import git_commit, run_info, uncommitted_changes, write_json

REPO = Path(__file__).resolve().parents[1]


def test_run_info_names_this_checkouts_commit():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    info = run_info(REPO)
    assert info["commit"] and head.startswith(info["commit"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", info["date"]) and info["threads"] >= 1


def test_git_commit_outside_a_checkout_is_empty(tmp_path):
    assert git_commit(tmp_path) == ""
    assert uncommitted_changes(tmp_path) == []


def test_run_info_names_files_that_differ_from_the_commit(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run(git + ["add", "a.py"], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "a"], cwd=tmp_path, check=True)
    assert run_info(tmp_path)["uncommitted"] == []
    (tmp_path / "a.py").write_text("x = 2\n")  # a result made now was not made by the commit alone
    assert run_info(tmp_path)["uncommitted"] == ["a.py"]


def test_write_json_replaces_atomically_and_creates_folders(tmp_path):
    target = tmp_path / "results" / "run.json"
    write_json(target, {"psnr": 31.0})
    write_json(target, {"psnr": 32.5, "path": Path("x")})
    assert json.loads(target.read_text()) == {"psnr": 32.5, "path": "x"}
    assert [p.name for p in target.parent.iterdir()] == ["run.json"]  # no temporary file left behind
