"""The detection ratio R of Stuardi et al. (2024, eq. 8).

R is the mean diffuse-emission probability inside a circle of radius
``2.2 R500`` around a cluster: the sum of probability over the pixels of the
circle that lie inside the image divided by their number. Blanked (NaN) pixels
of the map carry no information and are left out of both sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_RADIUS_R500",
    "DEFAULT_THRESHOLD",
    "DetectionResult",
    "circle_mask",
    "circle_pixel_count",
    "detection_ratio",
]

#: Reference aperture: relics are found out to 2.2 R500 (Jones et al. 2023).
DEFAULT_RADIUS_R500 = 2.2
#: Threshold of maximum accuracy on LoTSS-DR2/PSZ2 (Stuardi et al. 2024, Sec. 6.2).
DEFAULT_THRESHOLD = 0.015


@dataclass(frozen=True)
class DetectionResult:
    """R and its decision for one cluster.

    Attributes
    ----------
    ratio : float
        R, the mean probability in the aperture.
    detected : bool
        ``ratio >= threshold``.
    threshold : float
        Threshold applied.
    n_pixels : int
        Pixels of the aperture that lie inside the image and are not blanked.
    radius_pix : float
        Aperture radius in pixels.
    fraction_in_image : float
        Share of the full aperture's area that lies in the image (1 when whole).
    fraction_valid : float
        Share of the full aperture's pixels that lie in the image and are not
        blanked (``n_pixels`` over the whole circle's count).
    """

    ratio: float
    detected: bool
    threshold: float
    n_pixels: int
    radius_pix: float
    fraction_in_image: float
    fraction_valid: float


def circle_mask(
    shape: tuple[int, int], centre_xy: tuple[float, float], radius_pix: float
) -> NDArray[np.bool_]:
    """Boolean mask of the pixels whose centres lie within ``radius_pix`` of ``centre_xy``.

    ``centre_xy`` is ``(x, y)`` in 0-based pixel coordinates (astropy's
    ``world_to_pixel`` convention), pixel centres at integers.
    """
    if not (math.isfinite(radius_pix) and radius_pix > 0):
        raise ValueError(f"radius must be a positive number of pixels, got {radius_pix!r}")
    cx, cy = centre_xy
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError(f"centre must be finite pixel coordinates, got {centre_xy!r}")
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return np.asarray((xx - cx) ** 2 + (yy - cy) ** 2 <= radius_pix**2, dtype=bool)


#: Rows of a circle counted at once by :func:`circle_pixel_count` (bounds its memory).
_COUNT_ROWS = 1 << 16


def circle_pixel_count(centre_xy: tuple[float, float], radius_pix: float) -> int:
    """Pixel centres within ``radius_pix`` of ``centre_xy`` on an unbounded pixel grid.

    The count :func:`circle_mask` gives on a grid that holds the whole circle
    (the same floating-point test), found row by row from the chord's ends:
    O(r) time and bounded memory, where a mask of a nearby cluster's
    10^4-px-radius aperture would need gigabytes.

    >>> circle_pixel_count((0.0, 0.0), 1.0), circle_pixel_count((0.5, 0.5), 1.0)
    (5, 4)
    """
    if not (math.isfinite(radius_pix) and radius_pix > 0):
        raise ValueError(f"radius must be a positive number of pixels, got {radius_pix!r}")
    cx, cy = centre_xy
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError(f"centre must be finite pixel coordinates, got {centre_xy!r}")
    first, last = math.floor(cy - radius_pix), math.ceil(cy + radius_pix)
    total = 0
    for start in range(first, last + 1, _COUNT_ROWS):
        rows = np.arange(start, min(start + _COUNT_ROWS, last + 1))
        total += _chord_count(cx, rows - cy, radius_pix)
    return total


def _chord_count(cx: float, dy: NDArray[np.floating], radius_pix: float) -> int:
    """Pixel centres in the circle on the rows ``dy`` (offsets from the centre's row)."""
    dy2 = dy**2
    r2 = radius_pix**2

    def inside(x: NDArray[np.floating]) -> NDArray[np.bool_]:
        return np.asarray((x - cx) ** 2 + dy2 <= r2)  # circle_mask's test, term for term

    half = np.sqrt(np.maximum(r2 - dy2, 0.0))
    # The rounded chord ends are at most one pixel off: step them onto the test's answer.
    lo = np.ceil(cx - half)
    lo = np.where(inside(lo - 1), lo - 1, lo)
    lo = np.where(inside(lo), lo, lo + 1)
    hi = np.floor(cx + half)
    hi = np.where(inside(hi + 1), hi + 1, hi)
    hi = np.where(inside(hi), hi, hi - 1)
    return int(np.maximum(hi - lo + 1, 0).sum())


def detection_ratio(
    probability: NDArray[np.floating],
    centre_xy: tuple[float, float],
    radius_pix: float,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> DetectionResult:
    """Compute R inside a circle and decide whether diffuse emission is detected.

    Parameters
    ----------
    probability : ndarray
        2-D probability map (NaN where blanked).
    centre_xy : (float, float)
        Cluster centre in 0-based pixel coordinates ``(x, y)``; it may lie
        outside the image as long as part of the circle is inside.
    radius_pix : float
        Aperture radius in pixels (``2.2 * theta500 / pixel scale``).
    threshold : float, keyword-only
        Decision threshold on R.

    Raises
    ------
    ValueError
        If the map is not 2-D, the threshold is not in [0, 1], or no valid
        pixel lies in the aperture.

    Examples
    --------
    >>> p = np.zeros((100, 100)); p[40:60, 40:60] = 1.0
    >>> r = detection_ratio(p, (49.5, 49.5), 20.0)
    >>> round(r.ratio, 3), r.detected
    (0.316, True)
    """
    if probability.ndim != 2:
        raise ValueError(f"probability map must be 2-D, got shape {probability.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    if not (math.isfinite(radius_pix) and radius_pix > 0):
        raise ValueError(f"radius must be a positive number of pixels, got {radius_pix!r}")
    cx, cy = centre_xy
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError(f"centre must be finite pixel coordinates, got {centre_xy!r}")
    # Only the circle's bounding box is read, so a mosaic costs no more than a cutout.
    y0 = max(0, math.floor(cy - radius_pix))
    y1 = min(probability.shape[0], math.ceil(cy + radius_pix) + 1)
    x0 = max(0, math.floor(cx - radius_pix))
    x1 = min(probability.shape[1], math.ceil(cx + radius_pix) + 1)
    # The whole circle's pixel count (not pi r^2) so that an unclipped circle gives exactly 1.
    n_full = circle_pixel_count(centre_xy, radius_pix)
    if y0 >= y1 or x0 >= x1:
        inside = np.zeros((0, 0), dtype=bool)
        values = np.zeros(0, dtype=np.float32)
    else:
        inside = circle_mask((y1 - y0, x1 - x0), (cx - x0, cy - y0), radius_pix)
        values = np.asarray(probability[y0:y1, x0:x1])[inside]
    valid = values[np.isfinite(values)]
    if valid.size == 0:
        raise ValueError(
            f"no valid pixel of the map lies within {radius_pix:.1f} px of "
            f"(x, y) = ({centre_xy[0]:.1f}, {centre_xy[1]:.1f}): the cluster is outside the image"
        )
    ratio = float(valid.sum(dtype=np.float64) / valid.size)
    return DetectionResult(
        ratio=ratio,
        detected=bool(ratio >= threshold),
        threshold=threshold,
        n_pixels=int(valid.size),
        radius_pix=float(radius_pix),
        fraction_in_image=float(inside.sum()) / n_full,
        fraction_valid=valid.size / n_full,
    )
