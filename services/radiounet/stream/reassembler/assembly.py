"""Gather the probability tiles of one pointing, chunk by chunk, into its map (pure, no I/O).

Chunks of a pointing may arrive in any order, interleaved with other
pointings, more than once (a tiler replayed its cutout) and from several tiler
replicas, possibly cut into chunks of different sizes. An assembly therefore
tracks *tiles*, not chunks: each chunk's tiles are placed into the float32 map
as they arrive (only the map is kept, never the chunk arrays), and the map is
complete once every tile of the grid has been placed. A tile already placed is
not placed again, so duplicates cannot change the map; since every pixel is
taken from exactly one tile (see :mod:`radiounet.core.tiling`), the result is
bit-for-bit :func:`~radiounet.core.tiling.reassemble` of the same tiles.

>>> grid = tile_grid((40, 40), tile=16, stride=8)
>>> tiles = np.random.default_rng(0).random((len(grid), 16, 16), dtype=np.float32)
>>> def chunk(first, count, index, n):
...     return pb.TileChunk(
...         pointing=pb.Pointing(id="p1"), chunk_index=index, chunk_count=n,
...         first_tile=first, tile_count=count, total_tiles=len(grid), tile_size=16,
...         stride=8, image_ny=40, image_nx=40, profile="lotss-dr2-lowres", unit_scale=1.0)
>>> a = PointingAssembly(chunk(0, 10, 0, 2))
>>> a.add(chunk(10, 6, 1, 2), tiles[10:], "offset 7"), a.complete
(6, False)
>>> a.add(chunk(0, 10, 0, 2), tiles[:10], "offset 8"), a.complete
(10, True)
>>> from radiounet.core.tiling import reassemble
>>> bool(np.array_equal(a.probability(), reassemble(tiles, grid)))
True
>>> sorted(a.records)
['offset 7', 'offset 8']
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from radiounet.core.normalisation import get_profile
from radiounet.core.tiling import (
    TileGrid,
    kept_size,
    kept_windows,
    place_tiles,
    tile_grid,
    unpack_kept,
)
from radiounet.stream.proto import pipeline_pb2 as pb

__all__ = ["ChunkError", "ChunkLayout", "PointingAssembly"]

#: Anything that names the message a chunk came from (the stage uses RecordId).
R = TypeVar("R", bound=Hashable)


class ChunkError(ValueError):
    """A chunk that cannot belong to its pointing's map; the message says why."""


