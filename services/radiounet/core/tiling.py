"""Overlapping tiling of an image and reassembly from the tiles' central parts.

Radio U-Net sees 192x192 tiles. To hide the tile-border effects of a
convolutional network, tiles overlap by half (stride 96) and each pixel of the
reassembled map is taken from the one tile in which it lies furthest from a
border (Stuardi et al. 2024, Sec. 5 and Fig. 3).

Along each axis the tile origins are ``0, stride, 2*stride, ...`` plus one last
tile aligned with the far edge, so the image is covered completely without
padding. Consecutive tiles split their overlap at the midpoint of their centres,
which for the regular stride means each tile keeps its central ``stride``
pixels (a 48-pixel margin on each side is discarded); the first and last tiles
also keep the strip between their centre and the image border, which no other
tile sees. An image smaller than a tile is padded (with NaN) up to one tile.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_STRIDE",
    "DEFAULT_TILE",
    "AxisPlan",
    "TileGrid",
    "extract_tiles",
    "kept_size",
    "kept_windows",
    "pack_kept",
    "place_tiles",
    "reassemble",
    "tile_grid",
    "unpack_kept",
]

DEFAULT_TILE = 192
DEFAULT_STRIDE = 96


@dataclass(frozen=True)
class AxisPlan:
    """Tiling of one axis.

    Attributes
    ----------
    origins : tuple of int
        First image index of each tile.
    keep_start, keep_stop : tuple of int
        Image index range ``[start, stop)`` each tile contributes to the map.
    """

    origins: tuple[int, ...]
    keep_start: tuple[int, ...]
    keep_stop: tuple[int, ...]


def _axis_plan(length: int, tile: int, stride: int) -> AxisPlan:
    if length <= tile:
        return AxisPlan((0,), (0,), (length,))
    last = length - tile
    origins = list(range(0, last, stride))
    origins.append(last)
    # Boundary between neighbours: midpoint of their centres.
    bounds = [(a + b + tile) // 2 for a, b in itertools.pairwise(origins)]
    starts = (0, *bounds)
    stops = (*bounds, length)
    return AxisPlan(tuple(origins), starts, stops)


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of an image lie and which pixels each one contributes.

    Tiles are numbered row-major: tile ``k`` is row ``k // nx``, column
    ``k % nx``.
    """

    shape: tuple[int, int]
    tile: int
    stride: int
    y: AxisPlan
    x: AxisPlan

    @property
    def ny(self) -> int:
        return len(self.y.origins)

    @property
    def nx(self) -> int:
        return len(self.x.origins)

    def __len__(self) -> int:
        return self.ny * self.nx

    def batches(self, size: int) -> Iterator[range]:
        """Yield consecutive ranges of tile indices of at most ``size`` tiles."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size!r}")
        for start in range(0, len(self), size):
            yield range(start, min(start + size, len(self)))


def tile_grid(
    shape: tuple[int, ...], *, tile: int = DEFAULT_TILE, stride: int = DEFAULT_STRIDE
) -> TileGrid:
    """Plan the overlapping tiles that cover an image of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the image.
    tile : int, optional
        Tile side in pixels (192 for Radio U-Net).
    stride : int, optional
        Step between tile origins, at most ``tile`` with ``tile - stride``
        even (96 for half overlap).

    Raises
    ------
    ValueError
        If the shape is not 2-D and positive or tile/stride are inconsistent.

    Examples
    --------
    >>> grid = tile_grid((960, 960))
    >>> len(grid), grid.y.origins[:3], grid.y.keep_start[:3]
    (81, (0, 96, 192), (0, 144, 240))
    """
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be two positive integers, got {shape!r}")
    if tile < 1:
        raise ValueError(f"tile must be positive, got {tile!r}")
    if not 0 < stride <= tile:
        raise ValueError(f"stride must be in 1..tile ({tile}), got {stride!r}")
    if (tile - stride) % 2:
        # Otherwise the discarded margins differ by a pixel between the two sides.
        raise ValueError(f"tile - stride must be even, got tile {tile!r} and stride {stride!r}")
    ny, nx = int(shape[0]), int(shape[1])
    return TileGrid(
        (ny, nx), tile, stride, _axis_plan(ny, tile, stride), _axis_plan(nx, tile, stride)
    )


def extract_tiles(
    image: NDArray[np.floating], grid: TileGrid, indices: range | list[int]
) -> NDArray[np.float32]:
    """Cut tiles ``indices`` out of ``image`` as a ``(n, tile, tile)`` float32 array.

    Only the rows the tiles need are read, so ``image`` may be a memory map.
    Where the image is smaller than a tile, the rest of the tile is NaN.
    """
    if image.shape != grid.shape:
        raise ValueError(f"image shape {image.shape} does not match grid shape {grid.shape}")
    t = grid.tile
    out = np.full((len(indices), t, t), np.nan, dtype=np.float32)
    for n, k in enumerate(indices):
        y0 = grid.y.origins[k // grid.nx]
        x0 = grid.x.origins[k % grid.nx]
        patch = image[y0 : y0 + t, x0 : x0 + t]
        out[n, : patch.shape[0], : patch.shape[1]] = patch
    return out


def place_tiles(
    out: NDArray[np.floating],
    grid: TileGrid,
    indices: range | list[int],
    tiles: NDArray[np.floating],
) -> None:
    """Write the kept part of each of ``tiles`` (tile numbers ``indices``) into ``out``."""
    if out.shape != grid.shape:
        raise ValueError(f"output shape {out.shape} does not match grid shape {grid.shape}")
    if tiles.shape[0] != len(indices) or tiles.shape[1:3] != (grid.tile, grid.tile):
        raise ValueError(
            f"expected {len(indices)} tiles of {grid.tile}x{grid.tile}, got {tiles.shape}"
        )
    for n, (image_win, tile_win) in enumerate(kept_windows(grid, indices)):
        out[image_win] = tiles[n][tile_win]


def reassemble(tiles: NDArray[np.floating], grid: TileGrid) -> NDArray[np.float32]:
    """Reassemble a full map from all tiles of ``grid`` (in tile order)."""
    if tiles.shape[0] != len(grid):
        raise ValueError(f"expected {len(grid)} tiles, got {tiles.shape[0]}")
    out = np.empty(grid.shape, dtype=np.float32)
    place_tiles(out, grid, range(len(grid)), tiles)
    return out


def kept_windows(
    grid: TileGrid, indices: range | list[int]
) -> list[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """For each tile of ``indices``: the image window it contributes, and that window in the tile.

    Each item is ``((image_rows, image_cols), (tile_rows, tile_cols))``.
    """
    out = []
    for k in indices:
        iy, ix = divmod(k, grid.nx)
        y0, x0 = grid.y.origins[iy], grid.x.origins[ix]
        ys, ye = grid.y.keep_start[iy], grid.y.keep_stop[iy]
        xs, xe = grid.x.keep_start[ix], grid.x.keep_stop[ix]
        out.append(
            (
                (slice(ys, ye), slice(xs, xe)),
                (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0)),
            )
        )
    return out


def _window_shapes(
    windows: list[tuple[tuple[slice, slice], tuple[slice, slice]]],
) -> list[tuple[int, int]]:
    return [(rows.stop - rows.start, cols.stop - cols.start) for (rows, cols), _ in windows]


def kept_size(grid: TileGrid, indices: range | list[int]) -> int:
    """Number of map pixels the tiles ``indices`` contribute (the length of :func:`pack_kept`)."""
    return sum(h * w for h, w in _window_shapes(kept_windows(grid, indices)))


def pack_kept(
    tiles: NDArray[np.floating], grid: TileGrid, indices: range | list[int]
) -> NDArray[np.floating]:
    """Only the pixels each tile contributes to the map, tile after tile, as one 1-D array.

    A 960 px cutout's 81 tiles of 192 px keep 31% of their pixels; the rest is
    never read by the reassembly, so it need not be stored or moved.
    :func:`unpack_kept` is the inverse.

    >>> grid = tile_grid((300, 300), tile=192, stride=96)
    >>> tiles = np.random.default_rng(1).random((len(grid), 192, 192), dtype=np.float32)
    >>> packed = pack_kept(tiles, grid, range(len(grid)))
    >>> packed.shape == (300 * 300,)
    True
    >>> out = np.empty((300, 300), np.float32)
    >>> for (image_win, _), part in zip(kept_windows(grid, range(len(grid))),
    ...                                 unpack_kept(packed, grid, range(len(grid)))):
    ...     out[image_win] = part
    >>> bool(np.array_equal(out, reassemble(tiles, grid)))
    True
    """
    if tiles.shape != (len(indices), grid.tile, grid.tile):
        raise ValueError(
            f"expected {len(indices)} tiles of {grid.tile}x{grid.tile}, got {tiles.shape}"
        )
    parts = [
        tiles[n][tile_win].ravel() for n, (_, tile_win) in enumerate(kept_windows(grid, indices))
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=tiles.dtype)


def unpack_kept(
    packed: NDArray[np.floating], grid: TileGrid, indices: range | list[int]
) -> list[NDArray[np.floating]]:
    """Split a :func:`pack_kept` array into each tile's 2-D kept window (views, tile order).

    Raises
    ------
    ValueError
        If ``packed`` is not 1-D with exactly :func:`kept_size` values.
    """
    shapes = _window_shapes(kept_windows(grid, indices))
    want = sum(h * w for h, w in shapes)
    if packed.shape != (want,):
        raise ValueError(
            f"expected {want} kept pixels for tiles {_describe_indices(indices)}, "
            f"got an array of shape {packed.shape}"
        )
    out = []
    offset = 0
    for h, w in shapes:
        out.append(packed[offset : offset + h * w].reshape(h, w))
        offset += h * w
    return out


def _describe_indices(indices: range | list[int]) -> str:
    if not len(indices):
        return "(none)"
    return f"{indices[0]}-{indices[-1]}" if len(indices) > 1 else str(indices[0])
