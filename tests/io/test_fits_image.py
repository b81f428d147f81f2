"""Reading radio images from FITS: 2-/3-/4-D layouts, units, beams, memory maps and bad files."""

from __future__ import annotations

import bz2
import gc
import gzip
import math
import warnings
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from radiounet.io.fits_image import (
    Beam,
    ImageWarning,
    InvalidImageError,
    beam_from_header,
    open_2d,
    read_image,
)

PIX_DEG = 4.5 / 3600
BEAM_DEG = 20 / 3600
RA0, DEC0 = 260.6149937, 32.1354073
NY, NX = 40, 50  # deliberately not square: catches swapped axes
CRPIX1, CRPIX2 = 21.0, 17.0


def celestial_cards(
    *, ctype: tuple[str, str] = ("RA---SIN", "DEC--SIN"), first: int = 1
) -> list[tuple[str, object]]:
    """WCS cards for RA/Dec on FITS axes ``first`` and ``first + 1``."""
    a, b = first, first + 1
    return [
        (f"CTYPE{a}", ctype[0]), (f"CRVAL{a}", RA0), (f"CDELT{a}", -PIX_DEG),
        (f"CRPIX{a}", CRPIX1), (f"CUNIT{a}", "deg"),
        (f"CTYPE{b}", ctype[1]), (f"CRVAL{b}", DEC0), (f"CDELT{b}", PIX_DEG),
        (f"CRPIX{b}", CRPIX2), (f"CUNIT{b}", "deg"),
    ]  # fmt: skip


def lofar_header(*, bunit: str | None = "JY/BEAM", beam: bool = True) -> fits.Header:
    """A LoTSS-style 4-D header: RA---SIN, DEC--SIN, FREQ, STOKES."""
    cards = celestial_cards()
    cards += [
        ("CTYPE3", "FREQ"), ("CRVAL3", 1.44e8), ("CDELT3", 4.8e7), ("CRPIX3", 1.0),
        ("CUNIT3", "Hz"),
        ("CTYPE4", "STOKES"), ("CRVAL4", 1.0), ("CDELT4", 1.0), ("CRPIX4", 1.0),
        ("RADESYS", "FK5"), ("EQUINOX", 2000.0), ("OBJECT", "test cluster"),
    ]  # fmt: skip
    if bunit is not None:
        cards.append(("BUNIT", bunit))
    if beam:
        cards += [("BMAJ", BEAM_DEG), ("BMIN", BEAM_DEG), ("BPA", 0.0)]
    return fits.Header(cards)


def header_2d(*, bunit: str | None = "JY/BEAM", beam: bool = True) -> fits.Header:
    cards = celestial_cards(ctype=("RA---TAN", "DEC--TAN"))
    if bunit is not None:
        cards.append(("BUNIT", bunit))
    if beam:
        cards += [("BMAJ", BEAM_DEG), ("BMIN", BEAM_DEG), ("BPA", 0.0)]
    return fits.Header(cards)


def sky(seed: int = 0) -> np.ndarray:
    """Distinct float32 values (a ramp plus noise), so any transposition or offset shows."""
    rng = np.random.default_rng(seed)
    ramp = np.arange(NY * NX, dtype=np.float32).reshape(NY, NX) * 1e-6
    return (ramp + rng.normal(0, 1e-4, (NY, NX))).astype(np.float32)


def write(path: Path, data: np.ndarray, header: fits.Header | None = None) -> Path:
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


def write_4d(path: Path, data: np.ndarray | None = None, **kw: object) -> Path:
    image = sky() if data is None else data
    return write(path, image[np.newaxis, np.newaxis], lofar_header(**kw))  # type: ignore[arg-type]


# --- layouts -------------------------------------------------------------------------------


