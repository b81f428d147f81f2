"""The mosaic-folder source: index, mosaic choice, exact cutouts, reprojection, coverage."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import map_coordinates

from radiounet.stream.fetcher import (
    CutoutRequest,
    InvalidCutoutError,
    InvalidRequestError,
    MosaicDirectorySource,
    OutsideFootprintError,
    SourceUnavailableError,
)
from radiounet.stream.fetcher import mosaic_source as mosaic_module

SURVEY = "lotss-dr2-lowres"


def _request(ra: float, dec: float, size: int = 128, **kw: object) -> CutoutRequest:
    return CutoutRequest("p1", SURVEY, ra, dec, size_px=size, **kw)  # type: ignore[arg-type]


def _write(hdu: fits.PrimaryHDU, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path)
    return path


def _expected(path: Path, ra: float, dec: float, size: int = 128) -> np.ndarray:
    """The ``size`` x ``size`` block of a mosaic centred on the pixel nearest (ra, dec)."""
    with fits.open(path) as hdul:
        plane = hdul[0].data.reshape(hdul[0].data.shape[-2:]).copy()
        wcs = WCS(hdul[0].header).celestial
    x, y = (round(float(v)) for v in wcs.world_to_pixel_values(ra, dec))
    h = size // 2
    return plane[y - h : y - h + size, x - h : x - h + size]


@pytest.fixture
def folder(tmp_path: Path, images) -> Path:
    """A: 400 px around (RA0, DEC0), in a subfolder as LoTSS-DR2 ships mosaics; B: 400 px
    centred on A's pixel (350, 200); a text file that is no mosaic."""
    root = tmp_path / "mosaics"
    a = images.field(size=400, seed=1)
    _write(a, root / "P260+32" / "low-mosaic-blanked.fits")
    ra_b, dec_b = images.world(a, 350, 200)
    _write(images.field(size=400, seed=2, ra_deg=ra_b, dec_deg=dec_b), root / "B.fits")
    (root / "notes.txt").write_text("not a mosaic")
    return root


def test_index(folder: Path) -> None:
    source = MosaicDirectorySource(folder, survey=SURVEY)
    names = [m.name for m in source.mosaics]
    assert names == ["B.fits", "P260+32/low-mosaic-blanked.fits"]
    a = source.mosaics[1]
    assert a.shape == (400, 400) and a.pixel_scale_arcsec == pytest.approx(4.5)
    assert a.centre.ra.deg == pytest.approx(260.6149937, abs=1e-3)
    # Half the diagonal: 200 * sqrt(2) pixels of 4.5".
    assert a.radius_deg == pytest.approx(200 * np.sqrt(2) * 4.5 / 3600, rel=0.01)
    assert source.skipped == {}
    assert source.describe() == f"mosaics {folder}/**/*.fits" and source.survey == SURVEY


def test_nearest_centre_among_whole_cutouts(folder: Path, images) -> None:
    a_path = folder / "P260+32" / "low-mosaic-blanked.fits"
    a = fits.getheader(a_path)
    source = MosaicDirectorySource(folder, survey=SURVEY)
    # A's pixel 290: 90 px from A's centre, 60 px from B's, whole in both: B.
    ra, dec = images.world(a, 290.2, 180.7)
    assert [m.name for m in source.candidates(_request(ra, dec))] == [
        "B.fits",
        "P260+32/low-mosaic-blanked.fits",
    ]
    hdu = source.fetch(_request(ra, dec))
    np.testing.assert_array_equal(hdu.data, _expected(folder / "B.fits", ra, dec))
    h = hdu.header
    assert (h["RUSOURCE"], h["RUORIGIN"], h["RUREGRID"]) == ("mosaic", "B.fits", "cutout")
    assert h["BUNIT"] == "JY/BEAM" and h["BMAJ"] == pytest.approx(20 / 3600)
    x, y = WCS(h).world_to_pixel_values(ra, dec)
    assert abs(x - 64) <= 0.5 and abs(y - 64) <= 0.5
    # A's pixel 150: whole only in A.
    ra, dec = images.world(a, 150, 210)
    hdu = source.fetch(_request(ra, dec))
    assert hdu.header["RUORIGIN"] == "P260+32/low-mosaic-blanked.fits"
    np.testing.assert_array_equal(hdu.data, _expected(a_path, ra, dec))


def test_whole_cutout_beats_nearer_partial_one(folder: Path, images) -> None:
    a_path = folder / "P260+32" / "low-mosaic-blanked.fits"
    ra, dec = images.world(fits.getheader(a_path), 120, 250)
    # A 100-px mosaic centred on the position: nearest, but holds only part of the cutout.
    _write(images.field(size=100, seed=3, ra_deg=ra, dec_deg=dec), folder / "small.fits")
    source = MosaicDirectorySource(folder, survey=SURVEY)
    names = [m.name for m in source.candidates(_request(ra, dec))]
    assert names == ["P260+32/low-mosaic-blanked.fits", "small.fits"]
    assert source.fetch(_request(ra, dec)).header["RUORIGIN"] == names[0]