@dataclass(frozen=True)
class ChunkLayout:
    """What every chunk of one pointing must agree on: image, grid, model and normalisation."""

    pointing_id: str
    image_shape: tuple[int, int]
    tile_size: int
    stride: int
    total_tiles: int
    model_name: str
    model_version: int
    model_signature: str
    profile: str
    unit_scale: float
    cutout_key: str

    @classmethod
    def of(cls, chunk: pb.TileChunk) -> ChunkLayout:
        return cls(
            pointing_id=chunk.pointing.id,
            image_shape=(int(chunk.image_ny), int(chunk.image_nx)),
            tile_size=int(chunk.tile_size),
            stride=int(chunk.stride),
            total_tiles=int(chunk.total_tiles),
            model_name=chunk.model.name,
            model_version=int(chunk.model.version),
            model_signature=chunk.model.signature,
            profile=chunk.profile,
            unit_scale=float(chunk.unit_scale),
            cutout_key=chunk.cutout.key,
        )

    def grid(self) -> TileGrid:
        """The tile grid these chunks describe, after checking it is self-consistent.

        Raises
        ------
        ChunkError
            If the shape, tile size or stride is invalid, the tile count is not
            the grid's, the profile is unknown or the unit scale not positive.
        """
        where = f"pointing {self.pointing_id}"
        try:
            grid = tile_grid(self.image_shape, tile=self.tile_size, stride=self.stride)
        except ValueError as exc:
            raise ChunkError(f"{where}: invalid tile grid ({exc})") from None
        if self.total_tiles != len(grid):
            raise ChunkError(
                f"{where}: total_tiles {self.total_tiles} does not match the "
                f"{len(grid)} tiles of a {self.image_shape[1]}x{self.image_shape[0]} image "
                f"(tile {self.tile_size}, stride {self.stride})"
            )
        try:
            get_profile(self.profile)
        except ValueError as exc:
            raise ChunkError(f"{where}: {exc}") from None
        if not (math.isfinite(self.unit_scale) and self.unit_scale > 0):
            raise ChunkError(f"{where}: unit_scale must be positive, got {self.unit_scale!r}")
        return grid

    def differences(self, other: ChunkLayout) -> list[str]:
        """``"field: value (earlier chunks: value)"`` for each field where ``other`` differs."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return [
            f"{name} {theirs[name]!r} (earlier chunks: {mine[name]!r})"
            for name in mine
            if mine[name] != theirs[name]
        ]


class PointingAssembly(Generic[R]):
    """The probability map of one pointing, filled chunk by chunk.

    Parameters
    ----------
    first : TileChunk
        Any chunk of the pointing; it fixes the layout the others must match
        (its tiles are added with :meth:`add`, like every other chunk's).

    Raises
    ------
    ChunkError
        If ``first`` describes an inconsistent grid (see :meth:`ChunkLayout.grid`).
    """

    def __init__(self, first: pb.TileChunk) -> None:
        self.layout = ChunkLayout.of(first)
        self.grid = self.layout.grid()
        #: The first chunk's message (refs and metadata only): pointing, cutout, model.
        self.chunk = pb.TileChunk()
        self.chunk.CopyFrom(first)
        self._map = np.full(self.grid.shape, np.nan, dtype=np.float32)
        self._placed = np.zeros(len(self.grid), dtype=bool)
        # Probabilities object -> (first_tile, tile_count) of the chunk that named it. Not
        # keyed by chunk index: replicas with other chunk sizes may share chunk counts.
        self._ranges: dict[str, tuple[int, int]] = {}
        self._records: set[R] = set()

    @property
    def pointing_id(self) -> str:
        return self.layout.pointing_id

    @property
    def total_tiles(self) -> int:
        return len(self.grid)

    @property
    def placed_tiles(self) -> int:
        return int(self._placed.sum())

    @property
    def complete(self) -> bool:
        """True once every tile of the grid has been placed."""
        return bool(self._placed.all())

    @property
    def records(self) -> frozenset[R]:
        """Every message that contributed a chunk (duplicates included)."""
        return frozenset(self._records)

    def missing(self) -> list[tuple[int, int]]:
        """Inclusive ranges ``(first, last)`` of the tiles not placed yet."""
        out: list[tuple[int, int]] = []
        for k in np.flatnonzero(~self._placed).tolist():
            if out and out[-1][1] == k - 1:
                out[-1] = (out[-1][0], k)
            else:
                out.append((k, k))
        return out

    def add(self, chunk: pb.TileChunk, tiles: NDArray[Any], record: R) -> int:
        """Place the tiles of ``chunk`` not placed yet; remember ``record``.

        Parameters
        ----------
        chunk : TileChunk
            The chunk's message.
        tiles : ndarray
            Its probabilities, floats in [0, 1] (NaN where the input was blank):
            ``(tile_count, tile_size, tile_size)`` for ``TILE_LAYOUT_FULL``, the
            1-D :func:`~radiounet.core.tiling.pack_kept` array for
            ``TILE_LAYOUT_KEPT``.
        record : hashable
            What names the chunk's message, returned by :attr:`records`.

        Returns
        -------
        int
            Number of tiles newly placed (0 for a duplicate).

        Raises
        ------
        ChunkError
            If the chunk disagrees with the pointing's layout, its tile range
            lies outside the grid or differs from that of an earlier chunk
            naming the same probabilities object (a duplicate must be a copy),
            or the array has the wrong shape, type or values. The assembly is
            unchanged then.
        """
        first, count = int(chunk.first_tile), int(chunk.tile_count)
        index, n_chunks = int(chunk.chunk_index), int(chunk.chunk_count)
        where = (
            f"pointing {chunk.pointing.id} chunk {index}/{n_chunks} "
            f"(tiles {first}-{first + count - 1})"
        )
        diff = self.layout.differences(ChunkLayout.of(chunk))
        if diff:
            raise ChunkError(
                f"{where}: differs from the pointing's earlier chunks: " + "; ".join(diff)
            )
        if not 0 <= index < n_chunks:
            raise ChunkError(f"{where}: chunk index must be in 0..{n_chunks - 1}")
        if count < 1 or first < 0 or first + count > self.total_tiles:
            raise ChunkError(f"{where}: tile range outside the grid's {self.total_tiles} tiles")
        object_key = chunk.probabilities.key
        earlier = self._ranges.get(object_key) if object_key else None
        if earlier is not None and earlier != (first, count):
            raise ChunkError(
                f"{where}: an earlier chunk with the same probabilities object "
                f"({object_key}) covered tiles {earlier[0]}-{earlier[0] + earlier[1] - 1}"
            )
        indices = range(first, first + count)
        if chunk.layout == pb.TILE_LAYOUT_KEPT:
            want: tuple[int, ...] = (kept_size(self.grid, indices),)
        elif chunk.layout == pb.TILE_LAYOUT_FULL:
            want = (count, self.grid.tile, self.grid.tile)
        else:
            raise ChunkError(f"{where}: unknown tile layout {chunk.layout}")
        if tiles.shape != want:
            layout = pb.TileLayout.Name(chunk.layout)
            raise ChunkError(f"{where}: array of shape {tiles.shape}, expected {want} ({layout})")
        if not np.issubdtype(tiles.dtype, np.floating):
            raise ChunkError(f"{where}: array of type {tiles.dtype}, expected floating point")
        # NaN (blank input) is allowed; comparisons with NaN are False, so it passes.
        if np.any((tiles < 0) | (tiles > 1)):
            raise ChunkError(f"{where}: probabilities outside [0, 1]")

        if object_key:
            self._ranges[object_key] = (first, count)
        self._records.add(record)
        new = [k for k in indices if not self._placed[k]]
        if not new:
            return 0
        if chunk.layout == pb.TILE_LAYOUT_KEPT:
            windows = kept_windows(self.grid, indices)
            for k, (image_win, _), part in zip(
                indices, windows, unpack_kept(tiles, self.grid, indices), strict=True
            ):
                if not self._placed[k]:
                    self._map[image_win] = part
        else:
            place_tiles(self._map, self.grid, new, tiles[np.asarray(new) - first])
        self._placed[new] = True
        return len(new)

    def probability(self) -> NDArray[np.float32]:
        """The complete map (float32, the image's shape; the assembly's own array).

        Raises
        ------
        ValueError
            If tiles are still missing.
        """
        if not self.complete:
            raise ValueError(
                f"pointing {self.pointing_id}: {self.total_tiles - self.placed_tiles} of "
                f"{self.total_tiles} tiles still missing"
            )
        return self._map
