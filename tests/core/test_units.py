"""Tests for radiounet.core.units: BUNIT parsing, beam area and Jy/beam <-> Jy/pixel."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radiounet.core.units import beam_area_pixels, convert_brightness, parse_bunit

ARCSEC = 1 / 3600


@pytest.mark.parametrize(
    ("bunit", "unit", "scale"),
    [
        ("JY/BEAM", "Jy/beam", 1.0),
        ("Jy/beam", "Jy/beam", 1.0),
        ("JY/BEAM ", "Jy/beam", 1.0),
        ("  Jy / beam  ", "Jy/beam", 1.0),
        ("Jy/bm", "Jy/beam", 1.0),
        ("beam-1 Jy", "Jy/beam", 1.0),
        ("mJy/beam", "Jy/beam", 1e-3),
        ("MJY/BEAM", "Jy/beam", 1e-3),
        ("uJy/beam", "Jy/beam", 1e-6),
        ("Jy/pixel", "Jy/pixel", 1.0),
        ("JY/PIXEL", "Jy/pixel", 1.0),
        ("Jy/pix", "Jy/pixel", 1.0),
        ("mJy/pixel", "Jy/pixel", 1e-3),
    ],
)
def test_parse_bunit(bunit: str, unit: str, scale: float) -> None:
    assert parse_bunit(bunit) == (unit, scale)


@pytest.mark.parametrize("bunit", ["K", "", "Jy", "JY/SR", "Jy/arcsec2", "mJy"])
def test_parse_bunit_unknown(bunit: str) -> None:
    with pytest.raises(
        ValueError,
        match=rf"unknown brightness unit BUNIT={bunit!r}: expected Jy/beam, mJy/beam.*--bunit",
    ):
        parse_bunit(bunit)


def test_beam_area_of_lotss_20_arcsec_beam_on_4_5_arcsec_pixels() -> None:
    expected = math.pi * 20 * 20 / (4 * math.log(2)) / 4.5**2
    got = beam_area_pixels(20 * ARCSEC, 20 * ARCSEC, (4.5 * ARCSEC) ** 2)
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == pytest.approx(22.38, abs=0.005)


def test_beam_area_of_an_elliptical_beam() -> None:
    # 6" x 4" beam on 1.5" pixels: pi * 6 * 4 / (4 ln 2) / 2.25 = 12.09 pixels.
    got = beam_area_pixels(6 * ARCSEC, 4 * ARCSEC, (1.5 * ARCSEC) ** 2)
    assert got == pytest.approx(math.pi * 24 / (4 * math.log(2)) / 2.25, rel=1e-12)
    assert got == pytest.approx(12.086, abs=0.001)


@pytest.mark.parametrize("bad", [0.0, -1e-3, math.nan, math.inf])
@pytest.mark.parametrize("which", ["bmaj", "bmin", "pixel area"])
def test_beam_area_rejects_non_positive_values(which: str, bad: float) -> None:
    args = {"bmaj": 5 * ARCSEC, "bmin": 5 * ARCSEC, "pixel area": ARCSEC**2}
    args[which] = bad
    with pytest.raises(ValueError, match=rf"{which} must be a positive number"):
        beam_area_pixels(args["bmaj"], args["bmin"], args["pixel area"])


def test_convert_jy_per_beam_to_jy_per_pixel_and_back() -> None:
    area = beam_area_pixels(20 * ARCSEC, 20 * ARCSEC, (4.5 * ARCSEC) ** 2)
    per_beam = np.array([area, 2 * area, 0.0, -area])
    per_pixel = convert_brightness(per_beam, "Jy/beam", "Jy/pixel", beam_area_pix=area)
    np.testing.assert_allclose(per_pixel, [1.0, 2.0, 0.0, -1.0], rtol=1e-15)
    back = convert_brightness(per_pixel, "Jy/pixel", "Jy/beam", beam_area_pix=area)
    np.testing.assert_allclose(back, per_beam, rtol=1e-15)
    assert convert_brightness(np.array([3.0]), "Jy/pixel", "Jy/beam", beam_area_pix=4.0)[0] == 12.0


@pytest.mark.parametrize("unit", ["Jy/beam", "Jy/pixel"])
def test_convert_same_unit_is_a_no_op_without_beam(unit: str) -> None:
    data = np.array([1.0, 2.0])
    assert convert_brightness(data, unit, unit) is data


@pytest.mark.parametrize(("src", "dst"), [("Jy/beam", "Jy/pixel"), ("Jy/pixel", "Jy/beam")])
def test_convert_needs_the_beam(src: str, dst: str) -> None:
    with pytest.raises(ValueError, match=rf"converting {src} to {dst} needs the beam"):
        convert_brightness(np.ones(3), src, dst)


def test_convert_rejects_unknown_units() -> None:
    with pytest.raises(ValueError, match=r"cannot convert 'K' to 'Jy/beam'"):
        convert_brightness(np.ones(3), "K", "Jy/beam", beam_area_pix=10.0)
