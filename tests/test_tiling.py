"""The tiled denoiser: a patch network over a whole image of any size."""

from __future__ import annotations

import pytest
import torch

from xray_restore.tiling import TiledDenoiser


def pointwise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A denoiser that looks at one pixel: tiling must not change it at all."""
    return 0.5 * x + 0.01 * t.view(-1, 1, 1, 1).to(x.dtype)


@pytest.mark.parametrize("mode", ["shift", "overlap"])
@pytest.mark.parametrize("shape", [(100, 37), (16, 16), (5, 70)])
def test_tiled_equals_untiled_for_a_pointwise_denoiser(mode, shape):
    x, t = torch.rand(2, 1, *shape), torch.tensor([3, 7])
    tiled = TiledDenoiser(pointwise, tile=16, mode=mode, overlap=6, max_tiles=5,
                          generator=torch.Generator().manual_seed(0))
    assert torch.allclose(tiled(x, t), pointwise(x, t), atol=1e-6)


def test_the_grid_shifts_between_calls_and_tiles_go_in_bounded_batches():
    seen = []

    def network(x, t):
        seen.append(x.shape[0])
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x)  # constant per tile: shows where the tiles are

    tiled = TiledDenoiser(network, tile=8, mode="shift", max_tiles=3, generator=torch.Generator().manual_seed(1))
    x = torch.rand(1, 1, 20, 20)
    first, second = tiled(x, torch.tensor([5])), tiled(x, torch.tensor([5]))
    assert max(seen) <= 3
    assert not torch.equal(first, second)  # another grid: other tile means


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="mode"):
        TiledDenoiser(pointwise, mode="tiles")
    with pytest.raises(ValueError, match="overlap"):
        TiledDenoiser(pointwise, tile=16, mode="overlap", overlap=16)
