"""The HTTP cutout source against a real local HTTP server."""

from __future__ import annotations

import io
import math
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from radiounet.core.units import beam_area_pixels
from radiounet.io.fits_image import read_image
from radiounet.stream.fetcher import (
    CutoutRequest,
    HttpCutoutSource,
    InvalidCutoutError,
    InvalidRequestError,
    OutsideFootprintError,
    SourceUnavailableError,
)
from radiounet.stream.fetcher.http_source import format_url

RA0, DEC0 = 260.6149937, 32.1354073  # the test images' centre (conftest.Images)
Reply = tuple[int, dict[str, str], bytes]
#: A reply that never comes: the handler waits, then drops the connection.
SLOW: Reply = (0, {}, b"")
FITS_TYPE = {"Content-Type": "application/fits"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, list[Reply]] = {}
        self.log: list[str] = []
        self.release = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def template(self, path: str) -> str:
        return self.url(path) + "?pos={ra},{dec}&size={size_arcmin}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.log.append(self.path)
        replies = self.server.routes.get(urlsplit(self.path).path)
        if not replies:
            reply: Reply = (404, {}, b"no such route")
        else:
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply is SLOW:
            self.server.release.wait(10)
            self.close_connection = True
            return
        status, headers, body = reply
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _request(ra: float = RA0, dec: float = DEC0, size: int = 128, **kw: object) -> CutoutRequest:
    return CutoutRequest("PSZ2_G055.59+31.85", "lotss-dr2-lowres", ra, dec, size_px=size, **kw)  # type: ignore[arg-type]


def test_cutout_at_native_scale_keeps_source_pixels(server: _Server, images) -> None:
    field = images.field()
    server.routes["/cut"] = [(200, FITS_TYPE, images.to_bytes(field))]
    source = HttpCutoutSource(server.template("/cut"), timeout_s=5)
    image = images.plane(field)
    # Off the pixel centre: the nearest source pixel (200, 140) becomes the central pixel.
    ra, dec = images.world(field, 200.3, 139.8)
    request = _request(ra, dec)
    hdu = source.fetch(request)

    assert hdu.data.shape == (128, 128) and hdu.data.dtype == np.float32
    np.testing.assert_array_equal(hdu.data, image[140 - 64 : 140 + 64, 200 - 64 : 200 + 64])
    wcs = WCS(hdu.header)
    assert wcs.naxis == 2
    x, y = wcs.world_to_pixel_values(ra, dec)
    assert abs(x - 64.3) < 1e-3 and abs(y - 63.8) < 1e-3
    h = hdu.header
    assert h["BUNIT"] == "JY/BEAM" and h["BMAJ"] == pytest.approx(20 / 3600)
    assert (h["RUSOURCE"], h["RUREGRID"], h["RUSURVEY"], h["RUPOINT"]) == (
        "http",
        "cutout",
        "lotss-dr2-lowres",
        "PSZ2_G055.59+31.85",
    )
    assert h["RUORIGIN"] == source.url_for(request)
    assert h["RUPROF"] == "lotss-dr2-lowres" and h["RUVALID"] == 1.0
    # The service is asked for the position and 16 more pixels on each side.
    (path,) = server.log
    query = parse_qs(urlsplit(path).query)
    assert query["pos"] == [f"{ra:.6f},{dec:.6f}"]
    assert query["size"] == [f"{160 * 4.5 / 60:.4f}"]


def test_result_is_a_valid_radio_image(server: _Server, images) -> None:
    server.routes["/cut"] = [(200, FITS_TYPE, images.to_bytes(images.field()))]
    hdu = HttpCutoutSource(server.template("/cut"), timeout_s=5).fetch(_request())
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    buffer.seek(0)
    with fits.open(buffer) as hdul:
        image = read_image(hdul)
        assert hdul[0].header["RUORIGIN"].startswith(server.url("/cut?pos="))
    assert image.shape == (128, 128) and image.unit == "Jy/beam"
    assert image.pixel_scale_arcsec == pytest.approx(4.5)
    assert image.beam is not None and image.beam.bmaj_deg == pytest.approx(20 / 3600)
    ra, dec = image.wcs.pixel_to_world_values(64, 64)
    assert abs(ra - RA0) < 4.5 / 3600 / 2 and abs(dec - DEC0) < 4.5 / 3600 / 2