def test_blanked_mosaic_gives_way(folder: Path, images) -> None:
    a_path = folder / "P260+32" / "low-mosaic-blanked.fits"
    ra, dec = images.world(fits.getheader(a_path), 290, 200)
    source = MosaicDirectorySource(folder, survey=SURVEY, rescan_interval_s=0)
    assert source.fetch(_request(ra, dec)).header["RUORIGIN"] == "B.fits"
    # Blank B where the cutout falls (as LoTSS blanks mosaic edges): A serves it instead.
    with fits.open(folder / "B.fits", mode="update") as hdul:
        hdul[0].data[..., 100:200, 100:200] = np.nan
    hdu = source.fetch(_request(ra, dec))
    assert hdu.header["RUORIGIN"] == "P260+32/low-mosaic-blanked.fits"
    assert hdu.header["RUVALID"] == 1.0


def test_outside_every_mosaic(folder: Path) -> None:
    source = MosaicDirectorySource(folder, survey=SURVEY)
    message = (
        r"^RA 270\.615 Dec 32\.135 is outside the footprint of lotss-dr2-lowres "
        rf"\(not inside any of the 2 mosaics in {re.escape(str(folder))}\)$"
    )
    with pytest.raises(OutsideFootprintError, match=message) as info:
        source.fetch(_request(270.6149937, 32.1354073))
    assert info.value.code == "outside_footprint"
    # The far side of the sky, where a SIN projection is undefined.
    with pytest.raises(OutsideFootprintError, match="not inside any"):
        source.fetch(_request(80.6, -32.1))


def test_partial_coverage(tmp_path: Path, images) -> None:
    a = images.field(size=400, seed=1)
    _write(a, tmp_path / "A.fits")
    source = MosaicDirectorySource(tmp_path, survey=SURVEY)
    # 69 x 69 of 128 x 128 pixels inside: 29 %.
    with pytest.raises(
        OutsideFootprintError,
        match=r"\(only 29% of the cutout has data in mosaic A\.fits, 50% needed\)$",
    ):
        source.fetch(_request(*images.world(a, 5, 5)))
    # 74 of 128 columns: 58 %, enough; the rest is NaN.
    hdu = source.fetch(_request(*images.world(a, 10, 200)))
    assert hdu.header["RUVALID"] == pytest.approx(74 / 128)
    assert np.isnan(hdu.data[:, :54]).all() and np.isfinite(hdu.data[:, 54:]).all()
    np.testing.assert_array_equal(hdu.data[:, 54:], images.plane(a)[136:264, :74])


def test_reprojects_other_pixel_scale(tmp_path: Path, images) -> None:
    coarse = images.field(size=200, pixel_arcsec=6.0, seed=4)
    _write(coarse, tmp_path / "coarse.fits")
    ra, dec = images.world(coarse, 97.3, 104.6)
    hdu = MosaicDirectorySource(tmp_path, survey=SURVEY).fetch(_request(ra, dec, size=96))
    h = hdu.header
    assert h["RUREGRID"] == "reproject" and hdu.data.shape == (96, 96)
    assert (h["CRVAL1"], h["CRVAL2"], h["CRPIX1"], h["CRPIX2"]) == (
        pytest.approx(ra),
        pytest.approx(dec),
        49.0,
        49.0,
    )
    assert (h["CDELT1"], h["CDELT2"]) == (pytest.approx(-4.5 / 3600), pytest.approx(4.5 / 3600))
    # Bilinear resampling of the source at each new pixel's sky position.
    out_wcs, in_wcs = WCS(h), WCS(coarse.header).celestial
    ys, xs = np.mgrid[:96, :96]
    sx, sy = in_wcs.world_to_pixel_values(*out_wcs.pixel_to_world_values(xs, ys))
    expected = map_coordinates(images.plane(coarse).astype(np.float64), [sy, sx], order=1)
    np.testing.assert_allclose(hdu.data, expected, rtol=1e-4, atol=1e-8)


