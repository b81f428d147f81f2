"""Probability maps on disk: header (WCS, beam, provenance), atomic writing, reading back."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from radiounet import __version__
from radiounet.core.normalisation import get_profile
from radiounet.examples import ExampleField, example_field
from radiounet.io.fits_image import InvalidImageError, SkyImage, read_image
from radiounet.io.probability_map import (
    Provenance,
    probability_header,
    read_probability_map,
    writing_probability_map,
)


@pytest.fixture(scope="module")
def field() -> ExampleField:
    return example_field(size=96)


@pytest.fixture
def image(field: ExampleField, tmp_path: Path) -> SkyImage:
    path = tmp_path / "input" / "cluster_field.fits"
    path.parent.mkdir()
    field.to_hdu().writeto(path)
    return read_image(path)


def provenance(image: SkyImage, *, trained: bool = False) -> Provenance:
    return Provenance(
        model_name="radio_unet",
        model_version=7,
        base_filters=2,
        trained=trained,
        profile=get_profile("lotss-dr2-lowres"),
        scale=1.0,
        tile=192,
        stride=96,
        source=image.source,
    )


def probability_values(shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(3)
    p = rng.random(shape, dtype=np.float32)
    p[:5, 10:20] = np.nan
    p[50, 50] = 0.0
    p[51, 51] = 1.0
    return p


def write_map(path: Path, image: SkyImage, values: np.ndarray, **kw: bool) -> None:
    with writing_probability_map(path, probability_header(image, provenance(image)), **kw) as out:
        out[:] = values


def test_written_map_reads_back_exactly(image: SkyImage, tmp_path: Path) -> None:
    values = probability_values(image.shape)
    path = tmp_path / "prob.fits"
    write_map(path, image, values)
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert len(hdul) == 1
        data = hdul[0].data
        header = hdul[0].header
        assert header["BITPIX"] == -32
        assert data.shape == image.shape == (96, 96)
        np.testing.assert_array_equal(data, values)  # exact float32, NaN where NaN
        assert np.isnan(data).sum() == 50
        wcs = WCS(header)
    assert wcs.naxis == 2
    assert list(wcs.wcs.ctype) == list(image.wcs.wcs.ctype) == ["RA---SIN", "DEC--SIN"]
    np.testing.assert_array_equal(wcs.wcs.crval, image.wcs.wcs.crval)
    np.testing.assert_array_equal(wcs.wcs.crpix, image.wcs.wcs.crpix)
    np.testing.assert_array_equal(wcs.wcs.cdelt, image.wcs.wcs.cdelt)
    # The input's CRPIX (49, 49 for a 96-pixel field) is the cluster position.
    np.testing.assert_array_equal(wcs.wcs.crpix, [49.0, 49.0])
    ra, dec = wcs.pixel_to_world_values(10.0, 80.0)
    ra0, dec0 = image.wcs.pixel_to_world_values(10.0, 80.0)
    assert (float(ra), float(dec)) == pytest.approx((float(ra0), float(dec0)), abs=1e-12)


def test_header_copies_beam_and_object_and_adds_provenance(image: SkyImage, tmp_path: Path) -> None:
    path = tmp_path / "prob.fits"
    write_map(path, image, probability_values(image.shape))
    header = fits.getheader(path)
    assert header["BMAJ"] == image.header["BMAJ"] == pytest.approx(20 / 3600)
    assert header["BMIN"] == image.header["BMIN"]
    assert header["BPA"] == 0.0
    assert header["OBJECT"] == "PSZ2 G055.59+31.85"
    assert header["TELESCOP"] == "LOFAR"
    assert header["BTYPE"] == "probability"
    assert header["RUSOFT"] == f"radiounet {__version__}"
    assert header["RUMODEL"] == "radio_unet"
    assert header["RUMODVER"] == 7
    assert header["RUBASEF"] == 2
    assert header["RUTRAIN"] is False
    assert header["RUPROF"] == "lotss-dr2-lowres"
    assert header["RUVMIN"] == 1e-7
    assert header["RUVMAX"] == 1e-2
    assert header["RUVUNIT"] == "Jy/beam"
    assert header["RUSCALE"] == 1.0
    assert header["RUTILE"] == 192
    assert header["RUSTRIDE"] == 96
    assert header["RUSRC"] == "cluster_field.fits"  # the name, not the full path
    # No FREQ/STOKES axes leak from the 4-D input.
    assert "CTYPE3" not in header
    assert "NAXIS3" not in header


def test_map_carries_the_beam_segment_used_even_from_aips_history(
    field: ExampleField, tmp_path: Path
) -> None:
    """classify reads the beam from the map alone, wherever the image kept it."""
    header = field.header.copy()
    for key in ("BMAJ", "BMIN", "BPA"):
        del header[key]
    header.add_history("AIPS   CLEAN BMAJ=  5.5556E-03 BMIN=  4.4444E-03 BPA=  12.50")
    path = tmp_path / "aips.fits"
    fits.PrimaryHDU(field.data_4d, header=header).writeto(path)
    image = read_image(path)
    write_map(tmp_path / "prob.fits", image, probability_values(image.shape))
    written = fits.getheader(tmp_path / "prob.fits")
    assert (written["BMAJ"], written["BMIN"], written["BPA"]) == (5.5556e-3, 4.4444e-3, 12.5)
    assert written.comments["BMAJ"] == "[deg] restoring beam major axis FWHM"
    beam = read_probability_map(tmp_path / "prob.fits").beam
    assert beam is not None and (beam.bmaj_deg, beam.bmin_deg) == (5.5556e-3, 4.4444e-3)


def test_map_of_an_image_without_beam_has_no_beam_keywords(image: SkyImage) -> None:
    header = probability_header(dataclasses.replace(image, beam=None), provenance(image))
    assert not {"BMAJ", "BMIN", "BPA"} & set(header)


def test_trained_flag_is_written_true(image: SkyImage, tmp_path: Path) -> None:
    header = probability_header(image, provenance(image, trained=True))
    assert header["RUTRAIN"] is True


def test_map_reads_back_with_read_probability_map(image: SkyImage, tmp_path: Path) -> None:
    values = probability_values(image.shape)
    path = tmp_path / "prob.fits"
    write_map(path, image, values)
    prob = read_probability_map(path)
    np.testing.assert_array_equal(prob.data, values)
    assert prob.beam is not None
    assert prob.beam.bmaj_deg == pytest.approx(20 / 3600)
    assert prob.header["RUTILE"] == 192
    assert prob.source == str(path)


def test_exception_inside_block_leaves_no_files(image: SkyImage, tmp_path: Path) -> None:
    out_dir = tmp_path / "maps"
    out_dir.mkdir()
    header = probability_header(image, provenance(image))
    with pytest.raises(RuntimeError, match="model crashed"):
        with writing_probability_map(out_dir / "prob.fits", header) as out:
            out[:10] = 0.5
            assert len(list(out_dir.iterdir())) == 1  # the temporary file, while writing
            raise RuntimeError("model crashed")
    assert list(out_dir.iterdir()) == []


def test_file_appears_only_when_complete(image: SkyImage, tmp_path: Path) -> None:
    path = tmp_path / "prob.fits"
    header = probability_header(image, provenance(image))
    with writing_probability_map(path, header) as out:
        assert not path.exists()
        out[:] = 0.25
    assert path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input", "prob.fits"]


def test_creates_missing_output_folders(image: SkyImage, tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "prob.fits"
    write_map(path, image, np.zeros(image.shape, np.float32))
    assert fits.getdata(path).shape == image.shape


def test_existing_output_without_overwrite_is_kept(image: SkyImage, tmp_path: Path) -> None:
    path = tmp_path / "prob.fits"
    path.write_bytes(b"precious")
    header = probability_header(image, provenance(image))
    with pytest.raises(FileExistsError, match=r"prob\.fits exists \(use --overwrite"):
        with writing_probability_map(path, header):
            pytest.fail("the block must not run")  # pragma: no cover
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input", "prob.fits"]


def test_overwrite_replaces(image: SkyImage, tmp_path: Path) -> None:
    path = tmp_path / "prob.fits"
    write_map(path, image, np.zeros(image.shape, np.float32))
    write_map(path, image, np.full(image.shape, 0.75, np.float32), overwrite=True)
    data = fits.getdata(path)
    assert np.all(data == np.float32(0.75))


def test_map_file_permissions_follow_the_umask(image: SkyImage, tmp_path: Path) -> None:
    path = tmp_path / "prob.fits"
    old = os.umask(0o022)
    try:
        write_map(path, image, np.zeros(image.shape, np.float32))
        (tmp_path / "plain").write_bytes(b"")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o644


def _raw_map(path: Path, values: np.ndarray, image: SkyImage) -> Path:
    header = fits.Header()
    header.extend(image.wcs.to_header(), update=True)
    fits.PrimaryHDU(values.astype(np.float32), header=header).writeto(path)
    return path


@pytest.mark.parametrize("bad", [1.5, -0.25])
def test_values_outside_unit_interval_are_not_a_probability_map(
    image: SkyImage, tmp_path: Path, bad: float
) -> None:
    values = np.full(image.shape, 0.5, np.float32)
    values[3, 4] = bad
    path = _raw_map(tmp_path / "image.fits", values, image)
    with pytest.raises(InvalidImageError, match=r"image\.fits: not a probability map"):
        read_probability_map(path)


def test_nan_and_the_bounds_are_accepted(image: SkyImage, tmp_path: Path) -> None:
    values = np.full(image.shape, np.nan, np.float32)
    values[0, 0], values[1, 1] = 0.0, 1.0
    prob = read_probability_map(_raw_map(tmp_path / "p.fits", values, image))
    assert int(np.isfinite(prob.data).sum()) == 2
    assert prob.beam is None  # no BMAJ/BMIN in this hand-made map


def test_read_probability_map_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="file not found"):
        read_probability_map(tmp_path / "nope.fits")