def _gaussian_field(images, pixel_arcsec: float, size: int) -> fits.PrimaryHDU:
    """A 1-Jy point source (Jy/beam, 20" beam) near the centre of an otherwise empty image."""
    hdu = images.field(size=size, pixel_arcsec=pixel_arcsec)
    sigma = 20 / pixel_arcsec / math.sqrt(8 * math.log(2))
    y, x = np.mgrid[:size, :size]
    x0, y0 = size / 2 + 3.3, size / 2 - 5.6
    image = np.exp(-0.5 * ((x - x0) ** 2 + (y - y0) ** 2) / sigma**2).astype(np.float32)
    hdu.data = image[np.newaxis, np.newaxis]
    return hdu


def test_reprojects_other_pixel_scale(server: _Server, images) -> None:
    field = _gaussian_field(images, 3.0, 400)
    server.routes["/fine"] = [(200, FITS_TYPE, images.to_bytes(field))]
    hdu = HttpCutoutSource(server.template("/fine"), timeout_s=5).fetch(_request())
    h = hdu.header
    assert h["RUREGRID"] == "reproject" and hdu.data.shape == (128, 128)
    assert (h["CRVAL1"], h["CRVAL2"]) == (pytest.approx(RA0), pytest.approx(DEC0))
    assert (h["CRPIX1"], h["CRPIX2"]) == (65.0, 65.0)
    assert (h["CDELT1"], h["CDELT2"]) == (pytest.approx(-4.5 / 3600), pytest.approx(4.5 / 3600))
    assert h["CTYPE1"] == "RA---SIN"
    # Jy/beam is a surface brightness: peak and integrated flux are kept.
    data = np.nan_to_num(hdu.data)
    area_in = beam_area_pixels(20 / 3600, 20 / 3600, (3 / 3600) ** 2)
    area_out = beam_area_pixels(20 / 3600, 20 / 3600, (4.5 / 3600) ** 2)
    flux_in = images.plane(field).sum() / area_in
    assert flux_in == pytest.approx(1.0, rel=1e-3)
    assert data.sum() / area_out == pytest.approx(flux_in, rel=0.02)
    assert data.max() == pytest.approx(1.0, abs=0.05)
    # The source lands where its sky position maps on the new grid.
    ra, dec = images.world(field, 200 + 3.3, 200 - 5.6)
    x, y = WCS(h).world_to_pixel_values(ra, dec)
    peak_y, peak_x = np.unravel_index(np.argmax(data), data.shape)
    assert abs(peak_x - x) <= 0.6 and abs(peak_y - y) <= 0.6


def _fits_without_wcs(images) -> bytes:
    return images.to_bytes(fits.PrimaryHDU(np.ones((64, 64), dtype=np.float32)))


def _cube(images) -> bytes:
    hdu = images.field(size=96)
    hdu.data = np.concatenate([hdu.data, hdu.data], axis=1)
    return images.to_bytes(hdu)


def _with(images, **cards: object) -> bytes:
    hdu = images.field()
    for key, value in cards.items():
        hdu.header[key] = value
    return images.to_bytes(hdu)


