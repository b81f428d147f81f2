"""The requested grid, cutting versus resampling, and the returned HDU."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from radiounet.stream.fetcher import CutoutRequest, get_survey
from radiounet.stream.fetcher.regrid import (
    cutout_hdu,
    request_wcs,
    same_grid,
    to_request_grid,
)
from radiounet.stream.fetcher.surveys import LOTSS_DR2_LOWRES_URL

RA0, DEC0 = 260.6149937, 32.1354073


def _request(size: int = 64, scale: float = 4.5, ra: float = RA0, dec: float = DEC0):
    return CutoutRequest("p1", "lotss-dr2-lowres", ra, dec, size_px=size, pixel_scale_arcsec=scale)


@pytest.mark.parametrize("size", [32, 33, 960])
def test_request_wcs_centre(size: int) -> None:
    wcs = request_wcs(_request(size))
    ra, dec = wcs.pixel_to_world_values(size // 2, size // 2)
    assert ra == pytest.approx(RA0, abs=1e-9) and dec == pytest.approx(DEC0, abs=1e-9)
    assert wcs.wcs.ctype[0] == "RA---SIN" and wcs.pixel_shape == (size, size)
    np.testing.assert_allclose(np.diag(wcs.pixel_scale_matrix), [-4.5 / 3600, 4.5 / 3600])


def _wcs(ctype: tuple[str, str], cdelt: float, rotation_deg: float = 0.0) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = list(ctype)
    w.wcs.crval = [RA0, DEC0]
    w.wcs.crpix = [50, 50]
    w.wcs.cdelt = [-cdelt / 3600, cdelt / 3600]
    t = np.radians(rotation_deg)
    w.wcs.pc = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    w.wcs.set()
    return w


def test_same_grid() -> None:
    request = _request()
    assert same_grid(_wcs(("RA---SIN", "DEC--SIN"), 4.5), request)
    assert same_grid(_wcs(("RA---TAN", "DEC--TAN"), 4.5 * (1 + 5e-4)), request)
    assert not same_grid(_wcs(("RA---SIN", "DEC--SIN"), 4.5 * 1.01), request)
    assert not same_grid(_wcs(("RA---SIN", "DEC--SIN"), 4.5, rotation_deg=1.0), request)
    assert not same_grid(_wcs(("GLON-SIN", "GLAT-SIN"), 4.5), request)


def test_no_overlap_is_blank() -> None:
    data = np.ones((100, 100), dtype=np.float32)
    grid = to_request_grid(data, _wcs(("RA---SIN", "DEC--SIN"), 4.5), _request(ra=RA0 + 1.0))
    assert grid.data.shape == (64, 64) and np.isnan(grid.data).all()
    far = to_request_grid(data, _wcs(("RA---SIN", "DEC--SIN"), 6.0), _request(ra=RA0 - 5.0))
    assert far.method == "reproject" and np.isnan(far.data).all()


def test_jy_per_pixel_is_rescaled() -> None:
    data = np.ones((200, 200), dtype=np.float32)
    wcs = _wcs(("RA---SIN", "DEC--SIN"), 3.0)
    per_pixel = to_request_grid(data, wcs, _request(), per_pixel=True)
    per_beam = to_request_grid(data, wcs, _request(), per_pixel=False)
    np.testing.assert_allclose(per_pixel.data, 2.25, rtol=1e-4)
    np.testing.assert_allclose(per_beam.data, 1.0, rtol=1e-5)


def test_galactic_image_is_resampled_to_icrs() -> None:
    w = WCS(naxis=2)
    w.wcs.ctype = ["GLON-SIN", "GLAT-SIN"]
    w.wcs.crval = [55.59, 31.85]  # near PSZ2 G055.59+31.85
    w.wcs.crpix = [200, 200]
    w.wcs.cdelt = [-4.5 / 3600, 4.5 / 3600]
    w.wcs.set()
    y, x = np.mgrid[:400, :400]
    data = (x + 1000 * y).astype(np.float32)  # a ramp: any pixel tells where it came from
    coord = w.pixel_to_world(210.0, 190.0).icrs
    request = _request(ra=float(coord.ra.deg), dec=float(coord.dec.deg))
    grid = to_request_grid(data, w, request)
    assert grid.method == "reproject" and grid.wcs.wcs.radesys == "ICRS"
    assert grid.data[32, 32] == pytest.approx(210 + 1000 * 190, abs=2)


def test_long_origin_round_trips() -> None:
    request = _request()
    url = LOTSS_DR2_LOWRES_URL.format(ra=RA0, dec=DEC0, size_arcmin=72.0) + "&extra=" + "x" * 40
    grid = to_request_grid(
        np.ones((100, 100), dtype=np.float32), _wcs(("RA---SIN", "DEC--SIN"), 4.5), request
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hdu = cutout_hdu(
            grid,
            request,
            survey=get_survey("lotss-dr2-lowres"),
            bunit="JY/BEAM",
            beam=None,
            source_kind="http",
            origin=url,
            valid=1.0,
            extra_cards=[("RUTEST", "y" * 66, "a comment that cannot fit")],
        )
        buffer = io.BytesIO()
        hdu.writeto(buffer)
        buffer.seek(0)
        with fits.open(buffer) as hdul:
            header = hdul[0].header
            assert header["RUORIGIN"] == url and header["RUTEST"] == "y" * 66
            assert "BMAJ" not in header and header["RESTFRQ"] == 1.44e8
            assert header["RUREQRA"] == RA0 and header["NAXIS"] == 2
