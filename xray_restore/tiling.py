"""A patch prior over a whole image: the ε-network applied tile by tile, with bounded memory.

:class:`TiledDenoiser` wraps a fully convolutional ε-model ``network(x, t)`` trained on ``P × P`` patches so that
DDRM (or any sampler) can call it on an ``H × W`` image of any size:

- ``"shift"`` (as patch-prior samplers such as PaDIS do): non-overlapping ``P × P`` tiles whose grid is shifted by a
  fresh random offset at every call, so no tile seam stays in one place across the reverse steps; one network
  evaluation per pixel.
- ``"overlap"``: tiles overlapping by ``overlap`` pixels, their outputs averaged with a weight that falls linearly
  towards each tile's edge; ``(P / (P − overlap))²`` evaluations per pixel.

The image is mirrored past its borders to fill the last tiles. Tiles go through the network ``max_tiles`` at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

__all__ = ["TiledDenoiser", "TileMode"]

TileMode = Literal["shift", "overlap"]


def _pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Mirror-pad ``(B, C, H, W)`` (reflect where the image is large enough, else replicate)."""
    h, w = x.shape[-2:]
    mode = "reflect" if max(top, bottom) < h and max(left, right) < w else "replicate"
    return nn.functional.pad(x, (left, right, top, bottom), mode=mode)


class TiledDenoiser(nn.Module):
    """``network(x, t)`` on ``(B, 1, H, W)`` by ``tile × tile`` tiles (see the module docstring).

    Args:
        network: an ε-model ``network(x, timesteps)`` that takes ``(n, 1, tile, tile)`` and ``(n,)`` timesteps.
        tile: tile side P in pixels (the patch size the network was trained on, divisible by its depth).
        mode: ``"shift"`` (random grid shift per call) or ``"overlap"`` (averaged overlapping tiles).
        overlap: pixels shared by neighbouring tiles in ``"overlap"`` mode (0 <= overlap < tile).
        max_tiles: tiles per network call (bounds memory).
        generator: CPU generator of the grid shifts (``"shift"``); None: torch's global one.
    """

    def __init__(self, network: nn.Module | Callable[..., torch.Tensor], tile: int = 64, mode: TileMode = "shift",
                 overlap: int = 16, max_tiles: int = 64, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not (isinstance(tile, int) and tile >= 4):
            raise ValueError(f"tile must be an integer >= 4, got {tile!r}.")
        if mode not in ("shift", "overlap"):
            raise ValueError(f"mode must be 'shift' or 'overlap', got {mode!r}.")
        if mode == "overlap" and not 0 <= overlap < tile:
            raise ValueError(f"overlap must be in [0, {tile}), got {overlap}.")
        if max_tiles < 1:
            raise ValueError(f"max_tiles must be >= 1, got {max_tiles}.")
        self.network = network
        self.tile, self.mode, self.overlap, self.max_tiles = tile, mode, int(overlap), int(max_tiles)
        self.generator = generator

    def _run(self, tiles: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, tiles.shape[0], self.max_tiles):
            part = tiles[start: start + self.max_tiles]
            out.append(self.network(part, t[start: start + self.max_tiles]).to(part.dtype))
        return torch.cat(out)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """ε for ``x`` ``(B, 1, H, W)`` at ``timesteps`` ``(B,)``; the same shape as ``x``."""
        if x.ndim != 4:
            raise ValueError(f"x must be (B, C, H, W), got {tuple(x.shape)}.")
        b, c, h, w = x.shape
        p = self.tile
        step = p if self.mode == "shift" else p - self.overlap
        if self.mode == "shift":
            dr, dc = (int(v) for v in torch.randint(0, p, (2,), generator=self.generator))
        else:
            dr = dc = self.overlap // 2
        rows = max(1, -(-(h + dr - p) // step) + 1)  # tiles down: cover dr + h pixels
        cols = max(1, -(-(w + dc - p) // step) + 1)
        hp, wp = (rows - 1) * step + p, (cols - 1) * step + p
        padded = _pad(x, dr, hp - h - dr, dc, wp - w - dc)
        tiles = padded.unfold(2, p, step).unfold(3, p, step)  # (B, C, rows, cols, p, p)
        tiles = tiles.permute(0, 2, 3, 1, 4, 5).reshape(b * rows * cols, c, p, p)
        t = torch.as_tensor(timesteps, device=x.device).reshape(-1).expand(b).repeat_interleave(rows * cols)
        eps = self._run(tiles, t).reshape(b, rows, cols, c, p, p)
        if self.mode == "shift":  # non-overlapping: put the tiles back
            full = eps.permute(0, 3, 1, 4, 2, 5).reshape(b, c, hp, wp)
            return full[..., dr: dr + h, dc: dc + w]
        ramp = torch.minimum(torch.arange(p, device=x.device) + 1, p - torch.arange(p, device=x.device)).to(x.dtype)
        weight = torch.outer(ramp, ramp).clamp_max(float(max(1, self.overlap)))  # flat inside, falling to the edge
        total = torch.zeros(b, c, hp, wp, dtype=x.dtype, device=x.device)
        norm = torch.zeros(1, 1, hp, wp, dtype=x.dtype, device=x.device)
        for i in range(rows):
            for j in range(cols):
                r0, c0 = i * step, j * step
                total[..., r0: r0 + p, c0: c0 + p] += weight * eps[:, i, j]
                norm[..., r0: r0 + p, c0: c0 + p] += weight
        return (total / norm)[..., dr: dr + h, dc: dc + w]
