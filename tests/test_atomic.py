"""Atomic writes: the target appears whole or not at all, and a failed write leaves nothing behind."""

from __future__ import annotations

import pytest

from xray_restore.atomic import atomic_path, atomic_write_text, remove_stale_temporaries


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


def test_stale_temporaries_of_a_killed_writer_are_removed_and_nothing_else(tmp_path):
    """The very names atomic_path gives (taken from it) of a process that is gone are removed, in subfolders too; a
    live process's (a run still writing there) and other hidden files stay."""
    import os

    with atomic_path(tmp_path / "1.2" / "3.4.dcm") as tmp:
        tmp.write_text("whole")
        stale = [tmp.with_name(tmp.name.replace(f".{os.getpid()}.", ".99999999.")),  # no pid above 2**22 exists
                 tmp_path / ".x.nii.99999999.tmp.gz", tmp_path / ".metrics.99999999.tmp.csv"]
    kept = [tmp_path / f".restored.{os.getpid()}.tmp.png", tmp_path / ".notes.tmp", tmp_path / ".draft.tmpl"]
    for path in (*stale, *kept):
        path.write_text("half")
    assert remove_stale_temporaries(tmp_path) == 3
    assert [p for p in stale if p.exists()] == [] and all(p.exists() for p in kept)
