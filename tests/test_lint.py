"""The tree is clean under the project's ruff rules (``[tool.ruff.lint]`` in pyproject.toml: pycodestyle and
pyflakes, 120 columns): unused imports, undefined names and over-long lines fail here, not in review."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
