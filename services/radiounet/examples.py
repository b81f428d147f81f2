"""A deterministic example field: a cluster with a radio halo and a relic in LoTSS-like noise.

For demos, documentation and tests. The sky is built directly in the image
plane (diffuse emission, compact sources and an FR II radio galaxy convolved
with the restoring beam, plus beam-correlated Gaussian noise), so it has none
of the calibration and deconvolution artefacts of real images. It is *not* the
interferometric simulator of Stuardi et al. (2024, Sec. 4), which predicts
visibilities and images them; that is separate, later work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter

from .core.cosmology import theta500_arcmin
from .core.units import beam_area_pixels

__all__ = ["FREQUENCY_HZ", "TRUTH_THRESHOLD_RMS", "ExampleField", "example_field"]

#: LoTSS central frequency.
FREQUENCY_HZ = 1.44e8
#: Truth-mask threshold in units of the noise rms: far below the noise, as the
#: training masks are (Stuardi et al. 2024, Sec. 4).
TRUTH_THRESHOLD_RMS = 0.1

_FWHM_TO_SIGMA = 1 / math.sqrt(8 * math.log(2))


@dataclass(frozen=True, eq=False)
class ExampleField:
    """An example image, its truth mask and a LoTSS-like header.

    Attributes
    ----------
    image : ndarray
        float32 ``(size, size)`` brightness in Jy/beam.
    truth : ndarray
        bool mask where the halo and relic (before the beam) are brighter than
        ``TRUTH_THRESHOLD_RMS`` times the noise rms.
    header : astropy.io.fits.Header
        4-D (RA---SIN, DEC--SIN, FREQ, STOKES) header, as for LoTSS-DR2 images.
    name, ra_deg, dec_deg, z, m500_1e14
        The cluster, which lies at the central pixel ``(size // 2, size // 2)``.
    r500_arcmin : float or None
        R500 when it was given instead of derived from ``z`` and ``m500_1e14``.
    """

    image: NDArray[np.float32]
    truth: NDArray[np.bool_]
    header: fits.Header
    name: str
    ra_deg: float
    dec_deg: float
    z: float
    m500_1e14: float
    r500_arcmin: float | None = None

    @property
    def data_4d(self) -> NDArray[np.float32]:
        """The image as the ``(1, 1, ny, nx)`` array its 4-D header describes."""
        return self.image[np.newaxis, np.newaxis]

    @property
    def centre_xy(self) -> tuple[float, float]:
        """0-based pixel ``(x, y)`` of the cluster centre."""
        return float(self.image.shape[1] // 2), float(self.image.shape[0] // 2)

    @property
    def r500_pix(self) -> float:
        """R500 of the cluster in pixels."""
        r500 = self.r500_arcmin
        if r500 is None:
            r500 = theta500_arcmin(self.m500_1e14, self.z)
        return r500 * 60 / (abs(self.header["CDELT2"]) * 3600)

    def to_hdu(self) -> fits.PrimaryHDU:
        """A primary HDU holding the 4-D data and header, ready for ``writeto``."""
        return fits.PrimaryHDU(self.data_4d, header=self.header.copy())


def _header(
    size: int, pixel_arcsec: float, beam_arcsec: float, ra: float, dec: float, name: str
) -> fits.Header:
    centre = size // 2 + 1  # FITS pixels are 1-based
    cards = [
        ("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 4),
        ("NAXIS1", size), ("NAXIS2", size), ("NAXIS3", 1), ("NAXIS4", 1),
        ("BUNIT", "JY/BEAM"), ("BTYPE", "Intensity"),
        ("BMAJ", beam_arcsec / 3600), ("BMIN", beam_arcsec / 3600), ("BPA", 0.0),
        ("CTYPE1", "RA---SIN"), ("CRVAL1", ra), ("CDELT1", -pixel_arcsec / 3600),
        ("CRPIX1", float(centre)), ("CUNIT1", "deg"),
        ("CTYPE2", "DEC--SIN"), ("CRVAL2", dec), ("CDELT2", pixel_arcsec / 3600),
        ("CRPIX2", float(centre)), ("CUNIT2", "deg"),
        ("CTYPE3", "FREQ"), ("CRVAL3", FREQUENCY_HZ), ("CDELT3", 4.8e7),
        ("CRPIX3", 1.0), ("CUNIT3", "Hz"),
        ("CTYPE4", "STOKES"), ("CRVAL4", 1.0), ("CDELT4", 1.0), ("CRPIX4", 1.0),
        ("RESTFRQ", FREQUENCY_HZ), ("RADESYS", "FK5"), ("EQUINOX", 2000.0),
        ("OBJECT", name), ("TELESCOP", "LOFAR"), ("ORIGIN", "radiounet.examples"),
    ]  # fmt: skip
    return fits.Header(cards)


def _add_gaussian(
    sky: NDArray[np.float32],
    x0: float,
    y0: float,
    flux: float,
    sigma_major: float,
    sigma_minor: float,
    angle: float,
) -> None:
    """Add an elliptical Gaussian of total ``flux`` (sigmas in pixels) to ``sky`` at (x0, y0)."""
    h = int(4 * sigma_major) + 1
    ys = slice(max(int(y0) - h, 0), min(int(y0) + h + 1, sky.shape[0]))
    xs = slice(max(int(x0) - h, 0), min(int(x0) + h + 1, sky.shape[1]))
    y, x = np.ogrid[ys, xs]
    u = (x - x0) * math.cos(angle) + (y - y0) * math.sin(angle)
    v = (y - y0) * math.cos(angle) - (x - x0) * math.sin(angle)
    g = np.exp(-0.5 * ((u / sigma_major) ** 2 + (v / sigma_minor) ** 2))
    sky[ys, xs] += flux / (2 * math.pi * sigma_major * sigma_minor) * g


def _add_frii(sources: NDArray[np.float32], rng: np.random.Generator, pixel_arcsec: float) -> None:
    """Add an FR II (core and two lobes, Jy/pixel) 0.45-0.75 half-widths from the centre."""
    centre = sources.shape[0] // 2
    direction, axis = rng.uniform(0, 2 * math.pi, 2)
    distance = rng.uniform(0.45, 0.75) * centre
    fx, fy = centre + distance * math.cos(direction), centre + distance * math.sin(direction)
    half = rng.uniform(60, 100) / pixel_arcsec
    sources[int(fy), int(fx)] += rng.uniform(3e-3, 1e-2)  # core
    for side in (-1, 1):
        lx, ly = fx + side * half * math.cos(axis), fy + side * half * math.sin(axis)
        _add_gaussian(
            sources, lx, ly, rng.uniform(0.05, 0.2), 15 / pixel_arcsec, 9 / pixel_arcsec, axis
        )


def example_field(
    *,
    seed: int = 0,
    size: int = 960,
    pixel_arcsec: float = 4.5,
    beam_arcsec: float = 20.0,
    rms_jy_beam: float = 95e-6,
    ra_deg: float = 260.6149937,
    dec_deg: float = 32.1354073,
    z: float = 0.224,
    m500_1e14: float = 7.77852,
    name: str = "PSZ2 G055.59+31.85",
    halo: bool = True,
    relic: bool = True,
    radio_galaxies: int = 1,
    r500_arcmin: float | None = None,
) -> ExampleField:
    """Make a LoTSS-DR2-like 20-arcsec field around a cluster hosting a halo and a relic.

    The defaults are PSZ2 G055.59+31.85, which hosts a radio halo (Stuardi et
    al. 2024, Fig. 4). The image holds, convolved with a circular beam: a round
    halo (exponential, e-folding R500/8, five times the noise at the centre, so
    above the noise over ~0.4 R500, 520 kpc for the defaults); a relic (an arc
    tangential to the radial direction at R500, sharper on its outer edge,
    peaking at eight times the noise); both with turbulent substructure from a
    smoothed random field; 50-150 compact sources per (1.2 deg)^2 with
    ``dN/dS ~ S^-1.8`` from 1 mJy to 1 Jy; and an FR II radio galaxy (core and
    two lobes). The noise is Gaussian, convolved with the beam and scaled to
    ``rms_jy_beam``. The same seed gives the same field.

    ``halo=False`` or ``relic=False`` leaves that component out (of the image and
    the truth), ``radio_galaxies`` sets the number of FR IIs, and ``r500_arcmin``
    gives R500 directly instead of from ``z`` and ``m500_1e14``; the rest of the
    field stays the same for a seed.

    Raises
    ------
    ValueError
        If ``size`` is below 64, a scale, the rms, ``z``, ``m500_1e14`` or
        ``r500_arcmin`` is not positive, or ``radio_galaxies`` is negative.

    Examples
    --------
    >>> field = example_field(size=192)
    >>> field.image.shape, field.image.dtype.name, field.header["NAXIS"]
    ((192, 192), 'float32', 4)
    """
    if not (isinstance(size, int | np.integer) and size >= 64):
        raise ValueError(f"size must be an integer of at least 64 pixels, got {size!r}")
    for label, value in (
        ("pixel_arcsec", pixel_arcsec),
        ("beam_arcsec", beam_arcsec),
        ("rms_jy_beam", rms_jy_beam),
        ("r500_arcmin", 1.0 if r500_arcmin is None else r500_arcmin),
    ):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{label} must be a positive number, got {value!r}")
    if not (isinstance(radio_galaxies, int | np.integer) and radio_galaxies >= 0):
        raise ValueError(f"radio_galaxies must be a non-negative integer, got {radio_galaxies!r}")
    size = int(size)
    rng = np.random.default_rng(seed)
    r500_given = r500_arcmin
    if r500_arcmin is None:
        r500_arcmin = theta500_arcmin(m500_1e14, z)
    r500 = r500_arcmin * 60 / pixel_arcsec
    beam_sigma = beam_arcsec / pixel_arcsec * _FWHM_TO_SIGMA
    beam_area = beam_area_pixels(beam_arcsec, beam_arcsec, pixel_arcsec**2)

    centre = size // 2
    offsets = np.arange(size, dtype=np.float32) - centre
    dx, dy = offsets[np.newaxis, :], offsets[:, np.newaxis]
    r = np.hypot(dx, dy)

    # Diffuse emission in Jy/beam (smooth on the beam scale, so the beam leaves it unchanged).
    turbulence = gaussian_filter(rng.standard_normal((size, size), dtype=np.float32), r500 / 16)
    turbulence *= 0.35 / turbulence.std()
    halo_profile = 5 * np.exp(-r / (r500 / 8)) if halo else 0.0
    relic_angle = rng.uniform(-math.pi, math.pi)
    dphi = (np.arctan2(dy, dx) - relic_angle + math.pi) % (2 * math.pi) - math.pi
    dr = r - r500
    width = np.where(dr > 0, 0.03 * r500, 0.08 * r500)  # shock front outside, ageing tail inside
    relic_profile = (
        8 * np.exp(-0.5 * (dr / width) ** 2 - 0.5 * (dphi / 0.35) ** 2) if relic else 0.0
    )
    diffuse = (rms_jy_beam * (halo_profile + relic_profile) * np.exp(turbulence)).astype(np.float32)
    truth = diffuse > TRUTH_THRESHOLD_RMS * rms_jy_beam

    # Compact sources and the FR II in Jy/pixel.
    sources = np.zeros((size, size), dtype=np.float32)
    n = round(int(rng.integers(50, 151)) * (size / 960) ** 2)
    lo, hi = 1e-3**-0.8, 1.0**-0.8  # inverse CDF of dN/dS ~ S^-1.8
    flux = (lo + rng.random(n) * (hi - lo)) ** (1 / -0.8)
    np.add.at(sources, tuple(rng.integers(0, size, (2, n))), flux)
    # Drawn even when left out, so that the rest of the field stays the same.
    _add_frii(sources if radio_galaxies else np.zeros_like(sources), rng, pixel_arcsec)

    noise = gaussian_filter(rng.standard_normal((size, size), dtype=np.float32), beam_sigma)
    noise *= rms_jy_beam / noise.std()
    for _ in range(radio_galaxies - 1):  # drawn last, so one FR II gives the default field
        _add_frii(sources, rng, pixel_arcsec)
    image = gaussian_filter(diffuse + beam_area * sources, beam_sigma) + noise
    return ExampleField(
        image=image.astype(np.float32, copy=False),
        truth=truth,
        header=_header(size, pixel_arcsec, beam_arcsec, ra_deg, dec_deg, name),
        name=name,
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        z=z,
        m500_1e14=m500_1e14,
        r500_arcmin=r500_given,
    )
