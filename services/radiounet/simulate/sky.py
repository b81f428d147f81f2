"""Random 150-MHz sky models of cluster fields, with the ground truth of their diffuse emission.

A sky holds galaxy clusters (0-3 per field) and, in about half of them, the
three kinds of diffuse emission Radio U-Net looks for: radio halos, radio
relics, and bridges (filaments) between two clusters. On top come the
contaminants that Stuardi et al. (2024, Sec. 7.2) identify as the cause of
their false positives on LoTSS-DR2, absent from their training skies: compact
sources drawn from the 150 MHz source counts, extended radio galaxies (FR I
plumes, FR II lobes and hotspots, head-tail and narrow-angle-tail sources) and
blends of them, many placed inside the clusters. The reference mask marks only
the diffuse emission, down to ``TRUTH_THRESHOLD_JY_ARCSEC2`` (the paper's
1e-8 Jy/pixel at 2-arcsec pixels, ~1e-3 of the noise), so a network trained on
it learns to ignore radio galaxies however bright.

Conventions: images are ``(ny, nx)`` arrays in Jy/pixel; pixel coordinates are
0-based ``(x, y)`` with ``x`` the column; angles are counter-clockwise from +x;
radio powers are at 150 MHz rest frame, in W/Hz; spectra are ``S ~ nu^-alpha``.
This module is pure computation: no files, no global state. Everything is drawn
from the generator passed in, so a seed gives one sky.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy import units as u
from numpy.typing import ArrayLike, NDArray
from scipy import fft as sfft

from ..core.cosmology import COSMOLOGY, kpc_per_arcmin, theta500_arcmin

__all__ = [
    "CONTAMINANT_CLASSES",
    "DIFFUSE_CLASSES",
    "TRUTH_THRESHOLD_JY_ARCSEC2",
    "ClusterSpec",
    "SkyModel",
    "SkySource",
    "compact_source_counts",
    "random_sky",
]

#: Truth-mask threshold on the diffuse sky: 1e-8 Jy/pixel at the paper's 2-arcsec
#: pixels (Stuardi et al. 2024, Sec. 4), ~1e-3 of the LoTSS 6" noise.
TRUTH_THRESHOLD_JY_ARCSEC2 = 2.5e-9
#: Classes of diffuse emission (in the mask), in the order labels are assigned.
DIFFUSE_CLASSES = ("halo", "relic", "filament")
#: Classes of contaminating sources (never in the mask).
CONTAMINANT_CLASSES = ("compact", "fri", "frii", "tailed")

_REF_FREQ_HZ = 150e6
_ARCSEC2_PER_SR = (180 / math.pi * 3600) ** 2
_W_HZ_TO_JY = 1e26  # 1 Jy = 1e-26 W m^-2 Hz^-1
_M_PER_MPC = u.Mpc.to(u.m)

# --- Physics choices (numbers and where they come from) ----------------------------------------
# Cluster redshifts and masses: uniform z and log-uniform M500 over the ranges that hold the bulk
# of the PSZ2 clusters in LoTSS-DR2 (Botteon et al. 2022a); checked against the catalogue in the
# tests. Clusters per field: 0..3 with these weights (some fields have none).
_N_CLUSTER_WEIGHTS = (0.1, 0.4, 0.3, 0.2)
# Radio halos: P150 from the P150-M500 correlation of LoTSS-DR2 halos (Cuciti et al. 2023), which
# runs from log P150 ~ 24.5 at 3e14 Msun to ~26 at 1e15 Msun: slope 2.9, 0.3 dex scatter. A
# quarter of halos are drawn 0.5-1.5 dex under it, as the "off-state"/ultra-steep population
# below the correlation (Cuciti et al. 2021): they are the halos fainter than the noise.
_HALO_LOGP_3E14, _HALO_SLOPE, _HALO_SCATTER_DEX = 24.5, 2.9, 0.3
_HALO_FAINT_FRACTION, _HALO_FAINT_DEX = 0.25, (0.5, 1.5)
# Exponential profiles I(r) = I0 exp(-r/re) (Murgia et al. 2009) with re ~ 0.14 R500 (0.1 dex):
# 130-200 kpc for 3-10e14 Msun at z = 0.2, the range of the exponential fits to LoTSS-DR2 halos
# (Botteon et al. 2022a); brightness-weighted rms radii come out at 130-440 kpc. Beyond ~3 re
# halos vanish in the noise; the profile is tapered at 4 re (~0.55 R500), inside R500 where the
# rarer mega-halos end (Cuciti et al. 2022), so a halo's truth mask stays within R500.
_HALO_RE_R500, _HALO_RE_DEX, _HALO_TAPER_RE = 0.14, 0.1, 4.0
# Relics: P150 = 10^(24.9 +- 0.5) (M500 / 5e14)^2.8, the P1.4-M500 slope of de Gasperin et al.
# (2014) moved to 150 MHz with alpha = 1.1 (LoTSS-DR2 relics span 1e24-1e26.5 W/Hz, Jones et
# al. 2023). Arcs at 0.6-1.5 R500 (apex), tangential, 0.5-2 Mpc long, with a sharp outer
# (shock) edge (Gaussian sigma 15-40 kpc) and a wider downstream side (sigma 30-100 kpc) where
# the electrons age and the 150 MHz emission fades: FWHM widths of 50-160 kpc.
_RELIC_LOGP_5E14, _RELIC_SLOPE, _RELIC_SCATTER_DEX = 24.9, 2.8, 0.5
# Spectral indices (S ~ nu^-alpha): halos and bridges ~1.3, relics ~1.1 (van Weeren et al. 2019),
# radio galaxies 0.7.
_ALPHA = {"halo": 1.3, "relic": 1.1, "filament": 1.3, "rg": 0.7}
# Bridges between cluster pairs (A399-A401: 3 Mpc, 0.37 uJy/arcsec^2 at 140 MHz, Govoni et al.
# 2019, ~0.1 of a halo core): mean brightness 1e-3..1e-1 of the central brightness of a halo on
# the correlation at the pair's mass, so most are far below the noise.
_BRIDGE_REL_DEX = (-3.0, -1.0)
# Turbulent substructure: a lognormal random field exp(s g - s^2/2) (mean 1) whose Gaussian g has
# a Kolmogorov spectrum P(k) ~ (k^2 + k0^2)^(-11/6), flat below the injection scale k0 = 1/L0.
_TURBULENCE_SLOPE = 11.0 / 3.0
# Compact sources: the 153 MHz differential counts of Intema et al. (2011),
# log10(S^2.5 dN/dS [Jy^1.5 sr^-1]) = sum_i a_i log10(S/Jy)^i. They give 957 sources deg^-2
# above 0.42 mJy, against 780 deg^-2 in LoTSS-DR2 (5 sigma of 83 uJy/beam, not fully complete,
# Shimwell et al. 2022), and 340 deg^-2 above 1 mJy.
_COUNTS_POLY = (3.52, 0.307, -0.388, -0.0404, 0.0351, 0.00600)
# Extended radio galaxies outside clusters: ~6 per deg^2 (of the ~780 deg^-2 LoTSS sources about
# 1% are resolved multi-component AGN larger than ~20"), S from dN/dS ~ S^-2 over 5 mJy - 2 Jy.
_FIELD_RG_FRACTIONS = {"fri": 0.4, "frii": 0.4, "tailed": 0.2}
_FIELD_RG_FLUX_JY = (5e-3, 2.0)
# Largest angular sizes of field radio galaxies (arcsec, log-uniform).
_FIELD_RG_LAS_ARCSEC = {"fri": (20.0, 240.0), "frii": (30.0, 360.0), "tailed": (20.0, 180.0)}
# Sources whose in-image flux is below this fraction of their total are dropped (off the edge).
_MIN_IN_IMAGE_FRACTION = 0.01


@dataclass(frozen=True)
class ClusterSpec:
    """A galaxy cluster of the field.

    Attributes
    ----------
    id : str
        ``"c0"``, ``"c1"``, ...
    x, y : float
        0-based pixel position of the centre (``x`` = column).
    z : float
        Redshift.
    m500_1e14 : float
        M500 in 1e14 solar masses.
    theta500_arcmin : float
        Angular radius of R500.
    r500_pix : float
        R500 in pixels (``theta500_arcmin`` at the sky's pixel size).
    has_diffuse : bool
        Whether the cluster hosts diffuse emission (``hosts`` not empty).
    hosts : tuple of str
        Diffuse classes it hosts, each once, in the order halo, relic, filament.
    """

    id: str
    x: float
    y: float
    z: float
    m500_1e14: float
    theta500_arcmin: float
    r500_pix: float
    has_diffuse: bool
    hosts: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields (``hosts`` as a list)."""
        d = dataclasses.asdict(self)
        d["hosts"] = list(self.hosts)
        return d


@dataclass(frozen=True)
class SkySource:
    """One source of the sky model.

    Attributes
    ----------
    id : int
        1, 2, ...: the diffuse sources first, so ``id == label`` for them.
    cls : str
        One of ``DIFFUSE_CLASSES`` or ``CONTAMINANT_CLASSES``.
    diffuse : bool
        True for halos, relics and filaments.
    cluster : str or None
        Id of the cluster the source belongs to (a filament: the first of its
        pair, whose partner is the other cluster hosting a filament).
    x, y : float
        0-based pixel position: the flux-weighted centroid for diffuse
        sources, the host galaxy (core, head) for radio galaxies.
    flux_jy : float
        Flux density in the image at the sky's frequency (Jy).
    label : int
        Value of its pixels in ``SkyModel.labels`` (> 0), 0 for contaminants.
    """

    id: int
    cls: str
    diffuse: bool
    cluster: str | None
    x: float
    y: float
    flux_jy: float
    label: int

    def to_dict(self) -> dict[str, Any]:
        """Fields in the dataset-manifest spelling (``cls`` as ``"class"``)."""
        return {
            "id": self.id,
            "class": self.cls,
            "diffuse": self.diffuse,
            "cluster": self.cluster,
            "x": self.x,
            "y": self.y,
            "flux_jy": self.flux_jy,
            "label": self.label,
        }


@dataclass(frozen=True, eq=False)
class SkyModel:
    """A sky, its diffuse part and their ground truth.

    Attributes
    ----------
    sky : ndarray
        float32 ``(ny, nx)``, all emission, Jy/pixel.
    diffuse : ndarray
        float32 ``(ny, nx)``, halos, relics and filaments only, Jy/pixel.
    mask : ndarray
        bool, ``diffuse > threshold_jy_pixel``: the reference mask.
    labels : ndarray
        int16, 0 outside the mask, else the ``label`` of the diffuse source
        contributing most to the pixel.
    clusters : tuple of ClusterSpec
    sources : tuple of SkySource
        Diffuse sources first (``id`` = ``label`` = 1..n), then contaminants.
    pixel_arcsec : float
    freq_hz : float
    """

    sky: NDArray[np.float32]
    diffuse: NDArray[np.float32]
    mask: NDArray[np.bool_]
    labels: NDArray[np.int16]
    clusters: tuple[ClusterSpec, ...]
    sources: tuple[SkySource, ...]
    pixel_arcsec: float
    freq_hz: float

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.sky.shape[0]), int(self.sky.shape[1]))

    @property
    def pixel_area_arcsec2(self) -> float:
        return self.pixel_arcsec**2

    @property
    def threshold_jy_pixel(self) -> float:
        """Truth-mask threshold in Jy/pixel."""
        return TRUTH_THRESHOLD_JY_ARCSEC2 * self.pixel_area_arcsec2


