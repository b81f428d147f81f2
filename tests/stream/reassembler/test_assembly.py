"""PointingAssembly: any order, interleaving, duplicates or chunking gives reassemble() exactly."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radiounet.core.tiling import kept_size, pack_kept, reassemble, tile_grid
from radiounet.stream.keys import chunk_key
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.reassembler.assembly import ChunkError, ChunkLayout, PointingAssembly

TILE, STRIDE = 16, 8  # small tiles keep the property test fast; the code is size-agnostic


def make_tiles(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Probabilities for every tile of ``shape``'s grid, a few NaN (blank input)."""
    grid = tile_grid(shape, tile=TILE, stride=STRIDE)
    rng = np.random.default_rng(seed)
    tiles = rng.random((len(grid), TILE, TILE), dtype=np.float32)
    tiles[rng.random(tiles.shape) < 0.02] = np.nan
    return tiles


def make_chunk(
    first: int,
    count: int,
    *,
    index: int = 0,
    n_chunks: int = 1,
    shape: tuple[int, int] = (40, 56),
    pointing_id: str = "p1",
    **overrides: Any,
) -> pb.TileChunk:
    """A chunk message of tiles ``[first, first + count)`` (fields overridable by name)."""
    grid = tile_grid(shape, tile=TILE, stride=STRIDE)
    fields: dict[str, Any] = {
        "pointing": pb.Pointing(id=pointing_id),
        "cutout": pb.ObjectRef(bucket="b", key=f"cutouts/s/{pointing_id}.fits"),
        "probabilities": pb.ObjectRef(
            bucket="b",
            key=chunk_key(pointing_id, "radio_unet", 2, first_tile=first, tile_count=count),
        ),
        "chunk_index": index,
        "chunk_count": n_chunks,
        "first_tile": first,
        "tile_count": count,
        "total_tiles": len(grid),
        "tile_size": TILE,
        "stride": STRIDE,
        "image_ny": shape[0],
        "image_nx": shape[1],
        "model": pb.ModelRef(name="radio_unet", version=2, signature="serving_default"),
        "profile": "lotss-dr2-lowres",
        "unit_scale": 1.0,
    }
    fields.update(overrides)
    return pb.TileChunk(**fields)


def chunking(total: int, size: int) -> list[tuple[int, int, int, int]]:
    """``(first, count, index, n_chunks)`` of consecutive chunks of ``size`` tiles."""
    starts = list(range(0, total, size))
    return [(s, min(size, total - s), i, len(starts)) for i, s in enumerate(starts)]


def feed(
    assembly: PointingAssembly[int],
    tiles: np.ndarray,
    parts: list[tuple[int, int, int, int]],
    shape: tuple[int, int],
    start_record: int = 0,
    kept: Callable[[], bool] = lambda: False,
) -> None:
    """Add ``parts`` of ``tiles``; each as kept pixels (what the tiler sends) if ``kept()``."""
    grid = tile_grid(shape, tile=TILE, stride=STRIDE)
    for n, (first, count, index, n_chunks) in enumerate(parts):
        array = tiles[first : first + count]
        layout = pb.TILE_LAYOUT_FULL
        if kept():
            array = pack_kept(array, grid, range(first, first + count))
            layout = pb.TILE_LAYOUT_KEPT
        chunk = make_chunk(first, count, index=index, n_chunks=n_chunks, shape=shape, layout=layout)
        assembly.add(chunk, array, start_record + n)


# --- reproduces reassemble() -----------------------------------------------------------------


def test_in_order_chunks_reproduce_reassemble_exactly() -> None:
    shape = (40, 56)
    tiles = make_tiles(shape)
    parts = chunking(len(tiles), 4)
    assembly: PointingAssembly[int] = PointingAssembly(make_chunk(0, 4, shape=shape))
    for n, part in enumerate(parts):
        assert not assembly.complete
        feed(assembly, tiles, [part], shape, start_record=n)
    assert assembly.complete
    assert assembly.placed_tiles == assembly.total_tiles == len(tiles)
    expected = reassemble(tiles, tile_grid(shape, tile=TILE, stride=STRIDE))
    result = assembly.probability()
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, expected)  # NaN in the same places, values bit-equal
    assert assembly.records == frozenset(range(len(parts)))


