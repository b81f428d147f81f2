"""The simulated source: deterministic per pointing, cluster at the centre, diffuse truth."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS

from radiounet.examples import example_field
from radiounet.io.fits_image import read_image
from radiounet.stream.fetcher import (
    ClusterInfo,
    CutoutRequest,
    CutoutSource,
    HttpCutoutSource,
    InvalidRequestError,
    SimulatedSkySource,
)
from radiounet.stream.fetcher.simulated_source import pointing_seed

SURVEY = "lotss-dr2-lowres"


def _request(pointing_id: str, **kw: object) -> CutoutRequest:
    return CutoutRequest(pointing_id, SURVEY, 260.6149937, 32.1354073, **kw)  # type: ignore[arg-type]


def _ids_with(source: SimulatedSkySource, **truth: object) -> list[str]:
    """Pointing ids whose field has the given truth values."""
    ids = []
    for i in range(100):
        t = source.truth(_request(f"demo-{i}"))
        if all(getattr(t, k) == v for k, v in truth.items()):
            ids.append(f"demo-{i}")
    return ids


@pytest.fixture(scope="module")
def source() -> SimulatedSkySource:
    return SimulatedSkySource()


def test_is_a_cutout_source(source: SimulatedSkySource) -> None:
    assert isinstance(source, CutoutSource)
    assert isinstance(HttpCutoutSource(timeout_s=1), CutoutSource)
    assert source.survey == SURVEY and "simulated" in source.describe()


def test_same_id_same_data(source: SimulatedSkySource) -> None:
    a = source.fetch(_request("PSZ2_G055.59+31.85"))
    b = SimulatedSkySource().fetch(_request("PSZ2_G055.59+31.85"))
    assert a.data.shape == (960, 960) and a.data.dtype == np.float32
    np.testing.assert_array_equal(a.data, b.data)
    assert a.header == b.header
    c = source.fetch(_request("PSZ2_G056.77+36.32"))
    assert not np.array_equal(a.data, c.data)
    salted = SimulatedSkySource(salt="other sky").fetch(_request("PSZ2_G055.59+31.85"))
    assert not np.array_equal(a.data, salted.data)
    assert pointing_seed("x") != pointing_seed("y") and 0 <= pointing_seed("x") < 2**63


def test_diffuse_for_about_half(source: SimulatedSkySource) -> None:
    truths = [source.truth(_request(f"p{i:03d}")) for i in range(40)]
    n = sum(t.diffuse for t in truths)
    assert 12 <= n <= 28
    assert all(t.diffuse == (t.halo or t.relic) for t in truths)
    assert {t.radio_galaxies for t in truths} == {1, 2}
    assert not SimulatedSkySource(p_diffuse=0).truth(_request("p1")).diffuse
    # The header says what the truth says.
    for i, t in enumerate(truths[:6]):
        h = source.fetch(_request(f"p{i:03d}", size_px=64)).header
        assert (h["RUSIMDIF"], h["RUSIMHAL"], h["RUSIMREL"]) == (t.diffuse, t.halo, t.relic)
        assert h["RUSIMNRG"] == t.radio_galaxies and h["RUSIMSEE"] == t.seed


def test_cluster_at_the_centre(source: SimulatedSkySource) -> None:
    cluster = ClusterInfo("PSZ2 G055.59+31.85", z=0.224, m500_1e14=7.77852)
    with_halo = [(i, True) for i in _ids_with(source, halo=True)[:2]]
    without = [(i, False) for i in _ids_with(source, diffuse=False)[:2]]
    y, x = np.mgrid[:960, :960]
    core = np.hypot(x - 480, y - 480) < 20  # R500/8, the halo's e-folding radius, is 10 px
    for pointing_id, has_halo in with_halo + without:
        hdu = source.fetch(_request(pointing_id, cluster=cluster))
        h = hdu.header
        assert h["OBJECT"] == "PSZ2 G055.59+31.85"
        assert (h["RUSIMZ"], h["RUSIMM5"]) == (0.224, 7.77852)
        assert h["RUSIMR5"] == pytest.approx(6.005, abs=0.01)
        ra, dec = WCS(h).pixel_to_world_values(480, 480)
        assert ra == pytest.approx(260.6149937) and dec == pytest.approx(32.1354073)
        # A halo (5x the noise at its centre) lifts the median of the core by ~1.1-1.5 rms.
        _, median, rms = sigma_clipped_stats(hdu.data, sigma=3)
        lift = (np.median(hdu.data[core]) - median) / rms
        assert (lift > 0.7) == has_halo, (pointing_id, lift)


def test_theta500_and_small_cutouts(source: SimulatedSkySource) -> None:
    request = _request("small", size_px=33, cluster=ClusterInfo(theta500_arcmin=2.5))
    hdu = source.fetch(request)
    assert hdu.data.shape == (33, 33) and hdu.header["RUSIMR5"] == 2.5
    ra, dec = WCS(hdu.header).pixel_to_world_values(16, 16)
    assert ra == pytest.approx(260.6149937) and dec == pytest.approx(32.1354073)
    big = source.fetch(_request("small", size_px=64, cluster=ClusterInfo(theta500_arcmin=2.5)))
    np.testing.assert_array_equal(hdu.data, big.data[16:49, 16:49])


def test_result_is_a_valid_radio_image(source: SimulatedSkySource) -> None:
    hdu = source.fetch(_request("round-trip", size_px=128))
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    buffer.seek(0)
    with fits.open(buffer) as hdul:
        image = read_image(hdul)
    assert image.unit == "Jy/beam" and image.pixel_scale_arcsec == pytest.approx(4.5)
    assert image.beam is not None and image.beam.bmaj_deg == pytest.approx(20 / 3600)
    assert hdu.header["RUPROF"] == "lotss-dr2-lowres"
    assert np.isfinite(hdu.data).all()
    _, _, rms = sigma_clipped_stats(hdu.data, sigma=3)
    assert rms == pytest.approx(95e-6, rel=0.3)


def test_refuses_other_surveys_and_bad_options(source: SimulatedSkySource) -> None:
    with pytest.raises(InvalidRequestError, match="survey 'nvss' is not served"):
        source.fetch(CutoutRequest("p", "nvss", 1.0, 2.0))
    with pytest.raises(ValueError, match="p_diffuse"):
        SimulatedSkySource(p_diffuse=1.5)
    with pytest.raises(InvalidRequestError, match="unknown survey 'nvss'"):
        SimulatedSkySource(survey="nvss")


def test_example_field_options() -> None:
    base = example_field(size=128, seed=7)
    bare = example_field(size=128, seed=7, halo=False, relic=False)
    assert base.truth.any() and not bare.truth.any()
    relic_only = example_field(size=128, seed=7, halo=False)
    assert 0 < relic_only.truth.sum() < base.truth.sum()
    assert not relic_only.truth[64, 64]
    two = example_field(size=128, seed=7, radio_galaxies=2)
    none = example_field(size=128, seed=7, radio_galaxies=0)
    assert two.image.max() > base.image.max() * 0.99 and none.image.sum() < base.image.sum()
    assert example_field(size=128, r500_arcmin=3.0).r500_pix == pytest.approx(40.0)
    with pytest.raises(ValueError, match="radio_galaxies"):
        example_field(size=128, radio_galaxies=-1)
    with pytest.raises(ValueError, match="r500_arcmin"):
        example_field(size=128, r500_arcmin=0.0)
