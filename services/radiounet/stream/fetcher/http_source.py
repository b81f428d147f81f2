"""Cutouts from an HTTP cutout service (the LoTSS-DR2 one by default), with urllib only.

The answer is checked like a FITS file on disk (:func:`radiounet.io.fits_image.open_2d`:
degenerate FREQ/STOKES axes dropped, celestial WCS, some finite pixel), then cut
or resampled onto exactly the requested grid (:mod:`.regrid`). The service is asked
for ``margin_px`` more pixels on each side than requested, so that re-cutting on
the requested centre never runs off the edge of its answer.

How answers map to errors:

============================================  ==========================================
answer                                        error
============================================  ==========================================
HTTP 404, 410 or 204; an all-blank image       OutsideFootprintError (``outside_footprint``)
a text/HTML page, for surveys whose service    OutsideFootprintError
answer "no coverage" that way
HTTP 429, 408, 5xx; refused, reset, timed      SourceUnavailableError (``source_unavailable``,
out, truncated; HTTP 401/403/407               transient; ``retry_after_s`` from Retry-After)
other HTTP 4xx                                 InvalidRequestError (``invalid_request``)
not FITS, corrupt FITS, no celestial WCS,      InvalidCutoutError (``invalid_cutout``)
several planes, bad BUNIT
============================================  ==========================================
"""

from __future__ import annotations

import email.utils
import http.client
import io
import math
import re
import string
import time
import urllib.error
import urllib.request
import warnings
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from numpy.typing import NDArray

from radiounet import __version__
from radiounet.io.fits_image import InvalidImageError, beam_from_header, open_2d

from .errors import (
    InvalidCutoutError,
    InvalidRequestError,
    OutsideFootprintError,
    SourceUnavailableError,
)
from .regrid import check_coverage, check_survey, cutout_hdu, image_unit, to_request_grid
from .request import CutoutRequest
from .surveys import DEFAULT_SURVEY, get_survey

__all__ = ["PLACEHOLDERS", "HttpCutoutSource", "format_url"]

#: Placeholders of URL templates: centre (ICRS degrees) and side of the cutout asked for.
PLACEHOLDERS = frozenset({"ra", "dec", "size_arcmin", "size_deg", "size_px"})

_FITS_START = b"SIMPLE  ="
_TRANSIENT_STATUS = frozenset({408, 425, 429})
_ACCESS_STATUS = frozenset({401, 403, 407})
_OUTSIDE_STATUS = frozenset({404, 410})


class _Decimal(float):
    """A float that a bare ``{name}`` writes with fixed decimals (never ``1e-06``)."""

    decimals = 6

    def __format__(self, spec: str) -> str:
        return super().__format__(spec or f".{self.decimals}f")


class _Decimal4(_Decimal):
    decimals = 4


def format_url(template: str, request: CutoutRequest, *, margin_px: int = 0) -> str:
    """The URL of ``template`` for ``request``, ``margin_px`` wider on each side.

    Values without a format spec are written with fixed decimals: 6 for the
    position and ``size_deg``, 4 for ``size_arcmin``; ``size_px`` counts pixels
    of the requested scale.

    Examples
    --------
    >>> r = CutoutRequest("p", "lotss-dr2-lowres", 260.6149937, 32.1354073)
    >>> format_url("https://x/c.fits?pos={ra},{dec}&size={size_arcmin}", r, margin_px=16)
    'https://x/c.fits?pos=260.614994,32.135407&size=74.4000'
    >>> format_url("https://x/c?ra={ra:.2f}&n={size_px}&deg={size_deg:.3f}", r)
    'https://x/c?ra=260.61&n=960&deg=1.200'
    """
    n = request.size_px + 2 * margin_px
    size_deg = n * request.pixel_scale_deg
    return template.format(
        ra=_Decimal(request.ra_deg),
        dec=_Decimal(request.dec_deg),
        size_arcmin=_Decimal4(size_deg * 60.0),
        size_deg=_Decimal(size_deg),
        size_px=n,
    )


def _check_template(template: str) -> None:
    if not re.match(r"https?://[^/{}]+", template):
        raise ValueError(f"URL template must start with http:// or https://, got {template!r}")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"URL template {template!r}: {exc}") from None
    unknown = names - PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"URL template {template!r}: unknown placeholders {sorted(unknown)}; "
            f"use {sorted(PLACEHOLDERS)}"
        )
    try:
        format_url(template, _PROBE)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"URL template {template!r}: {exc}") from None