def test_lofar_4d_cube_reads_as_2d_with_celestial_wcs(tmp_path: Path) -> None:
    data = sky()
    img = read_image(write_4d(tmp_path / "cube.fits", data))
    assert img.shape == (NY, NX)
    assert img.data.shape == (NY, NX)
    np.testing.assert_array_equal(img.data, data)
    assert img.wcs.pixel_n_dim == 2
    assert list(img.wcs.wcs.ctype) == ["RA---SIN", "DEC--SIN"]
    # CRPIX (1-based) is the 0-based pixel CRPIX - 1 and maps to CRVAL.
    ra, dec = img.wcs.pixel_to_world_values(CRPIX1 - 1, CRPIX2 - 1)
    assert ra == pytest.approx(RA0, abs=1e-9)
    assert dec == pytest.approx(DEC0, abs=1e-9)
    assert img.pixel_scale_arcsec == pytest.approx(4.5, rel=1e-9)
    assert img.unit == "Jy/beam"
    assert img.scale == 1.0
    assert img.source == str(tmp_path / "cube.fits")
    assert img.header["NAXIS"] == 4  # the header of the HDU, as stored


def test_2d_image(tmp_path: Path) -> None:
    data = sky(1)
    img = read_image(write(tmp_path / "flat.fits", data, header_2d()))
    np.testing.assert_array_equal(img.data, data)
    x, y = img.wcs.world_to_pixel_values(RA0, DEC0)
    assert (float(x), float(y)) == pytest.approx((CRPIX1 - 1, CRPIX2 - 1), abs=1e-9)


def test_3d_cube_with_one_frequency_plane(tmp_path: Path) -> None:
    header = header_2d()
    header.update([("CTYPE3", "FREQ"), ("CRVAL3", 1.44e8), ("CDELT3", 4.8e7), ("CRPIX3", 1.0)])
    data = sky(2)
    img = read_image(write(tmp_path / "c3.fits", data[np.newaxis], header))
    assert img.shape == (NY, NX)
    np.testing.assert_array_equal(img.data, data)
    assert img.wcs.naxis == 2


@pytest.mark.parametrize(
    ("order", "shape"),
    [(("FREQ", "RA", "DEC"), (NY, NX, 1)), (("RA", "FREQ", "DEC"), (NY, 1, NX))],
    ids=["freq-first", "freq-between"],
)
def test_degenerate_axis_anywhere_is_dropped(
    tmp_path: Path, order: tuple[str, ...], shape: tuple[int, ...]
) -> None:
    """A length-1 axis before or between the celestial axes, as some pipelines write."""
    cel = dict(celestial_cards())
    cards: list[tuple[str, object]] = [("BUNIT", "JY/BEAM")]
    for i, axis in enumerate(order, start=1):
        if axis == "FREQ":
            cards += [(f"CTYPE{i}", "FREQ"), (f"CRVAL{i}", 1.44e8), (f"CDELT{i}", 1e6),
                      (f"CRPIX{i}", 1.0)]  # fmt: skip
        else:
            j = 1 if axis == "RA" else 2
            cards += [(f"{k}{i}", cel[f"{k}{j}"]) for k in ("CTYPE", "CRVAL", "CDELT", "CRPIX")]
    data = sky(11)
    img = read_image(write(tmp_path / "d.fits", data.reshape(shape), fits.Header(cards)))
    np.testing.assert_array_equal(img.data, data)
    assert list(img.wcs.wcs.ctype) == ["RA---SIN", "DEC--SIN"]
    x, y = img.wcs.world_to_pixel_values(RA0, DEC0)
    assert (float(x), float(y)) == pytest.approx((CRPIX1 - 1, CRPIX2 - 1), abs=1e-9)


def test_open_2d_returns_data_wcs_header_and_name(tmp_path: Path) -> None:
    path = write_4d(tmp_path / "o.fits")
    data, wcs, header, name = open_2d(path)
    assert data.shape == (NY, NX)
    assert wcs.naxis == 2
    assert header["CTYPE3"] == "FREQ"
    assert name == str(path)


