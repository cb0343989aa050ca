"""Unattended batch restoration over many inputs: SQLite manifest, resume after any kill, Dask scale-out.

Robustness by construction:

- every input has one manifest row (``pending`` → ``done`` | ``failed`` with reason | ``skipped``; ``stored``
  once a PACS batch has sent its derived objects back), keyed by its absolute path; a re-run processes only what is
  ``pending`` (``--retry-failed`` also retries failures); rows of inputs deleted since (never done) are dropped;
- outputs are written under temporary names and renamed, with UIDs derived deterministically from the source
  and the provenance, so re-processing an input after a kill rewrites the *same* files: never a duplicate;
- the manifest row becomes ``done`` only after its outputs exist; leftover temporary files of a killed run are
  removed at start; one bad input is recorded as ``failed`` and the batch goes on.

Scale-out runs on Dask (``workers=N`` starts a local cluster, ``scheduler="tcp://..."`` joins one); each worker
builds the bundle's :class:`~xray_restore.restore.Restorer` once and reuses it. Only the driver writes the
manifest (SQLite has one writer).
"""

from __future__ import annotations

import json
import numbers
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .atomic import remove_stale_temporaries
from .errors import InputError
from .locate import DDRM_BUNDLE

__all__ = ["Manifest", "BatchSummary", "discover_inputs", "run_batch"]

STATES = ("pending", "done", "failed", "skipped", "stored")
REMOTE_PREFIX = "dicomweb:"  # manifest keys of PACS instances that never became a staged file


class Manifest:
    """SQLite table ``items(key, source, state, reason, outputs, updated)``; one row per input."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, source TEXT NOT NULL, "
                        "state TEXT NOT NULL, reason TEXT DEFAULT '', outputs TEXT DEFAULT '[]', updated REAL)")
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(items)")}
        for column in ("blur_sigma", "sigma_y"):  # the settings used (estimated per input by default)
            if column not in columns:
                self.db.execute(f"ALTER TABLE items ADD COLUMN {column} REAL")

    def add(self, keys_and_sources: Iterable[tuple[str, str]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO items (key, source, state, updated) VALUES (?, ?, 'pending', ?)",
                                [(k, s, time.time()) for k, s in keys_and_sources])

    def todo(self, retry_failed: bool = False) -> list[tuple[str, str]]:
        states = ("pending", "failed") if retry_failed else ("pending",)
        marks = ",".join("?" * len(states))
        return list(self.db.execute(f"SELECT key, source FROM items WHERE state IN ({marks}) ORDER BY key", states))

    def mark(self, key: str, state: str, reason: str = "", outputs: Sequence[str] = (),
             blur_sigma: float | None = None, sigma_y: float | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}.")
        with self.db:
            self.db.execute("UPDATE items SET state = ?, reason = ?, outputs = ?, updated = ?, blur_sigma = ?, "
                            "sigma_y = ? WHERE key = ?",
                            (state, reason, json.dumps(list(outputs)), time.time(), blur_sigma, sigma_y, key))

    def remove(self, keys: Iterable[str]) -> None:
        with self.db:
            self.db.executemany("DELETE FROM items WHERE key = ?", [(k,) for k in keys])

    def forget_missing(self) -> int:
        """Drop ``pending``/``failed`` rows of input files that no longer exist (deleted or moved since); returns
        how many. Rows of other keys (e.g. PACS instances that could not be retrieved) are kept."""
        gone = [k for k, s in self.db.execute("SELECT key, source FROM items WHERE state IN ('pending', 'failed')")
                if k == s and Path(k).is_absolute() and not Path(k).exists()]
        self.remove(gone)
        return len(gone)

    def rows(self) -> list[dict]:
        cursor = self.db.execute("SELECT key, source, state, reason, outputs, blur_sigma, sigma_y FROM items "
                                 "ORDER BY key")
        return [{"key": k, "source": s, "state": st, "reason": r, "outputs": json.loads(o), "blur_sigma": b,
                 "sigma_y": n} for k, s, st, r, o, b, n in cursor]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM items GROUP BY state"):
            out[state] = n
        return out

    def close(self) -> None:
        self.db.close()


@dataclass
class BatchSummary:
    counts: dict[str, int]
    processed: int
    seconds: float
    failures: list[dict]

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0 and not self.failures


def discover_inputs(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Absolute paths of the image files under ``paths`` (files or folders, recursive; DICOM or PNG)."""
    from .datasets import IMAGE_SUFFIXES

    found: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            # a FIFO/device/socket is listed too (exists, not a folder): the reader fails it by name, never opening it
            found.extend(str(f.resolve()) for f in sorted(p.rglob("*")) if f.exists() and not f.is_dir()
                         and (f.suffix.lower() in IMAGE_SUFFIXES or f.suffix == ""))
        else:
            found.append(str(p.resolve()))
    return found


_RESTORERS: dict[tuple, object] = {}


def _restorer(bundle: str, overrides: dict):
    """The :class:`~xray_restore.restore.Restorer` of a bundle and its overrides, built once per process."""
    from .restore import Restorer

    key = (bundle, json.dumps(overrides, sort_keys=True, default=str))
    if key not in _RESTORERS:
        _RESTORERS[key] = Restorer.from_bundle(bundle, **overrides)
    return _RESTORERS[key]


