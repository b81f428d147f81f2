"""A synthetic LOFAR HBA observation of a sky model: predict, add noise, image, CLEAN, restore.

The steps follow the paper's mocks (Stuardi et al. 2024, Sec. 4: WSClean
predict, LoSiTo noise, WSClean Briggs imaging and CLEAN), with ducc0 doing the
gridding:

1. uv coverage of the set-up's track at the field's declination
   (:func:`radiounet.simulate.uvcoverage.lofar_hba_track`);
2. the sky (Jy/pixel), times the primary beam, predicted to visibilities for
   every channel (flat spectrum: the sky is taken at ``setup.freq_hz``);
3. residual calibration errors: every station gets a direction-independent
   complex gain ``g_s(t) = (1 + a_s(t)) exp(i phi_s(t))`` and every visibility
   is multiplied by ``g_p conj(g_q)`` (:func:`station_gain_errors`,
   :func:`apply_station_gains`). ``phi_s`` and ``a_s`` are smooth Gaussian
   processes in time (correlation time ``setup.gain_error_timescale_s``, 20
   min) of rms ``setup.phase_error_deg`` (paper-6arcsec: 3 deg on stations 50
   km or more from the core, down to 0.9 deg in the core:
   :func:`station_phase_scale`; lotss-dr2-lowres: half; the phase scales as
   ``1 / frequency``) and ``setup.amplitude_error`` (1 %; 0.5 %). The
   imager and CLEAN do not know them, as in a real image after calibration;
4. thermal noise: complex Gaussian per visibility, its variance proportional
   to the two stations' SEFDs, scaled so that noise alone imaged with the
   set-up's weights has an rms of ``setup.rms_jy_beam`` (see
   :func:`visibility_noise_sigma`);
5. Briggs weights from the natural (inverse-variance) weights, times the
   Gaussian taper; PSF on twice the image size; Gaussian beam fitted to it;
6. Hogbom CLEAN in Cotton-Schwab major cycles: each cycle cleans the residual
   image to ``max(threshold, (1 - major_gain) * peak)`` (the last allowed cycle
   to the threshold), then the model is predicted with ``dirty2vis``,
   subtracted from the visibilities, and the residual re-imaged. The
   threshold is ``clean_threshold_sigma * rms_jy_beam`` (the paper: 5 sigma;
   lotss-dr2-lowres: 10 of its thermal sigma, ~5 of its measured rms),
   and ``max_iterations`` caps the components in all. Without gain errors
   compact sources would clean perfectly (the sky and the image share one
   pixel grid and the PSF is exact); with them, every bright source keeps
   rings and spokes that CLEAN cannot model, as in LOFAR images: around a
   1 Jy point source in ``lotss-dr2-lowres`` the rms at 1-5' is 3.2-4.0x the
   thermal rms there, 1.5x at 5-10', 1.3x at 10-20', 1.1x at 20-40' (three
   seeds; :mod:`radiounet.simulate.setups` has the figures for 3 deg / 1 %).
   CLEAN takes components on the artefacts above its threshold, like WSClean
   without a mask. Add the
   sources that need more components than the cap allows and the
   sub-threshold emission left in the residual: imperfectly cleaned images,
   as the paper wanted;
7. restored image: model convolved with the fitted beam plus residual,
   divided by the primary beam (as the paper's primary-beam-corrected images).

Primary beam: a circular Gaussian of ``setup.primary_beam_fwhm_deg`` (3.8 deg,
the HBA station beam at 144 MHz), the same at every frequency. Over a
1.1-1.2 deg field it attenuates the corners by ~12 %, so after correction the
noise rises by as much towards them. ``None`` switches it off.

Cost, measured with ``nthreads=2`` on a 2-core machine that other jobs were
also using (load 3-4), for fields drawn by :func:`radiounet.simulate.sky.random_sky`
with exact gains (CLEAN converged at 5 sigma after 12-15k components):

=================  ==========  ============  ===============  ========
set-up             image       visibilities  CPU / wall (s)   peak RSS
=================  ==========  ============  ===============  ========
lotss-dr2-lowres   960 x 960   2.3M (3 ch)   5-6 / 6.5-9      0.5 GB
paper-6arcsec      2000x2000   4.1M (3 ch)   9.5-11 / 10-15   1.2 GB
=================  ==========  ============  ===============  ========

About half is the gridder (predict, three major cycles, the PSF on twice the
field), half CLEAN; a field of a few point sources costs 4 s (low-res) and
8-12 s (paper). Expect about the CPU time on an idle machine: only the FFTs
use a second thread. The default gain errors cost little to draw and apply
(0.2-0.3 s, no more peak memory) but give CLEAN artefacts to work on: 13-18k
components and 5-8 s CPU per low-res field (4-6 s with exact gains, same
fields and machine at load 1-2), 14-29k and 9-14 s per paper field (7-9 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from radiounet.simulate import imaging
from radiounet.simulate.setups import ObservationSetup
from radiounet.simulate.uvcoverage import UVTrack, hba_station_positions, lofar_hba_track

__all__ = [
    "PHASE_ERROR_CORE_FRACTION",
    "PHASE_ERROR_FULL_DISTANCE_M",
    "Observation",
    "apply_station_gains",
    "observe",
    "primary_beam",
    "robust_std",
    "station_gain_errors",
    "station_phase_scale",
    "visibility_noise_sigma",
]

#: Fraction of ``phase_error_deg`` that a station at the array centre gets ...
PHASE_ERROR_CORE_FRACTION = 0.3
#: ... rising linearly with distance to all of it at this distance and beyond.
PHASE_ERROR_FULL_DISTANCE_M = 50e3
# Regularises the Cholesky factor of the (nearly singular) squared-exponential
# covariance: white noise of 1e-3 of the rms, far below anything that matters.
_GP_JITTER = 1e-6

# ducc0 is not bitwise reproducible with several threads: gridding accumulates
# in a thread-dependent order, and the kernel and oversampling it picks depend
# on the thread count. It runs single-threaded here, so that one seed gives one
# image whatever `nthreads` is; `nthreads` goes to the FFTs. (Use more cores by
# simulating several fields in parallel processes.)
_GRIDDER_THREADS = 1


@dataclass(frozen=True)
class Observation:
    """The products of :func:`observe`; images are ``float32`` ``[y, x]`` arrays.

    Attributes
    ----------
    image : ndarray
        Restored, primary-beam-corrected image, Jy/beam.
    residual : ndarray
        Final residual, primary-beam corrected, Jy/beam.
    model : ndarray
        CLEAN components, primary-beam corrected, Jy/pixel.
    psf : ndarray
        Point-spread function, the central image-sized part, peak 1 at
        ``(N // 2, N // 2)``.
    beam_deg : tuple of float
        Fitted restoring beam ``(bmaj, bmin, bpa)`` in degrees.
    rms_jy_beam : float
        Measured noise: robust standard deviation (1.4826 MAD) of ``residual``.
    noise_sigma_vis : float
        Thermal noise per real and per imaginary part of one visibility on a
        baseline between two remote (48-tile) stations, Jy; split-core ears
        have twice the SEFD.
    clean_iterations : int
        CLEAN components taken, over all major cycles.
    major_cycles : int
        Major cycles run.
    clean_converged : bool
        True when the final residual peak is at most the CLEAN threshold (false
        when ``max_iterations`` or ``major_cycles`` stopped it first).
    n_visibilities : int
        Rows times channels.
    """

    image: NDArray[np.float32]
    residual: NDArray[np.float32]
    model: NDArray[np.float32]
    psf: NDArray[np.float32]
    beam_deg: tuple[float, float, float]
    rms_jy_beam: float
    noise_sigma_vis: float
    clean_iterations: int
    major_cycles: int
    clean_converged: bool
    n_visibilities: int


def robust_std(values: NDArray[np.floating]) -> float:
    """1.4826 times the median absolute deviation: the std of Gaussian noise, robust to sources.

    Examples
    --------
    >>> round(robust_std(np.random.default_rng(0).normal(0.0, 2.0, 100_000)), 1)
    2.0
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        raise ValueError("robust_std needs at least one finite value")
    return float(1.4826 * np.median(np.abs(flat - np.median(flat))))


def _child(rng: np.random.Generator) -> np.random.Generator:
    """An independent generator spawned from ``rng`` (its own draws are left as they are)."""
    try:
        return rng.spawn(1)[0]
    except TypeError:
        raise ValueError(
            "rng must come from a seed (numpy.random.default_rng(seed)) so that the gain "
            "errors can be drawn from a child stream"
        ) from None


def primary_beam(npix: int, pixel_deg: float, fwhm_deg: float) -> NDArray[np.float64]:
    """Circular Gaussian primary beam on the image grid, 1 at the phase centre ``(N // 2, N // 2)``.

    Examples
    --------
    >>> pb = primary_beam(64, 0.05, 3.8)
    >>> float(pb[32, 32]), round(float(pb[32, 0]), 3)
    (1.0, 0.612)
    """
    if not (math.isfinite(fwhm_deg) and fwhm_deg > 0):
        raise ValueError(f"fwhm_deg must be positive, got {fwhm_deg!r}")
    offsets = (np.arange(npix) - npix // 2) * math.radians(pixel_deg)
    # Pixels are linear in direction cosines (SIN); sin(theta) ~ theta at these radii.
    r2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    beam: NDArray[np.float64] = np.exp(-4.0 * math.log(2.0) * r2 / math.radians(fwhm_deg) ** 2)
    return beam


def visibility_noise_sigma(
    weights: NDArray[np.floating],
    variance: NDArray[np.floating],
    rms_jy_beam: float,
) -> float:
    """Per-component visibility noise (for relative variance 1) that gives ``rms_jy_beam``.

    With visibility noise ``n_k = sigma sqrt(variance_k) (a_k + i b_k)``,
    ``a_k, b_k ~ N(0, 1)``, a pixel of the normalised dirty image is
    ``sum_k w_k Re(n_k e^{i phi_k}) / sum_k w_k``; each term has variance
    ``w_k**2 sigma**2 variance_k`` whatever the phase, so the image rms is
    ``sigma sqrt(sum_k w_k**2 variance_k) / sum_k w_k`` and

        sigma = rms * sum_k w_k / sqrt(sum_k w_k**2 variance_k).

    ``variance`` broadcasts against ``weights`` (e.g. per row for
    ``(n_rows, n_channels)`` weights).
    """
    if not (math.isfinite(rms_jy_beam) and rms_jy_beam > 0):
        raise ValueError(f"rms_jy_beam must be a positive number, got {rms_jy_beam!r}")
    w = np.asarray(weights, dtype=np.float64)
    var = np.broadcast_to(np.asarray(variance, dtype=np.float64), w.shape)
    total = float(w.sum())
    spread = float(np.sum(w * w * var))
    if not (total > 0 and spread > 0):
        raise ValueError("weights must have a positive sum")
    return rms_jy_beam * total / math.sqrt(spread)


def station_phase_scale(
    names: tuple[str, ...] | list[str], positions: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Phase-error rms of each station relative to ``phase_error_deg``.

    The ionosphere that calibration gets wrong differs more between stations
    far apart, so remote stations get larger residual phase errors than core
    ones: ``0.3 + 0.7 * min(1, d / 50 km)``, with ``d`` the distance from the
    centroid of the core (``CS``) stations (of all stations if there are none).
    The split core (within ~2 km) gets 0.30-0.33, remote stations 0.35 (RS503,
    3.5 km) to 1 (RS210, RS310, RS509). The linear ramp is a simple stand-in for
    the ionospheric phase structure function: the rms phase difference grows
    about linearly with distance (power ~0.8-1, Mevius et al. 2016) up to tens of
    km; the floor stands for the errors that are independent per station
    (solution noise, beam model).

    Parameters
    ----------
    names : sequence of str
        Station field names, one per row of ``positions``.
    positions : ndarray, shape (n_stations, 3)
        Earth-fixed positions in metres.

    Examples
    --------
    >>> names, xyz = hba_station_positions("dutch")
    >>> scale = station_phase_scale(names, xyz)
    >>> round(float(scale.min()), 2), round(float(scale.max()), 2)
    (0.3, 1.0)
    """
    xyz = np.asarray(positions, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape != (len(names), 3):
        raise ValueError(f"positions must have shape ({len(names)}, 3), got {xyz.shape!r}")
    core = np.array([name.startswith("CS") for name in names], dtype=bool)
    centre = xyz[core].mean(axis=0) if core.any() else xyz.mean(axis=0)
    distance = np.linalg.norm(xyz - centre, axis=1)
    ramp = np.minimum(1.0, distance / PHASE_ERROR_FULL_DISTANCE_M)
    scale: NDArray[np.float64] = PHASE_ERROR_CORE_FRACTION + (1 - PHASE_ERROR_CORE_FRACTION) * ramp
    return scale


def _smooth_processes(
    rng: np.random.Generator, n_times: int, step_s: float, timescale_s: float, n: int
) -> NDArray[np.float64]:
    """``n`` independent unit-variance Gaussian processes on ``n_times`` samples, ``step_s`` apart.

    Squared-exponential covariance ``exp(-dt**2 / (2 timescale_s**2))``, drawn
    exactly on the samples (Cholesky factor times white noise), so the statistics
    do not depend on the sampling. Shape ``(n_times, n)``.
    """
    t = np.arange(n_times) * step_s
    cov = np.exp(-0.5 * ((t[:, None] - t[None, :]) / timescale_s) ** 2)
    cov[np.diag_indices(n_times)] += _GP_JITTER
    factor = np.linalg.cholesky(cov)
    draws: NDArray[np.float64] = factor @ rng.standard_normal((n_times, n))
    return draws


def station_gain_errors(
    track: UVTrack,
    setup: ObservationSetup,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Residual station phase and amplitude errors over the track, at ``setup.freq_hz``.

    Every station ``s`` gets a gain ``g_s(t) = (1 + a_s(t)) exp(i phi_s(t))``:
    ``phi_s`` and ``a_s`` are independent, zero-mean, smooth Gaussian processes
    in time (covariance ``rms**2 exp(-dt**2 / (2 tau**2))``, ``tau =
    setup.gain_error_timescale_s``) with rms ``setup.phase_error_deg`` times
    :func:`station_phase_scale` and ``setup.amplitude_error``. The rms is that
    of the ensemble: one 8-h track holds only ~``8 h / tau`` independent
    stretches, so a station's own rms over the track scatters about it.

    Parameters
    ----------
    track : UVTrack
        The track (its stations and number of time steps).
    setup : ObservationSetup
        Error levels, correlation time and ``integration_s``.
    rng : numpy.random.Generator
        Source of the errors: phases first, then amplitudes. A process that is
        switched off (rms 0) draws nothing.

    Returns
    -------
    phase_rad, amplitude : ndarray, shape (n_times, n_stations)
        ``phi_s(t)`` in radians and ``a_s(t)``.
    """
    n_times, n_stations = track.n_times, len(track.stations)
    phase = np.zeros((n_times, n_stations), dtype=np.float64)
    amplitude = np.zeros((n_times, n_stations), dtype=np.float64)
    args = (n_times, setup.integration_s, setup.gain_error_timescale_s, n_stations)
    if setup.phase_error_deg > 0:
        names, positions = hba_station_positions(setup.stations)
        if tuple(names) != tuple(track.stations):
            raise ValueError(
                f"track stations do not match the setup's {setup.stations!r} station set"
            )
        rms = math.radians(setup.phase_error_deg) * station_phase_scale(names, positions)
        phase = _smooth_processes(rng, *args) * rms[None, :]
    if setup.amplitude_error > 0:
        amplitude = _smooth_processes(rng, *args) * setup.amplitude_error
    return phase, amplitude


def apply_station_gains(
    vis: NDArray[np.complex128],
    track: UVTrack,
    freqs: NDArray[np.floating],
    phase_rad: NDArray[np.floating],
    amplitude: NDArray[np.floating],
    *,
    ref_freq_hz: float,
) -> None:
    """Corrupt ``vis`` in place: ``V_pq(t, nu) *= g_p(t, nu) conj(g_q(t, nu))``.

    ``p`` is ``track.antenna1`` and ``q`` ``track.antenna2`` of each row, ``t``
    its time step (rows are time-major), and ``g_s(t, nu) = (1 + a_s(t))
    exp(i phi_s(t) ref_freq_hz / nu)``: the phase of an ionospheric (dispersive)
    delay, the amplitude the same at every frequency.

    Parameters
    ----------
    vis : ndarray, shape (n_rows, n_channels)
        Visibilities of ``track`` at ``freqs``.
    phase_rad, amplitude : ndarray, shape (n_times, n_stations)
        From :func:`station_gain_errors`.
    """
    n_rows = len(track.uvw)
    if vis.shape != (n_rows, len(freqs)):
        raise ValueError(f"vis must have shape {(n_rows, len(freqs))!r}, got {vis.shape!r}")
    expected = (track.n_times, len(track.stations))
    if phase_rad.shape != expected or amplitude.shape != expected:
        raise ValueError(
            f"phase_rad and amplitude must have shape {expected!r}, got "
            f"{phase_rad.shape!r} and {amplitude.shape!r}"
        )
    time = np.arange(n_rows) // track.n_baselines
    p, q = track.antenna1, track.antenna2
    dphase = phase_rad[time, p] - phase_rad[time, q]
    gain = (1.0 + amplitude[time, p]) * (1.0 + amplitude[time, q])
    for c, freq in enumerate(np.asarray(freqs, dtype=np.float64)):
        vis[:, c] *= gain * np.exp(1j * (ref_freq_hz / freq) * dphase)


def observe(
    sky_jy_per_pixel: NDArray[np.floating],
    setup: ObservationSetup,
    *,
    dec_deg: float,
    rng: np.random.Generator,
    nthreads: int = 1,
) -> Observation:
    """Observe a sky model with LOFAR HBA and image it as ``setup`` says.

    Parameters
    ----------
    sky_jy_per_pixel : ndarray, shape (image_size, image_size)
        True sky at ``setup.freq_hz`` in Jy/pixel, in the image convention of
        :mod:`radiounet.simulate.imaging` (rows north, columns west, phase
        centre at pixel ``(N // 2, N // 2)``, i.e. FITS ``CRPIX = N / 2 + 1``
        and ``CDELT1 = -pixel``).
    setup : ObservationSetup
        Array, track, weighting and CLEAN parameters.
    dec_deg : float
        Declination of the field (sets the uv coverage).
    rng : numpy.random.Generator
        Source of the thermal noise and the gain errors, the only randomness,
        so one seed gives one image. The gain errors come from a child stream
        (``rng.spawn``), so the thermal noise is the same with or without them;
        with them on, ``rng`` must therefore come from a seed
        (``default_rng(seed)``), and spawning counts on its seed sequence.
        With both errors 0 nothing is spawned and the result is bit for bit
        that of the simulator before the errors existed.
    nthreads : int, optional
        Threads for CLEAN's FFTs. The gridder runs single-threaded so that the
        result does not depend on ``nthreads``.

    Returns
    -------
    Observation
    """
    n = setup.image_size
    sky = np.asarray(sky_jy_per_pixel, dtype=np.float64)
    if sky.shape != (n, n):
        raise ValueError(
            f"sky must have the setup's shape {(n, n)!r} ({setup.name!r}), got {sky.shape!r}"
        )
    if not np.all(np.isfinite(sky)):
        raise ValueError("sky must be finite everywhere (no NaN/inf pixels)")
    if nthreads < 1:
        raise ValueError(f"nthreads must be at least 1, got {nthreads!r}")
    pixel_rad = setup.pixel_rad
    pixel_deg = setup.pixel_arcsec / 3600.0

    track = lofar_hba_track(
        dec_deg,
        duration_h=setup.duration_h,
        integration_s=setup.integration_s,
        stations=setup.stations,
        max_baseline_m=setup.max_baseline_m,
    )
    uvw = track.uvw
    freqs = setup.frequencies()
    variance = track.baseline_variance()

    pb = None
    if setup.primary_beam_fwhm_deg is not None:
        pb = primary_beam(n, pixel_deg, setup.primary_beam_fwhm_deg)
        sky = sky * pb

    weights = imaging.briggs_weights(
        uvw, freqs, npix=n, pixel_rad=pixel_rad, robust=setup.robust, natural=1.0 / variance
    )
    if setup.taper_arcsec is not None:
        weights *= imaging.gaussian_taper(
            uvw, freqs, fwhm_rad=math.radians(setup.taper_arcsec / 3600.0)
        )

    # uvw in ducc0's axis order once, rather than on every gridder call.
    duvw = imaging._ducc_uvw(uvw)
    vis = imaging._dirty2vis(sky, duvw, freqs, pixel_rad, _GRIDDER_THREADS)
    if setup.phase_error_deg > 0 or setup.amplitude_error > 0:
        # A child stream, so the thermal noise below is the same with or without
        # the errors (and nothing is drawn or spawned when they are off).
        phase, amplitude = station_gain_errors(track, setup, _child(rng))
        apply_station_gains(vis, track, freqs, phase, amplitude, ref_freq_hz=setup.freq_hz)
        del phase, amplitude
    sigma = visibility_noise_sigma(weights, variance[:, None], setup.rms_jy_beam)
    scale = sigma * np.sqrt(variance)[:, None]
    vis += scale * rng.standard_normal(vis.shape)
    vis += 1j * scale * rng.standard_normal(vis.shape)
    del scale, sky

    # The PSF on twice the image covers every offset between two pixels, so the
    # minor cycles subtract it exactly (no truncated-PSF errors to correct).
    psf, beam = imaging.psf_and_beam(
        uvw, freqs, weights, npix=2 * n, pixel_rad=pixel_rad, nthreads=_GRIDDER_THREADS
    )
    weight_sum = float(weights.sum())

    def image(v: NDArray[np.complex128]) -> NDArray[np.float64]:
        dirty = imaging._vis2dirty(v, duvw, freqs, weights, n, pixel_rad, _GRIDDER_THREADS)
        dirty /= weight_sum
        return dirty

    psf_operator = imaging._PsfOperator(psf, (n, n), nthreads)
    threshold = setup.clean_threshold_sigma * setup.rms_jy_beam
    model = np.zeros((n, n), dtype=np.float64)
    residual = image(vis)
    iterations = 0
    cycles = 0
    while cycles < setup.major_cycles and iterations < setup.max_iterations:
        peak = float(np.max(np.abs(residual)))
        if peak <= threshold:
            break
        last = cycles == setup.major_cycles - 1
        cycle_threshold = threshold if last else max(threshold, (1 - setup.major_gain) * peak)
        components, _, taken = imaging._hogbom(
            residual,
            psf_operator,
            threshold=cycle_threshold,
            gain=setup.clean_gain,
            max_iterations=setup.max_iterations - iterations,
        )
        iterations += taken
        cycles += 1
        model += components
        # Cotton-Schwab: subtract the model from the visibilities, re-image.
        model_vis = imaging._dirty2vis(model, duvw, freqs, pixel_rad, _GRIDDER_THREADS)
        np.subtract(vis, model_vis, out=model_vis)
        residual = image(model_vis)
        del model_vis
    converged = float(np.max(np.abs(residual))) <= threshold

    restored = imaging.restore(model, residual, beam, pixel_deg)
    if pb is not None:
        restored /= pb
        residual /= pb
        model /= pb
    c = n // 2
    return Observation(
        image=restored.astype(np.float32),
        residual=residual.astype(np.float32),
        model=model.astype(np.float32),
        psf=psf[c : c + n, c : c + n].astype(np.float32),
        beam_deg=beam,
        rms_jy_beam=robust_std(residual),
        noise_sigma_vis=sigma,
        clean_iterations=iterations,
        major_cycles=cycles,
        clean_converged=converged,
        n_visibilities=int(vis.size),
    )