def test_out_of_order_and_duplicated_chunks_give_the_same_map() -> None:
    shape = (40, 56)
    tiles = make_tiles(shape, seed=1)
    parts = chunking(len(tiles), 5)
    shuffled = parts + parts[:2]  # two chunks arrive twice (a tiler replay)
    random.Random(3).shuffle(shuffled)
    assembly: PointingAssembly[int] = PointingAssembly(make_chunk(0, 5, shape=shape))
    feed(assembly, tiles, shuffled, shape)
    np.testing.assert_array_equal(
        assembly.probability(), reassemble(tiles, tile_grid(shape, tile=TILE, stride=STRIDE))
    )
    assert assembly.records == frozenset(range(len(shuffled)))


def test_interleaved_pointings_are_assembled_apart() -> None:
    shapes = {"a": (40, 56), "b": (33, 20)}
    tiles = {pid: make_tiles(s, seed=k) for k, (pid, s) in enumerate(shapes.items())}
    messages = [
        (pid, first, count, index, n)
        for pid, shape in shapes.items()
        for first, count, index, n in chunking(len(tiles[pid]), 3)
    ]
    random.Random(0).shuffle(messages)
    assemblies: dict[str, PointingAssembly[int]] = {}
    for record, (pid, first, count, index, n) in enumerate(messages):
        chunk = make_chunk(
            first, count, index=index, n_chunks=n, shape=shapes[pid], pointing_id=pid
        )
        assemblies.setdefault(pid, PointingAssembly(chunk)).add(
            chunk, tiles[pid][first : first + count], record
        )
    for pid, shape in shapes.items():
        grid = tile_grid(shape, tile=TILE, stride=STRIDE)
        np.testing.assert_array_equal(assemblies[pid].probability(), reassemble(tiles[pid], grid))
        expected = {r for r, m in enumerate(messages) if m[0] == pid}
        assert assemblies[pid].records == expected


def test_a_duplicate_does_not_change_the_map_even_with_other_values() -> None:
    shape = (40, 56)
    tiles = make_tiles(shape)
    chunk = make_chunk(0, 6, shape=shape)
    assembly: PointingAssembly[int] = PointingAssembly(chunk)
    assert assembly.add(chunk, tiles[:6], 0) == 6
    # A replay computed on other hardware may differ in the last bits: the first copy wins.
    assert assembly.add(chunk, np.clip(tiles[:6] + 0.01, 0, 1), 1) == 0
    feed(assembly, tiles, [(6, len(tiles) - 6, 1, 2)], shape, start_record=2)
    np.testing.assert_array_equal(
        assembly.probability(), reassemble(tiles, tile_grid(shape, tile=TILE, stride=STRIDE))
    )


def test_chunks_of_replicas_with_other_chunk_sizes_combine() -> None:
    shape = (40, 56)
    tiles = make_tiles(shape, seed=2)
    total = len(tiles)
    assembly: PointingAssembly[int] = PointingAssembly(make_chunk(0, 4, shape=shape))
    # Replica A sent its first chunks of 4 tiles, replica B (chunks of 7) the rest.
    feed(assembly, tiles, chunking(total, 4)[:3], shape)
    assert assembly.missing() == [(12, total - 1)]
    feed(assembly, tiles, chunking(total, 7)[1:], shape, start_record=10)
    assert assembly.complete
    np.testing.assert_array_equal(
        assembly.probability(), reassemble(tiles, tile_grid(shape, tile=TILE, stride=STRIDE))
    )


def test_an_image_smaller_than_a_tile() -> None:
    shape = (9, 12)
    tiles = make_tiles(shape)
    assert len(tiles) == 1
    chunk = make_chunk(0, 1, shape=shape)
    assembly: PointingAssembly[int] = PointingAssembly(chunk)
    assembly.add(chunk, tiles, 0)
    np.testing.assert_array_equal(assembly.probability(), tiles[0, :9, :12])


