"""Image noise and the significance of integrated flux densities (pure functions).

The rms is measured the automatic, robust way: the standard deviation of the
finite pixels after iterative sigma clipping about the median (astropy
``sigma_clipped_stats``), which rejects sources. The uncertainty of a flux
density summed over ``n`` pixels is the noise term used for diffuse emission in
the LoTSS-DR2 cluster papers (e.g. Botteon et al. 2022): ``rms * sqrt(n_beams)``
with ``rms`` in Jy/beam and ``n_beams = n / beam_area_pix`` (the noise of
neighbouring pixels is correlated over a beam). Calibration (flux-scale)
errors are left to the user, who knows the survey's.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.stats import sigma_clipped_stats
from numpy.typing import ArrayLike, NDArray

__all__ = ["flux_uncertainty_jy", "robust_rms"]


def robust_rms(
    image: ArrayLike, *, sigma: float = 3.0, maxiters: int = 10, max_pixels: int | None = None
) -> float:
    """Noise rms: standard deviation of the finite pixels after sigma clipping.

    ``max_pixels`` bounds the cost on large images: the finite pixels are then
    taken at a regular stride (deterministic). The noise is correlated over a
    beam, so a stride of a few pixels loses little (a 960x960 LoTSS cutout:
    0.15 s in full, 0.03 s with every 8th pixel, rms within 0.4%).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(0.0, 2.0, (200, 200)); img[90:110, 90:110] += 100.0
    >>> round(robust_rms(img), 1)
    2.0
    """
    data = np.asarray(image, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        raise ValueError("image has no finite pixel: no rms to measure")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    if max_pixels is not None:
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {max_pixels!r}")
        finite = finite[:: -(-finite.size // max_pixels)]
    _, _, std = sigma_clipped_stats(finite, sigma=sigma, maxiters=maxiters)
    return float(std)


def flux_uncertainty_jy(
    n_pixels: ArrayLike, *, rms_jy_beam: float, beam_area_pix: float
) -> NDArray[np.float64]:
    """Noise uncertainty (Jy) of flux densities summed over ``n_pixels`` pixels each.

    Examples
    --------
    >>> flux_uncertainty_jy([25, 100], rms_jy_beam=1e-4, beam_area_pix=25.0)
    array([0.0001, 0.0002])
    """
    for name, value in (("rms_jy_beam", rms_jy_beam), ("beam_area_pix", beam_area_pix)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    n = np.asarray(n_pixels, dtype=np.float64)
    if np.any(~np.isfinite(n) | (n < 0)):
        raise ValueError("n_pixels must be non-negative pixel counts")
    return rms_jy_beam * np.sqrt(n / beam_area_pix)
