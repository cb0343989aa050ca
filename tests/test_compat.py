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


def test_bf16_can_be_turned_off_for_every_network(monkeypatch):
    """XRAY_RESTORE_BF16=0 (the suite sets it) runs float32 whatever the CPU."""
    from xray_restore import _compat

    monkeypatch.setenv(_compat.BF16_ENV, "0")
    _compat.cpu_has_fast_bf16.cache_clear()
    try:
        assert not _compat.cpu_has_fast_bf16()
        with bf16_autocast("cpu", enabled=True):
            assert not torch.is_autocast_enabled("cpu")
    finally:
        _compat.cpu_has_fast_bf16.cache_clear()