OUTSIDE = OutsideFootprintError
UNAVAILABLE = SourceUnavailableError
HTML = {"Content-Type": "text/html"}


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        ((404, {}, b"gone"), OUTSIDE, r"\(the server has no image there \(HTTP 404 Not Found\)\)$"),
        ((410, {}, b""), OUTSIDE, r"\(the server has no image there \(HTTP 410 Gone\)\)$"),
        ((204, {}, b""), OUTSIDE, r"\(the server has no image there \(HTTP 204 No Content\)\)$"),
        (
            (200, HTML, b"<html><body><p>No coverage\nhere</p></body></html>"),
            OUTSIDE,
            r"\(the server answered with a text/html page, not FITS: No coverage here\)$",
        ),
        (
            (400, {}, b"size too large"),
            InvalidRequestError,
            r": the server refused the request \(HTTP 400 Bad Request: size too large\)$",
        ),
        (
            (403, {}, b""),
            UNAVAILABLE,
            r": HTTP 403 Forbidden \(access denied: check the source's credentials\)$",
        ),
        ((503, {}, b""), UNAVAILABLE, r": HTTP 503 Service Unavailable$"),
        ((502, {}, b""), UNAVAILABLE, r": HTTP 502 Bad Gateway$"),
        (
            (200, FITS_TYPE, b"\x00\x01\x02garbage bytes, not FITS" * 10),
            InvalidCutoutError,
            r": not a FITS file \(starts with b'\\x00\\x01\\x02garbage bytes'\)$",
        ),
        ((200, FITS_TYPE, b""), InvalidCutoutError, r": empty answer, not a FITS file$"),
        (
            (200, FITS_TYPE, b"SIMPLE  =   T" + b" " * 100),
            InvalidCutoutError,
            r": not a readable FITS file",
        ),
        (
            (200, FITS_TYPE, b"NOWCS"),
            InvalidCutoutError,
            r": no celestial WCS \(no RA/DEC CTYPE1/CTYPE2 axes\)$",
        ),
    ],
)
def test_answers_become_errors(
    server: _Server, images, reply: Reply, error: type[Exception], message: str
) -> None:
    if reply[2] == b"NOWCS":
        reply = (reply[0], reply[1], _fits_without_wcs(images))
    server.routes["/x"] = [reply]
    source = HttpCutoutSource(server.template("/x"), timeout_s=5)
    request = _request()
    url = re.escape(source.url_for(request))
    prefix = (
        r"^RA 260\.615 Dec 32\.135 is outside the footprint of lotss-dr2-lowres "
        if error is OutsideFootprintError
        else f"^{url}"
    )
    with pytest.raises(error, match=prefix + ".*" + message):
        source.fetch(request)


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("nan", OUTSIDE, r"\(the server's cutout has no data there \(every pixel blank\)\)$"),
        ("truncated", InvalidCutoutError, r": corrupt image data"),
        ("cube", InvalidCutoutError, r": 2 planes along FREQ"),
        ("bunit", InvalidCutoutError, r": unknown brightness unit BUNIT='K'"),
    ],
)
def test_bad_images_become_errors(
    server: _Server, images, kind: str, error: type[Exception], message: str
) -> None:
    if kind == "nan":
        hdu = images.field()
        hdu.data[...] = np.nan
        body = images.to_bytes(hdu)
    elif kind == "truncated":
        body = images.to_bytes(images.field())[: 2880 * 20]
    elif kind == "cube":
        body = _cube(images)
    else:
        body = _with(images, BUNIT="K")
    server.routes["/x"] = [(200, FITS_TYPE, body)]
    with pytest.raises(error, match=message):
        HttpCutoutSource(server.template("/x"), timeout_s=5).fetch(_request())


def test_fits_without_content_type(server: _Server, images) -> None:
    server.routes["/bare"] = [(200, {}, images.to_bytes(images.field()))]
    hdu = HttpCutoutSource(server.template("/bare"), timeout_s=5).fetch(_request())
    assert hdu.data.shape == (128, 128)


def test_retry_after_is_reported(server: _Server) -> None:
    server.routes["/busy"] = [(429, {"Retry-After": "7"}, b"slow down")]
    with pytest.raises(SourceUnavailableError, match=r"HTTP 429 Too Many Requests$") as info:
        HttpCutoutSource(server.template("/busy"), timeout_s=5).fetch(_request())
    assert info.value.retry_after_s == 7.0 and info.value.code == "source_unavailable"