@settings(max_examples=60, deadline=None)
@given(
    ny=st.integers(1, 70),
    nx=st.integers(1, 70),
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_chunking_order_and_duplication_reproduces_reassemble(
    ny: int, nx: int, sizes: list[int], seed: int
) -> None:
    shape = (ny, nx)
    tiles = make_tiles(shape, seed=seed % 1000)
    total = len(tiles)
    rng = random.Random(seed)
    # One or more tiler runs (chunk sizes), each sending a random subset; the last run sends all.
    parts = [p for size in sizes[:-1] for p in chunking(total, size) if rng.random() < 0.5]
    parts += chunking(total, sizes[-1])
    parts += rng.sample(parts, k=min(len(parts), rng.randint(0, 3)))  # duplicates
    rng.shuffle(parts)
    first, count, index, n = parts[0]
    assembly: PointingAssembly[int] = PointingAssembly(
        make_chunk(first, count, index=index, n_chunks=n, shape=shape)
    )
    covered = np.zeros(total, dtype=bool)
    for record, part in enumerate(parts):
        assert assembly.complete == covered.all()
        # Whole tiles (older tilers, replayed topics) and kept pixels mix freely.
        feed(assembly, tiles, [part], shape, start_record=record, kept=lambda: rng.random() < 0.5)
        covered[part[0] : part[0] + part[1]] = True
    assert assembly.complete
    np.testing.assert_array_equal(
        assembly.probability(), reassemble(tiles, tile_grid(shape, tile=TILE, stride=STRIDE))
    )
    assert assembly.records == frozenset(range(len(parts)))


# --- errors ------------------------------------------------------------------------------


@pytest.fixture
def started() -> tuple[PointingAssembly[int], np.ndarray]:
    """An assembly holding the first chunk (tiles 0-3 of 4-tile chunks) of pointing p1."""
    tiles = make_tiles((40, 56))
    assembly: PointingAssembly[int] = PointingAssembly(make_chunk(0, 4, n_chunks=3))
    assembly.add(make_chunk(0, 4, n_chunks=3), tiles[:4], 0)
    return assembly, tiles


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"model": pb.ModelRef(name="radio_unet", version=3, signature="serving_default")},
            "model_version 3 (earlier chunks: 2)",
        ),
        ({"stride": 4, "total_tiles": 117}, "stride 4 (earlier chunks: 8)"),
        ({"image_nx": 57}, "image_shape (40, 57) (earlier chunks: (40, 56))"),
        ({"profile": "synthetic"}, "profile 'synthetic' (earlier chunks: 'lotss-dr2-lowres')"),
        ({"unit_scale": 1e-3}, "unit_scale 0.001 (earlier chunks: 1.0)"),
        (
            {"cutout": pb.ObjectRef(bucket="b", key="cutouts/s/other.fits")},
            "cutout_key 'cutouts/s/other.fits'",
        ),
    ],
)
def test_a_chunk_that_disagrees_with_the_earlier_ones(
    started: tuple[PointingAssembly[int], np.ndarray], overrides: dict[str, Any], message: str
) -> None:
    assembly, tiles = started
    chunk = make_chunk(4, 4, index=1, n_chunks=3, **overrides)
    with pytest.raises(ChunkError, match="differs from the pointing's earlier chunks") as info:
        assembly.add(chunk, tiles[4:8], 1)
    assert message in str(info.value)
    assert str(info.value).startswith("pointing p1 chunk 1/3 (tiles 4-7): ")


def test_a_chunk_of_another_pointing(started: tuple[PointingAssembly[int], np.ndarray]) -> None:
    assembly, tiles = started
    with pytest.raises(ChunkError, match="pointing_id 'p2' \\(earlier chunks: 'p1'\\)"):
        assembly.add(make_chunk(4, 4, index=1, n_chunks=3, pointing_id="p2"), tiles[4:8], 1)


@pytest.mark.parametrize(
    ("chunk_args", "array", "message"),
    [
        ((22, 4, 2, 3), slice(20, 24), "tile range outside the grid's 24 tiles"),
        ((-1, 4, 2, 3), slice(0, 4), "tile range outside the grid's 24 tiles"),
        ((4, 0, 1, 3), slice(4, 4), "tile range outside the grid's 24 tiles"),
        ((4, 4, 3, 3), slice(4, 8), "chunk index must be in 0..2"),
        ((4, 4, 1, 3), slice(4, 7), "array of shape (3, 16, 16), expected (4, 16, 16)"),
    ],
)
def test_a_chunk_with_a_bad_range_or_array(
    started: tuple[PointingAssembly[int], np.ndarray],
    chunk_args: tuple[int, int, int, int],
    array: slice,
    message: str,
) -> None:
    assembly, tiles = started
    first, count, index, n = chunk_args
    with pytest.raises(ChunkError) as info:
        assembly.add(make_chunk(first, count, index=index, n_chunks=n), tiles[array], 1)
    assert message in str(info.value)


def test_kept_pixels_reproduce_reassemble_and_a_wrong_length_is_refused(
    started: tuple[PointingAssembly[int], np.ndarray],
) -> None:
    assembly, tiles = started
    grid = tile_grid((40, 56), tile=TILE, stride=STRIDE)
    packed = pack_kept(tiles[4:8], grid, range(4, 8))
    assert packed.shape == (kept_size(grid, range(4, 8)),) and packed.size < 4 * TILE * TILE
    short = make_chunk(4, 4, index=1, n_chunks=3, layout=pb.TILE_LAYOUT_KEPT)
    with pytest.raises(ChunkError) as info:
        assembly.add(short, packed[:-1], 1)
    assert f"array of shape ({packed.size - 1},), expected ({packed.size},)" in str(info.value)
    assert "TILE_LAYOUT_KEPT" in str(info.value)
    assert assembly.placed_tiles == 4  # unchanged by the refused chunk
    feed(assembly, tiles, [(4, 4, 1, 3), (8, 16, 2, 3)], (40, 56), 1, kept=lambda: True)
    np.testing.assert_array_equal(assembly.probability(), reassemble(tiles, grid))