def check_batch_settings(bundle: str | os.PathLike = DDRM_BUNDLE, batch_size: int = 8, num_samples: int | None = None,
                         workers: int | None = None, **overrides) -> None:
    """Raise on a bad batch setting or bundle override, before anything is made (the Restorer is cached for this
    process's chunks)."""
    for name, value in (("batch_size", batch_size), ("num_samples", num_samples), ("workers", workers)):
        if value is not None and not (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                                      and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    _restorer(str(bundle), overrides)


def restore_chunk(sources: list[str], output_dir: str, bundle: str, num_samples: int | None, seed: int | None,
                  overrides: dict) -> list[dict]:
    """Restore a chunk (one batched DDRM call); returns one ``{"source", "state", "reason", "outputs"}`` per input.

    Runs in the driver or on a Dask worker; the Restorer is built once per process and bundle."""
    from .readers import is_own_output

    skipped = [s for s in sources if is_own_output(s)]
    sources = [s for s in sources if s not in skipped]
    out = [{"source": s, "state": "skipped", "reason": "an xray_restore output, not an input", "outputs": []}
           for s in skipped]
    if not sources:
        return out
    restorer = _restorer(bundle, overrides)
    results = restorer.restore(sources, num_samples=num_samples, seed=seed, output_dir=output_dir,
                               on_error="skip", batch_size=len(sources), keep_images=False)
    by_source = {str(Path(r.source).resolve()): r for r in results}
    failures = {str(Path(f.source).resolve()): f"{f.stage}: {f.reason}" for f in restorer.failures}
    duplicates = {str(Path(d).resolve()): first for d, first in restorer.duplicates}  # the same bytes as another
    for source in sources:
        resolved = str(Path(source).resolve())
        r = by_source.get(resolved)
        if resolved in duplicates:
            out.append({"source": source, "state": "skipped", "reason": f"duplicate of {duplicates[resolved]}",
                        "outputs": []})
        elif r is not None:
            state = "done" if r.status == "restored" or r.outputs else "skipped"
            out.append({"source": source, "state": state, "reason": r.reason, "outputs": r.outputs,
                        "blur_sigma": r.blur_sigma, "sigma_y": r.sigma_y})
        else:
            out.append({"source": source, "state": "failed", "reason": failures.get(resolved, "not restored"),
                        "outputs": []})
    return out


def _first_of_each_content(todo: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``todo`` without the byte-identical repeats of an earlier entry, and ``(repeat, first)`` for each (the first
    by its resolved path, as :func:`~xray_restore.restore.restore` names it). A file that is not regular or cannot
    be read stays in: restoring it fails it by name."""
    from .readers import check_regular_file
    from .restore import file_digest

    first_of: dict[str, str] = {}
    kept, repeats = [], []
    for key, source in todo:
        try:
            check_regular_file(source)
            digest = file_digest(source)
        except (InputError, OSError):
            kept.append((key, source))
            continue
        if digest in first_of:
            repeats.append((source, first_of[digest]))
        else:
            first_of[digest] = str(Path(source).resolve())
            kept.append((key, source))
    return kept, repeats


def run_batch(
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    manifest: str | os.PathLike | None = None,
    bundle: str | os.PathLike = DDRM_BUNDLE,
    batch_size: int = 8,
    num_samples: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    **overrides,
) -> BatchSummary:
    """Restore every input not yet ``done`` in the manifest (default ``<output_dir>/manifest.sqlite``).

    The bundle and its settings are checked first (a bad one raises before any folder or manifest is made).
    """
    from .restore import check_writable

    check_batch_settings(bundle, batch_size, num_samples, workers, **overrides)
    if workers or scheduler:  # the chunks run in Dask's processes: this one need not keep a model
        _RESTORERS.clear()
    output_dir = Path(output_dir)
    check_writable(output_dir)
    remove_stale_temporaries(output_dir)
    manifest_path = Path(manifest or output_dir / "manifest.sqlite")
    check_writable(manifest_path.parent)
    try:
        book = Manifest(manifest_path)
    except sqlite3.Error as e:
        raise InputError(manifest_path, f"cannot open the batch manifest ({e})") from None
    book.forget_missing()
    sources = discover_inputs(inputs)
    book.add((s, s) for s in sources)
    todo = [(k, s) for k, s in book.todo(retry_failed) if not k.startswith(REMOTE_PREFIX)]  # files only
    todo, repeats = _first_of_each_content(todo)  # a copy in another chunk is still a copy
    for source, first in repeats:
        book.mark(source, "skipped", f"duplicate of {first}", [])
    chunks = [[s for _, s in todo[i : i + batch_size]] for i in range(0, len(todo), batch_size)]
    args = (str(output_dir), str(bundle), num_samples, seed, overrides)
    start = time.time()
    bar = tqdm(total=len(todo), disable=not progress, desc="restore", unit="img")
    client = cluster = None
    try:
        if workers or scheduler:
            try:
                from dask.distributed import Client, LocalCluster, as_completed
            except ImportError as e:
                raise InputError("--workers/--scheduler", "Dask is not installed: pip install 'xray_restore[dask]'"
                                 ) from e

            if scheduler:
                client = Client(scheduler)
            else:
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
                client = Client(cluster)
            futures = [client.submit(restore_chunk, chunk, *args, pure=False) for chunk in chunks]
            results_iter = (future.result() for future in as_completed(futures))
        else:
            results_iter = (restore_chunk(chunk, *args) for chunk in chunks)
        for results in results_iter:
            for r in results:
                book.mark(r["source"], r["state"], r["reason"], r["outputs"], r.get("blur_sigma"), r.get("sigma_y"))
            bar.update(len(results))
    finally:
        bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    seconds = time.time() - start
    rows = book.rows()
    summary = BatchSummary(book.counts(), len(todo), seconds,
                           [{"source": r["source"], "reason": r["reason"]} for r in rows if r["state"] == "failed"])
    book.close()
    return summary
