"""Exceptions raised for bad input files and arguments."""

from __future__ import annotations

import os

__all__ = ["XrayRestoreError", "InputError"]


class XrayRestoreError(Exception):
    """Base class of xray_restore's own errors."""


class InputError(XrayRestoreError, ValueError):
    """A file that cannot be used. The message starts with the file name, then the problem (never PHI)."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