def test_hdulist_source_reads_in_memory(tmp_path: Path) -> None:
    data = sky(3)
    hdul = fits.HDUList([fits.PrimaryHDU(data, header=header_2d())])
    img = read_image(hdul)
    assert img.source == "<HDUList>"
    assert not isinstance(img.data, np.memmap)
    np.testing.assert_array_equal(img.data, data)


# --- brightness units ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bunit", "unit", "scale"),
    [
        ("JY/BEAM", "Jy/beam", 1.0),
        ("Jy/beam", "Jy/beam", 1.0),
        ("mJy/beam", "Jy/beam", 1e-3),
        ("Jy/pixel", "Jy/pixel", 1.0),
        # FITS-standard spellings, which astropy.units parses:
        ("Jy beam-1", "Jy/beam", 1.0),
        ("Jy.beam-1", "Jy/beam", 1.0),
        ("JY BEAM-1", "Jy/beam", 1.0),
        ("mJy beam-1", "Jy/beam", 1e-3),
    ],
)
def test_bunit_variants(tmp_path: Path, bunit: str, unit: str, scale: float) -> None:
    data = sky(4)
    stored = data * 1000 if scale == 1e-3 else data
    img = read_image(write_4d(tmp_path / "u.fits", stored, bunit=bunit))
    assert img.unit == unit
    assert img.scale == scale
    # Stored values times the scale are the brightness in the unit.
    np.testing.assert_allclose(img.data * img.scale, data, rtol=1e-6, atol=1e-12)


def test_non_brightness_fits_unit_is_still_refused(tmp_path: Path) -> None:
    path = write_4d(tmp_path / "sr.fits", bunit="Jy sr-1")
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(path)
    assert str(excinfo.value) == (
        f"{path}: unknown brightness unit BUNIT='Jy sr-1': expected Jy/beam, mJy/beam, "
        "uJy/beam or Jy/pixel (override with --bunit if the header is wrong)"
    )


def test_bunit_override_replaces_header(tmp_path: Path) -> None:
    path = write_4d(tmp_path / "u.fits", bunit="JY/BEAM")
    img = read_image(path, bunit="mJy/beam")
    assert (img.unit, img.scale) == ("Jy/beam", 1e-3)


# --- memory maps and scaled data -----------------------------------------------------------


def test_plain_float32_is_a_read_only_memory_map(tmp_path: Path) -> None:
    data = sky(5)
    img = read_image(write_4d(tmp_path / "m.fits", data))
    assert isinstance(img.data, np.memmap)
    assert not img.data.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        img.data[0, 0] = 1.0
    np.testing.assert_array_equal(img.data, data)


def test_scaled_int16_is_read_into_memory_with_scaling_applied(tmp_path: Path) -> None:
    raw = np.arange(NY * NX, dtype=np.int16).reshape(NY, NX) - 1000
    hdu = fits.PrimaryHDU(raw[np.newaxis, np.newaxis], header=lofar_header())
    hdu.header["BSCALE"] = 2e-6
    hdu.header["BZERO"] = 1e-3
    hdu.writeto(tmp_path / "i16.fits")
    with fits.open(tmp_path / "i16.fits", do_not_scale_image_data=True) as hl:
        assert hl[0].header["BITPIX"] == 16
        np.testing.assert_array_equal(hl[0].data[0, 0], raw)
    img = read_image(tmp_path / "i16.fits")
    assert type(img.data) is np.ndarray
    expected = raw.astype(np.float64) * 2e-6 + 1e-3
    # float32 rounding only (~1e-10 here), far below one BSCALE step (2e-6).
    np.testing.assert_allclose(img.data, expected, rtol=0, atol=1e-9)


