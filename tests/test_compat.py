"""bf16 autocast only where the CPU runs bf16 natively: asking for bf16 never makes a run slower."""

from __future__ import annotations

import torch

from xray_restore._compat import bf16_autocast, cpu_has_fast_bf16


def test_bf16_autocast_follows_the_cpu():
    with bf16_autocast("cpu", enabled=True):
        assert torch.is_autocast_enabled("cpu") == cpu_has_fast_bf16()
        out = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
        assert out.dtype == (torch.bfloat16 if cpu_has_fast_bf16() else torch.float32)
    with bf16_autocast("cpu", enabled=False):
        assert not torch.is_autocast_enabled("cpu")