_PROBE = CutoutRequest("probe", DEFAULT_SURVEY, 1.0, 1.0)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _snippet(body: bytes, limit: int = 120) -> str:
    """A one-line, tag-free start of a text answer, for messages."""
    text = re.sub(r"<[^>]*>", " ", body[:4096].decode("utf-8", errors="replace"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _all_blank(hdul: fits.HDUList) -> bool:
    """Whether the first image HDU holds numbers, none of them finite."""
    for h in hdul:
        if isinstance(h, fits.PrimaryHDU | fits.ImageHDU) and h.header.get("NAXIS", 0) >= 2:
            try:
                data = h.data
            except Exception:  # corrupt data: not "blank", let the caller's error stand
                return False
            return bool(
                data is not None
                and data.size > 0
                and np.issubdtype(data.dtype, np.number)
                and not np.isfinite(data).any()
            )
    return False


class HttpCutoutSource:
    """Cutouts of one survey from an HTTP cutout service.

    Parameters
    ----------
    url_template : str, optional
        ``http(s)://`` URL with placeholders ``{ra}``, ``{dec}`` (ICRS degrees),
        ``{size_arcmin}``, ``{size_deg}``, ``{size_px}`` (see :func:`format_url`);
        default the survey's (``LOTSS_DR2_LOWRES_URL`` for LoTSS-DR2).
    timeout_s : float, keyword-only
        Socket timeout of the connection and of each read.
    survey : str, keyword-only
        Survey served (a key of ``SURVEYS``).
    margin_px : int, keyword-only
        Extra pixels asked for on each side.
    min_valid_fraction : float, keyword-only
        Fewer finite pixels than this in the final cutout is ``OutsideFootprintError``.
    max_bytes : int, keyword-only
        Larger answers are refused (``InvalidCutoutError``).
    opener : urllib.request.OpenerDirector, keyword-only
        To customise HTTP (proxies, authentication); default ``build_opener()``.

    Raises
    ------
    ValueError
        A bad template (unknown placeholder, not http/https), no template for a
        survey without a default one, or an out-of-range option.
    InvalidRequestError
        An unknown survey.
    """

    def __init__(
        self,
        url_template: str | None = None,
        *,
        timeout_s: float = 60.0,
        survey: str = DEFAULT_SURVEY,
        margin_px: int = 16,
        min_valid_fraction: float = 0.5,
        max_bytes: int = 256 * 2**20,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        self._survey = get_survey(survey)
        template = url_template if url_template is not None else self._survey.url_template
        if template is None:
            raise ValueError(f"survey {survey} has no default cutout URL: give url_template")
        _check_template(template)
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number, got {timeout_s!r}")
        if not (isinstance(margin_px, int) and margin_px >= 0):
            raise ValueError(f"margin_px must be a non-negative integer, got {margin_px!r}")
        if not 0.0 < min_valid_fraction <= 1.0:
            raise ValueError(f"min_valid_fraction must be in (0, 1], got {min_valid_fraction!r}")
        if not (isinstance(max_bytes, int) and max_bytes > 0):
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        self.url_template = template
        self.timeout_s = float(timeout_s)
        self.margin_px = margin_px
        self.min_valid_fraction = float(min_valid_fraction)
        self.max_bytes = int(max_bytes)
        # The survey's size limit applies to the survey's own service only.
        self._max_size_arcmin = (
            self._survey.max_size_arcmin if template == self._survey.url_template else None
        )
        self._opener = opener if opener is not None else urllib.request.build_opener()

    @property
    def survey(self) -> str:
        return self._survey.name

    def describe(self) -> str:
        """Where cutouts come from, one line (the ``source`` of cutout messages)."""
        return f"http {self.url_template}"

    def url_for(self, request: CutoutRequest) -> str:
        """The URL fetched for ``request``."""
        return format_url(self.url_template, request, margin_px=self.margin_px)

    def fetch(self, request: CutoutRequest) -> fits.PrimaryHDU:
        """Download, check and re-grid the cutout for ``request`` (see the module doc)."""
        survey = self._survey
        check_survey(request, survey)
        survey.check_footprint(request.ra_deg, request.dec_deg)
        asked_arcmin = (request.size_px + 2 * self.margin_px) * request.pixel_scale_arcsec / 60
        if self._max_size_arcmin is not None and asked_arcmin > self._max_size_arcmin:
            raise InvalidRequestError(
                f"pointing {request.pointing_id}: a {asked_arcmin:.1f}-arcmin cutout exceeds the "
                f"{self._max_size_arcmin:g}-arcmin limit of the {survey.name} cutout service"
            )
        url = self.url_for(request)
        body, content_type = self._get(url, request)
        text_reply = content_type.startswith("text/") or body.lstrip()[:1] == b"<"
        if survey.text_reply_means_outside and text_reply and not body.startswith(_FITS_START):
            raise OutsideFootprintError.at(
                survey.name,
                request.ra_deg,
                request.dec_deg,
                f"the server answered with a {content_type} page, not FITS: {_snippet(body)}",
            )
        data, wcs, header = self._load(body, url, request)
        bunit, per_pixel = image_unit(header, survey, url)
        grid = to_request_grid(
            data, wcs, request, projection=survey.projection, per_pixel=per_pixel
        )
        valid = check_coverage(
            grid.data,
            request,
            min_valid_fraction=self.min_valid_fraction,
            where="the server's cutout",
        )
        return cutout_hdu(
            grid,
            request,
            survey=survey,
            bunit=bunit,
            beam=beam_from_header(header) or survey.beam,
            source_kind="http",
            origin=url,
            valid=valid,
            source_header=header,
        )

    # --- HTTP ---------------------------------------------------------------------------

    def _get(self, url: str, request: CutoutRequest) -> tuple[bytes, str]:
        """The body and content type of a successful answer; errors as FetchErrors."""
        req = urllib.request.Request(
            url,
            headers={
                "User-Agent": f"radiounet/{__version__} (cutout fetcher)",
                "Accept": "application/fits, image/fits, */*;q=0.5",
            },
        )
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                status = int(resp.status)
                if status == 204:
                    raise OutsideFootprintError.at(
                        request.survey,
                        request.ra_deg,
                        request.dec_deg,
                        "the server has no image there (HTTP 204 No Content)",
                    )
                # get_content_type() says text/plain when there is no header at all.
                has_type = resp.headers.get("Content-Type") is not None
                content_type = resp.headers.get_content_type() if has_type else "unspecified"
                body = resp.read(self.max_bytes + 1)
        except urllib.error.HTTPError as exc:
            try:
                raise self._status_error(exc, url, request) from None
            finally:
                exc.close()
        except urllib.error.URLError as exc:
            raise SourceUnavailableError(f"{url}: cannot connect ({exc.reason})") from None
        except TimeoutError:
            raise SourceUnavailableError(f"{url}: timed out after {self.timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise SourceUnavailableError(f"{url}: connection failed ({detail})") from None
        if len(body) > self.max_bytes:
            raise InvalidCutoutError(f"{url}: answer larger than {self.max_bytes} bytes")
        return body, content_type

    def _status_error(
        self, exc: urllib.error.HTTPError, url: str, request: CutoutRequest
    ) -> Exception:
        code = int(exc.code)
        status = f"HTTP {code} {exc.reason}".strip()
        if code in _OUTSIDE_STATUS:
            return OutsideFootprintError.at(
                request.survey,
                request.ra_deg,
                request.dec_deg,
                f"the server has no image there ({status})",
            )
        if code in _TRANSIENT_STATUS or code >= 500:
            retry = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            return SourceUnavailableError(f"{url}: {status}", retry_after_s=retry)
        if code in _ACCESS_STATUS:
            return SourceUnavailableError(
                f"{url}: {status} (access denied: check the source's credentials)"
            )
        try:
            text = _snippet(exc.read(4096))
        except (OSError, http.client.HTTPException):
            text = ""
        detail = f"{status}: {text}" if text else status
        if 400 <= code < 500:
            return InvalidRequestError(f"{url}: the server refused the request ({detail})")
        return InvalidCutoutError(f"{url}: unexpected answer ({detail})")

    # --- FITS ---------------------------------------------------------------------------

    def _load(
        self, body: bytes, url: str, request: CutoutRequest
    ) -> tuple[NDArray[Any], WCS, fits.Header]:
        if not body:
            raise InvalidCutoutError(f"{url}: empty answer, not a FITS file")
        if not body.startswith(_FITS_START):
            raise InvalidCutoutError(f"{url}: not a FITS file (starts with {body[:16]!r})")
        with warnings.catch_warnings():
            # Header fixes and truncation are warnings in astropy; open_2d turns the
            # ones that matter into errors (truncated data) and the rest are harmless.
            warnings.simplefilter("ignore", AstropyUserWarning)
            try:
                hdul = fits.open(io.BytesIO(body), mode="readonly", memmap=False)
            except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
                raise InvalidCutoutError(
                    f"{url}: not a readable FITS file ({' '.join(str(exc).split())})"
                ) from None
            try:
                data, wcs, header, _ = open_2d(hdul)
            except InvalidImageError as exc:
                if _all_blank(hdul):
                    raise OutsideFootprintError.at(
                        request.survey,
                        request.ra_deg,
                        request.dec_deg,
                        "the server's cutout has no data there (every pixel blank)",
                    ) from None
                raise InvalidCutoutError(str(exc).replace("<HDUList>", url, 1)) from None
            finally:
                hdul.close()
        return data, wcs, header