def test_a_duplicate_with_another_tile_range(
    started: tuple[PointingAssembly[int], np.ndarray],
) -> None:
    assembly, tiles = started
    first_object = make_chunk(0, 4).probabilities
    liar = make_chunk(0, 5, n_chunks=3, probabilities=first_object)
    with pytest.raises(ChunkError) as info:
        assembly.add(liar, tiles[:5], 1)
    assert str(info.value) == (
        "pointing p1 chunk 0/3 (tiles 0-4): an earlier chunk with the same probabilities "
        "object (tiles/p1/radio_unet-2/00000-00003.npy) covered tiles 0-3"
    )


def test_same_chunk_index_from_a_replica_with_another_chunk_size_is_fine(
    started: tuple[PointingAssembly[int], np.ndarray],
) -> None:
    assembly, tiles = started  # chunk 0/3 of 4-tile chunks: tiles 0-3
    # A replica cutting 9-tile chunks also sends 3 chunks; its chunk 0/3 is tiles 0-8.
    assert assembly.add(make_chunk(0, 9, n_chunks=3), tiles[:9], 1) == 5


def _as_int(t: np.ndarray) -> np.ndarray:
    return np.nan_to_num(t, nan=0.0).astype(np.int32)


def _with_inf(t: np.ndarray) -> np.ndarray:
    out = t.copy()
    out[0, 0, 0] = np.inf
    return out


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (_as_int, "array of type int32, expected floating point"),
        (lambda t: t * 2.0, "probabilities outside [0, 1]"),
        (lambda t: t - 0.5, "probabilities outside [0, 1]"),
        (_with_inf, "probabilities outside [0, 1]"),
    ],
)
def test_a_chunk_with_bad_values(
    started: tuple[PointingAssembly[int], np.ndarray],
    values: Callable[[np.ndarray], np.ndarray],
    message: str,
) -> None:
    assembly, tiles = started
    with pytest.raises(ChunkError) as info:
        assembly.add(make_chunk(4, 4, index=1, n_chunks=3), values(tiles[4:8]), 1)
    assert str(info.value) == f"pointing p1 chunk 1/3 (tiles 4-7): {message}"


def test_an_error_leaves_the_assembly_unchanged(
    started: tuple[PointingAssembly[int], np.ndarray],
) -> None:
    assembly, tiles = started
    with pytest.raises(ChunkError):
        assembly.add(make_chunk(4, 4, index=1, n_chunks=3), tiles[4:7], 7)
    assert assembly.placed_tiles == 4
    assert assembly.records == {0}
    assert assembly.missing() == [(4, 23)]
    # The same chunk with a correct array is still accepted afterwards.
    assert assembly.add(make_chunk(4, 4, index=1, n_chunks=3), tiles[4:8], 1) == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"total_tiles": 23}, "total_tiles 23 does not match the 24 tiles of a 56x40 image"),
        ({"stride": 5}, "invalid tile grid (tile - stride must be even"),
        ({"image_ny": 0}, "invalid tile grid (shape must be two positive integers"),
        ({"profile": "no-such-survey"}, "unknown profile 'no-such-survey'"),
        ({"unit_scale": 0.0}, "unit_scale must be positive, got 0.0"),
    ],
)
def test_a_first_chunk_with_an_inconsistent_grid(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ChunkError) as info:
        PointingAssembly(make_chunk(0, 4, **overrides))
    assert str(info.value).startswith("pointing p1: ")
    assert message in str(info.value)


def test_the_map_is_not_available_before_it_is_complete(
    started: tuple[PointingAssembly[int], np.ndarray],
) -> None:
    assembly, _ = started
    with pytest.raises(ValueError, match="pointing p1: 20 of 24 tiles still missing"):
        assembly.probability()


def test_layout_differences_name_each_field() -> None:
    a = ChunkLayout.of(make_chunk(0, 4))
    b = ChunkLayout.of(make_chunk(0, 4, stride=4, unit_scale=2.0))
    assert a.differences(a) == []
    assert a.differences(b) == [
        "stride 4 (earlier chunks: 8)",
        "unit_scale 2.0 (earlier chunks: 1.0)",
    ]
