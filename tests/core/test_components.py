"""Tests for radiounet.core.components."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from astropy.coordinates import FK4, SkyCoord
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.ndimage import gaussian_filter

from radiounet.core.components import Component, find_components
from radiounet.core.cosmology import kpc_per_arcmin

PIXEL_ARCSEC = 4.5
PIXEL_ARCMIN2 = (PIXEL_ARCSEC / 60) ** 2


def make_wcs(shape: tuple[int, int] = (200, 200), *, swap: bool = False) -> WCS:
    """TAN WCS at (150, 30) with 4.5" pixels; the reference pixel at the map centre."""
    wcs = WCS(naxis=2)
    ny, nx = shape
    ctype = ["RA---TAN", "DEC--TAN"]
    crval = [150.0, 30.0]
    cdelt = [-PIXEL_ARCSEC / 3600, PIXEL_ARCSEC / 3600]
    if swap:
        ctype, crval, cdelt = ctype[::-1], crval[::-1], cdelt[::-1]
    wcs.wcs.ctype = ctype
    wcs.wcs.crval = crval
    wcs.wcs.cdelt = cdelt
    wcs.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]  # 0-based centre ((n - 1) / 2) in FITS 1-based
    return wcs


WCS200 = make_wcs()


def find(p: np.ndarray, **kwargs: object) -> list[Component]:
    options: dict[str, object] = {"wcs": make_wcs(p.shape), "beam_area_pix": 1.0}
    options.update(kwargs)
    return find_components(p, **options)


# --- geometry, ordering and sky positions ---------------------------------------------------


def two_rectangles() -> np.ndarray:
    p = np.zeros((200, 200))
    p[95:105, 90:110] = 0.8  # 10 x 20 = 200 px around the reference pixel (99.5, 99.5)
    p[100, 100] = 0.99
    p[150:170, 20:35] = 0.6  # 20 x 15 = 300 px, more pixels but less summed probability
    return p


def test_two_rectangles_counts_centroids_and_order() -> None:
    p = two_rectangles()
    first, second = find(p, beam_area_pix=22.38)
    assert (first.label, second.label) == (1, 2)
    # Summed probability: 300 * 0.6 = 180 before 200 * 0.8 + 0.19 = 160.19.
    assert first.n_pixels * first.mean_probability == pytest.approx(180.0)
    assert second.n_pixels * second.mean_probability == pytest.approx(160.19)
    assert first.n_pixels == 300
    assert second.n_pixels == 200
    assert first.x == pytest.approx(27.0)
    assert first.y == pytest.approx(159.5)
    assert first.peak_probability == pytest.approx(0.6)
    assert first.mean_probability == pytest.approx(0.6)
    # The brighter pixel pulls the weighted centroid of the second off (99.5, 99.5).
    psum = 200 * 0.8 + 0.19
    assert second.x == pytest.approx((0.8 * 200 * 99.5 + 0.19 * 100) / psum)
    assert second.y == pytest.approx((0.8 * 200 * 99.5 + 0.19 * 100) / psum)
    assert second.peak_probability == pytest.approx(0.99)
    assert second.mean_probability == pytest.approx(psum / 200)


def test_order_follows_summed_probability_not_size() -> None:
    p = np.zeros((200, 200))
    p[10:20, 10:20] = 1.0  # 100 px, sum 100
    p[100:115, 100:110] = 0.6  # 150 px, sum 90
    small_bright, big_dim = find(p)
    assert small_bright.n_pixels == 100 and big_dim.n_pixels == 150
    assert small_bright.label == 1  # sum 100 beats sum 90 despite fewer pixels
    assert small_bright.mean_probability == pytest.approx(1.0)
    assert big_dim.mean_probability == pytest.approx(0.6)


def test_ties_keep_scan_order() -> None:
    p = np.zeros((50, 50))
    p[40:45, 5:10] = 0.7
    p[5:10, 30:35] = 0.7
    a, b = find(p)
    assert (a.y, b.y) == (pytest.approx(7.0), pytest.approx(42.0))


