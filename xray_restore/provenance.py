"""Where a result came from (date, commit, machine, threads), and writing it without half-written files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from .atomic import atomic_write_text

__all__ = ["git_commit", "run_info", "write_json"]


def _git(args: list[str], cwd: str | os.PathLike | None) -> str | None:
    """stdout of ``git <args>`` in ``cwd`` (default: this package's folder); None outside a checkout or without git."""
    cwd = Path(__file__).resolve().parent if cwd is None else Path(cwd)
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """Short hash of ``HEAD`` of the git checkout at ``cwd`` (default: this package's), "" outside a checkout."""
    return (_git(["rev-parse", "--short", "HEAD"], cwd) or "").strip()


def uncommitted_changes(cwd: str | os.PathLike | None = None) -> list[str]:
    """The tracked files of the git checkout at ``cwd`` (default: this package's) that differ from ``HEAD``: a result
    made with them was made by code that ``commit`` alone does not name. Empty outside a checkout."""
    return (_git(["diff", "HEAD", "--name-only"], cwd) or "").split()


def run_info(cwd: str | os.PathLike | None = None) -> dict:
    """``{"date", "commit", "uncommitted", "machine", "threads"}`` stamped on every benchmark result
    (``uncommitted``: the tracked files that differed from ``commit``)."""
    return {"date": time.strftime("%Y-%m-%d"), "commit": git_commit(cwd), "uncommitted": uncommitted_changes(cwd),
            "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}


def write_json(path: str | os.PathLike, obj: object) -> Path:
    """Write ``obj`` as indented JSON to a temporary name beside ``path``, then rename (creates the folder)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str))
