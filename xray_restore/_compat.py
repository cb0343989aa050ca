"""Import shim: PyPI only has CUDA builds of torchvision, whose compiled ops fail to load against CPU torch.

``import torchvision`` then dies registering fake kernels for ``torchvision::nms``; torchmetrics (LPIPS) imports
torchvision, so everything that imports torchmetrics would fail. Defining the two op schemas first lets
torchvision import; its models and transforms work, its compiled detection ops (nms, roi_align) do not.
Called once from ``xray_restore/__init__.py`` before anything imports torchmetrics.
"""

from __future__ import annotations

import sys

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