def test_index_follows_the_folder(folder: Path, images, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = mosaic_module.read_mosaic_info

    def counting(path: Path, name: str | None = None) -> mosaic_module.MosaicInfo:
        reads.append(path.name)
        return real(path, name)

    monkeypatch.setattr(mosaic_module, "read_mosaic_info", counting)
    source = MosaicDirectorySource(folder, survey=SURVEY, rescan_interval_s=3600)
    assert len(source.mosaics) == 2 and len(reads) == 2
    source.fetch(_request(260.6149937, 32.1354073))
    assert len(reads) == 2  # headers read once
    _write(images.field(size=200, seed=5), folder / "C.fits")
    assert len(source.mosaics) == 2  # not rescanned yet
    source.refresh()
    assert [m.name for m in source.mosaics][:2] == ["B.fits", "C.fits"] and len(reads) == 3
    os.utime(folder / "B.fits", ns=(1, 10**18))
    source.refresh()
    assert reads[-1] == "B.fits" and len(reads) == 4
    (folder / "C.fits").unlink()
    source.refresh()
    assert len(source.mosaics) == 2 and len(reads) == 4


@pytest.mark.parametrize(
    ("fits_axes", "numpy_axes"),
    [
        ([3, 1, 2, 4], (0, 2, 3, 1)),  # (FREQ, RA, DEC, STOKES)
        ([3, 2, 1, 4], (0, 3, 2, 1)),  # (FREQ, DEC, RA, STOKES): celestial axes swapped too
    ],
)
def test_mosaic_axes_in_another_order(
    tmp_path: Path, images, fits_axes: list[int], numpy_axes: tuple[int, ...]
) -> None:
    # LoTSS mosaics are (RA, DEC, FREQ, STOKES); other imagers order the axes otherwise.
    a = images.field(size=200, seed=1)
    plain = _write(a, tmp_path / "plain" / "A.fits")
    header = WCS(a.header).sub(fits_axes).to_header()
    for key in ("BUNIT", "BMAJ", "BMIN", "BPA"):
        header[key] = a.header[key]
    reordered = fits.PrimaryHDU(np.transpose(a.data, numpy_axes).copy(), header=header)
    _write(reordered, tmp_path / "reordered" / "A.fits")
    ra, dec = images.world(a, 90, 110)
    cutouts = []
    for folder in ("plain", "reordered"):
        source = MosaicDirectorySource(tmp_path / folder, survey=SURVEY)
        assert source.skipped == {} and source.mosaics[0].shape == (200, 200)
        cutouts.append(source.fetch(_request(ra, dec, size=64)).data)
    expected = _expected(plain, ra, dec, size=64)
    assert np.array_equal(cutouts[0].reshape(64, 64), expected)
    if fits_axes[1] == 1:  # RA first: the same grid, cut as it is
        assert np.array_equal(cutouts[1], cutouts[0])
    else:  # DEC first: resampled onto the requested RA-first grid, within a pixel's shift
        diff = np.abs(cutouts[1] - cutouts[0])
        assert np.isfinite(cutouts[1]).all()
        assert float(np.median(diff)) < 0.05 * float(np.std(expected))


def test_bad_files(tmp_path: Path, images) -> None:
    (tmp_path / "garbage.fits").write_bytes(b"\x00" * 5000)
    fits.PrimaryHDU(np.ones((8, 8), dtype=np.float32)).writeto(tmp_path / "nowcs.fits")
    cube = images.field(size=96)
    cube.data = np.concatenate([cube.data, cube.data], axis=1)
    cube.writeto(tmp_path / "cube.fits")
    a = images.field(size=200)
    truncated = tmp_path / "truncated.fits"
    a.writeto(truncated)
    with truncated.open("r+b") as f:
        f.truncate(2880 * 30)
    source = MosaicDirectorySource(tmp_path, survey=SURVEY)
    skipped = source.skipped
    assert sorted(skipped) == ["cube.fits", "garbage.fits", "nowcs.fits"]
    assert "not a readable FITS file" in skipped["garbage.fits"]
    assert "no celestial WCS" in skipped["nowcs.fits"]
    assert (
        "cube.fits: 2 planes along FREQ; only 2-D images or cubes with degenerate"
        in skipped["cube.fits"]
    )
    # The header of the truncated mosaic is fine; its data are not.
    assert [m.name for m in source.mosaics] == ["truncated.fits"]
    with pytest.raises(InvalidCutoutError, match=r"^truncated\.fits: corrupt image data") as info:
        source.fetch(_request(*images.world(a, 100, 100)))
    assert info.value.code == "invalid_cutout"


def test_configuration_errors(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        MosaicDirectorySource(tmp_path / "missing")
    with pytest.raises(ValueError, match="min_valid_fraction"):
        MosaicDirectorySource(folder, min_valid_fraction=0.0)
    source = MosaicDirectorySource(folder, survey=SURVEY)
    with pytest.raises(InvalidRequestError, match="survey 'x' is not served by this source"):
        source.fetch(CutoutRequest("p", "x", 1.0, 2.0))
    shutil.move(folder, tmp_path / "moved")
    with pytest.raises(SourceUnavailableError, match="is not available"):
        source.fetch(_request(260.6, 32.1))
