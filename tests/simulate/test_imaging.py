"""Tests for radiounet.simulate.imaging: predict, weighting, PSF and beam, CLEAN, restore."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import signal

from radiounet.core.units import beam_area_pixels
from radiounet.simulate.imaging import (
    briggs_weights,
    dirty_image,
    fit_beam,
    gaussian_beam,
    gaussian_taper,
    hogbom_clean,
    predict_visibilities,
    psf_and_beam,
    restore,
)
from radiounet.simulate.observe import visibility_noise_sigma
from radiounet.simulate.setups import ObservationSetup, get_setup
from radiounet.simulate.uvcoverage import UVTrack, lofar_hba_track

C = 299_792_458.0
ARCSEC = 1 / 3600

# A small low-resolution field: 128 x 128 pixels of 4.5", a 15-minute sampled track.
SMALL = dataclasses.replace(
    get_setup("lotss-dr2-lowres"), image_size=128, integration_s=900.0, n_channels=2
)


class Field:
    """uvw, weights and PSF of SMALL at dec 50, computed once for the module."""

    def __init__(self, setup: ObservationSetup) -> None:
        self.setup = setup
        self.n = setup.image_size
        self.c = self.n // 2
        self.pix = setup.pixel_rad
        self.pixel_deg = setup.pixel_arcsec * ARCSEC
        self.track: UVTrack = lofar_hba_track(
            50.0, integration_s=setup.integration_s, max_baseline_m=setup.max_baseline_m
        )
        self.uvw = self.track.uvw
        self.freqs = setup.frequencies()
        self.variance = self.track.baseline_variance()
        self.weights = briggs_weights(
            self.uvw,
            self.freqs,
            npix=self.n,
            pixel_rad=self.pix,
            robust=setup.robust,
            natural=1 / self.variance,
        )
        assert setup.taper_arcsec is not None
        self.weights *= gaussian_taper(
            self.uvw, self.freqs, fwhm_rad=math.radians(setup.taper_arcsec * ARCSEC)
        )
        self.psf, self.beam = psf_and_beam(
            self.uvw, self.freqs, self.weights, npix=2 * self.n, pixel_rad=self.pix
        )

    def dirty(self, vis: np.ndarray) -> np.ndarray:
        return dirty_image(vis, self.uvw, self.freqs, self.weights, npix=self.n, pixel_rad=self.pix)

    def predict(self, sky: np.ndarray) -> np.ndarray:
        return predict_visibilities(sky, self.uvw, self.freqs, pixel_rad=self.pix)


@pytest.fixture(scope="module")
def field() -> Field:
    return Field(SMALL)


def point_source_vis(field: Field, flux: float, l_pix: float, m_pix: float) -> np.ndarray:
    """Analytic visibilities S exp(-2 pi i (u l + v m)), l east and m north, in pixels."""
    u = field.uvw[:, 0:1] * field.freqs[None, :] / C
    v = field.uvw[:, 1:2] * field.freqs[None, :] / C
    phase = u * l_pix * field.pix + v * m_pix * field.pix
    return flux * np.exp(-2j * np.pi * phase)


def test_predict_matches_the_analytic_visibilities(field: Field) -> None:
    # A pixel 12 columns to the LEFT of the centre is 12 pixels EAST (l > 0),
    # one 7 rows up is 7 pixels north (m > 0): the FITS CDELT1 < 0 orientation.
    sky = np.zeros((field.n, field.n))
    sky[field.c + 7, field.c - 12] = 0.5
    vis = field.predict(sky)
    assert vis.shape == (len(field.uvw), 2)
    np.testing.assert_allclose(vis, point_source_vis(field, 0.5, 12, 7), atol=1e-5)


@pytest.mark.parametrize(("l_pix", "m_pix"), [(0, 0), (12, 7), (-20, 3), (5, -30)])
def test_point_source_lands_on_its_pixel_with_its_flux(
    field: Field, l_pix: int, m_pix: int
) -> None:
    dirty = field.dirty(point_source_vis(field, 2.0, l_pix, m_pix))
    y, x = np.unravel_index(np.argmax(dirty), dirty.shape)
    assert (y, x) == (field.c + m_pix, field.c - l_pix)  # east is left, north is up
    assert dirty[y, x] == pytest.approx(2.0, rel=1e-4)  # Jy -> Jy/beam


def test_psf_peaks_at_one_in_its_centre(field: Field) -> None:
    assert field.psf.shape == (2 * field.n, 2 * field.n)
    assert field.psf[field.n, field.n] == pytest.approx(1.0, abs=1e-4)
    assert np.argmax(field.psf) == field.n * 2 * field.n + field.n
    # The PSF is the dirty image of a unit point source at the centre.
    sky = np.zeros((field.n, field.n))
    sky[field.c, field.c] = 1.0
    dirty = field.dirty(field.predict(sky))
    np.testing.assert_allclose(
        dirty, field.psf[field.c : field.c + field.n, field.c : field.c + field.n], atol=1e-4
    )


def test_restored_point_source_peak(field: Field) -> None:
    sky = np.zeros((field.n, field.n))
    sky[field.c, field.c] = 0.8
    sky[field.c + 20, field.c - 25] = 0.3
    dirty = field.dirty(field.predict(sky))
    model, residual = hogbom_clean(dirty, field.psf, threshold=1e-4, gain=0.1, max_iterations=1000)
    image = restore(model, residual, field.beam, field.pixel_deg)
    assert image[field.c, field.c] == pytest.approx(0.8, rel=0.02)
    assert image[field.c + 20, field.c - 25] == pytest.approx(0.3, rel=0.02)
    assert np.unravel_index(np.argmax(image), image.shape) == (field.c, field.c)


@pytest.mark.parametrize(
    ("name", "low", "high"), [("lotss-dr2-lowres", 18.0, 23.0), ("paper-6arcsec", 5.0, 7.0)]
)
def test_fitted_beam_of_the_named_setups(name: str, low: float, high: float) -> None:
    setup = get_setup(name)
    # Weights on the set-up's full uv grid; a coarser track and a small PSF
    # image suffice for the main lobe.
    track = lofar_hba_track(50.0, integration_s=240.0, max_baseline_m=setup.max_baseline_m)
    freqs = setup.frequencies()
    weights = briggs_weights(
        track.uvw,
        freqs,
        npix=setup.image_size,
        pixel_rad=setup.pixel_rad,
        robust=setup.robust,
        natural=1 / track.baseline_variance(),
    )
    if setup.taper_arcsec is not None:
        weights *= gaussian_taper(
            track.uvw, freqs, fwhm_rad=math.radians(setup.taper_arcsec * ARCSEC)
        )
    _, (bmaj, bmin, bpa) = psf_and_beam(
        track.uvw, freqs, weights, npix=128, pixel_rad=setup.pixel_rad
    )
    bmaj, bmin = bmaj * 3600, bmin * 3600
    assert bmaj >= bmin
    assert low <= math.sqrt(bmaj * bmin) <= high
    if name == "lotss-dr2-lowres":
        assert low <= bmin <= bmaj <= high
    else:  # the paper: 5.9" x 5.1"
        assert 4.0 <= bmin <= bmaj <= high
    assert 0.0 <= bpa < 180.0


def test_uniform_like_weighting_gives_a_smaller_beam_than_natural_like(field: Field) -> None:
    areas = {}
    for robust in (-2.0, 2.0):
        weights = briggs_weights(
            field.uvw, field.freqs, npix=field.n, pixel_rad=field.pix, robust=robust
        )
        _, (bmaj, bmin, _) = psf_and_beam(
            field.uvw, field.freqs, weights, npix=field.n, pixel_rad=field.pix
        )
        areas[robust] = bmaj * bmin
    assert areas[-2.0] < 0.5 * areas[2.0]


def test_taper_widens_the_beam(field: Field) -> None:
    weights = briggs_weights(field.uvw, field.freqs, npix=field.n, pixel_rad=field.pix, robust=-0.5)
    _, untapered = psf_and_beam(field.uvw, field.freqs, weights, npix=field.n, pixel_rad=field.pix)
    assert untapered[0] < 0.8 * field.beam[0]


def test_briggs_limits_and_grid_edge(field: Field) -> None:
    natural = 1 / field.variance
    weights = briggs_weights(
        field.uvw, field.freqs, npix=field.n, pixel_rad=field.pix, robust=5.0, natural=natural
    )
    ratio = weights / natural[:, None]
    on_grid = ratio > 0
    assert on_grid.mean() > 0.99
    # robust +5: natural weighting up to a constant.
    np.testing.assert_allclose(ratio[on_grid], ratio[on_grid].max(), rtol=0.01)
    # Beyond 1 / (2 pixel) the pixels cannot represent the visibility: weight 0.
    edge = 0.5 / field.pix
    uvw = np.array([[0.9 * edge, 0.1 * edge, 0.0], [1.1 * edge, 0.0, 0.0]]) * C / 144e6
    w = briggs_weights(uvw, np.array([144e6]), npix=64, pixel_rad=field.pix, robust=0.0)
    assert w[0, 0] > 0 and w[1, 0] == 0


def test_noise_only_image_has_the_target_rms(field: Field) -> None:
    n = 256  # more independent beams than the 128-pixel field: a tighter rms estimate
    weights = briggs_weights(
        field.uvw,
        field.freqs,
        npix=n,
        pixel_rad=field.pix,
        robust=-0.5,
        natural=1 / field.variance,
    )
    target = 95e-6
    sigma = visibility_noise_sigma(weights, field.variance[:, None], target)
    rng = np.random.default_rng(7)
    scale = sigma * np.sqrt(field.variance)[:, None]
    noise = np.empty(weights.shape, dtype=np.complex128)
    noise.real = scale * rng.standard_normal(weights.shape)
    noise.imag = scale * rng.standard_normal(weights.shape)
    image = dirty_image(noise, field.uvw, field.freqs, weights, npix=n, pixel_rad=field.pix)
    assert np.std(image) == pytest.approx(target, rel=0.10)


def test_visibility_noise_sigma_formula() -> None:
    # Equal weights and variances: sigma_img = sigma / sqrt(N).
    w = np.ones((100, 4))
    assert visibility_noise_sigma(w, np.ones(1), 1e-3) == pytest.approx(1e-3 * 20.0)
    with pytest.raises(ValueError, match=r"rms_jy_beam must be a positive number, got -1\.0"):
        visibility_noise_sigma(w, np.ones(1), -1.0)


def several_sources(field: Field) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    sources = [(64, 64, 1.0), (90, 30, 0.4), (20, 100, 0.25), (40, 45, 0.05)]
    sky = np.zeros((field.n, field.n))
    for y, x, s in sources:
        sky[y, x] = s
    return field.dirty(field.predict(sky)), sources


def test_clean_reaches_the_threshold_and_finds_the_sources(field: Field) -> None:
    dirty, sources = several_sources(field)
    threshold = 2e-3
    model, residual = hogbom_clean(
        dirty, field.psf, threshold=threshold, gain=0.1, max_iterations=5000
    )
    assert np.abs(residual).max() <= threshold
    assert np.abs(dirty).max() > 0.9
    for y, x, s in sources:
        assert model[y - 2 : y + 3, x - 2 : x + 3].sum() == pytest.approx(s, abs=3 * threshold)
    assert model.sum() == pytest.approx(sum(s for *_, s in sources), rel=0.01)


def test_clean_stops_at_max_iterations(field: Field) -> None:
    dirty, _ = several_sources(field)
    model, residual = hogbom_clean(dirty, field.psf, threshold=1e-4, gain=0.1, max_iterations=5)
    # Five components, all on the brightest source: peak 1 * (1 - 0.9**5) taken.
    assert np.count_nonzero(model) == 1
    assert model[64, 64] == pytest.approx(1 - 0.9**5, rel=1e-3)
    assert np.abs(residual).max() > 1e-4  # stopped early, not converged


def test_clean_residual_is_dirty_minus_model_convolved_with_the_psf(field: Field) -> None:
    dirty, _ = several_sources(field)
    model, residual = hogbom_clean(dirty, field.psf, threshold=0.01, gain=0.2, max_iterations=300)
    n = field.n
    convolved = signal.fftconvolve(model, field.psf, mode="full")[n : 2 * n, n : 2 * n]
    np.testing.assert_allclose(residual, dirty - convolved, atol=1e-6)


def test_clean_with_an_image_sized_psf_still_cleans(field: Field) -> None:
    dirty, _ = several_sources(field)
    c, n = field.c, field.n
    small_psf = field.psf[c : c + n, c : c + n]
    model, residual = hogbom_clean(dirty, small_psf, threshold=0.01, gain=0.1, max_iterations=2000)
    assert np.abs(residual).max() <= 0.01
    assert model.sum() == pytest.approx(1.7, rel=0.03)


def test_restore_conserves_flux_and_adds_the_residual(field: Field) -> None:
    rng = np.random.default_rng(3)
    model = np.zeros((field.n, field.n))
    ys, xs = rng.integers(30, 98, (2, 40))
    model[ys, xs] = rng.uniform(0.01, 1.0, 40)
    beam = (20 * ARCSEC, 15 * ARCSEC, 40.0)
    residual = rng.normal(0, 1e-4, model.shape)
    restored_model = restore(model, np.zeros_like(model), beam, field.pixel_deg)
    area = beam_area_pixels(beam[0], beam[1], field.pixel_deg**2)
    assert restored_model.sum() / area == pytest.approx(model.sum(), rel=0.01)
    np.testing.assert_allclose(
        restore(model, residual, beam, field.pixel_deg), restored_model + residual, atol=1e-12
    )
    # A single component: a Gaussian of peak equal to its flux.
    one = np.zeros((field.n, field.n))
    one[70, 50] = 0.5
    assert restore(one, np.zeros_like(one), beam, field.pixel_deg).max() == pytest.approx(0.5)


@pytest.mark.parametrize("bpa", [0.0, 30.0, 90.0, 135.0])
def test_fit_beam_recovers_a_gaussian(bpa: float) -> None:
    beam = (9 * ARCSEC, 5 * ARCSEC, bpa)
    kernel = gaussian_beam(beam, ARCSEC, 65)
    bmaj, bmin, pa = fit_beam(kernel, ARCSEC)
    assert bmaj == pytest.approx(beam[0], rel=1e-3)
    assert bmin == pytest.approx(beam[1], rel=1e-3)
    assert pa == pytest.approx(bpa, abs=0.1)


def test_position_angle_is_east_of_north_with_east_to_the_left() -> None:
    c = 32
    north_south = gaussian_beam((10 * ARCSEC, 4 * ARCSEC, 0.0), ARCSEC, 65)
    assert north_south[c + 4, c] > north_south[c, c + 4]  # long along the rows (north)
    east_west = gaussian_beam((10 * ARCSEC, 4 * ARCSEC, 90.0), ARCSEC, 65)
    assert east_west[c, c + 4] > east_west[c + 4, c]
    # PA 45: major axis from the centre towards north-EAST, i.e. up and to the LEFT.
    diagonal = gaussian_beam((10 * ARCSEC, 4 * ARCSEC, 45.0), ARCSEC, 65)
    assert diagonal[c + 3, c - 3] > diagonal[c + 3, c + 3]


def test_invalid_arguments(field: Field) -> None:
    with pytest.raises(ValueError, match="pixel_rad must be a positive angle in radians, got -1"):
        predict_visibilities(np.zeros((64, 64)), field.uvw, field.freqs, pixel_rad=-1)
    with pytest.raises(ValueError, match="sky must be a square image with an even side"):
        predict_visibilities(np.zeros((63, 63)), field.uvw, field.freqs, pixel_rad=field.pix)
    with pytest.raises(ValueError, match="uvw must have shape \\(n_rows, 3\\)"):
        predict_visibilities(np.zeros((64, 64)), field.uvw[:, :2], field.freqs, pixel_rad=1e-5)
    with pytest.raises(ValueError, match="npix must be even and >= 32, got 33"):
        dirty_image(
            np.zeros((1, 1), dtype=np.complex128),
            field.uvw[:1],
            field.freqs[:1],
            np.ones((1, 1)),
            npix=33,
            pixel_rad=1e-5,
        )
    with pytest.raises(ValueError, match="psf must peak at its centre pixel"):
        fit_beam(np.roll(gaussian_beam((5 * ARCSEC, 5 * ARCSEC, 0.0), ARCSEC, 33), 3), ARCSEC)
    with pytest.raises(ValueError, match=r"gain must be in \(0, 1\), got 1\.5"):
        hogbom_clean(np.zeros((32, 32)), np.ones((64, 64)), threshold=0, gain=1.5, max_iterations=1)
    with pytest.raises(ValueError, match="robust must be a number in \\[-5, 5\\], got 9"):
        briggs_weights(field.uvw, field.freqs, npix=64, pixel_rad=field.pix, robust=9)