# --- Source counts ---------------------------------------------------------------------------


def compact_source_counts(flux_jy: ArrayLike) -> NDArray[np.float64]:
    """Euclidean-normalised 150 MHz differential counts ``S^2.5 dN/dS`` in Jy^1.5 sr^-1.

    The sixth-order polynomial fit of Intema et al. (2011) to the 153 MHz counts;
    it is used here from 0.1 mJy to 1 Jy.

    Examples
    --------
    >>> [round(float(v)) for v in compact_source_counts([1e-3, 1e-1, 1.0])]
    [38, 784, 3311]
    """
    x = np.log10(np.asarray(flux_jy, dtype=np.float64))
    return np.asarray(10.0 ** np.polyval(_COUNTS_POLY[::-1], x), dtype=np.float64)


def _compact_fluxes(
    rng: np.random.Generator, area_sr: float, s_min: float, s_max: float
) -> NDArray[np.float64]:
    """Fluxes (Jy, at 150 MHz) of a Poisson draw from the counts over ``area_sr``."""
    ln_s = np.linspace(math.log(s_min), math.log(s_max), 2049)
    s = np.exp(ln_s)
    per_ln_s = compact_source_counts(s) * s**-1.5  # dN/dlnS = S dN/dS = (S^2.5 dN/dS) S^-1.5
    cumulative = np.concatenate(
        [[0.0], np.cumsum(0.5 * (per_ln_s[1:] + per_ln_s[:-1]) * np.diff(ln_s))]
    )
    n = int(rng.poisson(cumulative[-1] * area_sr))
    return np.exp(np.interp(rng.random(n) * cumulative[-1], cumulative, ln_s))


