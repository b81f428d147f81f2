"""Cutout requests, the survey registry and the error classes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.fetcher import (
    DEFAULT_SURVEY,
    SURVEYS,
    ClusterInfo,
    CutoutRequest,
    FetchError,
    InvalidCutoutError,
    InvalidRequestError,
    OutsideFootprintError,
    SourceUnavailableError,
    get_survey,
)
from radiounet.stream.fetcher.surveys import LOTSS_DR2_LOWRES_URL

BASE: dict[str, Any] = {
    "pointing_id": "PSZ2_G055.59+31.85",
    "survey": "lotss-dr2-lowres",
    "ra_deg": 260.6149937,
    "dec_deg": 32.1354073,
}


def test_defaults_and_derived_values() -> None:
    r = CutoutRequest(**BASE)
    assert (r.size_px, r.pixel_scale_arcsec, r.cluster) == (960, 4.5, None)
    assert r.size_arcmin == pytest.approx(72.0)
    assert r.pixel_scale_deg == pytest.approx(4.5 / 3600)
    assert r.centre_pixel == 480
    assert CutoutRequest(**{**BASE, "size_px": 33}).centre_pixel == 16
    with pytest.raises(AttributeError):
        r.ra_deg = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pointing_id": ""}, "pointing id must be 1-128 characters"),
        ({"pointing_id": "a b"}, "pointing id must be 1-128 characters"),
        ({"survey": " "}, "survey must be a non-empty name, got ' '"),
        ({"ra_deg": 360.0}, r"RA must be in \[0, 360\) degrees, got 360.0"),
        ({"ra_deg": -0.1}, r"RA must be in \[0, 360\) degrees, got -0.1"),
        ({"ra_deg": math.nan}, r"RA must be in \[0, 360\) degrees, got nan"),
        ({"dec_deg": 90.5}, r"Dec must be in \[-90, 90\] degrees, got 90.5"),
        ({"dec_deg": -math.inf}, r"Dec must be in \[-90, 90\] degrees, got -inf"),
        ({"size_px": 31}, r"cutout size must be an integer of 32..8192 pixels, got 31"),
        ({"size_px": 8193}, r"cutout size must be an integer of 32..8192 pixels, got 8193"),
        ({"size_px": 960.0}, r"cutout size must be an integer of 32..8192 pixels, got 960.0"),
        ({"size_px": True}, r"cutout size must be an integer of 32..8192 pixels, got True"),
        ({"pixel_scale_arcsec": 0.0}, r"pixel scale \(arcsec\) must be a positive number, got 0.0"),
        ({"pixel_scale_arcsec": math.inf}, r"pixel scale \(arcsec\) must be a positive"),
        ({"cluster": "Abell 2256"}, "cluster must be a ClusterInfo"),
    ],
)
def test_invalid_requests(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message) as info:
        CutoutRequest(**{**BASE, **change})
    assert info.value.code == "invalid_request"


def test_edge_values_are_valid() -> None:
    for change in ({"ra_deg": 0.0}, {"dec_deg": -90.0}, {"dec_deg": 90}, {"size_px": 32}):
        CutoutRequest(**{**BASE, **change})
    CutoutRequest(**{**BASE, "size_px": 8192, "pixel_scale_arcsec": 0.1})


def test_cluster_info() -> None:
    assert ClusterInfo(z=0.224, m500_1e14=7.77852).r500_arcmin() == pytest.approx(6.005, abs=0.01)
    assert ClusterInfo(theta500_arcmin=3.0, z=0.1, m500_1e14=5.0).r500_arcmin() == 3.0
    assert ClusterInfo(name="X", z=0.1).r500_arcmin() is None
    for bad in ({"z": 0.0}, {"m500_1e14": -1.0}, {"theta500_arcmin": math.nan}):
        with pytest.raises(InvalidRequestError, match="must be a positive number"):
            ClusterInfo(**bad)


def test_error_codes_and_kinds() -> None:
    codes = {
        InvalidRequestError: ("invalid_request", PermanentError),
        OutsideFootprintError: ("outside_footprint", PermanentError),
        InvalidCutoutError: ("invalid_cutout", PermanentError),
        SourceUnavailableError: ("source_unavailable", TransientError),
    }
    for cls, (code, kind) in codes.items():
        error = cls("detail")
        assert isinstance(error, FetchError) and isinstance(error, kind)
        assert error.code == code and error.detail == "detail"
    assert issubclass(InvalidRequestError, ValueError)
    assert not isinstance(SourceUnavailableError("x"), PermanentError)
    assert SourceUnavailableError("x", retry_after_s=3.0).retry_after_s == 3.0


def test_survey_registry() -> None:
    assert DEFAULT_SURVEY in SURVEYS
    lotss = get_survey("lotss-dr2-lowres")
    assert lotss.profile == "lotss-dr2-lowres" and lotss.pixel_scale_arcsec == 4.5
    assert lotss.beam.bmaj_deg == pytest.approx(20 / 3600)
    assert lotss.url_template == LOTSS_DR2_LOWRES_URL
    assert LOTSS_DR2_LOWRES_URL.startswith("https://lofar-surveys.org/dr2-low-cutout.fits?pos=")
    with pytest.raises(InvalidRequestError, match="unknown survey 'nvss': known surveys are"):
        get_survey("nvss")


def test_footprint_precheck_message() -> None:
    lotss = get_survey("lotss-dr2-lowres")
    lotss.check_footprint(260.6, 32.1)
    with pytest.raises(
        OutsideFootprintError,
        match=r"^RA 10\.000 Dec -45\.000 is outside the footprint of lotss-dr2-lowres "
        r"\(dec >= 10\)$",
    ):
        lotss.check_footprint(10.0, -45.0)


def test_numpy_values_become_plain_numbers() -> None:
    r = CutoutRequest(
        **{**BASE, "ra_deg": np.float32(10.5), "size_px": np.int64(128)},
        cluster=ClusterInfo(z=np.float64(0.1), m500_1e14=np.float32(5.0)),
    )
    assert type(r.ra_deg) is float and type(r.size_px) is int and r.size_px == 128
    assert r.cluster is not None and type(r.cluster.m500_1e14) is float
    assert r == CutoutRequest(**{**BASE, "ra_deg": 10.5, "size_px": 128}, cluster=r.cluster)
    with pytest.raises(InvalidRequestError, match="cluster name must be text"):
        ClusterInfo(name=1)  # type: ignore[arg-type]
