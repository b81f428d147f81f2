"""The deterministic example field: noise level, halo, relic and header."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS
from scipy import ndimage

from radiounet.core.cosmology import theta500_arcmin
from radiounet.examples import TRUTH_THRESHOLD_RMS, ExampleField, example_field


@pytest.fixture(scope="module")
def field() -> ExampleField:
    return example_field()


def _components(field: ExampleField) -> tuple[np.ndarray, np.ndarray]:
    """Truth pixels of the component at the centre (halo) and of the rest (relic)."""
    labels, _ = ndimage.label(field.truth)
    cy = field.image.shape[0] // 2
    halo_label = labels[cy, cy]
    assert halo_label > 0, "no truth at the cluster centre"
    return labels == halo_label, (labels > 0) & (labels != halo_label)


def test_types_and_shapes(field: ExampleField) -> None:
    assert field.image.shape == field.truth.shape == (960, 960)
    assert field.image.dtype == np.float32
    assert field.truth.dtype == np.bool_
    assert field.data_4d.shape == (1, 1, 960, 960)
    assert np.shares_memory(field.data_4d, field.image)
    assert np.isfinite(field.image).all()


def test_deterministic_per_seed() -> None:
    a, b = example_field(seed=3, size=256), example_field(seed=3, size=256)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.truth, b.truth)
    c = example_field(seed=4, size=256)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.truth, c.truth)


@pytest.mark.parametrize(("rms", "size"), [(95e-6, 960), (30e-6, 480)])
def test_noise_rms(rms: float, size: int) -> None:
    image = example_field(rms_jy_beam=rms, size=size, seed=1).image
    _, median, std = sigma_clipped_stats(image, sigma=3)
    assert std == pytest.approx(rms, rel=0.15)
    assert abs(median) < 0.1 * rms


def test_compact_sources_present(field: ExampleField) -> None:
    # The brightest of ~100 sources from 1 mJy to 1 Jy is far above the noise.
    assert field.image.max() > 100 * 95e-6


def test_halo_centred(field: ExampleField) -> None:
    halo, _ = _components(field)
    cy, cx = ndimage.center_of_mass(halo)
    assert abs(cy - 480) < 4 and abs(cx - 480) < 4
    # Round and a fraction of R500 across.
    radius = np.sqrt(halo.sum() / np.pi) / field.r500_pix
    assert 0.3 < radius < 0.7


def test_relic_at_r500(field: ExampleField) -> None:
    _, relic = _components(field)
    assert relic.sum() > 100
    yy, xx = np.nonzero(relic)
    r500_pix = theta500_arcmin(field.m500_1e14, field.z) * 60 / 4.5
    assert field.r500_pix == pytest.approx(r500_pix)
    distance = np.hypot(yy - 480, xx - 480) / r500_pix
    assert 0.85 < np.median(distance) < 1.15
    # Elongated tangentially: it spans a much wider angle than it is thick.
    mean_angle = np.arctan2((yy - 480).mean(), (xx - 480).mean())
    angles = np.angle(np.exp(1j * (np.arctan2(yy - 480, xx - 480) - mean_angle)))
    assert np.ptp(angles) > 3 * np.ptp(distance)


def test_truth_far_below_noise(field: ExampleField) -> None:
    # The mask reaches where the image is noise-dominated.
    _, _, std = sigma_clipped_stats(field.image, sigma=3)
    halo, _ = _components(field)
    assert TRUTH_THRESHOLD_RMS < 1
    assert np.median(field.image[halo]) < 3 * std


def test_header_wcs(field: ExampleField) -> None:
    h = field.header
    assert h["NAXIS"] == 4 and (h["NAXIS1"], h["NAXIS2"], h["NAXIS3"], h["NAXIS4"]) == (
        960,
        960,
        1,
        1,
    )
    assert (h["CTYPE1"], h["CTYPE2"], h["CTYPE3"], h["CTYPE4"]) == (
        "RA---SIN",
        "DEC--SIN",
        "FREQ",
        "STOKES",
    )
    assert h["CDELT1"] < 0 < h["CDELT2"]
    assert h["BUNIT"] == "JY/BEAM"
    assert h["BMAJ"] == pytest.approx(20 / 3600) and h["BMIN"] == pytest.approx(20 / 3600)
    assert h["CRVAL3"] == h["RESTFRQ"] == 1.44e8
    assert h["OBJECT"] == "PSZ2 G055.59+31.85"
    wcs = WCS(h)
    assert wcs.naxis == 4
    ra, dec = wcs.celestial.pixel_to_world_values(*field.centre_xy)
    assert abs(ra - field.ra_deg) < 1e-6 and abs(dec - field.dec_deg) < 1e-6


def test_hdu_round_trip(field: ExampleField, tmp_path) -> None:
    path = tmp_path / "field.fits"
    field.to_hdu().writeto(path)
    with fits.open(path) as hdul:
        assert hdul[0].data.shape == (1, 1, 960, 960)
        np.testing.assert_array_equal(hdul[0].data[0, 0], field.image)
        assert WCS(hdul[0].header).celestial.naxis == 2


def test_other_cluster() -> None:
    f = example_field(size=512, ra_deg=10.0, dec_deg=-45.0, z=0.05, m500_1e14=2.0, name="X")
    assert f.header["OBJECT"] == "X"
    ra, dec = WCS(f.header).celestial.pixel_to_world_values(256, 256)
    assert abs(ra - 10.0) < 1e-6 and abs(dec + 45.0) < 1e-6
    assert f.truth[256, 256]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 32}, "size"),
        ({"size": 100.0}, "size"),
        ({"pixel_arcsec": 0.0}, "pixel_arcsec"),
        ({"beam_arcsec": float("nan")}, "beam_arcsec"),
        ({"rms_jy_beam": -1.0}, "rms_jy_beam"),
        ({"z": 0.0}, "redshift"),
        ({"m500_1e14": -1.0}, "M500"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        example_field(**kwargs)