# --- Physics helpers -------------------------------------------------------------------------


def _flux_jy(power_w_hz: float, z: float, alpha: float, freq_hz: float) -> float:
    """Observed flux density of a source of rest-frame 150-MHz power ``power_w_hz`` at ``z``.

    S(nu) = P150 (nu / 150 MHz)^-alpha (1+z)^(1-alpha) / (4 pi D_L^2): the
    k-correction of a power law, the inverse of P = 4 pi D_L^2 S (1+z)^(alpha-1).
    """
    d_l = float(COSMOLOGY.luminosity_distance(z).to_value(u.Mpc)) * _M_PER_MPC
    s_w = (
        power_w_hz
        * (freq_hz / _REF_FREQ_HZ) ** -alpha
        * (1 + z) ** (1 - alpha)
        / (4 * math.pi * d_l**2)
    )
    return s_w * _W_HZ_TO_JY


def _halo_logp(m500_1e14: float) -> float:
    """Mean log10 P150 (W/Hz) of a halo on the P150-M500 correlation."""
    return _HALO_LOGP_3E14 + _HALO_SLOPE * math.log10(m500_1e14 / 3.0)


def _halo_taper_integral(re_pix: float) -> float:
    """Integral (pixel^2) of exp(-r/re) exp(-(r/rt)^4) over the plane, for q = 1."""
    rt = _HALO_TAPER_RE * re_pix
    r = np.linspace(0.0, 2.2 * rt, 4001)
    f = np.exp(-r / re_pix - (r / rt) ** 4) * 2 * math.pi * r
    return float(np.trapezoid(f, r))


