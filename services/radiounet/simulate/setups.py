"""Observation set-ups: what array, track, weighting and CLEAN make a synthetic image.

Two named set-ups (:data:`SETUPS`):

``paper-6arcsec``
    The resolution of the paper's training images (Stuardi et al. 2024, Sec. 4):
    2000 x 2000 pixels of 2" (1.1 deg), an 8 h Dutch HBA track, Briggs robust
    -0.5, which gives the paper's ~6" beam (its WSClean run, at robust 0, got
    5.9" x 5.1"; see the comment in :data:`SETUPS`), LoTSS-DR2's 83 uJy/beam
    of thermal noise.
``lotss-dr2-lowres``
    The LoTSS-DR2 low-resolution images Radio U-Net is applied to (paper Sec. 3
    and 6): 960 x 960 pixels of 4.5" (1.2 deg), a ~20" restoring beam reached
    with a uv cut and a Gaussian taper, and the survey's measured noise: its
    fields measure ~95 uJy/beam, the median of the LoTSS-DR2 20" maps.

Noise: ``rms_jy_beam`` is the thermal part alone, and exact: the visibility
noise is scaled with the set-up's own Briggs and taper weights, and noise alone
images to 45.0 uJy/beam (lotss-dr2-lowres) and 83.0 (paper-6arcsec). The
fields' measured rms (the manifest's per-field ``rms_jy_beam``, the robust rms
of the residual) is higher, as a survey's is: the primary-beam correction
raises it by ~5 % over the field; the emission CLEAN leaves below its threshold
(mostly the ~9,000 compact sources of 0.1-0.45 mJy a field: confusion) adds ~77
uJy/beam in quadrature at 20" (32 at 6"); the gain errors' artefacts add the
rest. lotss-dr2-lowres is calibrated on that whole: its fields measure
83-123 uJy/beam, median 96 (240 fields, seed 1), against
the survey's 95. paper-6arcsec keeps the survey's 6" thermal noise and the
stronger errors (3 deg, 1 %): the paper trained on images whose rms was set by
cleaning artefacts on purpose; its fields measure 101-106 uJy/beam (3 fields).
Until 2026-11-22 lotss-dr2-lowres had 95 uJy/beam of thermal noise and
paper-6arcsec's errors, and its fields measured 129-184, median 146 (the
datasets that trained versions 2-4 of the shipped model).

Set-ups are frozen; derive variants with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radiounet.simulate.uvcoverage import STATION_SETS

__all__ = ["SETUPS", "ObservationSetup", "get_setup"]


@dataclass(frozen=True, kw_only=True)
class ObservationSetup:
    """Everything that turns a sky model into a restored image, except the field and seed.

    Attributes
    ----------
    name : str
        Short name, written to the dataset manifest and FITS headers.
    image_size : int
        Image side in pixels (even, at least 32: a ducc0 requirement).
    pixel_arcsec : float
        Pixel side in arcseconds.
    freq_hz : float
        Centre frequency; the sky model is taken to be at this frequency with a
        flat spectrum across the band.
    n_channels : int
        Number of channels, centred on equal sub-bands of ``bandwidth_hz``.
        More channels fill the uv plane radially at proportional cost.
    bandwidth_hz : float
        Total bandwidth (48 MHz: LoTSS's 120-168 MHz).
    duration_h : float
        Track length, centred on transit.
    integration_s : float
        Time sampling of the track. Where the uv step of a baseline in one
        interval exceeds a uv cell (1 / field of view), the gaps along its
        track raise faint grating rings in the PSF; keep it short enough for the
        baselines that carry weight.
    max_baseline_m : float or None
        Drop baselines longer than this (None: all of ``stations``).
    taper_arcsec : float or None
        FWHM, in the image plane, of a Gaussian uv taper (None: no taper).
    robust : float
        Briggs robustness, -2 (about uniform) to 2 (about natural).
    rms_jy_beam : float
        Thermal noise of the image in Jy/beam: the visibility noise is scaled
        so that noise alone, imaged with these weights, has this rms. The
        images' measured rms is higher (see "Noise" above).
    clean_threshold_sigma : float
        CLEAN stops at this many ``rms_jy_beam`` (the thermal rms, not one
        measured on the residual) ...
    clean_gain : float
        ... with this loop gain ...
    max_iterations : int
        ... or after this many components in all, whichever comes first.
    major_cycles : int
        Most Cotton-Schwab major cycles (re-predict the model, subtract from
        the visibilities, re-image).
    major_gain : float
        Fraction of the residual peak cleaned in one major cycle (WSClean's
        ``-mgain``); the last allowed cycle goes to the threshold.
    stations : str
        ``"dutch"`` (split core + remote HBA) or ``"core"``.
    primary_beam_fwhm_deg : float or None
        FWHM of the Gaussian primary beam applied to the sky before predicting
        and divided out of the image (None: no primary beam).
    phase_error_deg : float
        Residual (post-calibration) station phase error, rms in degrees at
        ``freq_hz``, of the stations 50 km or more from the core; nearer ones get
        less, down to 0.3 times it in the core (see
        :func:`radiounet.simulate.observe.station_phase_scale`). The phase scales
        as ``1 / frequency`` across the band (ionospheric). 0: no phase errors.
    amplitude_error : float
        Residual station amplitude error, rms of ``a`` in the gain
        ``(1 + a) exp(i phi)``, the same for every station. 0: none.
    gain_error_timescale_s : float
        Correlation time of both: the errors are Gaussian processes in time with
        covariance ``rms**2 exp(-dt**2 / (2 timescale**2))``, drawn independently
        for every station. The imager and CLEAN do not know them, so they leave
        artefacts around bright sources (:func:`radiounet.simulate.observe.observe`).
    """

    name: str
    image_size: int
    pixel_arcsec: float
    freq_hz: float = 144e6
    n_channels: int = 1
    bandwidth_hz: float = 48e6
    duration_h: float = 8.0
    integration_s: float = 60.0
    max_baseline_m: float | None = None
    taper_arcsec: float | None = None
    robust: float = 0.0
    rms_jy_beam: float = 1e-4
    clean_threshold_sigma: float = 5.0
    clean_gain: float = 0.1
    max_iterations: int = 10_000
    major_cycles: int = 3
    major_gain: float = 0.8
    stations: str = "dutch"
    primary_beam_fwhm_deg: float | None = 3.8
    # Residual direction-independent gain errors, as left by LoTSS-like calibration
    # (direction-independent, then facet-based direction-dependent solutions:
    # Shimwell et al. 2019, 2022; Tasse et al. 2021). What the solutions miss are
    # mainly ionospheric phase errors of a few degrees on the remote stations (the
    # residual towards a source, applied here to the whole field), less across the
    # 2-km core, where the stations see nearly one ionosphere (0.3x, see
    # radiounet.simulate.observe.station_phase_scale), and amplitude errors of
    # ~1 % (beam model, solution noise). With 3 deg and 1 % a 1 Jy point source
    # imaged as lotss-dr2-lowres with 95 uJy/beam of thermal noise keeps an rms of
    # 3.0-3.6x that noise within 1-5' (dynamic range ~3000, artefacts down to
    # -2.5..-3.2 mJy: spokes and rings, as around Jy sources in LoTSS-DR2), and the
    # residual rms of a random-sky field rises by 4-31 % (median 14 %); 4 deg and
    # 1.5 % gave 4.0-4.9x and up to 49 %. lotss-dr2-lowres itself takes half the
    # errors (1.5 deg, 0.5 %), which its noise budget leaves room for: there the
    # 1 Jy source keeps 3.2-4.0x its 45 uJy/beam thermal noise within 1-5' (~1.7x
    # the fields' measured rms; dynamic range ~6000, down to -1.2..-2.3 mJy),
    # 1.5x at 5-10', 1.3x at 10-20' (three seeds, dec 50).
    # A 20-minute correlation time leaves ~25 independent stretches in an 8-h
    # track: rings and spokes, not the haze of errors independent per integration.
    phase_error_deg: float = 3.0
    amplitude_error: float = 0.01
    gain_error_timescale_s: float = 1200.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError(f"setup name must be non-empty, got {self.name!r}")
        if self.image_size < 32 or self.image_size % 2:
            raise ValueError(f"image_size must be even and >= 32, got {self.image_size!r}")
        positive = {
            "pixel_arcsec": self.pixel_arcsec,
            "freq_hz": self.freq_hz,
            "duration_h": self.duration_h,
            "integration_s": self.integration_s,
            "rms_jy_beam": self.rms_jy_beam,
            "clean_threshold_sigma": self.clean_threshold_sigma,
        }
        for key, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{key} must be a positive number, got {value!r}")
        for key, opt in (
            ("max_baseline_m", self.max_baseline_m),
            ("taper_arcsec", self.taper_arcsec),
            ("primary_beam_fwhm_deg", self.primary_beam_fwhm_deg),
        ):
            if opt is not None and not (math.isfinite(opt) and opt > 0):
                raise ValueError(f"{key} must be a positive number or None, got {opt!r}")
        if self.n_channels < 1:
            raise ValueError(f"n_channels must be at least 1, got {self.n_channels!r}")
        if not (math.isfinite(self.bandwidth_hz) and 0 <= self.bandwidth_hz < 2 * self.freq_hz):
            raise ValueError(f"bandwidth_hz must be in [0, 2 * freq_hz), got {self.bandwidth_hz!r}")
        if not -2.0 <= self.robust <= 2.0:
            raise ValueError(f"robust must be in [-2, 2], got {self.robust!r}")
        if not 0.0 < self.clean_gain < 1.0:
            raise ValueError(f"clean_gain must be in (0, 1), got {self.clean_gain!r}")
        if not 0.0 < self.major_gain <= 1.0:
            raise ValueError(f"major_gain must be in (0, 1], got {self.major_gain!r}")
        if self.max_iterations < 0:
            raise ValueError(f"max_iterations must be >= 0, got {self.max_iterations!r}")
        if self.major_cycles < 1:
            raise ValueError(f"major_cycles must be at least 1, got {self.major_cycles!r}")
        if not (math.isfinite(self.phase_error_deg) and 0.0 <= self.phase_error_deg <= 180.0):
            raise ValueError(f"phase_error_deg must be in [0, 180], got {self.phase_error_deg!r}")
        if not (math.isfinite(self.amplitude_error) and 0.0 <= self.amplitude_error <= 0.5):
            raise ValueError(f"amplitude_error must be in [0, 0.5], got {self.amplitude_error!r}")
        if not (math.isfinite(self.gain_error_timescale_s) and self.gain_error_timescale_s > 0):
            raise ValueError(
                "gain_error_timescale_s must be a positive number, "
                f"got {self.gain_error_timescale_s!r}"
            )
        if self.stations not in STATION_SETS:
            raise ValueError(f"stations must be one of {STATION_SETS}, got {self.stations!r}")

    @property
    def pixel_rad(self) -> float:
        """Pixel side in radians."""
        return math.radians(self.pixel_arcsec / 3600.0)

    @property
    def field_of_view_deg(self) -> float:
        """Image side in degrees."""
        return self.image_size * self.pixel_arcsec / 3600.0

    def frequencies(self) -> NDArray[np.float64]:
        """Channel centre frequencies in Hz.

        Examples
        --------
        >>> ObservationSetup(name="x", image_size=64, pixel_arcsec=2.0, n_channels=3).frequencies()
        array([1.28e+08, 1.44e+08, 1.60e+08])
        """
        width = self.bandwidth_hz / self.n_channels
        offsets = (np.arange(self.n_channels) + 0.5) * width - self.bandwidth_hz / 2
        return np.asarray(self.freq_hz + offsets, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """The set-up as a JSON-ready dict (field name -> value).

        Examples
        --------
        >>> d = get_setup("lotss-dr2-lowres").to_dict()
        >>> d["name"], d["image_size"], d["pixel_arcsec"]
        ('lotss-dr2-lowres', 960, 4.5)
        """
        return dataclasses.asdict(self)


SETUPS: dict[str, ObservationSetup] = {
    s.name: s
    for s in (
        ObservationSetup(
            name="paper-6arcsec",
            image_size=2000,
            pixel_arcsec=2.0,
            # 3 channels x 40 s: 4.1M visibilities. A third channel fills the uv plane
            # radially (near-sidelobe rms 0.0036 vs 0.0047 with two); sampling at 40 s
            # leaves gaps along the longest tracks that lift the PSF beyond 40' from
            # 5e-4 to 7e-4 rms (vs 10 s), which is below anything that matters.
            n_channels=3,
            integration_s=40.0,
            # The paper imaged at robust 0 and got 5.9" x 5.1". With our coverage
            # and inverse-variance weights (split-core ears have twice the SEFD)
            # robust 0 gives ~8" x 5.6"; robust -0.5, LoTSS-DR2's own choice for its
            # 6" maps, gives the paper's ~6" (6.3-6.6" x 4.5-5.6" over dec 15-88).
            robust=-0.5,
            # The paper's mocks had 2.3e-7 Jy/beam of thermal noise (Sec. 4), ~360x
            # below the 83 uJy/beam median of the LoTSS-DR2 6" images (Sec. 3), and
            # their measured rms (2e-6..1.5e-5, Fig. 2) was set by cleaning
            # artefacts. We use the survey's noise, so that a realistic sky gives
            # images with the S/N of the data the network is meant for; replace
            # rms_jy_beam=2.3e-7 to reproduce the paper's deep mocks.
            rms_jy_beam=83e-6,
            clean_threshold_sigma=5.0,
            # Fields from radiounet.simulate.sky need 12-13k components to reach
            # 5 sigma with exact gains, 14-29k with the default gain errors (CLEAN
            # also takes the artefacts above 5 sigma around bright sources); the
            # cap is for unusually crowded fields (see lotss-dr2-lowres).
            max_iterations=50_000,
            major_cycles=3,
        ),
        ObservationSetup(
            name="lotss-dr2-lowres",
            image_size=960,
            pixel_arcsec=4.5,
            # 3 channels x 60 s: 2.3M visibilities; with the taper the PSF is the
            # same as at 30 s.
            n_channels=3,
            integration_s=60.0,
            # The 16" taper weights a 30 km baseline by < 0.5 % at 160 MHz, so the cut
            # saves 16 % of the visibilities at no cost in resolution. Fitted beam
            # 20.8-23.2" x 18.5-19.1" (dec 15-88); LoTSS-DR2 restores its
            # low-resolution maps with a circular 20" beam.
            max_baseline_m=30e3,
            taper_arcsec=16.0,
            robust=-0.5,
            # LoTSS-DR2's 95 uJy/beam is the 20" maps' measured rms, and at 20" most
            # of it is confusion: the sky's compact sources below CLEAN's threshold
            # alone give ~77 uJy/beam here (thermal 60, exact gains: 98 measured).
            # So the thermal part and the gain errors are what is left for the rest:
            # 45 uJy/beam and half the paper-6arcsec errors give fields measuring
            # 83-123 uJy/beam, median 96 (240 fields, seed 1), where 95 uJy/beam
            # thermal with 3 deg / 1 % gave 129-184, median 146.
            rms_jy_beam=45e-6,
            # 450 uJy/beam: ~5 sigma of the fields' measured rms, where WSClean's
            # automatic threshold, set on the residual's rms, would stop.
            clean_threshold_sigma=10.0,
            phase_error_deg=1.5,
            amplitude_error=0.005,
            # Fields from radiounet.simulate.sky need 12-15k components to reach
            # the threshold here with exact gains, 13-25k with the gain errors.
            # Hogbom takes the brightest peaks first, so a cap that binds leaves
            # the faint diffuse sources, the very targets, uncleaned while the
            # radio galaxies are cleaned: a cue real LoTSS images do not give.
            # The cap is for unusually crowded fields.
            max_iterations=30_000,
            major_cycles=3,
        ),
    )
}


def get_setup(name: str) -> ObservationSetup:
    """The named set-up from :data:`SETUPS`.

    Examples
    --------
    >>> get_setup("paper-6arcsec").pixel_arcsec
    2.0
    """
    try:
        return SETUPS[name]
    except KeyError:
        raise ValueError(
            f"unknown observation setup {name!r}; known: {', '.join(sorted(SETUPS))}"
        ) from None