def test_area_arcmin2_from_pixel_scale() -> None:
    for c in find(two_rectangles(), beam_area_pix=22.38):
        assert c.area_arcmin2 == pytest.approx(c.n_pixels * PIXEL_ARCMIN2, rel=1e-6)
    (c,) = find(np.pad(np.ones((3, 4)), 20), beam_area_pix=1.0)
    assert c.area_arcmin2 == pytest.approx(12 * 0.075**2, rel=1e-9)


def test_sky_position_of_centroid() -> None:
    p = np.zeros((200, 200))
    p[95:105, 90:110] = 0.9  # centred on the reference pixel
    p[20:24, 10:14] = 0.9  # centroid (11.5, 21.5): lower left, so east (larger RA), south
    centre, corner = find(p, beam_area_pix=10.0)
    assert (centre.x, centre.y) == (pytest.approx(99.5), pytest.approx(99.5))
    assert centre.ra_deg == pytest.approx(150.0, abs=1e-9)
    assert centre.dec_deg == pytest.approx(30.0, abs=1e-9)
    ra, dec = WCS200.pixel_to_world_values(11.5, 21.5)
    assert corner.ra_deg == pytest.approx(float(ra), abs=1e-9)
    assert corner.dec_deg == pytest.approx(float(dec), abs=1e-9)
    assert corner.ra_deg > 150.0 and corner.dec_deg < 30.0
    # 78 px = 351" south of the reference: Dec is 30 deg - 0.0975 deg to first order.
    assert corner.dec_deg == pytest.approx(30.0 - 78 * PIXEL_ARCSEC / 3600, abs=1e-4)


def test_sky_position_with_latitude_axis_first() -> None:
    p = np.zeros((200, 200))
    p[20:24, 10:14] = 0.9
    (normal,) = find(p, wcs=make_wcs(p.shape), beam_area_pix=10.0)
    (swapped,) = find(p.T, wcs=make_wcs(p.shape, swap=True), beam_area_pix=10.0)
    assert swapped.ra_deg == pytest.approx(normal.ra_deg, abs=1e-9)
    assert swapped.dec_deg == pytest.approx(normal.dec_deg, abs=1e-9)


@pytest.mark.parametrize(
    ("ctype", "frame"),
    [(("RA---TAN", "DEC--TAN"), FK4(equinox="B1950")), (("GLON-TAN", "GLAT-TAN"), "galactic")],
    ids=["fk4-b1950", "galactic"],
)
def test_sky_positions_are_icrs_whatever_the_maps_frame(
    ctype: tuple[str, str], frame: object
) -> None:
    # The map's reference pixel is ICRS (150, 30), given in the map's own frame.
    centre = SkyCoord(150.0, 30.0, unit="deg", frame="icrs").transform_to(frame)
    wcs = make_wcs()
    wcs.wcs.ctype = list(ctype)
    wcs.wcs.crval = [centre.spherical.lon.deg, centre.spherical.lat.deg]
    if ctype[0].startswith("RA"):
        wcs.wcs.radesys, wcs.wcs.equinox = "FK4", 1950.0
    p = np.zeros((200, 200))
    p[95:105, 90:110] = 0.9  # centred on the reference pixel (99.5, 99.5)
    (c,) = find(p, wcs=wcs, beam_area_pix=10.0)
    assert (c.ra_deg, c.dec_deg) == (pytest.approx(150.0, abs=1e-8), pytest.approx(30.0, abs=1e-8))


def test_float32_map() -> None:
    p = two_rectangles().astype(np.float32)
    first, second = find(p, beam_area_pix=22.38)
    assert (first.n_pixels, second.n_pixels) == (300, 200)
    assert isinstance(first.x, float) and isinstance(first.peak_probability, float)


# --- thresholds, beams, blanking, connectivity ----------------------------------------------


