"""Exceptions raised for bad input files and arguments."""

from __future__ import annotations

import os

__all__ = ["XrayRestoreError", "InputError", "os_reason"]


class XrayRestoreError(Exception):
    """Base class of xray_restore's own errors."""


class InputError(XrayRestoreError, ValueError):
    """A file that cannot be used. The message starts with the file name, then the problem (never PHI)."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def os_reason(error: OSError) -> str:
    """An OS error in words without its path (a report may travel): ``"No space left on device (errno 28)"``."""
    return f"{error.strerror or type(error).__name__} (errno {error.errno})" if error.errno else type(error).__name__