def test_unscaled_int32_with_blank_gives_nan_there(tmp_path: Path) -> None:
    """BLANK applies whatever the scaling: without BSCALE/BZERO too (no memory map then)."""
    raw = np.arange(NY * NX, dtype=np.int32).reshape(NY, NX) - 500
    raw[:3, :] = -2147483648
    hdu = fits.PrimaryHDU(raw, header=header_2d(bunit="uJy/beam"))
    hdu.header["BLANK"] = -2147483648
    hdu.writeto(tmp_path / "i32.fits")
    img = read_image(tmp_path / "i32.fits")
    assert img.scale == 1e-6
    assert np.isnan(img.data[:3]).all()
    np.testing.assert_array_equal(img.data[3:], raw[3:])  # the values as stored, once


def test_scaled_int16_with_blank_is_scaled_once_and_blank_is_nan(tmp_path: Path) -> None:
    raw = np.arange(NY * NX, dtype=np.int16).reshape(NY, NX) - 1000
    raw[0, :5] = -32768
    hdu = fits.PrimaryHDU(raw, header=header_2d())
    hdu.header.update([("BSCALE", 2e-6), ("BZERO", 1e-3), ("BLANK", -32768)])
    hdu.writeto(tmp_path / "i16b.fits")
    img = read_image(tmp_path / "i16b.fits")
    assert np.isnan(img.data[0, :5]).all()
    assert int(np.isnan(img.data).sum()) == 5
    expected = raw.astype(np.float64) * 2e-6 + 1e-3
    np.testing.assert_allclose(img.data[1:], expected[1:], rtol=0, atol=1e-9)


def test_infinite_pixels_are_blanked_like_nan(tmp_path: Path) -> None:
    data = sky(9)
    data[2:4, 5:7] = np.inf
    data[10, 11] = -np.inf
    data[12, 13] = np.nan
    img = read_image(write_4d(tmp_path / "inf.fits", data))
    blank = ~np.isfinite(data)
    assert int(np.isnan(img.data).sum()) == 6
    assert np.isnan(img.data[blank]).all()
    np.testing.assert_array_equal(img.data[~blank], data[~blank])


def test_image_without_infinities_stays_memory_mapped(tmp_path: Path) -> None:
    data = sky(9)
    data[0, 0] = np.nan
    assert isinstance(read_image(write_4d(tmp_path / "nan.fits", data)).data, np.memmap)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress], ids=["gz", "bz2"])