def test_components_smaller_than_the_beam_are_dropped() -> None:
    p = np.zeros((60, 60))
    p[5:8, 5:8] = 0.9  # 9 px
    p[20:22, 20:25] = 0.9  # 10 px
    p[40:44, 40:45] = 0.9  # 20 px
    p[50:53, 10:17] = 0.9  # 21 px
    sizes = [c.n_pixels for c in find(p, beam_area_pix=10.0)]
    assert sizes == [21, 20, 10]
    sizes = [c.n_pixels for c in find(p, beam_area_pix=10.0, min_area_beams=2.0)]
    assert sizes == [21, 20]
    sizes = [c.n_pixels for c in find(p, beam_area_pix=10.0, min_area_beams=0.0)]
    assert sizes == [21, 20, 10, 9]
    assert find(p, beam_area_pix=21.5) == []


def test_threshold_is_strict() -> None:
    p = np.zeros((30, 30))
    p[5:10, 5:10] = 0.5
    p[20:25, 20:25] = 0.5000001
    (c,) = find(p)
    assert c.x == pytest.approx(22.0)
    assert [x.n_pixels for x in find(p, threshold=0.3)] == [25, 25]


def test_nan_pixels_are_never_part_of_a_component() -> None:
    p = np.zeros((40, 40))
    p[10:20, 10:20] = 0.9
    p[12, 12] = np.nan
    p[15, 13] = np.nan
    (c,) = find(p)
    assert c.n_pixels == 98
    assert c.mean_probability == pytest.approx(0.9)
    p[10:20, 15] = np.nan  # a blanked column cuts it in two (the left half has both NaNs)
    assert [x.n_pixels for x in find(p)] == [48, 40]
    assert find(np.full((10, 10), np.nan)) == []


def test_diagonal_neighbours_are_connected() -> None:
    p = np.zeros((30, 30))
    p[[10, 11, 12], [10, 11, 12]] = 0.9
    (c,) = find(p)
    assert c.n_pixels == 3
    assert c.position_angle_deg == pytest.approx(45.0)
    p = np.zeros((30, 30))
    p[[12, 11, 10], [10, 11, 12]] = 0.9  # y decreases as x increases
    (c,) = find(p)
    assert c.n_pixels == 3
    assert c.position_angle_deg == pytest.approx(135.0)


def test_empty_maps() -> None:
    assert find(np.zeros((50, 50))) == []
    assert find(np.full((50, 50), 0.49)) == []
    assert find(np.zeros((0, 0))) == []


# --- flux, physical area ---------------------------------------------------------------------


def test_flux_is_the_sum_of_the_image_over_the_component() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(1e-4, 3e-5, (100, 100))
    p = np.zeros((100, 100))
    p[10:30, 40:50] = 0.7
    p[60:70, 60:90] = 0.95
    p[60, 60] = np.nan  # blanked in the map: not in the component, so not in the flux
    first, second = find(p, image_jy_per_pixel=image, beam_area_pix=22.0)
    mask = np.zeros_like(p, dtype=bool)
    mask[60:70, 60:90] = True
    mask[60, 60] = False
    assert first.flux_jy == pytest.approx(image[mask].sum(), rel=1e-12)
    assert second.flux_jy == pytest.approx(image[10:30, 40:50].sum(), rel=1e-12)
    assert find(p, beam_area_pix=22.0)[0].flux_jy is None


def test_flux_is_nan_where_the_image_is_blanked() -> None:
    p = np.zeros((20, 20))
    p[5:10, 5:10] = 0.9
    image = np.ones((20, 20))
    image[7, 7] = np.nan
    (c,) = find(p, image_jy_per_pixel=image)
    assert c.flux_jy is not None and math.isnan(c.flux_jy)


def test_flux_uncertainty_and_snr_from_a_given_rms() -> None:
    p = np.zeros((50, 50))
    p[10:20, 5:25] = 0.9  # 200 px
    image = np.full(p.shape, 3e-5)
    (c,) = find(p, image_jy_per_pixel=image, beam_area_pix=22.0, rms_jy_beam=1e-4)
    assert c.flux_err_jy == pytest.approx(1e-4 * math.sqrt(200 / 22.0), rel=1e-12)
    assert c.snr == pytest.approx(200 * 3e-5 / c.flux_err_jy, rel=1e-12)


