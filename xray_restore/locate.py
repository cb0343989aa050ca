"""Where a bundle is: one mechanism for every entry point (CLI, ``restore()``, ``Restorer``, evaluation).

A ``bundle`` argument is a folder or a bundle name (``xray_ddrm``, ``xray_conditional``). A folder that exists is
used as given (your own or a modified bundle). Otherwise its last part is taken as a name and looked up, first hit
wins, in:

1. ``$XRAY_RESTORE_BUNDLES`` (a folder holding bundle folders);
2. the bundles installed with the package (``xray_restore/bundled/`` in a wheel: configs, weights, samples, docs);
3. the source checkout the package runs from (``bundles/`` beside ``xray_restore/``, e.g. an editable install).

So ``xray-restore restore chest.dcm -o out/`` works from any folder, and the default ``bundles/xray_ddrm`` still
means the repository's folder when run from the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

__all__ = ["locate_bundle", "operator_padding", "BUNDLE_NAMES", "DDRM_BUNDLE", "CONDITIONAL_BUNDLE", "SOURCE_BUNDLE"]

BUNDLE_NAMES = ("xray_ddrm", "xray_conditional", "xray_ddrm_source")
#: The default bundle of every entry point (CLI, ``restore()``, ``Restorer``, batch, evaluation, benchmarks).
DDRM_BUNDLE = "bundles/xray_ddrm"
#: The conditional baseline's bundle.
CONDITIONAL_BUNDLE = "bundles/xray_conditional"
#: The patch prior of radiographs at their own grid (source-resolution restoration).
SOURCE_BUNDLE = "bundles/xray_ddrm_source"


def _candidates(name: str) -> list[Path]:
    out = []
    if os.environ.get("XRAY_RESTORE_BUNDLES"):
        out.append(Path(os.environ["XRAY_RESTORE_BUNDLES"]) / name)
    try:
        from importlib import resources

        out.append(Path(str(resources.files("xray_restore.bundled").joinpath(name))))
    except (ModuleNotFoundError, TypeError):
        pass
    out.append(Path(__file__).resolve().parents[1] / "bundles" / name)
    return out


def locate_bundle(bundle: str | os.PathLike) -> Path:
    """The folder of ``bundle`` (a path, or a name looked up as the module docstring says).

    Raises:
        InputError: nothing found; the message names every place that was looked at.
    """
    path = Path(bundle)
    if (path / "configs").is_dir():
        return path
    places = _candidates(path.name)
    for place in places:
        if (place / "configs").is_dir():
            return place
    raise InputError(path, "bundle not found (looked in: " + ", ".join(str(p) for p in [path, *places]) + ")")


def operator_padding(bundle: str | os.PathLike) -> str:
    """The border handling of ``bundle``'s restoring operator (its ``inference.json``, parsed): what blurs made to
    match it (estimator statistics, embedded samples) must use."""
    from monai.bundle import ConfigParser

    root = locate_bundle(bundle)
    config = ConfigParser()
    config.read_config(str(root / "configs" / "inference.json"))
    config["bundle_root"] = str(root)
    return str(config.get_parsed_content("operator").padding)