def _lognormal_field(
    rng: np.random.Generator, shape: tuple[int, int], *, outer_pix: float, sigma: float
) -> NDArray[np.float32]:
    """exp(sigma g - sigma^2/2) for a unit-variance Gaussian field g with a Kolmogorov spectrum.

    Drawn in Fourier space on an FFT-friendly grid (then cropped), so the cost is
    one inverse real FFT of about the box size.
    """
    ny, nx = shape
    fy, fx = sfft.next_fast_len(ny, real=True), sfft.next_fast_len(nx, real=True)
    ky = np.fft.fftfreq(fy).astype(np.float32)[:, np.newaxis]
    kx = np.fft.rfftfreq(fx).astype(np.float32)[np.newaxis, :]
    k0 = np.float32(1.0 / max(outer_pix, 2.0))
    amplitude = (kx * kx + ky * ky + k0 * k0) ** np.float32(-_TURBULENCE_SLOPE / 4)
    amplitude[0, 0] = 0.0  # zero mean
    half = (fy, fx // 2 + 1)
    coef = rng.standard_normal(half, dtype=np.float32) + 1j * rng.standard_normal(
        half, dtype=np.float32
    )
    g = sfft.irfft2(coef * amplitude, s=(fy, fx))[:ny, :nx]
    std = float(g.std())
    if not std > 0:
        return np.ones(shape, dtype=np.float32)
    g *= np.float32(sigma / std)
    g -= np.float32(0.5 * sigma * sigma)
    return np.exp(g, dtype=np.float32)


# --- Rendering -------------------------------------------------------------------------------


@dataclass
class _Canvas:
    """The arrays being built, and the running record of which diffuse source leads where."""

    shape: tuple[int, int]
    diffuse: NDArray[np.float32]
    other: NDArray[np.float32]
    leader: NDArray[np.float32]  # largest single-source contribution so far, per pixel
    labels: NDArray[np.int16]

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> _Canvas:
        zeros = np.zeros(shape, dtype=np.float32)
        return cls(shape, zeros, zeros.copy(), zeros.copy(), np.zeros(shape, dtype=np.int16))

    def clip(self, x0: int, x1: int, y0: int, y1: int) -> tuple[slice, slice] | None:
        """The part of the box [x0, x1) x [y0, y1) inside the image, or None."""
        ny, nx = self.shape
        xa, xb, ya, yb = max(x0, 0), min(x1, nx), max(y0, 0), min(y1, ny)
        if xa >= xb or ya >= yb:
            return None
        return slice(ya, yb), slice(xa, xb)

    def add_diffuse(
        self, box: tuple[slice, slice], values: NDArray[np.float32], label: int
    ) -> None:
        self.diffuse[box] += values
        region = self.leader[box]
        wins = values > region
        region[wins] = values[wins]
        self.labels[box][wins] = label


def _grid(box: tuple[slice, slice]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    ys, xs = box
    y = np.arange(ys.start, ys.stop, dtype=np.float32)[:, np.newaxis]
    x = np.arange(xs.start, xs.stop, dtype=np.float32)[np.newaxis, :]
    return x, y


def _centroid(box: tuple[slice, slice], values: NDArray[np.float32]) -> tuple[float, float]:
    total = float(values.sum(dtype=np.float64))
    ys, xs = box
    cx = float(values.sum(axis=0, dtype=np.float64) @ np.arange(xs.start, xs.stop)) / total
    cy = float(values.sum(axis=1, dtype=np.float64) @ np.arange(ys.start, ys.stop)) / total
    return cx, cy


def _stamp(
    target: NDArray[np.float32],
    x0: float,
    y0: float,
    flux: float,
    sigma_major: float,
    sigma_minor: float,
    angle: float,
) -> float:
    """Add an elliptical Gaussian of total ``flux`` (sigmas in pixels); return the flux added.

    The kernel is normalised by its own pixel sum over its full extent, so its
    total is exact even when it is narrower than a pixel; only the part inside
    the image is added.
    """
    sigma_major = max(sigma_major, 0.5)
    sigma_minor = max(sigma_minor, 0.5)
    h = math.ceil(4 * sigma_major) + 1
    ix, iy = round(x0), round(y0)
    ny, nx = target.shape
    if ix + h < 0 or iy + h < 0 or ix - h >= nx or iy - h >= ny:
        return 0.0
    dy = (np.arange(iy - h, iy + h + 1) - y0)[:, np.newaxis]
    dx = (np.arange(ix - h, ix + h + 1) - x0)[np.newaxis, :]
    c, s = math.cos(angle), math.sin(angle)
    a = dx * c + dy * s
    b = dy * c - dx * s
    g = np.exp(-0.5 * ((a / sigma_major) ** 2 + (b / sigma_minor) ** 2))
    g *= flux / g.sum()
    ya, yb, xa, xb = max(iy - h, 0), min(iy + h + 1, ny), max(ix - h, 0), min(ix + h + 1, nx)
    part = g[ya - (iy - h) : yb - (iy - h), xa - (ix - h) : xb - (ix - h)]
    target[ya:yb, xa:xb] += part.astype(np.float32)
    return float(part.sum())


def _chain(
    target: NDArray[np.float32],
    points: NDArray[np.float64],
    sigmas: NDArray[np.float64],
    weights: NDArray[np.float64],
    flux: float,
) -> float:
    """A jet, lobe or tail: circular Gaussians along a path sharing ``flux`` by ``weights``."""
    w = weights / weights.sum() * flux
    step = np.hypot(*np.diff(points, axis=0).T)
    spacing = float(np.median(step)) if step.size else 0.0
    added = 0.0
    for (x, y), sigma, f in zip(points, sigmas, w, strict=True):
        # Beads at least ~2/3 of their spacing wide merge into a continuous ridge.
        s = max(float(sigma), 0.7 * spacing)
        added += _stamp(target, float(x), float(y), float(f), s, s, 0.0)
    return added


def _path(
    x0: float, y0: float, length: float, angle: float, bend: float, n: int
) -> NDArray[np.float64]:
    """``n`` points along a quadratic curve from (x0, y0), ``length`` long, turning by ``bend``."""
    t = np.linspace(0.0, 1.0, n)[:, np.newaxis]
    # Direction rotates linearly from angle to angle + bend: integrate it.
    theta = angle + bend * t
    dxy = np.hstack([np.cos(theta), np.sin(theta)]) * (length / max(n - 1, 1))
    pts = np.vstack([[0.0, 0.0], np.cumsum(dxy[:-1], axis=0)])
    return pts + np.array([x0, y0])


# --- Diffuse sources -------------------------------------------------------------------------


@dataclass
class _Cluster:
    id: str
    x: float
    y: float
    z: float
    m500: float
    theta500_arcmin: float
    r500_pix: float
    kpc_per_pix: float
    hosts: list[str] = dataclasses.field(default_factory=list)


def _render_halo(
    rng: np.random.Generator, canvas: _Canvas, c: _Cluster, freq_hz: float
) -> tuple[tuple[slice, slice], NDArray[np.float32], float] | None:
    faint = rng.random() < _HALO_FAINT_FRACTION
    logp = _halo_logp(c.m500) + rng.normal(0.0, _HALO_SCATTER_DEX)
    if faint:
        logp -= rng.uniform(*_HALO_FAINT_DEX)
    flux = _flux_jy(10**logp, c.z, _ALPHA["halo"], freq_hz)
    re = c.r500_pix * _HALO_RE_R500 * 10 ** rng.normal(0.0, _HALO_RE_DEX)
    q = rng.uniform(0.75, 1.0)  # minor/major axis ratio: halos are roughly round
    pa = rng.uniform(0.0, math.pi)
    # Halo centroids sit within ~50 kpc of the cluster centre (ICM peak).
    xh = c.x + rng.normal(0.0, 0.03 * c.r500_pix)
    yh = c.y + rng.normal(0.0, 0.03 * c.r500_pix)
    sigma_turb = rng.uniform(0.3, 0.6)
    outer = rng.uniform(200.0, 500.0) / c.kpc_per_pix  # injection scale of ICM turbulence
    rt = _HALO_TAPER_RE * re
    h = math.ceil(1.9 * rt) + 1  # exp(-(1.9)^4) ~ 2e-6 of the centre: below any threshold
    box = canvas.clip(round(xh) - h, round(xh) + h + 1, round(yh) - h, round(yh) + h + 1)
    if box is None:
        return None
    x, y = _grid(box)
    dx, dy = x - np.float32(xh), y - np.float32(yh)
    cpa, spa = np.float32(math.cos(pa)), np.float32(math.sin(pa))
    a = dx * cpa + dy * spa
    b = (dy * cpa - dx * spa) / np.float32(q)
    r = np.sqrt(a * a + b * b)
    peak = flux / (q * _halo_taper_integral(re))  # Jy/pixel at the centre
    values = np.exp(-r / np.float32(re) - (r / np.float32(rt)) ** 4) * np.float32(peak)
    values *= _lognormal_field(rng, values.shape, outer_pix=outer, sigma=sigma_turb)
    return box, values.astype(np.float32, copy=False), flux


def _render_relic(
    rng: np.random.Generator, canvas: _Canvas, c: _Cluster, freq_hz: float, direction: float
) -> tuple[tuple[slice, slice], NDArray[np.float32], float] | None:
    logp = (
        _RELIC_LOGP_5E14
        + _RELIC_SLOPE * math.log10(c.m500 / 5.0)
        + rng.normal(0.0, _RELIC_SCATTER_DEX)
    )
    flux = _flux_jy(10**logp, c.z, _ALPHA["relic"], freq_hz)
    d = rng.uniform(0.6, 1.5) * c.r500_pix  # apex distance from the centre
    # Relics are flatter than circles about the cluster centre: radius of curvature >= d.
    rc = d * rng.uniform(1.0, 2.5)
    length = min(rng.uniform(500.0, 2000.0) / c.kpc_per_pix, 1.2 * rc)
    w_out = rng.uniform(15.0, 40.0) / c.kpc_per_pix
    w_in = rng.uniform(30.0, 100.0) / c.kpc_per_pix
    sigma_turb = rng.uniform(0.3, 0.6)
    outer = rng.uniform(100.0, 300.0) / c.kpc_per_pix
    # Curvature centre on the cluster side of the apex, along the radial direction.
    cx = c.x + (d - rc) * math.cos(direction)
    cy = c.y + (d - rc) * math.sin(direction)
    half = length / (2 * rc)  # half opening angle of the arc (radians)
    # Bounding box from points on the arc's outer and inner edges.
    phi = direction + np.linspace(-min(2.2 * half, math.pi), min(2.2 * half, math.pi), 64)
    radii = np.array([rc + 5.5 * w_out, max(rc - 5.5 * w_in, 0.0)])
    px = cx + np.outer(radii, np.cos(phi))
    py = cy + np.outer(radii, np.sin(phi))
    box = canvas.clip(
        math.floor(px.min()) - 2,
        math.ceil(px.max()) + 3,
        math.floor(py.min()) - 2,
        math.ceil(py.max()) + 3,
    )
    if box is None:
        return None
    x, y = _grid(box)
    dx, dy = x - np.float32(cx), y - np.float32(cy)
    rho = np.sqrt(dx * dx + dy * dy)
    dphi = (np.arctan2(dy, dx) - np.float32(direction) + np.float32(math.pi)) % np.float32(
        2 * math.pi
    ) - np.float32(math.pi)
    ur = rho - np.float32(rc)
    width = np.where(ur >= 0, np.float32(w_out), np.float32(w_in))
    radial = np.exp(-0.5 * (ur / width) ** 2)
    angular = np.exp(-math.log(2) * (dphi / np.float32(half)) ** 4)  # flat-topped, FWHM = length
    # Separable in polar coordinates about the curvature centre: integral = int A dphi x
    # int R(u) (rc + u) du, both in one dimension.
    g = np.linspace(-math.pi, math.pi, 8001)
    int_a = float(np.trapezoid(np.exp(-math.log(2) * (g / half) ** 4), g))
    uu = np.linspace(max(-rc, -7 * w_in), 7 * w_out, 8001)
    rr = np.exp(-0.5 * (uu / np.where(uu >= 0, w_out, w_in)) ** 2)
    int_r = float(np.trapezoid(rr * (rc + uu), uu))
    values = (radial * angular).astype(np.float32) * np.float32(flux / (int_a * int_r))
    values *= _lognormal_field(rng, values.shape, outer_pix=outer, sigma=sigma_turb)
    return box, values, flux


def _render_bridge(
    rng: np.random.Generator, canvas: _Canvas, a: _Cluster, b: _Cluster, pixel_arcsec: float
) -> tuple[tuple[slice, slice], NDArray[np.float32], float] | None:
    # Reference: central brightness (Jy/arcsec^2) of a halo on the correlation at the pair's mass,
    # evaluated at 150 MHz; the bridge's spectrum is applied by the caller's frequency scaling.
    m = 0.5 * (a.m500 + b.m500)
    z = 0.5 * (a.z + b.z)
    kpc_pix = 0.5 * (a.kpc_per_pix + b.kpc_per_pix)
    r500 = 0.5 * (a.r500_pix + b.r500_pix)
    re = _HALO_RE_R500 * r500
    halo_flux = _flux_jy(10 ** _halo_logp(m), z, _ALPHA["filament"], _REF_FREQ_HZ)
    i0_ref = halo_flux / _halo_taper_integral(re) / pixel_arcsec**2
    brightness = i0_ref * 10 ** rng.uniform(*_BRIDGE_REL_DEX)  # Jy/arcsec^2, mean along ridge
    dx, dy = b.x - a.x, b.y - a.y
    sep = math.hypot(dx, dy)
    width = rng.uniform(0.08, 0.15) * sep  # Gaussian sigma across: FWHM 0.2-0.35 of the length
    bow = rng.uniform(-0.1, 0.1)  # bridges are not straight
    sigma_turb = rng.uniform(0.4, 0.8)
    outer = rng.uniform(300.0, 800.0) / kpc_pix
    if sep < 1.0:
        return None
    h = math.ceil(4 * width + abs(bow) * sep) + 1
    box = canvas.clip(
        math.floor(min(a.x, b.x)) - h,
        math.ceil(max(a.x, b.x)) + h + 1,
        math.floor(min(a.y, b.y)) - h,
        math.ceil(max(a.y, b.y)) + h + 1,
    )
    if box is None:
        return None
    x, y = _grid(box)
    ex, ey = np.float32(dx / sep), np.float32(dy / sep)
    px, py = x - np.float32(a.x), y - np.float32(a.y)
    t = (px * ex + py * ey) / np.float32(sep)
    v = (py * ex - px * ey) - np.float32(bow * sep * 4) * t * (1 - t)
    along = np.exp(-0.5 * ((t - 0.5) / 0.28) ** 4)  # flat-topped between the two clusters
    across = np.exp(-0.5 * (v / np.float32(width)) ** 2)
    values = (along * across).astype(np.float32) * np.float32(brightness * pixel_arcsec**2)
    values *= _lognormal_field(rng, values.shape, outer_pix=outer, sigma=sigma_turb)
    return box, values, float(values.sum(dtype=np.float64))


# --- Radio galaxies --------------------------------------------------------------------------


def _fri(
    rng: np.random.Generator,
    target: NDArray[np.float32],
    x: float,
    y: float,
    flux: float,
    las: float,
) -> float:
    """Core and two plumes widening and fading outwards, bent as wide-angle tails can be."""
    axis = rng.uniform(0, 2 * math.pi)
    added = _stamp(target, x, y, flux * rng.uniform(0.05, 0.15), 0.5, 0.5, 0.0)
    jets = flux - added
    for side in (0, 1):
        length = 0.5 * las * rng.uniform(0.7, 1.0)
        bend = rng.normal(0.0, 0.4)
        angle = axis + side * math.pi + rng.normal(0.0, 0.15)
        n = int(np.clip(length / 1.5, 6, 60))
        pts = _path(x, y, length, angle, bend, n)
        t = np.linspace(0.0, 1.0, n)
        sigmas = 0.5 + length * (0.04 + 0.22 * t)
        weights = np.exp(-t / rng.uniform(0.5, 1.5)) + 0.3 * t**4  # fading jet, end plume
        added += _chain(target, pts, sigmas, weights, 0.5 * jets)
    return added


def _frii(
    rng: np.random.Generator,
    target: NDArray[np.float32],
    x: float,
    y: float,
    flux: float,
    las: float,
) -> float:
    """Faint core, two lobes with compact hotspots at their outer ends."""
    axis = rng.uniform(0, 2 * math.pi)
    core = flux * rng.uniform(0.005, 0.03)
    added = _stamp(target, x, y, core, 0.5, 0.5, 0.0)
    share = rng.uniform(0.35, 0.65)
    for side, f_side in ((0, share), (1, 1 - share)):
        arm = 0.5 * las * rng.uniform(0.75, 1.0)
        angle = axis + side * math.pi + rng.normal(0.0, 0.08)
        hx, hy = x + arm * math.cos(angle), y + arm * math.sin(angle)
        lobe_flux = (flux - core) * f_side
        hot = lobe_flux * rng.uniform(0.1, 0.35)
        added += _stamp(target, hx, hy, hot, 0.6, 0.6, 0.0)
        # Lobe: back from the hotspot towards the core, widest behind the hotspot.
        n = int(np.clip(arm / 1.5, 6, 50))
        back = arm * rng.uniform(0.5, 0.8)
        pts = _path(hx, hy, back, angle + math.pi, rng.normal(0.0, 0.1), n)
        t = np.linspace(0.0, 1.0, n)
        # Narrow at the hotspot (the leading edge), widening with the backflow towards the core.
        sigmas = 0.5 + arm * (0.04 + 0.18 * t)
        weights = np.exp(-t / 0.6)
        added += _chain(target, pts, sigmas, weights, lobe_flux - hot)
    return added


def _tailed(
    rng: np.random.Generator,
    target: NDArray[np.float32],
    x: float,
    y: float,
    flux: float,
    las: float,
) -> float:
    """A head and one (head-tail) or two (narrow-angle tail) tails bent by ram pressure."""
    direction = rng.uniform(0, 2 * math.pi)
    head = flux * rng.uniform(0.15, 0.4)
    added = _stamp(target, x, y, head, 0.6, 0.6, 0.0)
    n_tails = 1 if rng.random() < 0.5 else 2
    bend = rng.uniform(-1.0, 1.0)
    for k in range(n_tails):
        opening = 0.0 if n_tails == 1 else (k - 0.5) * rng.uniform(0.3, 0.8)
        length = las * rng.uniform(0.7, 1.0)
        n = int(np.clip(length / 1.5, 6, 80))
        pts = _path(x, y, length, direction + opening, bend - 0.6 * opening, n)
        t = np.linspace(0.0, 1.0, n)
        sigmas = 0.5 + length * (0.02 + rng.uniform(0.05, 0.12) * t)
        weights = np.exp(-t / rng.uniform(0.3, 0.8))
        added += _chain(target, pts, sigmas, weights, (flux - head) / n_tails)
    return added


_RG_RENDER = {"fri": _fri, "frii": _frii, "tailed": _tailed}


# --- The sky ---------------------------------------------------------------------------------


def _check_positive(name: str, value: float) -> float:
    if not (isinstance(value, int | float | np.floating | np.integer) and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_range(name: str, value: tuple[float, float], *, low: float = 0.0) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from exc
    if not (math.isfinite(a) and math.isfinite(b) and low < a <= b):
        raise ValueError(f"{name} must satisfy {low} < low <= high, got {value!r}")
    return a, b


def _room(x: float, y: float, ex: float, ey: float, nx: int, ny: int) -> float:
    """Distance from (x, y) along (ex, ey) to the edge of the central 88% of the field."""
    limits = [math.inf]
    for lo, hi, p, e in ((0.06 * nx, 0.94 * nx, x, ex), (0.06 * ny, 0.94 * ny, y, ey)):
        if e > 1e-9:
            limits.append((hi - p) / e)
        elif e < -1e-9:
            limits.append((lo - p) / e)
    return max(min(limits), 0.0)


def _place_clusters(
    rng: np.random.Generator,
    n: int,
    shape: tuple[int, int],
    pixel_arcsec: float,
    z_range: tuple[float, float],
    m_range: tuple[float, float],
    p_pair: float,
) -> tuple[list[_Cluster], bool]:
    """Draw the clusters; with probability ``p_pair`` c0 and c1 are an interacting pair."""
    ny, nx = shape
    clusters: list[_Cluster] = []
    paired = n >= 2 and rng.random() < p_pair

    def make(i: int, x: float, y: float, z: float, m: float) -> _Cluster:
        t500 = theta500_arcmin(m, z)
        return _Cluster(
            id=f"c{i}",
            x=x,
            y=y,
            z=z,
            m500=m,
            theta500_arcmin=t500,
            r500_pix=t500 * 60 / pixel_arcsec,
            kpc_per_pix=kpc_per_arcmin(z) * pixel_arcsec / 60,
        )

    def draw_zm() -> tuple[float, float]:
        z = rng.uniform(*z_range)
        m = math.exp(rng.uniform(math.log(m_range[0]), math.log(m_range[1])))
        return z, m

    for i in range(n):
        z, m = draw_zm()
        if i == 1 and paired:
            # Companion at the same redshift (|dv| ~ 1000 km/s) 1.5-4 Mpc away in projection,
            # shrunk (as a projection would) to keep both in the field.
            a = clusters[0]
            z = float(np.clip(a.z + rng.normal(0.0, 0.003), *z_range))
            sep = rng.uniform(1500.0, 4000.0) / a.kpc_per_pix
            angle = rng.uniform(0, 2 * math.pi)
            # Of this direction and its opposite, the one with more room inside the field.
            room, ex, ey = max(
                (_room(a.x, a.y, math.cos(t), math.sin(t), nx, ny), math.cos(t), math.sin(t))
                for t in (angle, angle + math.pi)
            )
            sep = max(min(sep, room), 1.0)
            clusters.append(make(i, a.x + sep * ex, a.y + sep * ey, z, m))
            continue
        # Independent clusters in the central part of the field, not on top of one another.
        for _ in range(20):
            x = rng.uniform(0.2, 0.8) * nx
            y = rng.uniform(0.2, 0.8) * ny
            if all(math.hypot(x - c.x, y - c.y) > 0.25 * min(nx, ny) for c in clusters):
                break
        clusters.append(make(i, x, y, z, m))
    return clusters, paired


def random_sky(
    rng: np.random.Generator,
    *,
    shape: tuple[int, int],
    pixel_arcsec: float,
    freq_hz: float = 144e6,
    n_clusters: int | None = None,
    p_diffuse: float = 0.5,
    p_pair: float = 0.35,
    classes: tuple[str, ...] = DIFFUSE_CLASSES,
    diffuse: bool = True,
    contaminants: bool = True,
    z_range: tuple[float, float] = (0.05, 0.6),
    m500_range: tuple[float, float] = (2.0, 10.0),
    compact_flux_range: tuple[float, float] = (1e-4, 1.0),
    field_rg_per_deg2: float = 6.0,
) -> SkyModel:
    """Draw a random cluster field with its diffuse emission, contaminants and ground truth.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness; must come from a seed (``default_rng(seed)``),
        as it is split with ``rng.spawn`` into independent streams for the clusters,
        the diffuse emission, the radio galaxies and the compact sources. Switching
        ``diffuse`` or ``contaminants`` off therefore leaves the rest unchanged.
    shape : (int, int), keyword-only
        ``(ny, nx)``, each at least 32.
    pixel_arcsec : float, keyword-only
        Pixel size.
    freq_hz : float, keyword-only
        Observing frequency; powers and counts are at 150 MHz and scaled with
        each class's spectral index.
    n_clusters : int, keyword-only
        Number of clusters (0-3); default random, weights 0.1/0.4/0.3/0.2.
    p_diffuse : float, keyword-only
        Probability that a cluster hosts a halo and/or relic(s).
    p_pair : float, keyword-only
        Probability, when there are two clusters or more, that c0 and c1 are an
        interacting pair at the same redshift joined by a bridge (a filament).
    classes : tuple of str, keyword-only
        Diffuse classes that may be drawn (a subset of ``DIFFUSE_CLASSES``).
    diffuse, contaminants : bool, keyword-only
        Whether to include the diffuse emission and the contaminants at all.
    z_range, m500_range : (float, float), keyword-only
        Uniform redshift and log-uniform M500 (1e14 Msun) ranges of the clusters.
    compact_flux_range : (float, float), keyword-only
        Flux range (Jy at 150 MHz) of the compact sources drawn from the counts.
    field_rg_per_deg2 : float, keyword-only
        Surface density of extended radio galaxies outside the clusters.

    Returns
    -------
    SkyModel

    Raises
    ------
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> sky = random_sky(np.random.default_rng(1), shape=(128, 128), pixel_arcsec=6.0)
    >>> sky.sky.shape, sky.sky.dtype.name, sky.labels.dtype.name
    ((128, 128), 'float32', 'int16')
    >>> bool(np.all(sky.sky >= sky.diffuse)) and not sky.mask[sky.labels == 0].any()
    True
    """
    if (
        not isinstance(shape, tuple | list)
        or len(shape) != 2
        or not all(isinstance(v, int | np.integer) and v >= 32 for v in shape)
    ):
        raise ValueError(f"shape must be two integers (ny, nx) of at least 32, got {shape!r}")
    ny, nx = int(shape[0]), int(shape[1])
    pixel_arcsec = _check_positive("pixel_arcsec", pixel_arcsec)
    freq_hz = _check_positive("freq_hz", freq_hz)
    if n_clusters is not None and not (
        isinstance(n_clusters, int | np.integer) and 0 <= n_clusters <= 3
    ):
        raise ValueError(f"n_clusters must be None or an integer 0..3, got {n_clusters!r}")
    for name, p in (("p_diffuse", p_diffuse), ("p_pair", p_pair)):
        if not (isinstance(p, int | float) and 0.0 <= p <= 1.0):
            raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    if not set(classes) <= set(DIFFUSE_CLASSES) or isinstance(classes, str):
        raise ValueError(f"classes must be a subset of {DIFFUSE_CLASSES}, got {classes!r}")
    z_range = _check_range("z_range", z_range)
    m500_range = _check_range("m500_range", m500_range)
    compact_flux_range = _check_range("compact_flux_range", compact_flux_range)
    if not (math.isfinite(field_rg_per_deg2) and field_rg_per_deg2 >= 0):
        raise ValueError(
            f"field_rg_per_deg2 must be a non-negative number, got {field_rg_per_deg2!r}"
        )
    return _random_sky(
        rng,
        (ny, nx),
        pixel_arcsec,
        freq_hz,
        n_clusters=n_clusters,
        p_diffuse=float(p_diffuse),
        p_pair=float(p_pair),
        classes=tuple(classes),
        diffuse=bool(diffuse),
        contaminants=bool(contaminants),
        z_range=z_range,
        m500_range=m500_range,
        compact_flux_range=compact_flux_range,
        field_rg_per_deg2=float(field_rg_per_deg2),
    )


def _random_sky(
    rng: np.random.Generator,
    shape: tuple[int, int],
    pixel_arcsec: float,
    freq_hz: float,
    *,
    n_clusters: int | None,
    p_diffuse: float,
    p_pair: float,
    classes: tuple[str, ...],
    diffuse: bool,
    contaminants: bool,
    z_range: tuple[float, float],
    m500_range: tuple[float, float],
    compact_flux_range: tuple[float, float],
    field_rg_per_deg2: float,
) -> SkyModel:
    ny, nx = shape
    rng_clusters, rng_diffuse, rng_rg, rng_compact = rng.spawn(4)
    canvas = _Canvas.empty(shape)

    # 1. Clusters.
    if n_clusters is None:
        n_clusters = int(rng_clusters.choice(len(_N_CLUSTER_WEIGHTS), p=_N_CLUSTER_WEIGHTS))
    clusters, paired = _place_clusters(
        rng_clusters, int(n_clusters), shape, pixel_arcsec, z_range, m500_range, p_pair
    )

    # 2. Diffuse emission; labels 1..n in the order drawn.
    sources: list[SkySource] = []

    def keep_diffuse(
        result: tuple[tuple[slice, slice], NDArray[np.float32], float] | None,
        cls: str,
        cluster: _Cluster,
    ) -> None:
        if result is None:
            return
        box, values, total = result
        in_image = float(values.sum(dtype=np.float64))
        if not (in_image > _MIN_IN_IMAGE_FRACTION * total and in_image > 0):
            return
        label = len(sources) + 1
        canvas.add_diffuse(box, values, label)
        cx, cy = _centroid(box, values)
        sources.append(SkySource(label, cls, True, cluster.id, cx, cy, in_image, label))
        if cls not in cluster.hosts:
            cluster.hosts.append(cls)

    if diffuse:
        for c in clusters:
            # One Bernoulli and two class draws per cluster, whatever the outcome, so the streams
            # of later clusters do not depend on earlier choices.
            hosts_any, u_halo, u_relic, u_double = rng_diffuse.random(4)
            direction = rng_diffuse.uniform(0, 2 * math.pi)
            if hosts_any >= p_diffuse:
                continue
            want_halo = u_halo < 0.75 and "halo" in classes
            want_relic = u_relic < 0.35 and "relic" in classes
            if not (want_halo or want_relic):
                want_halo = "halo" in classes
                want_relic = not want_halo and "relic" in classes
            if want_halo:
                keep_diffuse(_render_halo(rng_diffuse, canvas, c, freq_hz), "halo", c)
            if want_relic:
                keep_diffuse(_render_relic(rng_diffuse, canvas, c, freq_hz, direction), "relic", c)
                if u_double < 0.3:  # double relics, on opposite sides along the merger axis
                    opposite = direction + math.pi + rng_diffuse.normal(0.0, 0.2)
                    keep_diffuse(
                        _render_relic(rng_diffuse, canvas, c, freq_hz, opposite), "relic", c
                    )
        if paired and "filament" in classes:
            a, b = clusters[0], clusters[1]
            result = _render_bridge(rng_diffuse, canvas, a, b, pixel_arcsec)
            if result is not None:
                # 150 MHz brightness scaled to the observing frequency.
                box, values, _ = result
                values *= np.float32((freq_hz / _REF_FREQ_HZ) ** -_ALPHA["filament"])
                n_before = len(sources)
                keep_diffuse((box, values, float(values.sum(dtype=np.float64))), "filament", a)
                if len(sources) > n_before and "filament" not in b.hosts:
                    b.hosts.append("filament")

    # 3. Contaminants: radio galaxies in and out of clusters, then compact sources.
    rg_list: list[tuple[str, str | None, float, float, float]] = []
    if contaminants:
        rg_list = _radio_galaxies(
            rng_rg, canvas, clusters, pixel_arcsec, freq_hz, field_rg_per_deg2
        )
        area_sr = nx * ny * pixel_arcsec**2 / _ARCSEC2_PER_SR
        fluxes = _compact_fluxes(rng_compact, area_sr, *compact_flux_range)
        fluxes *= (freq_hz / _REF_FREQ_HZ) ** -_ALPHA["rg"]
        xs = rng_compact.integers(0, nx, fluxes.size)
        ys = rng_compact.integers(0, ny, fluxes.size)
        canvas.other += (
            np.bincount(ys * nx + xs, weights=fluxes, minlength=nx * ny)
            .reshape(shape)
            .astype(np.float32)
        )
        rg_list += [
            ("compact", None, float(x), float(y), float(f))
            for x, y, f in zip(xs.tolist(), ys.tolist(), fluxes.tolist(), strict=True)
        ]
    n_diffuse = len(sources)
    sources += [
        SkySource(n_diffuse + i + 1, cls, False, cid, x, y, f, 0)
        for i, (cls, cid, x, y, f) in enumerate(rg_list)
    ]

    threshold = np.float32(TRUTH_THRESHOLD_JY_ARCSEC2 * pixel_arcsec**2)
    mask = canvas.diffuse > threshold
    labels = canvas.labels
    labels[~mask] = 0
    specs = tuple(
        ClusterSpec(
            id=c.id,
            x=float(c.x),
            y=float(c.y),
            z=float(c.z),
            m500_1e14=float(c.m500),
            theta500_arcmin=float(c.theta500_arcmin),
            r500_pix=float(c.r500_pix),
            has_diffuse=bool(c.hosts),
            hosts=tuple(k for k in DIFFUSE_CLASSES if k in c.hosts),
        )
        for c in clusters
    )
    return SkyModel(
        sky=canvas.diffuse + canvas.other,
        diffuse=canvas.diffuse,
        mask=mask,
        labels=labels,
        clusters=specs,
        sources=tuple(sources),
        pixel_arcsec=pixel_arcsec,
        freq_hz=freq_hz,
    )


def _radio_galaxies(
    rng: np.random.Generator,
    canvas: _Canvas,
    clusters: list[_Cluster],
    pixel_arcsec: float,
    freq_hz: float,
    field_rg_per_deg2: float,
) -> list[tuple[str, str | None, float, float, float]]:
    """Render the radio galaxies into ``canvas.other``; return (class, cluster, x, y, flux)."""
    ny, nx = canvas.shape
    out: list[tuple[str, str | None, float, float, float]] = []
    target = canvas.other
    to_obs = (freq_hz / _REF_FREQ_HZ) ** -_ALPHA["rg"]

    def compact(x: float, y: float, flux: float, cid: str | None) -> None:
        ix, iy = round(x), round(y)
        if 0 <= ix < nx and 0 <= iy < ny:  # unresolved: one pixel, as the counts' sources
            target[iy, ix] += np.float32(flux)
            out.append(("compact", cid, float(ix), float(iy), flux))

    def extended(cls: str, x: float, y: float, flux: float, las: float, cid: str | None) -> None:
        if 0 <= x < nx and 0 <= y < ny:
            added = _RG_RENDER[cls](rng, target, x, y, flux, las)
            out.append((cls, cid, float(x), float(y), added))

    for c in clusters:
        # Radio galaxies of the cluster (AGN at the cluster redshift) -- the blends with diffuse
        # emission behind the paper's false positives. A fixed number of draws per cluster.
        u_bcg, u_bcg_kind, u_group = rng.random(3)
        n_tails = int(rng.poisson(0.8))
        kpc_arcsec = c.kpc_per_pix / pixel_arcsec

        def flux_of(logp_lo: float, logp_hi: float, z: float = c.z) -> float:
            return _flux_jy(10 ** rng.uniform(logp_lo, logp_hi), z, _ALPHA["rg"], freq_hz)

        if u_bcg < 0.5:  # radio-loud brightest cluster galaxy near the centre
            x = c.x + rng.normal(0.0, 0.03 * c.r500_pix)
            y = c.y + rng.normal(0.0, 0.03 * c.r500_pix)
            if u_bcg_kind < 0.7:
                size_kpc = math.exp(rng.uniform(math.log(30.0), math.log(250.0)))
                extended("fri", x, y, flux_of(23.5, 25.5), size_kpc / c.kpc_per_pix, c.id)
            else:
                compact(x, y, flux_of(23.0, 25.0), c.id)
        for _ in range(n_tails):  # head-tail / narrow-angle tails, within ~0.8 R500
            r = 0.8 * c.r500_pix * math.sqrt(rng.random())
            phi = rng.uniform(0, 2 * math.pi)
            size_kpc = math.exp(rng.uniform(math.log(50.0), math.log(400.0)))
            extended(
                "tailed",
                c.x + r * math.cos(phi),
                c.y + r * math.sin(phi),
                flux_of(23.5, 25.0),
                size_kpc / c.kpc_per_pix,
                c.id,
            )
        if u_group < 0.5:  # a compact group: 2-5 radio galaxies within ~100 kpc, which blend
            r = 0.5 * c.r500_pix * math.sqrt(rng.random())
            phi = rng.uniform(0, 2 * math.pi)
            gx, gy = c.x + r * math.cos(phi), c.y + r * math.sin(phi)
            for _ in range(int(rng.integers(2, 6))):
                spread = 100.0 / kpc_arcsec / pixel_arcsec
                compact(
                    gx + rng.normal(0.0, spread),
                    gy + rng.normal(0.0, spread),
                    flux_of(23.0, 24.5),
                    c.id,
                )

    # Field radio galaxies (unrelated AGN in front of or behind the clusters).
    area_deg2 = nx * ny * (pixel_arcsec / 3600) ** 2
    n_field = int(rng.poisson(field_rg_per_deg2 * area_deg2))
    kinds = list(_FIELD_RG_FRACTIONS)
    probs = list(_FIELD_RG_FRACTIONS.values())
    s_lo, s_hi = _FIELD_RG_FLUX_JY
    for _ in range(n_field):
        cls = str(rng.choice(kinds, p=probs))
        x, y = rng.uniform(0, nx), rng.uniform(0, ny)
        # dN/dS ~ S^-2: inverse CDF of N(>S) ~ 1/S between s_lo and s_hi.
        flux = s_lo / (1 - rng.random() * (1 - s_lo / s_hi)) * to_obs
        lo, hi = _FIELD_RG_LAS_ARCSEC[cls]
        las = math.exp(rng.uniform(math.log(lo), math.log(hi))) / pixel_arcsec
        extended(cls, x, y, flux, las, None)
        if rng.random() < 0.25:  # a blend: a companion within the source's extent
            r = rng.uniform(0.2, 0.6) * las
            phi = rng.uniform(0, 2 * math.pi)
            compact(
                x + r * math.cos(phi),
                y + r * math.sin(phi),
                flux * 10 ** rng.uniform(-2.0, -0.5),
                None,
            )
    return out
