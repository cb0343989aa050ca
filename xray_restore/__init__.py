"""xray_restore: DDRM deblurring of chest radiographs inside a MONAI / DICOM workflow."""

from __future__ import annotations

from .version import __version__

import os as _os  # noqa: E402

from ._compat import import_torchvision as _import_torchvision  # noqa: E402
from ._compat import quiet_known_noise as _quiet_known_noise  # noqa: E402

_import_torchvision()  # before anything imports torchmetrics
_quiet_known_noise(not _os.environ.get("XRAY_RESTORE_VERBOSE"))  # harmless third-party noise; -v shows it

from . import (  # noqa: E402
    baselines, datasets, ddrm, errors, estimation, evaluation, measurement, metrics, networks, operators, training,
)
from .ddrm import DDRMInferer  # noqa: E402
from .errors import InputError, XrayRestoreError  # noqa: E402
from .estimation import DegradationEstimate, SpectralDegradationEstimator  # noqa: E402
from .operators import GaussianBlur, SVDOperator  # noqa: E402
from .restore import Restoration, Restorer, restore  # noqa: E402

__all__ = [
    "__version__",
    "DDRMInferer",
    "DegradationEstimate",
    "SpectralDegradationEstimator",
    "GaussianBlur",
    "SVDOperator",
    "Restoration",
    "Restorer",
    "restore",
    "InputError",
    "XrayRestoreError",
    "baselines",
    "datasets",
    "ddrm",
    "errors",
    "estimation",
    "evaluation",
    "measurement",
    "metrics",
    "networks",
    "operators",
    "training",
]
