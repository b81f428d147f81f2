"""Catalogue of the diffuse-emission components in a Radio U-Net probability map.

A component is an 8-connected region of pixels with probability strictly above
a threshold (0.5 by default) that covers at least one beam. Conventions:

* pixel coordinates are 0-based ``(x, y)`` with ``x`` the column (astropy's
  ``pixel_to_world`` convention), pixel centres at integers;
* angles are in degrees in the pixel frame, counter-clockwise from the +x axis
  as the image is displayed with the origin at the lower left (FITS
  convention), folded to [0, 180) for axes;
* areas are in arcmin^2 (from the WCS pixel area at the reference pixel) and,
  when the redshift is known, in proper kpc^2;
* flux densities are in Jy, summed over the component from an image already
  in Jy/pixel; their uncertainty is the noise term ``rms * sqrt(n_beams)``
  (:func:`radiounet.core.noise.flux_uncertainty_jy`) and ``snr`` their ratio,
  the significance of the component in the image (false components of the
  network are mostly of low significance);
* sky positions are ICRS (J2000) RA/Dec in degrees, whatever the map's frame;
* distances from the cluster centre are in units of R500.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from .cosmology import kpc_per_arcmin
from .noise import flux_uncertainty_jy, robust_rms
from .sky import pixel_to_icrs

__all__ = ["DEFAULT_COMPONENT_THRESHOLD", "Component", "find_components"]

#: Pixels the default rms is measured on (a regular subsample of larger images).
RMS_MAX_PIXELS = 120_000
# An rms below this fraction of the image's peak is rounding: no noise (real images
# reach dynamic ranges of ~1e6).
_NOISELESS = 1e-9
#: Probability above which a pixel belongs to a component.
DEFAULT_COMPONENT_THRESHOLD = 0.5

# Variance of a uniform distribution over one pixel. Added to both second
# moments so that a one-pixel-wide line has a finite minor axis, and so that a
# uniform w x h rectangle has exactly the moments of the continuous rectangle
# (w**2 / 12 and h**2 / 12): its elongation is then exactly max(w, h) / min(w, h).
_PIXEL_VARIANCE = 1.0 / 12.0
# Centroid-to-centre distance (pixels) below which the radial direction is undefined.
_ON_CENTRE_PIX = 1e-6


@dataclass(frozen=True)
class Component:
    """One connected region of the probability map.

    Attributes
    ----------
    label : int
        1..n, in order of decreasing summed probability.
    n_pixels : int
        Number of pixels in the component.
    x, y : float
        Probability-weighted centroid, 0-based pixel coordinates (``x`` = column).
    ra_deg, dec_deg : float
        Centroid on the sky: ICRS (J2000) RA and Dec in degrees, whatever the
        map's frame (FK4 B1950, galactic, ...) and axis order.
    area_arcmin2 : float
        Area in arcmin^2.
    area_kpc2 : float or None
        Proper area in kpc^2, when the redshift is given.
    flux_jy : float or None
        Integrated flux density (sum of the Jy/pixel image over the component),
        when the image is given; NaN if the image is blanked in the component.
    flux_err_jy : float or None
        Its noise uncertainty, ``rms * sqrt(n_pixels / beam_area_pix)`` with the
        rms in Jy/beam; None without an image or with a noiseless one.
    snr : float or None
        ``flux_jy / flux_err_jy``: the significance of the integrated emission.
    peak_probability, mean_probability : float
        Maximum and mean probability over the component.
    distance_r500 : float or None
        Distance of the centroid from the cluster centre in units of R500, when
        both are given.
    elongation : float
        Major-to-minor axis ratio from the probability-weighted second moments
        (>= 1; exactly ``w / h`` for a uniform ``w x h`` rectangle).
    position_angle_deg : float
        Major-axis angle in [0, 180), counter-clockwise from +x in the pixel
        frame (arbitrary, 0, for a component with no preferred axis).
    radial_angle_deg : float or None
        Angle between the major axis and the direction from the cluster centre
        to the centroid, in [0, 90]: 0 is radial, 90 tangential (as relics).
        None without a centre or when the centroid is on it (within 1e-6 px).
        Meaningful only for elongated components well away from the centre.
    """

    label: int
    n_pixels: int
    x: float
    y: float
    ra_deg: float
    dec_deg: float
    area_arcmin2: float
    area_kpc2: float | None
    flux_jy: float | None
    flux_err_jy: float | None
    snr: float | None
    peak_probability: float
    mean_probability: float
    distance_r500: float | None
    elongation: float
    position_angle_deg: float
    radial_angle_deg: float | None

    def to_dict(self) -> dict[str, Any]:
        """Fields as a JSON-friendly dict (ints, floats and None)."""
        return dataclasses.asdict(self)


def _positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _optional(values: NDArray[np.float64] | None, i: int) -> float | None:
    return None if values is None else float(values[i])


def find_components(
    probability: ArrayLike,
    *,
    wcs: WCS,
    beam_area_pix: float,
    threshold: float = DEFAULT_COMPONENT_THRESHOLD,
    image_jy_per_pixel: ArrayLike | None = None,
    centre_xy: tuple[float, float] | None = None,
    r500_pix: float | None = None,
    z: float | None = None,
    min_area_beams: float = 1.0,
    rms_jy_beam: float | None = None,
) -> list[Component]:
    """Connected regions of ``probability > threshold`` at least ``min_area_beams`` beams large.

    Parameters
    ----------
    probability : array_like
        2-D probability map; NaN (blanked) pixels never belong to a component.
    wcs : astropy.wcs.WCS, keyword-only
        2-D celestial WCS of the map, in a frame astropy relates to ICRS
        (equatorial ICRS/FK5/FK4, or galactic).
    beam_area_pix : float, keyword-only
        Beam area in pixels (see :func:`radiounet.core.units.beam_area_pixels`).
    threshold : float, keyword-only
        Pixels with probability strictly above it are kept; in (0, 1).
    image_jy_per_pixel : array_like, keyword-only
        Input image in Jy/pixel, of the map's shape, for the flux densities.
    centre_xy : (float, float), keyword-only
        Cluster centre in 0-based pixel coordinates, for the distances and
        radial angles.
    r500_pix : float, keyword-only
        R500 in pixels, for the distances; needs ``centre_xy``.
    z : float, keyword-only
        Redshift, for the areas in kpc^2.
    min_area_beams : float, keyword-only
        Smallest component kept, in beams (>= 0).
    rms_jy_beam : float, keyword-only
        Noise rms of the image in Jy/beam, for the flux uncertainties; by
        default measured on ``image_jy_per_pixel`` with
        :func:`radiounet.core.noise.robust_rms`.

    Returns
    -------
    list of Component
        In order of decreasing summed probability (``label`` 1, 2, ...).

    Raises
    ------
    ValueError
        If an argument is out of range, the shapes disagree, or the WCS's
        frame cannot be related to ICRS.

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> wcs.wcs.crval = [150.0, 30.0]
    >>> wcs.wcs.cdelt = [-4.5 / 3600, 4.5 / 3600]
    >>> wcs.wcs.crpix = [51.0, 51.0]
    >>> p = np.zeros((100, 100)); p[48:52, 30:70] = 0.9
    >>> (c,) = find_components(p, wcs=wcs, beam_area_pix=22.4, centre_xy=(49.5, 80.0))
    >>> c.n_pixels, round(c.x, 1), round(c.y, 1), round(c.elongation, 1)
    (160, 49.5, 49.5, 10.0)
    >>> round(c.position_angle_deg), round(c.radial_angle_deg)
    (0, 90)
    """
    prob = np.asarray(probability)
    if prob.ndim != 2:
        raise ValueError(f"probability map must be 2-D, got shape {prob.shape}")
    if not (math.isfinite(threshold) and 0.0 < threshold < 1.0):
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    _positive("beam_area_pix", beam_area_pix)
    if not (math.isfinite(min_area_beams) and min_area_beams >= 0):
        raise ValueError(f"min_area_beams must be a non-negative number, got {min_area_beams!r}")
    if not isinstance(wcs, WCS) or wcs.pixel_n_dim != 2 or not wcs.has_celestial:
        got = (
            f"{wcs.pixel_n_dim}-D WCS with CTYPE {list(wcs.wcs.ctype)!r}"
            if isinstance(wcs, WCS)
            else repr(wcs)
        )
        raise ValueError(f"wcs must be a 2-D celestial astropy WCS, got {got}")
    image = None
    if image_jy_per_pixel is not None:
        image = np.asarray(image_jy_per_pixel)
        if image.shape != prob.shape:
            raise ValueError(
                f"image_jy_per_pixel has shape {image.shape}, "
                f"expected the probability map's {prob.shape}"
            )
    if rms_jy_beam is not None:
        if image is None:
            raise ValueError(f"rms_jy_beam={rms_jy_beam!r} needs image_jy_per_pixel")
        _positive("rms_jy_beam", rms_jy_beam)
    if centre_xy is not None:
        if len(centre_xy) != 2 or not all(math.isfinite(v) for v in centre_xy):
            raise ValueError(
                f"centre_xy must be finite pixel coordinates (x, y), got {centre_xy!r}"
            )
    if r500_pix is not None:
        _positive("r500_pix", r500_pix)
        if centre_xy is None:
            raise ValueError(f"r500_pix={r500_pix!r} needs centre_xy for the distances")
    kpc2_per_arcmin2 = None if z is None else kpc_per_arcmin(z) ** 2

    mask = prob > threshold  # NaN compares False: blanked pixels are never kept
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return []

    # Work on the selected pixels only: their label, probability and position.
    flat = np.flatnonzero(labels)
    lab = labels.ravel()[flat]
    p = prob.ravel()[flat].astype(np.float64)
    py, px = np.divmod(flat, prob.shape[1])
    nbin = n + 1

    def per_label(weights: NDArray[np.floating]) -> NDArray[np.float64]:
        return np.bincount(lab, weights=weights, minlength=nbin)[1:].astype(np.float64)

    counts = np.bincount(lab, minlength=nbin)[1:]
    keep = np.flatnonzero(counts >= min_area_beams * beam_area_pix)
    if keep.size == 0:
        return []
    psum = per_label(p)
    cx = per_label(p * px) / psum
    cy = per_label(p * py) / psum
    # Central moments in a second pass, free of the cancellation of raw moments.
    dx = px - cx[lab - 1]
    dy = py - cy[lab - 1]
    mxx = per_label(p * dx * dx) / psum + _PIXEL_VARIANCE
    myy = per_label(p * dy * dy) / psum + _PIXEL_VARIANCE
    mxy = per_label(p * dx * dy) / psum
    peak = np.full(nbin, -np.inf)
    np.maximum.at(peak, lab, p)
    peak = peak[1:]
    # The mean of equal values may round one ulp above their maximum.
    mean = np.minimum(psum / counts, peak)
    flux = None if image is None else per_label(image.ravel()[flat].astype(np.float64))
    flux_err = None
    if image is not None:
        rms = rms_jy_beam
        if rms is None:
            finite = image[np.isfinite(image)]
            rms = 0.0
            if finite.size:
                rms = robust_rms(finite, max_pixels=RMS_MAX_PIXELS) * beam_area_pix
                # Rounding leaves a constant image some 1e-16 of its level of "noise".
                if rms <= _NOISELESS * beam_area_pix * float(np.abs(finite).max()):
                    rms = 0.0
        if rms > 0:  # a noiseless (e.g. model) image has no uncertainty to give
            flux_err = flux_uncertainty_jy(counts, rms_jy_beam=rms, beam_area_pix=beam_area_pix)

    # Eigenvalues and major-axis angle of each 2x2 moment matrix in closed form.
    half_trace = 0.5 * (mxx + myy)
    root = np.hypot(0.5 * (mxx - myy), mxy)
    elongation = np.sqrt((half_trace + root) / (half_trace - root))
    angle = np.degrees(0.5 * np.arctan2(2.0 * mxy, mxx - myy)) % 180.0
    angle[angle >= 180.0] = 0.0  # a tiny negative angle rounds to 180 under the modulo

    keep = keep[np.argsort(-psum[keep], kind="stable")]
    ra, dec = _sky(wcs, cx[keep], cy[keep])
    area = counts[keep] * proj_plane_pixel_area(wcs) * 3600.0

    distance = radial = None
    if centre_xy is not None:
        rx = cx[keep] - centre_xy[0]
        ry = cy[keep] - centre_xy[1]
        radius = np.hypot(rx, ry)
        if r500_pix is not None:
            distance = radius / r500_pix
        offset = np.abs(angle[keep] - np.degrees(np.arctan2(ry, rx))) % 180.0
        # No radial direction when the centroid is on the centre (to rounding).
        radial = np.where(radius > _ON_CENTRE_PIX, np.minimum(offset, 180.0 - offset), np.nan)

    out = []
    for i, k in enumerate(keep):
        radial_i = _optional(radial, i)
        out.append(
            Component(
                label=i + 1,
                n_pixels=int(counts[k]),
                x=float(cx[k]),
                y=float(cy[k]),
                ra_deg=float(ra[i]),
                dec_deg=float(dec[i]),
                area_arcmin2=float(area[i]),
                area_kpc2=None if kpc2_per_arcmin2 is None else float(area[i]) * kpc2_per_arcmin2,
                flux_jy=None if flux is None else float(flux[k]),
                flux_err_jy=None if flux_err is None else float(flux_err[k]),
                snr=None if flux is None or flux_err is None else float(flux[k] / flux_err[k]),
                peak_probability=float(peak[k]),
                mean_probability=float(mean[k]),
                distance_r500=_optional(distance, i),
                elongation=float(elongation[k]),
                position_angle_deg=float(angle[k]),
                radial_angle_deg=None if radial_i is None or math.isnan(radial_i) else radial_i,
            )
        )
    return out


def _sky(
    wcs: WCS, x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """ICRS RA and Dec (degrees) of pixel positions, whatever the WCS's frame and axis order."""
    return pixel_to_icrs(wcs, x, y)