def test_rms_is_measured_on_the_image_by_default() -> None:
    rng = np.random.default_rng(2)
    sigma_pix = 2e-6  # Jy/pixel; 44 uJy/beam with a 22-pixel beam
    image = rng.normal(0.0, sigma_pix, (400, 400))
    p = np.zeros_like(image)
    p[100:140, 100:150] = 0.8
    image[100:140, 100:150] += 5e-6  # the emission does not bias the clipped rms much
    (c,) = find(p, image_jy_per_pixel=image, beam_area_pix=22.0)
    assert c.flux_err_jy == pytest.approx(sigma_pix * 22.0 * math.sqrt(2000 / 22.0), rel=0.03)


def test_noiseless_or_blank_images_give_no_uncertainty() -> None:
    p = np.zeros((20, 20))
    p[5:10, 5:10] = 0.9
    (c,) = find(p, image_jy_per_pixel=np.ones((20, 20)))
    assert (c.flux_jy, c.flux_err_jy, c.snr) == (25.0, None, None)
    (c,) = find(p, image_jy_per_pixel=np.full((20, 20), np.nan))
    assert c.flux_err_jy is None and c.snr is None


def test_snr_of_noise_regions_has_unit_spread() -> None:
    # White noise smoothed by a Gaussian of sigma s has the autocorrelation of a
    # beam of sigma s*sqrt(2), whose area 4 pi s^2 is what the noise term assumes.
    rng = np.random.default_rng(3)
    s = 2.0
    noise = gaussian_filter(rng.normal(size=(1000, 1000)), s)
    beam_area = 4 * math.pi * s**2
    image = noise / noise.std() / beam_area  # Jy/pixel with an rms of 1 Jy/beam
    p = np.zeros(image.shape)
    for y in range(5, 1000, 50):
        for x in range(5, 1000, 50):
            p[y : y + 40, x : x + 40] = 0.9  # 400 regions of 1600 px, 32 beams each
    snr = np.array([c.snr for c in find(p, image_jy_per_pixel=image, beam_area_pix=beam_area)])
    assert snr.size == 400
    assert abs(snr.mean()) < 0.15
    assert snr.std() == pytest.approx(1.0, abs=0.12)


def test_area_kpc2_from_redshift() -> None:
    p = two_rectangles()
    for c in find(p, beam_area_pix=22.38, z=0.224):
        assert c.area_kpc2 == pytest.approx(c.area_arcmin2 * kpc_per_arcmin(0.224) ** 2)
        # 216.1 kpc/arcmin at z = 0.224: a 4.5" pixel is 262.6 kpc^2.
        assert c.area_kpc2 == pytest.approx(c.n_pixels * 262.65, rel=1e-4)
    assert find(p, beam_area_pix=22.38)[0].area_kpc2 is None


# --- shape and orientation -------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 7), (3, 4), (5, 5), (12, 2)])
def test_elongation_of_uniform_rectangles_is_the_side_ratio(h: int, w: int) -> None:
    p = np.zeros((30, 30))
    p[5 : 5 + h, 5 : 5 + w] = 0.8
    (c,) = find(p)
    assert c.elongation == pytest.approx(max(h, w) / min(h, w))
    assert c.position_angle_deg == pytest.approx(0.0 if w >= h else 90.0)


def test_one_pixel_line_has_finite_elongation() -> None:
    p = np.zeros((60, 60))
    p[30, 10:50] = 0.9
    (c,) = find(p)
    assert c.elongation == pytest.approx(40.0)  # sqrt((40**2 / 12) / (1 / 12))
    p = np.zeros((60, 60))
    idx = np.arange(10, 31)
    p[idx, idx] = 0.9
    (c,) = find(p)
    assert math.isfinite(c.elongation) and c.elongation > 20
    assert c.position_angle_deg == pytest.approx(45.0)


CENTRE = (100.0, 100.0)
R500 = 50.0


def bar(length: int, width: int, centre_xy: tuple[int, int], *, vertical: bool) -> np.ndarray:
    p = np.zeros((200, 200))
    x, y = centre_xy
    hl, hw = length // 2, width // 2
    if vertical:
        p[y - hl : y + hl + 1, x - hw : x + hw + 1] = 0.9
    else:
        p[y - hw : y + hw + 1, x - hl : x + hl + 1] = 0.9
    return p