def test_compressed_fits_is_read_like_the_plain_file(tmp_path: Path, compress: object) -> None:
    data = sky(10)
    plain = write_4d(tmp_path / "plain.fits", data)
    packed = tmp_path / "packed.fits.gz"
    packed.write_bytes(compress(plain.read_bytes()))  # type: ignore[operator]
    img = read_image(packed)
    np.testing.assert_array_equal(img.data, data)
    assert img.wcs.to_header() == read_image(plain).wcs.to_header()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("stream", r"not a readable FITS file \(Empty or corrupt FITS file\)"),
        ("content", r"corrupt image data \(buffer is too small for requested array\)"),
    ],
)
def test_truncated_fits_gz_is_a_one_line_error(tmp_path: Path, damage: str, message: str) -> None:
    valid = write_4d(tmp_path / "v.fits").read_bytes()
    packed = gzip.compress(valid)
    path = tmp_path / "t.fits.gz"
    # A cut gzip stream, or a complete gzip stream of a cut FITS file.
    cut = packed[: len(packed) // 2] if damage == "stream" else gzip.compress(valid[:-4000])
    path.write_bytes(cut)
    with pytest.raises(InvalidImageError, match=f"^{path}: {message}$") as excinfo:
        read_image(path)
    assert "\n" not in str(excinfo.value)


# --- beam ----------------------------------------------------------------------------------


def test_beam_from_bmaj_bmin_bpa(tmp_path: Path) -> None:
    header = lofar_header(beam=False)
    header.update([("BMAJ", 25 / 3600), ("BMIN", 15 / 3600), ("BPA", 30.0)])
    img = read_image(write(tmp_path / "b.fits", sky()[np.newaxis, np.newaxis], header))
    assert img.beam == Beam(25 / 3600, 15 / 3600, 30.0)


def test_beam_from_aips_history_card(tmp_path: Path) -> None:
    header = lofar_header(beam=False)
    header.add_history("AIPS   CLEAN BMAJ=  5.5556E-03 BMIN=  5.5556E-03 BPA=   0.00")
    img = read_image(write(tmp_path / "aips.fits", sky()[np.newaxis, np.newaxis], header))
    assert img.beam == Beam(5.5556e-3, 5.5556e-3, 0.0)
    assert img.beam_area_pix == pytest.approx(22.38, abs=0.01)


def test_last_aips_clean_card_wins() -> None:
    header = fits.Header()
    header.add_history("AIPS   CLEAN BMAJ=  1.0000E-02 BMIN=  8.0000E-03 BPA=  10.00")
    header.add_history("some other history")
    header.add_history("AIPS   CLEAN BMAJ=  6.0000E-03 BMIN=  4.0000E-03 BPA= -45.00")
    assert beam_from_header(header) == Beam(6e-3, 4e-3, -45.0)


def test_no_beam_anywhere_gives_none() -> None:
    assert beam_from_header(fits.Header([("HISTORY", "nothing about a beam")])) is None
    assert beam_from_header(fits.Header([("BMAJ", 0.0), ("BMIN", 0.0)])) is None


def _beams_table(bmaj: list[float], bmin: list[float], bpa: list[float]) -> fits.BinTableHDU:
    """A CASA ``BEAMS`` extension (per-plane beams, arcsec and deg), as exportfits writes."""
    n = len(bmaj)
    return fits.BinTableHDU.from_columns(
        [
            fits.Column(name="BMAJ", format="1E", unit="arcsec", array=bmaj),
            fits.Column(name="BMIN", format="1E", unit="arcsec", array=bmin),
            fits.Column(name="BPA", format="1E", unit="deg", array=bpa),
            fits.Column(name="CHAN", format="1J", array=list(range(n))),
            fits.Column(name="POL", format="1J", array=[0] * n),
        ],
        name="BEAMS",
    )


def _casa_image(path: Path, table: fits.BinTableHDU) -> Path:
    header = lofar_header(beam=False)
    header["CASAMBM"] = True
    fits.HDUList([fits.PrimaryHDU(sky()[np.newaxis, np.newaxis], header), table]).writeto(path)
    return path


def test_beam_from_a_casa_beams_table_with_one_row(tmp_path: Path) -> None:
    path = _casa_image(tmp_path / "casa.fits", _beams_table([24.0], [18.0], [-30.0]))
    img = read_image(path)
    assert img.beam is not None
    assert astuple(img.beam) == pytest.approx((24 / 3600, 18 / 3600, -30.0), rel=1e-12)
    # In the header too, so every reader of open_2d's header (and the map) finds it.
    assert img.header["BMAJ"] == img.beam.bmaj_deg
    assert img.header.comments["BMAJ"] == "[deg] from the CASA BEAMS table"
    assert img.scale_to("Jy/pixel") == pytest.approx(1 / img.beam.area_pixels(img.pixel_area_deg2))


def test_several_different_rows_give_their_median_and_a_warning(tmp_path: Path) -> None:
    table = _beams_table([20.0, 24.0, 30.0], [18.0, 20.0, 22.0], [0.0, 10.0, 20.0])
    path = _casa_image(tmp_path / "casa3.fits", table)
    with pytest.warns(ImageWarning) as record:
        img = read_image(path)
    assert [str(w.message) for w in record] == [
        f"{path}: the BEAMS table has 3 different beams for a single-plane image; using their "
        'median, BMAJ 24.00" BMIN 20.00" BPA 10.0 deg'
    ]
    assert img.beam is not None
    assert astuple(img.beam) == pytest.approx((24 / 3600, 20 / 3600, 10.0), rel=1e-12)


def test_identical_rows_need_no_warning(tmp_path: Path) -> None:
    path = _casa_image(tmp_path / "same.fits", _beams_table([20.0] * 2, [20.0] * 2, [5.0] * 2))
    beam = read_image(path).beam  # no warning: filterwarnings=error
    assert beam is not None
    assert astuple(beam) == pytest.approx((20 / 3600, 20 / 3600, 5.0), rel=1e-12)


def test_header_beam_wins_over_a_beams_table(tmp_path: Path) -> None:
    header = lofar_header()
    table = _beams_table([60.0], [60.0], [0.0])
    hdul = fits.HDUList([fits.PrimaryHDU(sky()[np.newaxis, np.newaxis], header), table])
    hdul.writeto(tmp_path / "both.fits")
    assert read_image(tmp_path / "both.fits").beam == Beam(BEAM_DEG, BEAM_DEG, 0.0)


def test_beam_area_for_20_arcsec_beam_and_4p5_arcsec_pixels(tmp_path: Path) -> None:
    img = read_image(write_4d(tmp_path / "a.fits"))
    expected = math.pi * 20 * 20 / (4 * math.log(2)) / 4.5**2
    assert img.beam_area_pix == pytest.approx(expected, rel=1e-9)
    assert img.beam_area_pix == pytest.approx(22.38, abs=0.005)


def test_scale_to_jy_per_pixel_divides_by_beam_area(tmp_path: Path) -> None:
    img = read_image(write_4d(tmp_path / "a.fits", sky() * 1000, bunit="mJy/beam"))
    assert img.beam_area_pix is not None
    assert img.scale_to("Jy/beam") == 1e-3
    assert img.scale_to("Jy/pixel") == pytest.approx(1e-3 / img.beam_area_pix, rel=1e-12)


def test_scale_to_jy_per_beam_from_jy_per_pixel_multiplies(tmp_path: Path) -> None:
    img = read_image(write_4d(tmp_path / "a.fits", bunit="Jy/pixel"))
    assert img.beam_area_pix is not None
    assert img.scale_to("Jy/beam") == pytest.approx(img.beam_area_pix, rel=1e-12)


def test_scale_to_without_beam_is_an_error(tmp_path: Path) -> None:
    img = read_image(write_4d(tmp_path / "nb.fits", beam=False))
    assert img.beam is None
    assert img.beam_area_pix is None
    assert img.scale_to("Jy/beam") == 1.0  # same unit needs no beam
    with pytest.raises(
        InvalidImageError, match=r"nb\.fits: converting .* needs the restoring beam"
    ):
        img.scale_to("Jy/pixel")


# --- HDU selection -------------------------------------------------------------------------


def test_image_in_second_hdu_after_empty_primary(tmp_path: Path) -> None:
    data = sky(6)
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=header_2d(), name="SCI")])
    hdul.writeto(tmp_path / "ext.fits")
    img = read_image(tmp_path / "ext.fits")
    np.testing.assert_array_equal(img.data, data)
    assert isinstance(img.data, np.memmap)  # offset into the second HDU is right


