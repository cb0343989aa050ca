"""Atomic file writes: every file the package writes goes to a temporary name beside its target, then is renamed.

A crash or kill -9 mid-write leaves at most a hidden ``.<stem>.<pid>.tmp<suffix>`` file (``batch`` and ``restore``
remove those from their output folder at start: :func:`remove_stale_temporaries`), never a half-written output under
its real name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

__all__ = ["all_or_nothing", "atomic_path", "atomic_write_text", "remove_stale_temporaries"]

#: The files (and the folders made for them) that :func:`atomic_path` put in place inside :func:`all_or_nothing`.
_WRITTEN: ContextVar[list[tuple[Path, list[Path]]] | None] = ContextVar("xray_restore_written", default=None)

#: The name :func:`atomic_path` gives its temporary: ``.<stem>.<pid>.tmp<suffix>``.
_TEMPORARY = re.compile(r"\..+\.(\d+)\.tmp(\.[^.]+)?")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (created if needed) with the same suffix, so that writers that
    infer the format from it still work; on a clean exit it is renamed onto ``path``, on an error it is removed, and
    so are the folders made for it that are still empty."""
    path = Path(path)
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # the folders this write creates
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    done = False
    try:
        yield tmp
        os.replace(tmp, path)
        done = True
        log = _WRITTEN.get()
        if log is not None:
            log.append((path, made))
    finally:
        if tmp.exists():
            tmp.unlink()
        if not done:  # no empty folder left behind by a write that failed
            _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (innermost first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


@contextmanager
def all_or_nothing() -> Iterator[None]:
    """The files :func:`atomic_path` writes inside this block stand or fall together: on an error, those already
    renamed into place are removed again (and the folders made for them, once empty), and the error goes on. One
    input's outputs (a restored object and its uncertainty) are never left half written."""
    written: list[tuple[Path, list[Path]]] = []
    token = _WRITTEN.set(written)
    try:
        yield
    except BaseException:
        for path, made in reversed(written):
            path.unlink(missing_ok=True)
            _remove_empty(made)
        raise
    finally:
        _WRITTEN.reset(token)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove, under ``folder`` (recursive), the temporaries :func:`atomic_path` left when its process was killed
    mid-write; returns how many. Only names of its pattern whose process is gone: a run still writing there (same
    machine) keeps its own."""
    removed = 0
    for tmp in Path(folder).rglob(".*.tmp*"):
        found = _TEMPORARY.fullmatch(tmp.name)
        if found and tmp.is_file() and not _running(int(found.group(1))):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