@pytest.mark.parametrize(
    ("position", "vertical", "expected"),
    [
        ((100, 160), False, 90.0),  # north of the centre, east-west: tangential
        ((100, 160), True, 0.0),  # north of the centre, north-south: radial
        ((40, 100), True, 90.0),  # west of the centre, north-south: tangential
        ((40, 100), False, 0.0),  # west of the centre, east-west: radial
        ((100, 40), False, 90.0),  # south
    ],
)
def test_radial_angle_of_bars(position: tuple[int, int], vertical: bool, expected: float) -> None:
    p = bar(41, 3, position, vertical=vertical)
    (c,) = find(p, beam_area_pix=22.38, centre_xy=CENTRE, r500_pix=R500)
    assert (c.x, c.y) == (pytest.approx(position[0]), pytest.approx(position[1]))
    assert c.elongation == pytest.approx(41 / 3)
    assert c.elongation > 3
    assert c.radial_angle_deg == pytest.approx(expected, abs=1e-9)
    assert c.position_angle_deg == pytest.approx(90.0 if vertical else 0.0)
    assert c.distance_r500 == pytest.approx(60 / R500)


def test_radial_angle_of_a_diagonal_arc() -> None:
    # A one-pixel diagonal line at 45 deg from the centre, running along (1, -1): tangential.
    p = np.zeros((200, 200))
    t = np.arange(-10, 11)
    p[140 - t, 140 + t] = 0.9
    (c,) = find(p, centre_xy=CENTRE, r500_pix=R500)
    assert c.position_angle_deg == pytest.approx(135.0)
    assert c.radial_angle_deg == pytest.approx(90.0)
    assert c.distance_r500 == pytest.approx(40 * math.sqrt(2) / R500)
    p = np.zeros((200, 200))
    p[140 + t, 140 + t] = 0.9  # along (1, 1): radial
    (c,) = find(p, centre_xy=CENTRE, r500_pix=R500)
    assert c.radial_angle_deg == pytest.approx(0.0, abs=1e-9)


def test_distance_and_radial_angle_need_a_centre() -> None:
    p = bar(41, 3, (100, 160), vertical=False)
    (c,) = find(p)
    assert c.distance_r500 is None and c.radial_angle_deg is None
    (c,) = find(p, centre_xy=CENTRE)
    assert c.distance_r500 is None
    assert c.radial_angle_deg == pytest.approx(90.0)
    (c,) = find(p, centre_xy=(100.0, 160.0), r500_pix=R500)  # centroid on the centre
    assert c.distance_r500 == pytest.approx(0.0, abs=1e-12)
    assert c.radial_angle_deg is None


def test_centre_outside_the_image() -> None:
    p = bar(41, 3, (100, 160), vertical=False)
    (c,) = find(p, centre_xy=(100.0, -440.0), r500_pix=200.0)
    assert c.distance_r500 == pytest.approx(3.0)
    assert c.radial_angle_deg == pytest.approx(90.0)


# --- serialisation ---------------------------------------------------------------------------