def test_server_error_then_success(server: _Server, images) -> None:
    server.routes["/flaky"] = [
        (500, {}, b"oops"),
        (200, FITS_TYPE, images.to_bytes(images.field())),
    ]
    source = HttpCutoutSource(server.template("/flaky"), timeout_s=5)
    with pytest.raises(SourceUnavailableError, match=r"HTTP 500 Internal Server Error$") as info:
        source.fetch(_request())
    assert info.value.retry_after_s is None
    hdu = source.fetch(_request())
    assert hdu.data.shape == (128, 128)
    assert len(server.log) == 2


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = HttpCutoutSource(f"http://127.0.0.1:{port}/c?pos={{ra}},{{dec}}", timeout_s=5)
    with pytest.raises(SourceUnavailableError, match=r"cannot connect \(.*refused"):
        source.fetch(_request())


def test_timeout(server: _Server) -> None:
    server.routes["/slow"] = [SLOW]
    source = HttpCutoutSource(server.template("/slow"), timeout_s=0.2)
    with pytest.raises(SourceUnavailableError, match=r"timed out"):
        source.fetch(_request())


def test_footprint_precheck_asks_nothing(server: _Server) -> None:
    source = HttpCutoutSource(server.template("/x"), timeout_s=5)
    with pytest.raises(
        OutsideFootprintError,
        match=r"^RA 10\.000 Dec -45\.000 is outside the footprint of lotss-dr2-lowres "
        r"\(dec >= 10\)$",
    ):
        source.fetch(_request(10.0, -45.0))
    assert server.log == []


def test_partial_coverage(server: _Server, images) -> None:
    field = images.field()
    server.routes["/edge"] = [(200, FITS_TYPE, images.to_bytes(field))]
    # 84 of 128 pixels along each axis are inside the image: 43 % of the cutout.
    request = _request(*images.world(field, 20, 20))
    with pytest.raises(
        OutsideFootprintError,
        match=r"\(only 43% of the cutout has data in the server's cutout, 50% needed\)$",
    ):
        HttpCutoutSource(server.template("/edge"), timeout_s=5).fetch(request)
    source = HttpCutoutSource(server.template("/edge"), timeout_s=5, min_valid_fraction=0.4)
    hdu = source.fetch(request)
    assert hdu.header["RUVALID"] == pytest.approx((84 / 128) ** 2)
    assert np.isnan(hdu.data[:44]).all() and np.isnan(hdu.data[:, :44]).all()
    np.testing.assert_array_equal(hdu.data[44:, 44:], images.plane(field)[:84, :84])


def test_request_checks_before_any_network() -> None:
    default = HttpCutoutSource(timeout_s=5)  # the LoTSS service: never reached here
    assert default.describe().startswith("http https://lofar-surveys.org/dr2-low-cutout.fits")
    with pytest.raises(InvalidRequestError, match=r"exceeds the 120-arcmin limit"):
        default.fetch(_request(size=2048))
    other = CutoutRequest("p", "other-survey", RA0, DEC0)
    with pytest.raises(InvalidRequestError, match=r"survey 'other-survey' is not served"):
        default.fetch(other)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("ftp://host/c?pos={ra}", "must start with http:// or https://"),
        ("http://host/c?pos={ra}&band={band}", r"unknown placeholders \['band'\]"),
        ("http://host/c?pos={ra:q}", "Unknown format code"),
        ("http://host/c?pos={ra", "expected '}'"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpCutoutSource(template, timeout_s=5)


def test_format_url_placeholders() -> None:
    r = _request(size=100, pixel_scale_arcsec=6.0)
    url = format_url("http://h/c?{ra}&{dec}&{size_arcmin}&{size_deg}&{size_px}", r, margin_px=10)
    assert url == f"http://h/c?{RA0:.6f}&{DEC0:.6f}&12.0000&0.200000&120"
    assert format_url("http://h/c?dec={dec}", _request(dec=1e-7)) == "http://h/c?dec=0.000000"
