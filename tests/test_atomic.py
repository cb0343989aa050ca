"""Atomic writes: the target appears whole or not at all, and a failed write leaves nothing behind."""

from __future__ import annotations

import pytest

from xray_restore.atomic import atomic_path, atomic_write_text


def test_a_write_appears_under_its_name_only_when_complete(tmp_path):
    target = tmp_path / "sub" / "report.html"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".html" and tmp.name.startswith(".")
        tmp.write_text("partial")
        assert not target.exists()
    assert target.read_text() == "partial" and list(target.parent.iterdir()) == [target]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic_write_text(tmp_path / "summary.json", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
