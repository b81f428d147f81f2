"""Tests for radiounet.simulate.observe and radiounet.simulate.setups."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from radiounet.core.units import beam_area_pixels
from radiounet.simulate import observe as observe_module
from radiounet.simulate.imaging import (
    briggs_weights,
    fit_beam,
    gaussian_beam,
    gaussian_taper,
    psf_and_beam,
)
from radiounet.simulate.observe import (
    Observation,
    apply_station_gains,
    observe,
    primary_beam,
    robust_std,
    station_gain_errors,
    station_phase_scale,
)
from radiounet.simulate.setups import SETUPS, ObservationSetup, get_setup
from radiounet.simulate.uvcoverage import UVTrack, hba_station_positions, lofar_hba_track

ARCSEC = 1 / 3600
DEC = 50.0

# 256 x 256 pixels of 4.5" (19'), a 15-minute sampled track, two channels; the
# set-up's default residual gain errors.
SMALL = dataclasses.replace(
    get_setup("lotss-dr2-lowres"),
    name="small-test",
    image_size=256,
    integration_s=900.0,
    n_channels=2,
    max_iterations=3000,
)
N = SMALL.image_size
C = N // 2
NO_ERRORS = dataclasses.replace(SMALL, phase_error_deg=0.0, amplitude_error=0.0)


def gaussian_sky(flux: float, fwhm_arcsec: float, y0: float, x0: float) -> np.ndarray:
    yy, xx = np.mgrid[:N, :N]
    sigma = fwhm_arcsec / SMALL.pixel_arcsec / (2 * math.sqrt(2 * math.log(2)))
    g = np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * sigma**2))
    return flux * g / g.sum()


@pytest.fixture(scope="module")
def mixed() -> tuple[np.ndarray, Observation]:
    sky = gaussian_sky(0.2, 60.0, C + 40, C - 50)
    sky[C, C] += 0.5
    sky[C - 60, C + 70] += 0.1
    return sky, observe(sky, SMALL, dec_deg=DEC, rng=np.random.default_rng(11))


def test_products_have_the_documented_types(mixed: tuple[np.ndarray, Observation]) -> None:
    _, obs = mixed
    for image in (obs.image, obs.residual, obs.model, obs.psf):
        assert image.dtype == np.float32
        assert image.shape == (N, N)
    assert obs.psf[C, C] == pytest.approx(1.0, abs=1e-4)
    track = lofar_hba_track(DEC, integration_s=900.0, max_baseline_m=SMALL.max_baseline_m)
    assert obs.n_visibilities == len(track.uvw) * SMALL.n_channels
    assert obs.noise_sigma_vis > 0
    assert 1 <= obs.major_cycles <= SMALL.major_cycles


def test_same_seed_same_image_whatever_the_threads(mixed: tuple[np.ndarray, Observation]) -> None:
    sky, obs = mixed
    again = observe(sky, SMALL, dec_deg=DEC, rng=np.random.default_rng(11), nthreads=2)
    np.testing.assert_array_equal(again.image, obs.image)
    np.testing.assert_array_equal(again.model, obs.model)
    assert again.beam_deg == obs.beam_deg
    other = observe(sky, SMALL, dec_deg=DEC, rng=np.random.default_rng(12))
    assert not np.array_equal(other.image, obs.image)


def test_point_sources_restored_with_their_flux(mixed: tuple[np.ndarray, Observation]) -> None:
    _, obs = mixed
    assert np.unravel_index(np.argmax(obs.image), obs.image.shape) == (C, C)
    assert obs.image[C, C] == pytest.approx(0.5, rel=0.02)
    assert obs.image[C - 60, C + 70] == pytest.approx(0.1, rel=0.03)


def test_extended_source_flux_is_recovered(mixed: tuple[np.ndarray, Observation]) -> None:
    _, obs = mixed
    yy, xx = np.mgrid[:N, :N]
    aperture = np.hypot(yy - (C + 40), xx - (C - 50)) * SMALL.pixel_arcsec <= 150.0
    area = beam_area_pixels(obs.beam_deg[0], obs.beam_deg[1], (SMALL.pixel_arcsec * ARCSEC) ** 2)
    assert obs.image[aperture].sum() / area == pytest.approx(0.2, rel=0.10)


def test_beam_is_the_fit_to_the_psf(mixed: tuple[np.ndarray, Observation]) -> None:
    _, obs = mixed
    # The same weights as observe: inverse-variance natural weights, Briggs, taper.
    track = lofar_hba_track(DEC, integration_s=900.0, max_baseline_m=SMALL.max_baseline_m)
    freqs = SMALL.frequencies()
    weights = briggs_weights(
        track.uvw,
        freqs,
        npix=N,
        pixel_rad=SMALL.pixel_rad,
        robust=SMALL.robust,
        natural=1 / track.baseline_variance(),
    )
    assert SMALL.taper_arcsec is not None
    weights *= gaussian_taper(track.uvw, freqs, fwhm_rad=math.radians(SMALL.taper_arcsec * ARCSEC))
    psf, beam = psf_and_beam(track.uvw, freqs, weights, npix=2 * N, pixel_rad=SMALL.pixel_rad)
    assert obs.beam_deg == pytest.approx(beam, rel=1e-9)
    np.testing.assert_allclose(obs.psf, psf[C : C + N, C : C + N], atol=1e-6)
    assert fit_beam(obs.psf, SMALL.pixel_arcsec * ARCSEC) == pytest.approx(beam, rel=1e-3)
    assert 15 * ARCSEC < obs.beam_deg[1] <= obs.beam_deg[0] < 25 * ARCSEC


def test_noise_only_field_has_the_target_rms() -> None:
    obs = observe(np.zeros((N, N)), SMALL, dec_deg=DEC, rng=np.random.default_rng(5))
    assert obs.rms_jy_beam == pytest.approx(SMALL.rms_jy_beam, rel=0.10)
    assert obs.clean_converged
    # Pure noise has few 5-sigma peaks to clean.
    assert obs.clean_iterations < 50


def test_clean_state_when_max_iterations_binds(mixed: tuple[np.ndarray, Observation]) -> None:
    sky, obs = mixed
    assert obs.clean_converged
    assert np.abs(obs.residual * primary_beam(N, SMALL.pixel_arcsec * ARCSEC, 3.8)).max() <= (
        SMALL.clean_threshold_sigma * SMALL.rms_jy_beam * 1.0001
    )
    capped = dataclasses.replace(SMALL, max_iterations=20)
    short = observe(sky, capped, dec_deg=DEC, rng=np.random.default_rng(11))
    assert short.clean_iterations == 20
    assert not short.clean_converged
    # The uncleaned flux leaves the source's sidelobes in the residual.
    assert np.abs(short.residual).max() > 10 * SMALL.rms_jy_beam


def test_primary_beam_is_applied_and_corrected() -> None:
    narrow = dataclasses.replace(SMALL, primary_beam_fwhm_deg=0.4)
    sky = np.zeros((N, N))
    y, x = C + 60, C - 60  # 0.106 deg from the centre: attenuated to 0.82
    sky[y, x] = 0.3
    pb = primary_beam(N, SMALL.pixel_arcsec * ARCSEC, 0.4)
    assert pb[y, x] == pytest.approx(0.823, abs=0.001)
    corrected = observe(sky, narrow, dec_deg=DEC, rng=np.random.default_rng(1))
    assert corrected.image[y, x] == pytest.approx(0.3, rel=0.02)
    off = observe(
        sky,
        dataclasses.replace(narrow, primary_beam_fwhm_deg=None),
        dec_deg=DEC,
        rng=np.random.default_rng(1),
    )
    assert off.image[y, x] == pytest.approx(0.3, rel=0.02)


def test_robust_std() -> None:
    values = np.random.default_rng(0).normal(0.0, 3.0, 50_000)
    values[:500] = 1e3  # 1 % outliers barely move it
    assert robust_std(values) == pytest.approx(3.0, rel=0.03)
    with pytest.raises(ValueError, match="at least one finite value"):
        robust_std(np.array([np.nan]))


def test_observe_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="sky must have the setup's shape \\(256, 256\\)"):
        observe(np.zeros((128, 128)), SMALL, dec_deg=DEC, rng=rng)
    bad = np.zeros((N, N))
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="sky must be finite"):
        observe(bad, SMALL, dec_deg=DEC, rng=rng)
    with pytest.raises(ValueError, match="nthreads must be at least 1, got 0"):
        observe(np.zeros((N, N)), SMALL, dec_deg=DEC, rng=rng, nthreads=0)
    with pytest.raises(ValueError, match="sets below LOFAR's horizon"):
        observe(np.zeros((N, N)), SMALL, dec_deg=-50.0, rng=rng)


# --- residual gain errors ---------------------------------------------------------


def point_source_sky(flux: float = 1.0) -> np.ndarray:
    sky = np.zeros((N, N))
    sky[C, C] = flux
    return sky


def annulus_rms(obs: Observation, flux: float = 1.0) -> float:
    """rms of image minus the restored point source at the centre, 3-15 beams from it."""
    half = 40
    source = np.zeros((N, N))
    source[C - half : C + half + 1, C - half : C + half + 1] = flux * gaussian_beam(
        obs.beam_deg, SMALL.pixel_arcsec * ARCSEC, 2 * half + 1
    )
    yy, xx = np.mgrid[:N, :N]
    r_arcsec = np.hypot(yy - C, xx - C) * SMALL.pixel_arcsec
    beam_arcsec = obs.beam_deg[0] / ARCSEC
    annulus = (r_arcsec >= 3 * beam_arcsec) & (r_arcsec <= 15 * beam_arcsec)
    return float(np.sqrt(np.mean((obs.image - source)[annulus] ** 2)))


@pytest.fixture(scope="module")
def bright_point() -> tuple[Observation, Observation]:
    """A 1 Jy point source at the centre, with the default gain errors and without (one seed)."""
    sky = point_source_sky()
    with_errors = observe(sky, SMALL, dec_deg=DEC, rng=np.random.default_rng(3))
    without = observe(sky, NO_ERRORS, dec_deg=DEC, rng=np.random.default_rng(3))
    return with_errors, without


def test_gain_errors_leave_artefacts_around_a_bright_source(
    bright_point: tuple[Observation, Observation],
) -> None:
    with_errors, without = bright_point
    # With an exact PSF CLEAN removes the source's sidelobes down to the noise ...
    assert annulus_rms(without) < 1.3 * SMALL.rms_jy_beam
    # ... but it cannot remove what the gain errors did to them: rings and spokes
    # well above the thermal noise.
    assert annulus_rms(with_errors) > 2 * SMALL.rms_jy_beam
    assert with_errors.clean_converged and without.clean_converged
    # Both images carry the same thermal noise: the errors come from a child stream.
    assert without.noise_sigma_vis == with_errors.noise_sigma_vis
    assert with_errors.image[C, C] == pytest.approx(1.0, rel=0.02)


def test_gain_errors_are_deterministic_per_seed(
    bright_point: tuple[Observation, Observation],
) -> None:
    with_errors, _ = bright_point
    sky = point_source_sky()
    again = observe(sky, SMALL, dec_deg=DEC, rng=np.random.default_rng(3), nthreads=2)
    np.testing.assert_array_equal(again.image, with_errors.image)
    np.testing.assert_array_equal(again.model, with_errors.model)
    other = observe(sky, SMALL, dec_deg=DEC, rng=np.random.default_rng(4))
    assert not np.array_equal(other.image, with_errors.image)


def test_no_gain_errors_draws_only_the_thermal_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    # With the errors off, observe runs exactly as before they existed: nothing is
    # drawn or spawned beyond the two standard-normal arrays of the thermal noise.
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("gain errors drawn or applied with the errors off")

    monkeypatch.setattr(observe_module, "station_gain_errors", forbidden)
    monkeypatch.setattr(observe_module, "apply_station_gains", forbidden)
    rng = np.random.default_rng(8)
    obs = observe(point_source_sky(0.5), NO_ERRORS, dec_deg=DEC, rng=rng)
    reference = np.random.default_rng(8)
    shape = (obs.n_visibilities // NO_ERRORS.n_channels, NO_ERRORS.n_channels)
    reference.standard_normal(shape)
    reference.standard_normal(shape)
    assert rng.bit_generator.state == reference.bit_generator.state
    assert rng.bit_generator.seed_seq.n_children_spawned == 0  # type: ignore[attr-defined]


def test_gain_errors_leave_the_thermal_noise_alone() -> None:
    # An empty sky has nothing for the gains to corrupt: the images are the same
    # bit for bit, so the errors did not take draws from the noise stream.
    rng_on, rng_off = np.random.default_rng(5), np.random.default_rng(5)
    on = observe(np.zeros((N, N)), SMALL, dec_deg=DEC, rng=rng_on)
    off = observe(np.zeros((N, N)), NO_ERRORS, dec_deg=DEC, rng=rng_off)
    np.testing.assert_array_equal(on.image, off.image)
    assert rng_on.bit_generator.state == rng_off.bit_generator.state


def test_amplitude_errors_barely_change_the_peak_flux() -> None:
    sky = point_source_sky()
    for amplitude_error in (SMALL.amplitude_error, 0.05):
        setup = dataclasses.replace(SMALL, phase_error_deg=0.0, amplitude_error=amplitude_error)
        obs = observe(sky, setup, dec_deg=DEC, rng=np.random.default_rng(2))
        assert obs.image[C, C] == pytest.approx(1.0, abs=0.03)
    # ... though they do leave artefacts (5 % is far above the default).
    assert annulus_rms(obs) > 2 * SMALL.rms_jy_beam


def test_gain_errors_need_a_seeded_generator() -> None:
    legacy = np.random.Generator(np.random.RandomState(1)._bit_generator)
    with pytest.raises(ValueError, match="rng must come from a seed"):
        observe(point_source_sky(), SMALL, dec_deg=DEC, rng=legacy)
    # Without errors it needs no child stream.
    observe(point_source_sky(), NO_ERRORS, dec_deg=DEC, rng=legacy)


def test_station_phase_scale_grows_with_distance_from_the_core() -> None:
    names, xyz = hba_station_positions("dutch")
    scale = station_phase_scale(names, xyz)
    core = np.array([n.startswith("CS") for n in names])
    assert np.all((scale[core] >= 0.3) & (scale[core] < 0.34))
    assert np.all((scale[~core] > 0.34) & (scale[~core] <= 1.0))
    assert scale.max() == 1.0  # RS210, RS310, RS509 lie beyond 50 km
    centre = xyz[core].mean(axis=0)
    distance = np.linalg.norm(xyz - centre, axis=1)
    order = np.argsort(distance)
    assert np.all(np.diff(scale[order]) >= 0)
    np.testing.assert_allclose(scale, 0.3 + 0.7 * np.minimum(1, distance / 50e3))
    with pytest.raises(ValueError, match="positions must have shape"):
        station_phase_scale(names[:3], xyz)


def test_station_gain_errors_statistics() -> None:
    setup = get_setup("lotss-dr2-lowres")
    track = lofar_hba_track(DEC, integration_s=setup.integration_s)
    phase, amplitude = station_gain_errors(track, setup, np.random.default_rng(0))
    assert phase.shape == amplitude.shape == (track.n_times, len(track.stations))
    names, xyz = hba_station_positions("dutch")
    unit_phase = phase / (math.radians(setup.phase_error_deg) * station_phase_scale(names, xyz))
    # Ensemble rms as asked for (62 stations x ~24 independent 20-min stretches) ...
    for unit in (unit_phase, amplitude / setup.amplitude_error):
        assert np.sqrt(np.mean(unit**2)) == pytest.approx(1.0, rel=0.15)
        assert abs(unit.mean()) < 0.2
        # ... smooth over one 60-s integration, independent an hour apart.
        assert np.std(np.diff(unit, axis=0)) < 0.1
        lag = round(3600 / setup.integration_s)
        assert abs(np.mean(unit[lag:] * unit[:-lag])) < 0.15
    # Remote stations wander more than core ones.
    core = np.array([n.startswith("CS") for n in names])
    assert np.std(phase[:, ~core]) > 1.5 * np.std(phase[:, core])
    # Each process switches off on its own and then draws nothing: the amplitudes
    # take the draws the phases took above.
    no_phase = dataclasses.replace(setup, phase_error_deg=0.0)
    off_phase, amp = station_gain_errors(track, no_phase, np.random.default_rng(0))
    assert not off_phase.any()
    np.testing.assert_allclose(amp / setup.amplitude_error, unit_phase, rtol=1e-12, atol=1e-12)


def test_apply_station_gains_by_hand() -> None:
    # Three stations, two time steps, baselines (0, 1), (0, 2), (1, 2) time-major.
    track = UVTrack(
        uvw=np.zeros((6, 3)),
        antenna1=np.array([0, 0, 1, 0, 0, 1], dtype=np.int32),
        antenna2=np.array([1, 2, 2, 1, 2, 2], dtype=np.int32),
        stations=("A", "B", "C"),
        n_times=2,
    )
    phase = np.array([[0.1, -0.2, 0.3], [0.0, 0.5, -0.4]])
    amplitude = np.array([[0.01, -0.02, 0.03], [0.0, 0.04, -0.05]])
    freqs = np.array([144e6, 288e6])
    vis = np.full((6, 2), 2.0 + 1.0j)
    apply_station_gains(vis, track, freqs, phase, amplitude, ref_freq_hz=144e6)
    for row in range(6):
        t, p, q = row // 3, track.antenna1[row], track.antenna2[row]
        for c, ratio in enumerate((1.0, 0.5)):
            g_p = (1 + amplitude[t, p]) * np.exp(1j * phase[t, p] * ratio)
            g_q = (1 + amplitude[t, q]) * np.exp(1j * phase[t, q] * ratio)
            assert vis[row, c] == pytest.approx((2.0 + 1.0j) * g_p * np.conj(g_q), rel=1e-12)
    with pytest.raises(ValueError, match="vis must have shape"):
        apply_station_gains(vis[:, :1], track, freqs, phase, amplitude, ref_freq_hz=144e6)
    with pytest.raises(ValueError, match="phase_rad and amplitude must have shape"):
        apply_station_gains(vis, track, freqs, phase[:1], amplitude, ref_freq_hz=144e6)


# --- set-ups --------------------------------------------------------------------


def test_named_setups() -> None:
    assert sorted(SETUPS) == ["lotss-dr2-lowres", "paper-6arcsec"]
    paper = get_setup("paper-6arcsec")
    assert (paper.image_size, paper.pixel_arcsec) == (2000, 2.0)
    assert paper.field_of_view_deg == pytest.approx(1.11, abs=0.01)
    assert (paper.rms_jy_beam, paper.phase_error_deg, paper.amplitude_error) == (83e-6, 3.0, 0.01)
    low = get_setup("lotss-dr2-lowres")
    assert (low.image_size, low.pixel_arcsec) == (960, 4.5)
    # Thermal part and errors sized so that the images measure the survey's 95 uJy/beam
    # (test_dataset.py); CLEAN stops at ~5x that measured rms.
    assert (low.rms_jy_beam, low.phase_error_deg, low.amplitude_error) == (45e-6, 1.5, 0.005)
    assert low.clean_threshold_sigma * low.rms_jy_beam == pytest.approx(450e-6)
    assert paper.clean_threshold_sigma * paper.rms_jy_beam == pytest.approx(5 * 83e-6)
    for setup in SETUPS.values():
        assert setup.duration_h == 8.0
        assert setup.stations == "dutch"
        assert setup.gain_error_timescale_s == 1200.0
        freqs = setup.frequencies()
        assert 120e6 <= freqs.min() < freqs.max() <= 168e6


def test_get_setup_lists_the_names() -> None:
    with pytest.raises(
        ValueError,
        match="unknown observation setup 'lotss'; known: lotss-dr2-lowres, paper-6arcsec",
    ):
        get_setup("lotss")


def test_to_dict_is_json_and_round_trips() -> None:
    for setup in SETUPS.values():
        d = json.loads(json.dumps(setup.to_dict()))
        assert ObservationSetup(**d) == setup
        assert {"name", "image_size", "pixel_arcsec", "rms_jy_beam", "freq_hz"} <= set(d)


def test_frequencies() -> None:
    one = ObservationSetup(name="x", image_size=64, pixel_arcsec=2.0)
    np.testing.assert_array_equal(one.frequencies(), [144e6])
    four = dataclasses.replace(one, n_channels=4)
    np.testing.assert_allclose(four.frequencies(), [126e6, 138e6, 150e6, 162e6])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_size": 63}, "image_size must be even and >= 32, got 63"),
        ({"pixel_arcsec": 0.0}, "pixel_arcsec must be a positive number, got 0.0"),
        ({"robust": 3.0}, "robust must be in \\[-2, 2\\], got 3.0"),
        ({"taper_arcsec": -5.0}, "taper_arcsec must be a positive number or None, got -5.0"),
        ({"clean_gain": 1.0}, "clean_gain must be in \\(0, 1\\), got 1.0"),
        ({"major_cycles": 0}, "major_cycles must be at least 1, got 0"),
        ({"stations": "eu"}, "stations must be one of \\('core', 'dutch'\\), got 'eu'"),
        ({"n_channels": 0}, "n_channels must be at least 1, got 0"),
        ({"rms_jy_beam": float("nan")}, "rms_jy_beam must be a positive number, got nan"),
        ({"phase_error_deg": -1.0}, "phase_error_deg must be in \\[0, 180\\], got -1.0"),
        ({"amplitude_error": 0.6}, "amplitude_error must be in \\[0, 0.5\\], got 0.6"),
        (
            {"gain_error_timescale_s": 0.0},
            "gain_error_timescale_s must be a positive number, got 0.0",
        ),
    ],
)
def test_setup_validation(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SMALL, **change)  # type: ignore[arg-type]