def test_hdu_selection_by_index_and_name(tmp_path: Path) -> None:
    first, second = sky(7), sky(8)
    hdul = fits.HDUList(
        [
            fits.PrimaryHDU(first, header=header_2d()),
            fits.ImageHDU(second, header=header_2d(), name="OTHER"),
        ]
    )
    hdul.writeto(tmp_path / "two.fits")
    np.testing.assert_array_equal(read_image(tmp_path / "two.fits").data, first)
    np.testing.assert_array_equal(read_image(tmp_path / "two.fits", hdu=1).data, second)
    np.testing.assert_array_equal(read_image(tmp_path / "two.fits", hdu="OTHER").data, second)


def test_bad_hdu_index_and_name(tmp_path: Path) -> None:
    path = write(tmp_path / "one.fits", sky(), header_2d())
    with pytest.raises(InvalidImageError, match=r"one\.fits: no HDU 3 \(file has 1\)"):
        read_image(path, hdu=3)
    with pytest.raises(InvalidImageError, match=r"one\.fits: no HDU 'NOPE'"):
        read_image(path, hdu="NOPE")


def test_selected_hdu_without_image(tmp_path: Path) -> None:
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sky(), header=header_2d())])
    hdul.writeto(tmp_path / "ext.fits")
    with pytest.raises(InvalidImageError, match=r"ext\.fits: no image data"):
        read_image(tmp_path / "ext.fits", hdu=0)