def test_to_dict_round_trips_through_json() -> None:
    p = two_rectangles()
    image = np.full(p.shape, 2e-5)
    full = find(
        p, beam_area_pix=22.38, image_jy_per_pixel=image, centre_xy=CENTRE, r500_pix=R500, z=0.1
    )
    bare = find(p, beam_area_pix=22.38)
    for c in full + bare:
        d = c.to_dict()
        assert list(d) == [f.name for f in Component.__dataclass_fields__.values()]
        back = json.loads(json.dumps(d, allow_nan=False))
        assert back == d
        assert Component(**back) == c
    assert bare[0].to_dict()["flux_jy"] is None
    assert full[0].to_dict()["flux_jy"] == pytest.approx(300 * 2e-5)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 0.0}, r"threshold must be in \(0, 1\), got 0\.0"),
        ({"threshold": 1.0}, r"threshold must be in \(0, 1\), got 1\.0"),
        ({"threshold": math.nan}, r"threshold .* got nan"),
        ({"beam_area_pix": 0.0}, r"beam_area_pix must be a positive number, got 0\.0"),
        ({"beam_area_pix": -3.0}, r"beam_area_pix .* got -3\.0"),
        ({"beam_area_pix": math.inf}, r"beam_area_pix .* got inf"),
        ({"beam_area_pix": math.nan}, r"beam_area_pix .* got nan"),
        ({"min_area_beams": -1.0}, r"min_area_beams must be a non-negative number, got -1\.0"),
        ({"r500_pix": 0.0, "centre_xy": CENTRE}, r"r500_pix must be a positive number, got 0\.0"),
        ({"r500_pix": -5.0, "centre_xy": CENTRE}, r"r500_pix .* got -5\.0"),
        ({"r500_pix": 50.0}, r"r500_pix=50\.0 needs centre_xy"),
        ({"centre_xy": (1.0, math.nan)}, r"centre_xy must be finite .* got \(1\.0, nan\)"),
        ({"z": -0.1}, r"redshift z must be a positive number, got -0\.1"),
        ({"rms_jy_beam": 1e-4}, r"rms_jy_beam=0\.0001 needs image_jy_per_pixel"),
        (
            {"rms_jy_beam": 0.0, "image_jy_per_pixel": np.zeros((20, 20))},
            r"rms_jy_beam must be a positive number, got 0\.0",
        ),
        ({"image_jy_per_pixel": np.zeros((20, 21))}, r"image_jy_per_pixel has shape \(20, 21\)"),
        ({"wcs": WCS(naxis=2)}, r"wcs must be a 2-D celestial astropy WCS, got 2-D WCS"),
        ({"wcs": WCS(naxis=3)}, r"wcs must be a 2-D celestial .* got 3-D WCS"),
        ({"wcs": "RA---TAN"}, r"wcs must be a 2-D celestial astropy WCS, got 'RA---TAN'"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], match: str) -> None:
    p = np.zeros((20, 20))
    with pytest.raises(ValueError, match=match):
        find(p, **kwargs)


@pytest.mark.parametrize("shape", [(20,), (2, 20, 20)])
def test_probability_must_be_2d(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"probability map must be 2-D, got shape"):
        find_components(np.zeros(shape), wcs=WCS200, beam_area_pix=1.0)


# --- properties and scale --------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 12), st.integers(1, 12)),
        elements=st.one_of(st.floats(0.0, 1.0), st.just(math.nan)),
    ),
    st.floats(0.05, 0.95),
)
def test_every_pixel_above_threshold_is_in_exactly_one_component(
    p: np.ndarray, threshold: float
) -> None:
    components = find(p, threshold=threshold, min_area_beams=1e-9)
    assert sum(c.n_pixels for c in components) == int(np.count_nonzero(p > threshold))
    assert [c.label for c in components] == list(range(1, len(components) + 1))
    sums = [c.n_pixels * c.mean_probability for c in components]
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(sums))
    for c in components:
        assert c.elongation >= 1.0
        assert 0.0 <= c.position_angle_deg < 180.0
        assert threshold < c.mean_probability <= c.peak_probability <= 1.0
        assert -0.5 <= c.x <= p.shape[1] - 0.5 and -0.5 <= c.y <= p.shape[0] - 0.5


def test_large_map_with_hundreds_of_components() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.0, 0.4, (2000, 2000)).astype(np.float32)
    # 400 blobs of 5 x 9 px on a 20 x 20 grid.
    for j in range(20):
        for i in range(20):
            p[50 + 95 * j : 55 + 95 * j, 60 + 95 * i : 69 + 95 * i] = 0.9
    wcs = make_wcs(p.shape)
    components = find_components(
        p, wcs=wcs, beam_area_pix=22.38, centre_xy=(1000.0, 1000.0), r500_pix=300.0, z=0.2
    )
    # Speed is a benchmark's business (make bench); here only the values.
    assert len(components) == 400
    assert all(c.n_pixels == 45 for c in components)
    assert [c.elongation for c in components] == pytest.approx([9 / 5] * 400)
