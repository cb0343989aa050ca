"""Import shim: PyPI only has CUDA builds of torchvision, whose compiled ops fail to load against CPU torch.

``import torchvision`` then dies registering fake kernels for ``torchvision::nms``; torchmetrics (LPIPS) imports
torchvision, so everything that imports torchmetrics would fail. Defining the two op schemas first lets
torchvision import; its models and transforms work, its compiled detection ops (nms, roi_align) do not.
Called once from ``xray_restore/__init__.py`` before anything imports torchmetrics.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings

import torch

_TORCHVISION_LIBRARY = None


def import_torchvision():
    """Import torchvision (if installed), defining missing op schemas when its C++ ops cannot load."""
    global _TORCHVISION_LIBRARY
    try:
        import torchvision

        return torchvision
    except ModuleNotFoundError:
        return None
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _TORCHVISION_LIBRARY = torch.library.Library("torchvision", "DEF")
    _TORCHVISION_LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_LIBRARY.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision

    return torchvision


#: Set to ``0`` to run every network in float32 whatever the CPU (the test suite does, so its numbers are the same
#: on CPUs with and without native bf16: AMD EPYC and Intel Xeon with AMX round bf16 differently).
BF16_ENV = "XRAY_RESTORE_BF16"


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 kernels natively (oneDNN's check: AVX512 core / AVX512-BF16 / AMX), and bf16 is
    not turned off by ``XRAY_RESTORE_BF16=0``. On an AVX2-only CPU bf16 autocast is emulated and about 45× slower
    than float32 (measured: a 64-channel 3×3 conv)."""
    if os.environ.get(BF16_ENV, "1").strip() == "0":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def bf16_autocast(device_type: str = "cpu", enabled: bool = True) -> torch.autocast:
    """``torch.autocast(device_type, bfloat16)`` where bf16 is fast; float32 (autocast disabled) on CPUs without
    native bf16, so that asking for bf16 never makes a run slower than not asking."""
    use = bool(enabled) and (device_type != "cpu" or cpu_has_fast_bf16())
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=use)


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


#: Third-party messages a user cannot act on, emitted on every run of a CPU install (``-v`` shows them):
#: MONAI registers an nvImageCodec pydicom decoder plugin whenever a ``LoadImage`` is built; without the GPU
#: package it logs and warns that it did not, and pydicom's own decoders (which we use) take over. torchmetrics
#: warns that KID keeps its features in memory (a report holds a few hundred 64×64 images at most).
KNOWN_NOISE = ("nvImageCodec is not available", "nvImageCodec decoder plugin did not register",
               "will save all extracted features in buffer")


def quiet_known_noise(enabled: bool = True) -> None:
    """Hide :data:`KNOWN_NOISE` (harmless on CPU); ``enabled=False`` shows everything again (``-v``)."""
    logger = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    for f in [f for f in logger.filters if isinstance(f, _DropMessages)]:
        logger.removeFilter(f)
    warnings.filters[:] = [f for f in warnings.filters if not (f[0] == "ignore" and f[1] is not None
                                                                and any(n in f[1].pattern for n in KNOWN_NOISE))]
    if enabled:
        logger.addFilter(_DropMessages(*KNOWN_NOISE))
        for fragment in KNOWN_NOISE:
            warnings.filterwarnings("ignore", message=f".*{fragment}", category=UserWarning)