# --- bad files -----------------------------------------------------------------------------


def _valid_4d_bytes(tmp_path: Path) -> bytes:
    return write_4d(tmp_path / "valid.fits").read_bytes()


def _table_only(path: Path) -> None:
    column = fits.Column(name="flux", format="E", array=np.arange(5, dtype=np.float32))
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([column])]).writeto(path)


def _make_bad(kind: str, path: Path, tmp_path: Path) -> None:
    if kind == "missing":
        return
    if kind == "text":
        path.write_text("RA DEC FLUX\n260.6 32.1 0.5\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        valid = _valid_4d_bytes(tmp_path)
        path.write_bytes(valid[: len(valid) // 2])
    elif kind == "truncated-int16":
        hdu = fits.PrimaryHDU(np.zeros((1, 1, NY, NX), dtype=np.int16), header=lofar_header())
        hdu.header["BSCALE"] = 1e-6
        hdu.writeto(tmp_path / "valid16.fits")
        valid = (tmp_path / "valid16.fits").read_bytes()
        path.write_bytes(valid[: len(valid) // 2])
    elif kind == "table":
        _table_only(path)
    elif kind == "1d":
        fits.PrimaryHDU(np.arange(10, dtype=np.float32)).writeto(path)
    elif kind == "no-wcs":
        fits.PrimaryHDU(sky(), header=fits.Header([("BUNIT", "JY/BEAM")])).writeto(path)
    elif kind == "linear-wcs":
        header = fits.Header([("CTYPE1", "X"), ("CTYPE2", "Y"), ("CDELT1", 1.0), ("CDELT2", 1.0)])
        fits.PrimaryHDU(sky(), header=header).writeto(path)
    elif kind == "three-freq":
        header = lofar_header()
        fits.PrimaryHDU(np.ones((1, 3, NY, NX), np.float32), header=header).writeto(path)
    elif kind == "all-nan":
        write_4d(path, np.full((NY, NX), np.nan, np.float32))
    elif kind == "all-inf":
        write_4d(path, np.full((NY, NX), np.inf, np.float32))
    elif kind == "no-bunit":
        write_4d(path, bunit=None)
    elif kind == "blank-bunit":
        write_4d(path, bunit="  ")
    elif kind == "kelvin":
        write_4d(path, bunit="K")
    elif kind == "freq-first":
        # FITS axes FREQ (50), RA (40), DEC (1): a spectrum of a strip, not an image.
        cards: list[tuple[str, object]] = [
            ("CTYPE1", "FREQ"), ("CRVAL1", 1.2e8), ("CDELT1", 1e6), ("CRPIX1", 1.0),
            ("CUNIT1", "Hz"), ("BUNIT", "JY/BEAM"),
        ]  # fmt: skip
        cards += celestial_cards(first=2)
        fits.PrimaryHDU(np.ones((1, NY, NX), np.float32), header=fits.Header(cards)).writeto(path)
    elif kind == "zero-cdelt":
        header = lofar_header()
        header["CDELT1"] = 0.0
        write(path, sky()[np.newaxis, np.newaxis], header)
    else:  # pragma: no cover
        raise AssertionError(kind)


BAD_FILES = [
    ("missing", r"file not found"),
    ("text", r"not a readable FITS file"),
    ("empty", r"not a readable FITS file \(Empty or corrupt"),
    ("truncated", r"corrupt image data \(file truncated: \d+ bytes, header needs \d+\)"),
    ("truncated-int16", r"corrupt image data"),
    ("table", r"no image data"),
    ("1d", r"no image data"),
    ("no-wcs", r"no celestial WCS"),
    ("linear-wcs", r"no celestial WCS"),
    ("three-freq", r"3 planes along FREQ"),
    ("all-nan", r"every pixel is NaN or infinite"),
    ("all-inf", r"every pixel is NaN or infinite"),
    ("no-bunit", r"no BUNIT in the header; give the unit with --bunit"),
    ("blank-bunit", r"no BUNIT"),
    ("kelvin", r"unknown brightness unit BUNIT='K'"),
    ("freq-first", r"50 planes along FREQ; only 2-D images or cubes with degenerate"),
    ("zero-cdelt", r"invalid WCS"),
]


@pytest.mark.parametrize(("kind", "message"), BAD_FILES, ids=[k for k, _ in BAD_FILES])
def test_bad_file_gets_a_precise_error_naming_the_file(
    tmp_path: Path, kind: str, message: str
) -> None:
    path = tmp_path / f"bad-{kind}.fits"
    _make_bad(kind, path, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # includes ResourceWarning from a leaked handle
        with pytest.raises(InvalidImageError, match=message) as excinfo:
            read_image(path)
        text = str(excinfo.value)
        del excinfo  # drop the traceback's frames, then collect: a leaked file would warn now
        gc.collect()
    assert text.startswith(f"{path}: ")


# Every message above should be a single line (module docstring: "one-line message").
ONE_LINE = [k for k, _ in BAD_FILES if k != "zero-cdelt"]


@pytest.mark.parametrize("kind", ONE_LINE)
def test_bad_file_message_is_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"bad-{kind}.fits"
    _make_bad(kind, path, tmp_path)
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(path)
    assert "\n" not in str(excinfo.value)


def test_zero_cdelt_message_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad-zero-cdelt.fits"
    _make_bad("zero-cdelt", path, tmp_path)
    with pytest.raises(InvalidImageError, match="invalid WCS") as excinfo:
        read_image(path)
    assert "\n" not in str(excinfo.value)


def test_bunit_override_rescues_a_file_without_bunit(tmp_path: Path) -> None:
    path = write_4d(tmp_path / "nobunit.fits", bunit=None)
    img = read_image(path, bunit="Jy/beam")
    assert (img.unit, img.scale) == ("Jy/beam", 1.0)
    with pytest.raises(InvalidImageError, match=r"nobunit\.fits: unknown brightness unit"):
        read_image(path, bunit="furlongs")


def test_partly_blank_image_is_fine(tmp_path: Path) -> None:
    data = np.full((NY, NX), np.nan, np.float32)
    data[-1, -1] = 1e-3  # the one finite pixel is the last one scanned
    img = read_image(write_4d(tmp_path / "p.fits", data))
    assert int(np.isfinite(img.data).sum()) == 1


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="file not found"):
        read_image(tmp_path)


def test_reading_many_files_leaks_no_handles(tmp_path: Path) -> None:
    """Readers keep memory maps, never open files: nothing to warn about at collection."""
    path = write_4d(tmp_path / "many.fits")
    bad = tmp_path / "bad.fits"
    _make_bad("truncated", bad, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images = [read_image(path) for _ in range(50)]
        for _ in range(20):
            with pytest.raises(InvalidImageError):
                read_image(bad)
        total = sum(float(img.data[0, 0]) for img in images)
        del images
        gc.collect()
    assert total == pytest.approx(50 * float(sky()[0, 0]), rel=1e-6)
