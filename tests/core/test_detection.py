"""Tests for radiounet.core.detection: the detection ratio R (Stuardi et al. 2024, eq. 8)."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from radiounet.core.detection import (
    DEFAULT_RADIUS_R500,
    DEFAULT_THRESHOLD,
    circle_mask,
    circle_pixel_count,
    detection_ratio,
)


def lattice_count(radius: int, *, dx_min: int | None = None, dx_max: int | None = None) -> int:
    """Integer points (dx, dy) with dx^2 + dy^2 <= radius^2 and dx_min <= dx <= dx_max."""
    lo = -radius if dx_min is None else dx_min
    hi = radius if dx_max is None else dx_max
    return sum(2 * math.isqrt(radius * radius - dx * dx) + 1 for dx in range(lo, hi + 1))


def test_paper_defaults() -> None:
    assert DEFAULT_THRESHOLD == 0.015
    assert DEFAULT_RADIUS_R500 == 2.2


def test_uniform_map_gives_its_value_exactly() -> None:
    # Probability maps are float32; R is their mean accumulated in float64, hence exact.
    p = np.full((100, 120), 0.3, dtype=np.float32)
    result = detection_ratio(p, (60.0, 50.0), 20.0)
    assert result.ratio == float(np.float32(0.3))
    assert result.n_pixels == lattice_count(20) == 1257
    assert result.radius_pix == 20.0
    assert result.fraction_in_image == 1.0
    assert result.detected is True
    assert result.threshold == DEFAULT_THRESHOLD


def test_uniform_float64_map() -> None:
    p = np.full((100, 100), 0.3)
    assert detection_ratio(p, (50.0, 50.0), 33.0).ratio == pytest.approx(0.3, rel=1e-12)


def test_disc_of_ones_inside_circle_of_twice_the_radius_gives_a_quarter() -> None:
    r = 20
    yy, xx = np.mgrid[:201, :201]
    p = ((xx - 100) ** 2 + (yy - 100) ** 2 <= r * r).astype(np.float32)
    result = detection_ratio(p, (100.0, 100.0), 2.0 * r)
    assert result.n_pixels == lattice_count(2 * r) == 5025
    assert result.ratio == lattice_count(r) / lattice_count(2 * r)
    assert result.ratio == pytest.approx(0.25, abs=0.002)


def test_circle_partly_outside_counts_only_pixels_inside() -> None:
    # Left half ones, right half zeros; the centre sits on the left edge, so every
    # pixel of the circle inside the image is 1. Counting the missing half as 0
    # (padding) would give about 0.5.
    p = np.zeros((100, 100), dtype=np.float32)
    p[:, :50] = 1.0
    result = detection_ratio(p, (0.0, 50.0), 30.0)
    assert result.ratio == 1.0
    assert result.n_pixels == lattice_count(30, dx_min=0) == 1441
    # Share of the whole circle's pixels (2821), not of pi r^2.
    assert result.fraction_in_image == pytest.approx(1441 / lattice_count(30), rel=1e-12)
    assert lattice_count(30) == 2821


def test_centre_outside_the_image() -> None:
    p = np.zeros((100, 100), dtype=np.float32)
    p[:, :10] = 0.5
    p[:, 10:] = 0.25
    # Centre 10 px left of the image: columns 0..20 of the image lie in the circle.
    result = detection_ratio(p, (-10.0, 50.0), 30.0)
    n_half = lattice_count(30, dx_min=10, dx_max=19)  # image columns 0..9
    n_rest = lattice_count(30, dx_min=20)  # image columns 10..20
    assert result.n_pixels == n_half + n_rest
    assert result.ratio == pytest.approx((0.5 * n_half + 0.25 * n_rest) / (n_half + n_rest))
    assert result.fraction_in_image < 0.5


def test_x_and_y_are_not_swapped() -> None:
    # A 40 x 200 map: the centre (x=150, y=20) only fits with x along columns.
    p = np.zeros((40, 200), dtype=np.float32)
    p[:, 140:] = 1.0
    result = detection_ratio(p, (150.0, 20.0), 5.0)
    assert result.ratio == 1.0
    assert result.n_pixels == lattice_count(5)
    mask = circle_mask((4, 7), (5.0, 1.0), 1.0)
    expected = np.zeros((4, 7), dtype=bool)
    expected[1, 4:7] = True
    expected[0, 5] = expected[2, 5] = True
    np.testing.assert_array_equal(mask, expected)


def test_nan_pixels_are_left_out_of_the_count() -> None:
    p = np.full((100, 100), np.nan, dtype=np.float32)
    p[:, :50] = 0.25
    result = detection_ratio(p, (50.0, 50.0), 20.0)
    # Only columns 30..49 (dx = -20..-1) hold data; NaN as 0 would give about 0.12.
    assert result.ratio == 0.25
    assert result.n_pixels == lattice_count(20, dx_max=-1)
    assert result.fraction_in_image == 1.0


def test_all_nan_aperture_is_an_error() -> None:
    p = np.full((50, 50), np.nan, dtype=np.float32)
    p[0, 0] = 1.0
    with pytest.raises(ValueError, match=r"no valid pixel of the map lies within 5\.0 px"):
        detection_ratio(p, (25.0, 25.0), 5.0)


def test_threshold_decision_is_inclusive_at_0_015() -> None:
    # A one-pixel aperture (radius 0.5 around a pixel centre) gives R equal to that pixel.
    p = np.zeros((5, 5))
    for value, detected in [
        (0.015, True),
        (np.nextafter(0.015, 0.0), False),
        (np.nextafter(0.015, 1.0), True),
        (0.0, False),
    ]:
        p[2, 2] = value
        result = detection_ratio(p, (2.0, 2.0), 0.5)
        assert isinstance(result.detected, bool)
        assert result.n_pixels == 1
        assert result.ratio == value
        assert result.detected is detected, value


def test_custom_threshold() -> None:
    rng = np.random.default_rng(1)
    p = rng.random((60, 60)).astype(np.float32)
    r = detection_ratio(p, (30.0, 30.0), 15.0).ratio
    assert detection_ratio(p, (30.0, 30.0), 15.0, threshold=r).detected is True
    above = float(np.nextafter(r, 1.0))
    assert detection_ratio(p, (30.0, 30.0), 15.0, threshold=above).detected is False
    zeros = np.zeros((10, 10))
    assert detection_ratio(zeros, (5.0, 5.0), 3.0, threshold=0.0).detected is True
    assert detection_ratio(np.ones((10, 10)), (5.0, 5.0), 3.0, threshold=1.0).detected is True


def test_circle_entirely_outside_the_image_is_an_error() -> None:
    p = np.ones((100, 100), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\(x, y\) = \(-30\.0, 50\.0\): the cluster is outside"):
        detection_ratio(p, (-30.0, 50.0), 20.0)
    with pytest.raises(ValueError, match="the cluster is outside the image"):
        detection_ratio(p, (150.0, 150.0), 60.0)


@pytest.mark.parametrize("shape", [(10,), (2, 10, 10), ()])
def test_map_must_be_2d(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="probability map must be 2-D"):
        detection_ratio(np.zeros(shape), (1.0, 1.0), 1.0)


@pytest.mark.parametrize("threshold", [-0.01, 1.01, math.nan])
def test_threshold_must_be_in_unit_interval(threshold: float) -> None:
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        detection_ratio(np.zeros((10, 10)), (5.0, 5.0), 3.0, threshold=threshold)


@pytest.mark.parametrize("radius", [0.0, -3.0, math.nan, math.inf])
def test_radius_must_be_positive(radius: float) -> None:
    with pytest.raises(ValueError, match="radius must be a positive number of pixels"):
        detection_ratio(np.zeros((10, 10)), (5.0, 5.0), radius)


@pytest.mark.parametrize("centre", [(math.nan, 5.0), (5.0, math.inf)])
def test_centre_must_be_finite(centre: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="centre must be finite pixel coordinates"):
        detection_ratio(np.zeros((10, 10)), centre, 3.0)


@pytest.mark.parametrize("radius", [7.0, 50.0])
def test_fraction_in_image_is_one_for_a_whole_circle(radius: float) -> None:
    p = np.ones((201, 201), dtype=np.float32)
    assert detection_ratio(p, (100.0, 100.0), radius).fraction_in_image == 1.0


def test_detected_is_a_python_bool_for_a_numpy_threshold() -> None:
    result = detection_ratio(np.ones((10, 10)), (5.0, 5.0), 3.0, threshold=np.float64(0.015))
    assert isinstance(result.detected, bool)


# --- the whole circle's pixel count --------------------------------------------------------


def mask_count(centre_xy: tuple[float, float], radius: float) -> int:
    """The count the mask method gave: circle_mask on a grid holding the whole circle."""
    cx, cy = centre_xy
    k = math.ceil(radius) + 2
    x0, y0 = math.floor(cx) - k, math.floor(cy) - k
    return int(circle_mask((2 * k + 2, 2 * k + 2), (cx - x0, cy - y0), radius).sum())


@pytest.mark.parametrize(
    "radius", [0.3, 0.5, 1.0, 1.5, 2.2, 2.7, 7.0, math.sqrt(50), 20.5, 33.3, 88.0, 178.9]
)
@pytest.mark.parametrize(
    "centre", [(0.0, 0.0), (0.5, 0.5), (0.25, -0.1), (-190.3, 12.7), (1e4 + 1 / 3, 2e4 + 0.9)]
)
def test_circle_pixel_count_equals_the_mask_count(
    centre: tuple[float, float], radius: float
) -> None:
    assert circle_pixel_count(centre, radius) == mask_count(centre, radius)


def test_circle_pixel_count_on_random_circles() -> None:
    rng = np.random.default_rng(5)
    for _ in range(2000):
        radius = float(rng.choice([rng.uniform(0.05, 4.0), rng.uniform(4.0, 60.0)]))
        centre = (float(rng.uniform(-300, 300)), float(rng.uniform(-300, 300)))
        # Pixel centres exactly on the circle: integer and half-integer centres, radii sqrt(n).
        if rng.random() < 0.3:
            centre = (round(centre[0] * 2) / 2, round(centre[1] * 2) / 2)
            radius = math.sqrt(rng.integers(1, 2000))
        assert circle_pixel_count(centre, radius) == mask_count(centre, radius), (centre, radius)


@pytest.mark.parametrize("radius", [1.0, 3.0, 20.5, 33.3, 88.0])
@pytest.mark.parametrize("centre", [(100.0, 100.0), (100.5, 99.5), (100.37, 100.81)])
def test_an_unclipped_circle_is_exactly_whole(centre: tuple[float, float], radius: float) -> None:
    p = np.full((201, 201), 0.5, dtype=np.float32)
    assert detection_ratio(p, centre, radius).fraction_in_image == 1.0


def test_a_huge_aperture_costs_little_memory() -> None:
    # A nearby cluster on a small map: 2.2 R500 of 10^5 px. The old mask of the whole
    # circle needed (2 * 10^5)^2 booleans and float64 (hundreds of GB).
    p = np.full((50, 50), 0.25, dtype=np.float32)
    tracemalloc.start()
    try:
        result = detection_ratio(p, (25.0, 25.0), 100_000.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6
    assert result.n_pixels == 2500
    assert result.ratio == 0.25
    assert result.fraction_in_image == 2500 / lattice_count(100_000)
    assert lattice_count(100_000) == 31_415_925_457


@pytest.mark.parametrize(("centre", "radius"), [((math.nan, 0.0), 1.0), ((0.0, 0.0), 0.0)])
def test_circle_pixel_count_checks_its_arguments(
    centre: tuple[float, float], radius: float
) -> None:
    with pytest.raises(ValueError, match="must be"):
        circle_pixel_count(centre, radius)
