"""Quicklook PNGs: written headless, any NaNs, and argument checks."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import gaussian_filter

from radiounet.examples import ExampleField, example_field
from radiounet.io.quicklook import (
    _axis_labels,
    _binned,
    _binned_geometry,
    _display_factor,
    write_quicklook,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def field() -> ExampleField:
    return example_field(size=192)


@pytest.fixture(scope="module")
def probability(field: ExampleField) -> np.ndarray:
    return gaussian_filter(field.truth.astype(np.float32), 2)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_writes_png(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    out = write_quicklook(
        tmp_path / "ql.png",
        field.image,
        probability,
        wcs=WCS(field.header),
        title=f"{field.name}  R = 0.42",
        circle_xy=field.centre_xy,
        circle_radius_pix=2.2 * field.r500_pix,
    )
    assert out == tmp_path / "ql.png"
    assert _png_size(out) == (1200, 550)
    assert out.stat().st_size > 20_000


def test_dpi_sets_size(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    out = write_quicklook(
        str(tmp_path / "ql.png"), field.image, probability, wcs=WCS(field.header), dpi=50
    )
    assert _png_size(out) == (600, 275)


def test_nans_and_no_circle(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    image, prob = field.image.copy(), probability.copy()
    image[:40, :60] = np.nan
    prob[:40, :60] = np.nan
    out = write_quicklook(tmp_path / "nan.png", image, prob, wcs=WCS(field.header).celestial)
    assert _png_size(out) == (1200, 550)


@pytest.mark.parametrize("fill", [0.0, 1.0, np.nan])
def test_no_contour_crossing(field: ExampleField, fill: float, tmp_path: Path) -> None:
    # A map that never crosses the level (or is all blank) has no contour, and no warning.
    prob = np.full(field.image.shape, fill, dtype=np.float32)
    write_quicklook(tmp_path / "flat.png", field.image, prob, wcs=WCS(field.header))


def test_all_nan_image(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    image = np.full(field.image.shape, np.nan, dtype=np.float32)
    out = write_quicklook(tmp_path / "blank.png", image, probability, wcs=WCS(field.header))
    assert _png_size(out) == (1200, 550)


def test_explicit_limits(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    write_quicklook(
        tmp_path / "lim.png",
        field.image,
        probability,
        wcs=WCS(field.header),
        vmin_jy=1e-5,
        vmax_jy=1e-2,
        cmap="gray",
    )


def test_threads(field: ExampleField, probability: np.ndarray, tmp_path: Path) -> None:
    wcs = WCS(field.header)
    with ThreadPoolExecutor(4) as pool:
        paths = list(
            pool.map(
                lambda i: write_quicklook(tmp_path / f"{i}.png", field.image, probability, wcs=wcs),
                range(4),
            )
        )
    sizes = {p.read_bytes() for p in paths}
    assert len(sizes) == 1  # identical output from each thread


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"image": np.zeros((2, 192, 192))}, "image must be 2-D"),
        ({"probability": np.zeros((191, 192))}, "probability has shape"),
        ({"wcs": WCS(naxis=2)}, "celestial"),
        ({"contour_level": 1.5}, "contour_level"),
        ({"circle_xy": (96.0, 96.0)}, "circle_xy and circle_radius_pix"),
        ({"circle_xy": (96.0, 96.0), "circle_radius_pix": -1.0}, "circle_radius_pix"),
        ({"vmin_jy": 0.0}, "vmin_jy"),
        ({"vmin_jy": 1e-2, "vmax_jy": 1e-3}, "below vmax_jy"),
        ({"dpi": 0}, "dpi"),
    ],
)
def test_invalid_arguments(
    field: ExampleField, probability: np.ndarray, tmp_path: Path, change: dict, match: str
) -> None:
    kwargs = {"image": field.image, "probability": probability, "wcs": WCS(field.header)} | change
    image, prob = kwargs.pop("image"), kwargs.pop("probability")
    with pytest.raises(ValueError, match=match):
        write_quicklook(tmp_path / "bad.png", image, prob, **kwargs)
    assert not (tmp_path / "bad.png").exists()


def test_binned_means_ignore_nans_and_keep_edges() -> None:
    a = np.arange(25, dtype=np.float32).reshape(5, 5)
    a[0, 0] = np.nan
    a[4, 4] = np.nan  # the lone pixel of the last block: that block is all NaN
    out = _binned(a, 2)
    assert out.shape == (3, 3)  # 5 -> 3: the odd row and column are kept, not cropped
    assert out[0, 0] == pytest.approx((1 + 5 + 6) / 3)
    assert out[1, 1] == pytest.approx((12 + 13 + 17 + 18) / 4)
    assert out[0, 2] == pytest.approx((4 + 9) / 2)
    assert np.isnan(out[2, 2])
    assert np.array_equal(_binned(a, 1), a, equal_nan=True)


def test_binned_fast_path_equals_the_general_one() -> None:
    a = np.random.default_rng(3).random((6, 8), dtype=np.float32)
    blanked = a.copy()
    blanked[5, 7] = np.nan  # forces the general path
    fast, general = _binned(a, 2), _binned(blanked, 2)
    np.testing.assert_allclose(fast[:2], general[:2], rtol=1e-6)
    np.testing.assert_allclose(fast[2, :3], general[2, :3], rtol=1e-6)
    assert fast[2, 3] == pytest.approx(a[4:6, 6:8].mean(), rel=1e-6)
    assert general[2, 3] == pytest.approx(np.mean([a[4, 6], a[4, 7], a[5, 6]]), rel=1e-6)


@pytest.mark.parametrize(("shape", "dpi", "factor"), [((960, 960), 100, 2), ((200, 200), 100, 1)])
def test_display_factor(shape: tuple[int, int], dpi: int, factor: int) -> None:
    assert _display_factor(shape, dpi) == factor


def test_binned_geometry_keeps_the_circle_on_the_sky() -> None:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [150.0, 30.0]
    wcs.wcs.cdelt = [-4.5 / 3600, 4.5 / 3600]
    wcs.wcs.crpix = [480.0, 480.0]
    xy, radius = (300.0, 611.0), 200.0
    binned, bxy, bradius = _binned_geometry(wcs, xy, radius, 2)
    assert bxy is not None and bradius == 100.0
    before = wcs.pixel_to_world_values(*xy)
    after = binned.pixel_to_world_values(*bxy)
    np.testing.assert_allclose(after, before, atol=1e-9)
    assert _binned_geometry(wcs, None, None, 2)[1:] == (None, None)


DEC_FIRST = {"CTYPE1": "DEC--SIN", "CTYPE2": "RA---SIN", "CRVAL1": 30.0, "CRVAL2": 150.0}


def sin_wcs(**cards: float | str) -> WCS:
    h = fits.Header()
    h.update(CTYPE1="RA---SIN", CTYPE2="DEC--SIN", CRVAL1=150.0, CRVAL2=30.0, CRPIX1=97.0)
    h.update(CRPIX2=97.0, CDELT1=-4.5 / 3600, CDELT2=4.5 / 3600, **cards)
    return WCS(h)


@pytest.mark.parametrize(
    ("cards", "labels"),
    [
        ({}, ("RA", "Dec")),
        ({"RADESYS": "FK5", "EQUINOX": 2000.0}, ("RA", "Dec")),
        ({"RADESYS": "FK4", "EQUINOX": 1950.0}, ("RA (B1950)", "Dec (B1950)")),
        ({"EPOCH": 1950.0}, ("RA (B1950)", "Dec (B1950)")),
        ({"CTYPE1": "GLON-SIN", "CTYPE2": "GLAT-SIN"}, ("Galactic longitude", "Galactic latitude")),
        (DEC_FIRST, ("Dec", "RA")),
    ],
    ids=["icrs", "fk5", "fk4", "epoch-1950", "galactic", "dec-first"],
)  # fmt: skip
def test_axes_are_labelled_by_the_maps_own_coordinates(
    cards: dict[str, float | str], labels: tuple[str, str]
) -> None:
    # In world-axis order, as WCSAxes numbers them: a Dec-first map's x axis shows Dec.
    assert _axis_labels(sin_wcs(**cards)) == labels


def test_dec_first_map_with_circle(field: ExampleField, tmp_path: Path) -> None:
    wcs = sin_wcs(**DEC_FIRST)
    image = np.ascontiguousarray(field.image.T)
    out = write_quicklook(
        tmp_path / "dec_first.png",
        image,
        np.zeros_like(image),
        wcs=wcs,
        circle_xy=(96.0, 96.0),
        circle_radius_pix=40.0,
    )
    assert _png_size(out) == (1200, 550)
