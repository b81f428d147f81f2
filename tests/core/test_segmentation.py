"""Tests for radiounet.core.segmentation: normalise, tile, predict, reassemble."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import uniform_filter

from radiounet.core.normalisation import PROFILES, get_profile, normalise
from radiounet.core.segmentation import DEFAULT_BATCH_SIZE, normalised_tiles, segment
from radiounet.core.tiling import tile_grid

LOTSS = PROFILES["lotss-dr2-lowres"]
SMALL = {"tile": 32, "stride": 16}


def identity(tiles: np.ndarray) -> np.ndarray:
    return tiles.copy()


def blur(tiles: np.ndarray) -> np.ndarray:
    """A predictor with spatial context: any misplaced tile or pixel changes the map."""
    return uniform_filter(tiles, size=(1, 5, 5), mode="constant").astype(np.float32)


def radio_image(shape: tuple[int, int], seed: int, *, blank: bool = True) -> np.ndarray:
    """float32 brightness over 1e-9..1 Jy/beam, some negative noise and NaN blanks."""
    rng = np.random.default_rng(seed)
    image = 10.0 ** rng.uniform(-9, 0, size=shape)
    image[rng.random(shape) < 0.1] *= -1
    if blank:
        image[rng.random(shape) < 0.05] = np.nan
        image[: shape[0] // 4, : shape[1] // 5] = np.nan  # a blanked corner
    return image.astype(np.float32)


@settings(max_examples=40, deadline=None, database=None)
@given(ny=st.integers(1, 150), nx=st.integers(1, 150), seed=st.integers(0, 2**32 - 1))
def test_identity_predictor_returns_the_normalised_image(ny: int, nx: int, seed: int) -> None:
    image = radio_image((ny, nx), seed)
    out = segment(image, identity, LOTSS, batch_size=7, **SMALL)
    assert out.shape == image.shape
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, normalise(image, LOTSS))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(image))


@pytest.mark.parametrize("shape", [(50, 300), (1, 1), (192, 192), (300, 500), (191, 193)])
def test_identity_predictor_paper_tiles(shape: tuple[int, int]) -> None:
    image = radio_image(shape, 5)
    out = segment(image, identity, LOTSS)
    np.testing.assert_array_equal(out, normalise(image, LOTSS))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(image))


def test_scale_brings_mjy_into_the_profile_unit() -> None:
    # mJy/beam: 1e-4 mJy = 1e-7 Jy -> 0; 10**-1.5 mJy = 10**-4.5 Jy -> 0.5; 10 mJy = 1e-2 Jy -> 1.
    image = np.zeros((40, 40), dtype=np.float32)
    image[:, :10] = 1e-4
    image[:, 10:20] = 10**-1.5
    image[:, 20:30] = 10.0
    image[:, 30:] = 1e-3  # 1e-6 Jy -> 0.2
    out = segment(image, identity, LOTSS, scale=1e-3, **SMALL)
    for cols, value in [(slice(0, 10), 0.0), (slice(10, 20), 0.5), (slice(20, 30), 1.0)]:
        np.testing.assert_allclose(out[:, cols], value, atol=1e-6)
    np.testing.assert_allclose(out[:, 30:], 0.2, atol=1e-6)
    # Without the scale the same numbers are read as Jy/beam.
    unscaled = segment(image, identity, LOTSS, **SMALL)
    np.testing.assert_allclose(unscaled[:, :10], 0.6, atol=1e-6)
    np.testing.assert_allclose(unscaled[:, 20:30], 1.0, atol=1e-6)


def test_profile_is_used() -> None:
    image = np.full((20, 20), 1e-7, dtype=np.float32)
    synthetic = segment(image, identity, PROFILES["synthetic"], **SMALL)
    np.testing.assert_allclose(synthetic, 0.6, atol=1e-6)
    custom = segment(image, identity, get_profile("1e-8:1e-6:Jy/beam"), **SMALL)
    np.testing.assert_allclose(custom, 0.5, atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 3, 10])
def test_progress_reports_every_tile(batch_size: int) -> None:
    image = radio_image((100, 130), 2)
    grid = tile_grid(image.shape, **SMALL)
    calls: list[int] = []
    segment(image, identity, LOTSS, batch_size=batch_size, progress=calls.append, **SMALL)
    assert sum(calls) == len(grid) == 6 * 8  # origins 0,16,...,64,68 x 0,16,...,96,98
    assert len(calls) == math.ceil(len(grid) / batch_size)
    assert all(c == batch_size for c in calls[:-1])


def test_batch_size_does_not_change_the_map() -> None:
    image = radio_image((130, 170), 3)
    maps = [
        segment(image, blur, LOTSS, batch_size=b, **SMALL) for b in (1, 4, 7, DEFAULT_BATCH_SIZE)
    ]
    for other in maps[1:]:
        np.testing.assert_array_equal(other, maps[0])
    assert np.nanstd(maps[0]) > 0.01


def test_blur_predictor_map_equals_tilewise_reference() -> None:
    # Each pixel comes from its owner tile's blurred normalised content.
    image = radio_image((90, 110), 4, blank=False)
    grid = tile_grid(image.shape, **SMALL)
    out = segment(image, blur, LOTSS, batch_size=5, **SMALL)
    norm = normalise(image, LOTSS)
    for k in range(len(grid)):
        iy, ix = divmod(k, grid.nx)
        y0, x0 = grid.y.origins[iy], grid.x.origins[ix]
        ys, ye = grid.y.keep_start[iy], grid.y.keep_stop[iy]
        xs, xe = grid.x.keep_start[ix], grid.x.keep_stop[ix]
        ref = blur(norm[None, y0 : y0 + 32, x0 : x0 + 32])[0]
        np.testing.assert_array_equal(out[ys:ye, xs:xe], ref[ys - y0 : ye - y0, xs - x0 : xe - x0])


def test_map_pixels_come_from_tile_centres() -> None:
    # A predictor answering each pixel's distance to its tile's nearest edge: away from
    # the image border every map pixel must be at least (tile - stride) / 2 = 48 deep.
    def depth(tiles: np.ndarray) -> np.ndarray:
        i = np.arange(tiles.shape[1])
        d = np.minimum(i, tiles.shape[1] - 1 - i)
        return np.broadcast_to(np.minimum(d[:, None], d[None, :]), tiles.shape).astype(np.float32)

    image = np.ones((500, 700), dtype=np.float32)
    out = segment(image, depth, LOTSS)
    assert out[48:-48, 48:-48].min() == 48
    assert out.max() == 95


def test_predictor_never_sees_nan_or_values_outside_0_1() -> None:
    seen: list[tuple[float, float, int, tuple[int, ...], np.dtype]] = []

    def recording(tiles: np.ndarray) -> np.ndarray:
        seen.append(
            (
                float(tiles.min()),
                float(tiles.max()),
                int(np.isnan(tiles).sum()),
                tiles.shape,
                tiles.dtype,
            )
        )
        return tiles.copy()

    image = radio_image((70, 300), 8)  # smaller than a tile along y: padded tiles
    image[5, 5], image[6, 6], image[7, 7] = np.inf, -np.inf, 1e30
    out = segment(image, recording, LOTSS, batch_size=2)
    assert len(seen) == 2  # 3 tiles in batches of 2
    for lo, hi, n_nan, shape, dtype in seen:
        assert n_nan == 0
        assert 0.0 <= lo <= hi <= 1.0
        assert shape[1:] == (192, 192)
        assert shape[0] <= 2
        assert dtype == np.float32
    assert seen[0][1] == 1.0  # the bright pixels arrive clipped to 1
    np.testing.assert_array_equal(np.isnan(out), np.isnan(image))


def test_normalised_tiles_zero_the_blanks_and_report_them() -> None:
    raw = np.array([[[np.nan, 1e-3], [1e-4, -5.0]]], dtype=np.float32)
    tiles, blank = normalised_tiles(raw, LOTSS, scale=10.0)
    np.testing.assert_array_equal(blank, [[[True, False], [False, False]]])
    np.testing.assert_allclose(tiles, [[[0.0, 1.0], [0.8, 0.0]]], atol=1e-6)
    assert tiles.dtype == np.float32


def test_preallocated_output_is_filled_and_returned() -> None:
    image = radio_image((80, 90), 9)
    out = np.full(image.shape, -7.0, dtype=np.float32)
    result = segment(image, identity, LOTSS, out=out, **SMALL)
    assert result is out
    assert not np.any(out == -7.0)
    np.testing.assert_array_equal(out, normalise(image, LOTSS))


def test_memmap_input_and_output(tmp_path) -> None:
    image = radio_image((250, 210), 10)
    src = np.memmap(tmp_path / "image.dat", dtype=np.float32, mode="w+", shape=image.shape)
    src[:] = image
    src.flush()
    src = np.memmap(tmp_path / "image.dat", dtype=np.float32, mode="r", shape=image.shape)
    dst_path = tmp_path / "probability.dat"
    dst = np.memmap(dst_path, dtype=np.float32, mode="w+", shape=image.shape)
    result = segment(src, identity, LOTSS, out=dst)
    assert result is dst
    dst.flush()
    del result, dst
    written = np.fromfile(dst_path, dtype=np.float32).reshape(image.shape)
    np.testing.assert_array_equal(written, normalise(image, LOTSS))


def test_out_of_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"out has shape \(40, 41\), expected \(41, 40\)"):
        segment(np.ones((41, 40), np.float32), identity, LOTSS, out=np.empty((40, 41), np.float32))


@pytest.mark.parametrize(
    "bad",
    [
        lambda t: t[:, :-1],
        lambda t: t[..., None],
        lambda t: t[:1],
        lambda t: t[0],
    ],
)
def test_predictor_returning_a_wrong_shape_is_rejected(bad) -> None:
    with pytest.raises(
        ValueError, match=r"predictor returned shape \(.*\) for tiles of shape \(3, 32, 32\)"
    ):
        segment(np.ones((48, 64), np.float32), bad, LOTSS, batch_size=3, **SMALL)


@pytest.mark.parametrize("shape", [(10,), (2, 10, 10)])
def test_image_must_be_2d(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="image must be 2-D"):
        segment(np.ones(shape, np.float32), identity, LOTSS)


@pytest.mark.parametrize("scale", [0.0, -1e-3, math.nan, math.inf])
def test_scale_must_be_positive(scale: float) -> None:
    with pytest.raises(ValueError, match="scale must be a positive number"):
        segment(np.ones((10, 10), np.float32), identity, LOTSS, scale=scale)


def test_batch_size_zero_is_rejected() -> None:
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        segment(np.ones((10, 10), np.float32), identity, LOTSS, batch_size=0)
