"""The package version: one home, ``pyproject.toml``, read from the installed metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("xray_restore")
except PackageNotFoundError:  # a source tree on sys.path without installation
    __version__ = "0+unknown"
