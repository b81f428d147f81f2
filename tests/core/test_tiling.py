"""Tests for radiounet.core.tiling: overlapping tiles and reassembly from their centres."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radiounet.core.tiling import (
    DEFAULT_STRIDE,
    DEFAULT_TILE,
    AxisPlan,
    extract_tiles,
    kept_size,
    kept_windows,
    pack_kept,
    place_tiles,
    reassemble,
    tile_grid,
    unpack_kept,
)

PROPERTY = settings(max_examples=60, deadline=None, database=None)

lengths = st.integers(min_value=1, max_value=700)
# (tile, stride) with an even tile and an even stride <= tile, as the module documents.
even_tile_stride = st.integers(min_value=1, max_value=32).flatmap(
    lambda half: st.tuples(
        st.just(2 * half), st.integers(min_value=1, max_value=half).map(lambda s: 2 * s)
    )
)
#: An image of up to 200 x 200 px, any even tile/stride pair and a random seed.
any_grid = given(
    ny=st.integers(1, 200),
    nx=st.integers(1, 200),
    tile_stride=even_tile_stride,
    seed=st.integers(0, 2**32 - 1),
)


def random_image(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def identity_reassembly(image: np.ndarray, **kw: int) -> np.ndarray:
    grid = tile_grid(image.shape, **kw)
    tiles = extract_tiles(image, grid, range(len(grid)))
    return reassemble(tiles, grid)


def check_axis_plan(plan: AxisPlan, length: int, tile: int, stride: int) -> None:
    """Every invariant of one axis: coverage, partition, kept region in tile, central part."""
    origins, starts, stops = plan.origins, plan.keep_start, plan.keep_stop
    assert len(origins) == len(starts) == len(stops) >= 1
    # The kept ranges partition [0, length): contiguous, non-empty, in order.
    assert starts[0] == 0
    assert stops[-1] == length
    assert all(a < b for a, b in zip(starts, stops, strict=True))
    assert all(b == a for a, b in zip(stops[:-1], starts[1:], strict=True))
    if length <= tile:
        assert origins == (0,)
        return
    # Tiles lie inside the image, start at 0 and end at the far edge, stepping <= stride.
    assert origins[0] == 0
    assert origins[-1] == length - tile
    steps = np.diff(origins)
    assert np.all(steps > 0)
    assert np.all(steps <= stride)
    margin = (tile - stride) / 2
    for o, s, e in zip(origins, starts, stops, strict=True):
        # The kept region lies inside its tile ...
        assert o <= s < e <= o + tile
        # ... and away from the image border it keeps (tile - stride) / 2 from the tile edge.
        if s > 0:
            assert s - o >= margin, (o, s, e)
        if e < length:
            assert o + tile - e >= margin, (o, s, e)


# ---------------------------------------------------------------------------
# Properties over arbitrary shapes
# ---------------------------------------------------------------------------


@PROPERTY
@given(ny=lengths, nx=lengths, seed=st.integers(0, 2**32 - 1))
def test_identity_model_reassembles_input_exactly(ny: int, nx: int, seed: int) -> None:
    image = random_image((ny, nx), seed)
    out = identity_reassembly(image)
    assert out.shape == image.shape
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image)


@PROPERTY
@any_grid
def test_identity_model_reassembles_input_exactly_other_tiles(
    ny: int, nx: int, tile_stride: tuple[int, int], seed: int
) -> None:
    tile, stride = tile_stride
    image = random_image((ny, nx), seed)
    np.testing.assert_array_equal(identity_reassembly(image, tile=tile, stride=stride), image)


@PROPERTY
@any_grid
def test_packed_kept_pixels_hold_each_map_pixel_once_and_unpack_to_reassemble(
    ny: int, nx: int, tile_stride: tuple[int, int], seed: int
) -> None:
    tile, stride = tile_stride
    grid = tile_grid((ny, nx), tile=tile, stride=stride)
    tiles = np.random.default_rng(seed).random((len(grid), tile, tile), dtype=np.float32)
    out = np.full((ny, nx), np.nan, np.float32)
    split = len(grid) // 2  # two chunks, as a tiler sends them
    total = 0
    for indices in (range(split), range(split, len(grid))):
        packed = pack_kept(tiles[indices.start : indices.stop], grid, indices)
        assert packed.shape == (kept_size(grid, indices),)
        total += packed.size
        windows = kept_windows(grid, indices)
        for (image_win, _), part in zip(windows, unpack_kept(packed, grid, indices), strict=True):
            assert np.isnan(out[image_win]).all()  # no pixel is written twice
            out[image_win] = part
    assert total == ny * nx
    np.testing.assert_array_equal(out, reassemble(tiles, grid))


def test_unpack_kept_refuses_an_array_of_the_wrong_length() -> None:
    grid = tile_grid((960, 960))
    # Tile 0 keeps 144 x 144 pixels (its outer margin too), tile 1 144 x 96.
    assert kept_size(grid, range(2)) == 144 * 144 + 144 * 96
    message = r"expected 34560 kept pixels for tiles 0-1, got an array of shape \(34559,\)"
    with pytest.raises(ValueError, match=message):
        unpack_kept(np.zeros(34559, np.float16), grid, range(2))


@PROPERTY
@given(ny=lengths, nx=lengths)
def test_every_pixel_is_owned_by_exactly_one_tile(ny: int, nx: int) -> None:
    grid = tile_grid((ny, nx))
    count = np.zeros((ny, nx), dtype=np.int32)
    for k in range(len(grid)):
        iy, ix = divmod(k, grid.nx)
        count[
            grid.y.keep_start[iy] : grid.y.keep_stop[iy],
            grid.x.keep_start[ix] : grid.x.keep_stop[ix],
        ] += 1
    np.testing.assert_array_equal(count, 1)


@settings(max_examples=300, deadline=None, database=None)
@given(length=st.integers(1, 3000))
def test_axis_plan_invariants_paper_tiles(length: int) -> None:
    grid = tile_grid((length, 1))
    check_axis_plan(grid.y, length, DEFAULT_TILE, DEFAULT_STRIDE)
    check_axis_plan(grid.x, 1, DEFAULT_TILE, DEFAULT_STRIDE)


@settings(max_examples=300, deadline=None, database=None)
@given(length=st.integers(1, 400), tile_stride=even_tile_stride)
def test_axis_plan_invariants_other_tiles(length: int, tile_stride: tuple[int, int]) -> None:
    tile, stride = tile_stride
    grid = tile_grid((1, length), tile=tile, stride=stride)
    check_axis_plan(grid.x, length, tile, stride)


@settings(max_examples=300, deadline=None, database=None)
@given(length=st.integers(1, 1500), tile_stride=st.sampled_from([(192, 96), (32, 16), (10, 4)]))
def test_each_pixel_comes_from_the_tile_where_it_is_furthest_from_a_border(
    length: int, tile_stride: tuple[int, int]
) -> None:
    # Paper, Sec. 5 / Fig. 3: a pixel is taken from the tile in which it lies most centrally.
    tile, stride = tile_stride
    plan = tile_grid((length, 1), tile=tile, stride=stride).y
    pixels = np.arange(length)
    origins = np.array(plan.origins)
    # Distance of each pixel to the nearest edge of each tile (negative if outside it).
    depth = np.minimum(pixels[:, None] - origins, origins + tile - 1 - pixels[:, None])
    owner = np.repeat(np.arange(len(origins)), np.subtract(plan.keep_stop, plan.keep_start))
    np.testing.assert_array_equal(depth[pixels, owner], depth.max(axis=1))


# ---------------------------------------------------------------------------
# Exact layouts
# ---------------------------------------------------------------------------


def test_960_square_has_81_tiles_with_central_96_pixel_kept_regions() -> None:
    grid = tile_grid((960, 960))
    assert (grid.ny, grid.nx, len(grid)) == (9, 9, 81)
    assert grid.shape == (960, 960)
    assert (grid.tile, grid.stride) == (192, 96)
    expected_origins = (0, 96, 192, 288, 384, 480, 576, 672, 768)
    for plan in (grid.y, grid.x):
        assert plan.origins == expected_origins
        for k in range(1, 8):
            assert (plan.keep_start[k], plan.keep_stop[k]) == (48 + 96 * k, 144 + 96 * k)
        # The edge tiles also keep the strip to the image border.
        assert (plan.keep_start[0], plan.keep_stop[0]) == (0, 144)
        assert (plan.keep_start[8], plan.keep_stop[8]) == (816, 960)


def test_2000_pixel_axis_ends_with_a_tile_aligned_to_the_far_edge() -> None:
    plan = tile_grid((2000, 10)).y
    assert plan.origins == (*range(0, 1729, 96), 1808)
    assert plan.origins[-1] == 2000 - 192
    # The irregular last pair splits at the midpoint of their centres.
    assert (plan.keep_start[-2], plan.keep_stop[-2]) == (1776, 1864)
    assert (plan.keep_start[-1], plan.keep_stop[-1]) == (1864, 2000)


@pytest.mark.parametrize(
    ("length", "origins", "starts", "stops"),
    [
        (1, (0,), (0,), (1,)),
        (191, (0,), (0,), (191,)),
        (192, (0,), (0,), (192,)),
        (193, (0, 1), (0, 96), (96, 193)),
        (288, (0, 96), (0, 144), (144, 288)),
        (300, (0, 96, 108), (0, 144, 198), (144, 198, 300)),
    ],
)
def test_axis_plans_of_small_lengths(
    length: int, origins: tuple[int, ...], starts: tuple[int, ...], stops: tuple[int, ...]
) -> None:
    assert tile_grid((length, length)).y == AxisPlan(origins, starts, stops)


@pytest.mark.parametrize("shape", [(50, 300), (300, 50), (50, 50), (1, 1), (191, 7)])
def test_image_smaller_than_a_tile_is_nan_padded_and_reassembles_exactly(
    shape: tuple[int, int],
) -> None:
    image = random_image(shape, 7)
    grid = tile_grid(shape)
    tiles = extract_tiles(image, grid, range(len(grid)))
    assert tiles.shape == (len(grid), 192, 192)
    assert tiles.dtype == np.float32
    for n in range(len(grid)):
        iy, ix = divmod(n, grid.nx)
        y0, x0 = grid.y.origins[iy], grid.x.origins[ix]
        h, w = min(192, shape[0]), min(192, shape[1])
        np.testing.assert_array_equal(tiles[n, :h, :w], image[y0 : y0 + h, x0 : x0 + w])
        assert np.isnan(tiles[n, h:, :]).all()
        assert np.isnan(tiles[n, :, w:]).all()
        assert not np.isnan(tiles[n, :h, :w]).any()
    out = reassemble(tiles, grid)
    assert out.shape == shape
    np.testing.assert_array_equal(out, image)


def test_50x300_grid_layout() -> None:
    grid = tile_grid((50, 300))
    assert (grid.ny, grid.nx) == (1, 3)
    assert grid.x.origins == (0, 96, 108)


def test_extract_tiles_follows_the_given_indices_and_accepts_a_memmap(tmp_path) -> None:
    image = random_image((400, 500), 3)
    path = tmp_path / "image.dat"
    image.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=image.shape)
    grid = tile_grid(image.shape)
    everything = extract_tiles(image, grid, range(len(grid)))
    picked = extract_tiles(mapped, grid, [5, 2, 5])
    np.testing.assert_array_equal(picked, everything[[5, 2, 5]])
    # Tile 5 is row 5 // nx, column 5 % nx.
    iy, ix = divmod(5, grid.nx)
    y0, x0 = grid.y.origins[iy], grid.x.origins[ix]
    np.testing.assert_array_equal(picked[0], image[y0 : y0 + 192, x0 : x0 + 192])


def test_extract_tiles_casts_to_float32() -> None:
    image = np.arange(200 * 200, dtype=np.int64).reshape(200, 200)
    grid = tile_grid(image.shape)
    tiles = extract_tiles(image, grid, range(len(grid)))
    assert tiles.dtype == np.float32
    np.testing.assert_array_equal(reassemble(tiles, grid), image.astype(np.float32))


def test_place_tiles_in_batches_matches_reassemble() -> None:
    image = random_image((500, 430), 11)
    grid = tile_grid(image.shape)
    out = np.full(image.shape, np.nan, dtype=np.float32)
    for indices in grid.batches(4):
        place_tiles(out, grid, indices, extract_tiles(image, grid, indices))
    np.testing.assert_array_equal(out, image)


def test_tile_content_lands_only_in_its_kept_region() -> None:
    # A "model" that paints each tile with its own number shows who owns each pixel.
    grid = tile_grid((400, 300))
    painted = np.broadcast_to(
        np.arange(len(grid), dtype=np.float32)[:, None, None], (len(grid), 192, 192)
    )
    owner = reassemble(painted, grid)
    for k in range(len(grid)):
        iy, ix = divmod(k, grid.nx)
        ys = slice(grid.y.keep_start[iy], grid.y.keep_stop[iy])
        xs = slice(grid.x.keep_start[ix], grid.x.keep_stop[ix])
        assert np.all(owner[ys, xs] == k)
    assert np.count_nonzero(owner == 0) == 144 * 144


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 50, 81, 1000])
def test_batches_cover_all_tiles_in_order(size: int) -> None:
    grid = tile_grid((960, 960))
    batches = list(grid.batches(size))
    assert [k for b in batches for k in b] == list(range(81))
    assert all(len(b) == size for b in batches[:-1])
    assert 1 <= len(batches[-1]) <= size
    assert len(batches) == -(-81 // size)


@pytest.mark.parametrize("size", [0, -1])
def test_batches_reject_non_positive_size(size: int) -> None:
    grid = tile_grid((100, 100))
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        list(grid.batches(size))


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (5,), (2, 3, 4), (5, -1), ()])
def test_tile_grid_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape must be two positive integers"):
        tile_grid(shape)


@pytest.mark.parametrize("tile", [0, -192])
def test_tile_grid_rejects_bad_tile(tile: int) -> None:
    with pytest.raises(ValueError, match="tile must be positive"):
        tile_grid((100, 100), tile=tile, stride=1)


@pytest.mark.parametrize("stride", [0, -96, 193, 384])
def test_tile_grid_rejects_bad_stride(stride: int) -> None:
    with pytest.raises(ValueError, match=r"stride must be in 1\.\.tile \(192\)"):
        tile_grid((100, 100), stride=stride)


def test_tile_grid_rejects_odd_stride() -> None:
    with pytest.raises(ValueError, match="tile - stride must be even"):
        tile_grid((100, 100), tile=32, stride=15)


def test_extract_tiles_rejects_mismatched_image() -> None:
    grid = tile_grid((100, 120))
    with pytest.raises(ValueError, match=r"image shape \(120, 100\) does not match grid shape"):
        extract_tiles(np.zeros((120, 100), np.float32), grid, [0])


def test_place_tiles_rejects_mismatched_output_and_tiles() -> None:
    grid = tile_grid((300, 300))
    tiles = np.zeros((2, 192, 192), np.float32)
    with pytest.raises(ValueError, match=r"output shape \(300, 299\) does not match grid shape"):
        place_tiles(np.zeros((300, 299), np.float32), grid, [0, 1], tiles)
    out = np.zeros((300, 300), np.float32)
    with pytest.raises(ValueError, match=r"expected 3 tiles of 192x192, got \(2, 192, 192\)"):
        place_tiles(out, grid, [0, 1, 2], tiles)
    with pytest.raises(ValueError, match=r"expected 2 tiles of 192x192, got \(2, 96, 192\)"):
        place_tiles(out, grid, [0, 1], np.zeros((2, 96, 192), np.float32))
    assert not out.any()


def test_reassemble_rejects_wrong_tile_count() -> None:
    grid = tile_grid((960, 960))
    with pytest.raises(ValueError, match="expected 81 tiles, got 80"):
        reassemble(np.zeros((80, 192, 192), np.float32), grid)
