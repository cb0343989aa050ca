"""The measurement model: one home, used the same way by evaluation, the Degrade transform and the conditional model."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from xray_restore.conditional import blur_condition
from xray_restore.measurement import PROTOCOLS, degrade, make_operator, measure, quantise
from xray_restore.operators import GaussianBlur
from xray_restore.transforms import Degrade

PACKAGE = Path(__file__).resolve().parents[1] / "xray_restore"


def _images(n: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.nn.functional.avg_pool2d(torch.rand(n, 1, 128, 128, generator=g, dtype=torch.float64), 2)


def test_quantise_clips_and_lands_on_the_levels():
    y = torch.tensor([-0.2, 0.0, 0.5, 0.50196, 1.3], dtype=torch.float64)
    q = quantise(y, 8)
    assert q.min() == 0 and q.max() == 1
    assert torch.allclose(q * 255, torch.round(q * 255))
    assert torch.equal(quantise(y, None), y)


def test_measure_is_blur_plus_scaled_noise_then_storage():
    x, op = _images(), GaussianBlur(64, 1.5, padding="symmetric")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    float_y = measure(x, op, 0.01, noise, quantize_bits=None)
    assert torch.allclose(float_y, op.H(x) + 0.01 * noise)
    assert torch.equal(measure(x, op, 0.01, noise, quantize_bits=8), quantise(float_y, 8))
    per_image = torch.tensor([0.0, 0.01, 0.02], dtype=torch.float64).view(3, 1, 1, 1)
    y = measure(x, op, per_image, noise, quantize_bits=None)
    assert torch.allclose(y[0], op.H(x)[0]) and not torch.allclose(y[2], float_y[2])
    with pytest.raises(ValueError, match="sigma_y"):
        measure(x, op, -0.1, noise)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_degrade_follows_its_protocol(protocol):
    x = _images()
    y = degrade(x, protocol, torch.Generator().manual_seed(2))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    settings = PROTOCOLS[protocol]
    expected = measure(x, make_operator(protocol), settings["sigma_y"], noise, settings["quantize_bits"],
                       thresholded=protocol == "case_study")
    assert torch.equal(y, expected.to(x.dtype))
    with pytest.raises(ValueError, match="protocol"):
        degrade(x, "nonsense", torch.Generator())  # type: ignore[arg-type]


def test_the_transform_and_the_conditional_condition_use_the_same_model():
    x, op = _images(1), GaussianBlur(64)
    transform = Degrade.from_protocol(op, "realistic").set_random_state(5)
    y = transform(x[0])
    noise = torch.from_numpy(Degrade.from_protocol(op, "realistic").set_random_state(5).R.standard_normal(x[0].shape))
    assert torch.allclose(y.double(), measure(x, op, 0.01, noise[None], 8)[0], atol=1e-6)
    condition = blur_condition(op, sigma_y_max=0.0)  # no noise: pure blur then 8-bit storage
    c = (condition(2 * x.float() - 1, torch.Generator().manual_seed(0)) + 1) / 2
    assert torch.allclose(c.double(), quantise(op.H(x.float()).double(), 8), atol=1e-6)


def test_nothing_below_the_runners_imports_evaluation():
    """``evaluation`` is a top-level runner: only the CLI and the package index may import it."""
    importers = []
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module == "evaluation":
                importers.append(path.name)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None and any(
                    a.name == "evaluation" for a in node.names):
                importers.append(path.name)
    assert sorted(set(importers)) == ["__init__.py", "cli.py"]
