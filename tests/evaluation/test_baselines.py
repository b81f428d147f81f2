"""Tests for radiounet.evaluation.baselines: the 3-sigma mask and PyBDSF islands."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import gaussian_filter

from radiounet.core.noise import robust_rms
from radiounet.evaluation.baselines import (
    PyBDSFError,
    pybdsf_available,
    pybdsf_island_mask,
    sigma_mask,
)

RMS = 1e-4  # Jy/beam
PIXEL_ARCSEC = 2.0
BEAM_ARCSEC = 6.0
BEAM_SIGMA_PIX = BEAM_ARCSEC / PIXEL_ARCSEC / math.sqrt(8 * math.log(2))
# Asymmetric positions (x, y), so that a transposed mask would miss them.
POINTS = ((40, 150, 4e-3), (200, 60, 3e-3), (150, 210, 5e-3))
BLOB = (70, 60, 15.0, 1.5e-3)  # x, y, sigma (pixels), peak Jy/beam


def noise_image(n: int = 256, seed: int = 0) -> np.ndarray:
    """Beam-correlated Gaussian noise with rms ``RMS``."""
    noise = gaussian_filter(np.random.default_rng(seed).normal(size=(n, n)), BEAM_SIGMA_PIX)
    return noise * (RMS / noise.std())


def sky_image(n: int = 256) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    img = noise_image(n)
    for x, y, peak in POINTS:
        img += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * BEAM_SIGMA_PIX**2))
    x, y, s, peak = BLOB
    img += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s**2))
    return img


def write_fits(path: Path, data: np.ndarray, *, frequency: bool = True) -> Path:
    n = data.shape[0]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [180.0, 50.0]
    wcs.wcs.cdelt = [-PIXEL_ARCSEC / 3600, PIXEL_ARCSEC / 3600]
    wcs.wcs.crpix = [n / 2 + 1, n / 2 + 1]
    header = wcs.to_header()
    header["BMAJ"] = header["BMIN"] = BEAM_ARCSEC / 3600
    header["BPA"] = 0.0
    header["BUNIT"] = "JY/BEAM"
    if frequency:
        header["RESTFRQ"] = 1.44e8
    fits.writeto(path, data.astype(np.float32), header)
    return path


# --- 3 sigma --------------------------------------------------------------------------------


def test_robust_rms_ignores_sources() -> None:
    img = sky_image()
    assert img.std() > 1.5 * RMS  # the sources dominate the plain standard deviation
    assert robust_rms(img) == pytest.approx(RMS, rel=0.05)


def test_sigma_mask_covers_the_blob_and_little_noise() -> None:
    img = sky_image()
    mask, rms = sigma_mask(img)
    assert rms == pytest.approx(RMS, rel=0.05)
    x, y, s, _ = BLOB
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    r2 = (xx - x) ** 2 + (yy - y) ** 2
    # The blob is above 3 sigma out to where peak * exp(-r^2 / 2 s^2) = 3 rms (~27 px).
    assert mask[r2 < (0.8 * s) ** 2].all()
    for px, py, _ in POINTS:
        assert mask[py, px] and not mask[px, py]
    noise_only = sigma_mask(noise_image(seed=3), rms=RMS)[0]
    assert noise_only.mean() < 0.01  # 0.13% for Gaussian noise


def test_sigma_mask_options_and_errors() -> None:
    img = np.array([[0.0, 1.0], [np.nan, 5.0]])
    mask, rms = sigma_mask(img, rms=1.0, n_sigma=2.0)
    assert rms == 1.0 and mask.tolist() == [[False, False], [False, True]]
    with pytest.raises(ValueError, match="n_sigma must be a positive number, got -1"):
        sigma_mask(img, n_sigma=-1)
    with pytest.raises(ValueError, match=r"image must be 2-D, got shape \(4,\)"):
        sigma_mask(np.zeros(4))
    with pytest.raises(ValueError, match="no finite pixel"):
        robust_rms(np.full((3, 3), np.nan))


# --- PyBDSF ---------------------------------------------------------------------------------

needs_bdsf = pytest.mark.skipif(not pybdsf_available(), reason="PyBDSF (bdsf) is not installed")


@needs_bdsf
def test_pybdsf_islands_cover_the_sources(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    path = write_fits(folder / "field.fits", sky_image())
    capfd.readouterr()
    errstate = np.geterr()
    mask = pybdsf_island_mask(path)
    assert capfd.readouterr() == ("", "")  # PyBDSF's chatter is silenced
    assert np.geterr() == errstate  # and its numpy.seterr calls are undone
    assert mask.shape == (256, 256) and mask.dtype == bool
    for x, y, _ in POINTS:
        assert mask[y, x], (x, y)  # numpy (y, x) order, not PyBDSF's transposed arrays
    x, y, _, _ = BLOB
    assert mask[y, x]
    assert mask.mean() < 0.1  # islands, not the whole field
    # PyBDSF ran on a copy: nothing (log files, masks) was written next to the input.
    assert sorted(p.name for p in folder.iterdir()) == ["field.fits"]


@needs_bdsf
def test_pybdsf_frequency_from_the_caller(tmp_path: Path) -> None:
    path = write_fits(tmp_path / "nofreq.fits", sky_image(), frequency=False)
    with pytest.raises(PyBDSFError, match=r"PyBDSF failed on .*nofreq.fits: .*frequency"):
        pybdsf_island_mask(path)
    mask = pybdsf_island_mask(path, frequency_hz=1.44e8)
    x, y, _ = POINTS[0]
    assert mask[y, x]


def test_pybdsf_errors(tmp_path: Path) -> None:
    with pytest.raises(PyBDSFError, match="file not found"):
        pybdsf_island_mask(tmp_path / "missing.fits")
    path = write_fits(tmp_path / "f.fits", sky_image(64))
    with pytest.raises(ValueError, match="frequency_hz must be a positive number, got -1"):
        pybdsf_island_mask(path, frequency_hz=-1.0)
