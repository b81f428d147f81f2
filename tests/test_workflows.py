"""The local jobs: segment_fits (FITS in, probability map out) and classify_map (R, components)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import FK4, SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from radiounet.core.cosmology import theta500_arcmin
from radiounet.core.normalisation import get_profile
from radiounet.core.segmentation import segment
from radiounet.examples import ExampleField, example_field
from radiounet.io.fits_image import InvalidImageError
from radiounet.model.predictor import SavedModelPredictor
from radiounet.model.repository import ModelVersion, resolve_model
from radiounet.workflows import (
    Cluster,
    aperture_on_map,
    classify_map,
    map_components,
    segment_fits,
)

LOTSS = get_profile("lotss-dr2-lowres")
SYNTHETIC = get_profile("synthetic")
BEAM_AREA_20_4P5 = math.pi * 20 * 20 / (4 * math.log(2)) / 4.5**2  # 22.38 pixels
BLANK = (slice(30, 70), slice(250, 330))  # rows, columns blanked in the input


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model(tiny_model_repo: Path) -> ModelVersion:
    """The suite's 2-filter Radio U-Net (tests/conftest.py), resolved once."""
    return resolve_model(tiny_model_repo)


@pytest.fixture(scope="session")
def predictor(tiny_model: ModelVersion) -> SavedModelPredictor:
    return SavedModelPredictor(tiny_model)


@pytest.fixture(scope="module")
def field() -> ExampleField:
    return example_field(size=400)


@pytest.fixture(scope="module")
def blanked(field: ExampleField) -> np.ndarray:
    image = field.image.copy()
    image[BLANK] = np.nan
    return image


@pytest.fixture(scope="module")
def image_path(
    field: ExampleField, blanked: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("images") / "field.fits"
    fits.PrimaryHDU(blanked[np.newaxis, np.newaxis], header=field.header).writeto(path)
    return path


@pytest.fixture(scope="module")
def segmented(
    image_path: Path,
    tiny_model: ModelVersion,
    predictor: SavedModelPredictor,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    out = tmp_path_factory.mktemp("maps") / "field_prob.fits"
    segment_fits(image_path, out, predictor=predictor, model=tiny_model, profile=LOTSS)
    return out


# --- segment_fits --------------------------------------------------------------------------


def test_segment_fits_matches_in_memory_segmentation(
    segmented: Path, blanked: np.ndarray, predictor: SavedModelPredictor
) -> None:
    prob = fits.getdata(segmented)
    assert prob.shape == (400, 400)
    assert prob.dtype == np.dtype(">f4")
    finite = prob[np.isfinite(prob)]
    assert finite.min() >= 0.0
    assert finite.max() <= 1.0
    # NaN exactly where the input was blanked, nowhere else.
    np.testing.assert_array_equal(np.isnan(prob), np.isnan(blanked))
    assert int(np.isnan(prob).sum()) == 40 * 80
    expected = segment(blanked, predictor, LOTSS, scale=1.0)
    np.testing.assert_allclose(prob, expected, atol=1e-6, rtol=0)
    # The map is not trivially constant (so the comparison means something).
    assert float(np.nanstd(prob)) > 1e-3


def test_segment_fits_result_and_provenance(
    image_path: Path, tiny_model: ModelVersion, predictor: SavedModelPredictor, tmp_path: Path
) -> None:
    starts: list[int] = []
    done: list[int] = []
    out = tmp_path / "prob.fits"
    result = segment_fits(
        image_path,
        out,
        predictor=predictor,
        model=tiny_model,
        profile=LOTSS,
        batch_size=5,
        on_start=starts.append,
        progress=done.append,
    )
    # 400 px: tile origins 0, 96, 192, 208 along each axis.
    assert result.output == out
    assert result.shape == (400, 400)
    assert result.n_tiles == 16
    assert result.model == tiny_model
    assert result.profile == LOTSS
    assert starts == [16]
    assert done == [5, 5, 5, 1]
    header = fits.getheader(out)
    assert header["RUMODEL"] == "radio_unet"
    assert header["RUMODVER"] == 1
    assert header["RUBASEF"] == 2
    assert header["RUTRAIN"] is False
    assert header["RUPROF"] == "lotss-dr2-lowres"
    assert header["RUSCALE"] == 1.0
    assert header["RUSRC"] == "field.fits"
    assert header["NAXIS"] == 2
    assert header["CRPIX1"] == 201.0


def test_mjy_per_beam_image_gives_the_same_map(
    field: ExampleField,
    blanked: np.ndarray,
    segmented: Path,
    tiny_model: ModelVersion,
    predictor: SavedModelPredictor,
    tmp_path: Path,
) -> None:
    header = field.header.copy()
    header["BUNIT"] = "mJy/beam"
    path = tmp_path / "field_mjy.fits"
    fits.PrimaryHDU((blanked * 1000)[np.newaxis, np.newaxis], header=header).writeto(path)
    segment_fits(path, tmp_path / "p.fits", predictor=predictor, model=tiny_model, profile=LOTSS)
    assert fits.getheader(tmp_path / "p.fits")["RUSCALE"] == 1e-3
    np.testing.assert_allclose(
        fits.getdata(tmp_path / "p.fits"), fits.getdata(segmented), atol=1e-6, rtol=0
    )


def test_bunit_override(
    field: ExampleField,
    blanked: np.ndarray,
    segmented: Path,
    tiny_model: ModelVersion,
    predictor: SavedModelPredictor,
    tmp_path: Path,
) -> None:
    header = field.header.copy()
    del header["BUNIT"]
    path = tmp_path / "nobunit.fits"
    fits.PrimaryHDU(blanked[np.newaxis, np.newaxis], header=header).writeto(path)
    with pytest.raises(InvalidImageError, match="no BUNIT"):
        segment_fits(
            path, tmp_path / "p.fits", predictor=predictor, model=tiny_model, profile=LOTSS
        )
    assert not (tmp_path / "p.fits").exists()
    segment_fits(
        path,
        tmp_path / "p.fits",
        predictor=predictor,
        model=tiny_model,
        profile=LOTSS,
        bunit="Jy/beam",
    )
    np.testing.assert_array_equal(fits.getdata(tmp_path / "p.fits"), fits.getdata(segmented))


def test_jy_per_pixel_profile_converts_with_the_beam(
    image_path: Path,
    blanked: np.ndarray,
    segmented: Path,
    tiny_model: ModelVersion,
    predictor: SavedModelPredictor,
    tmp_path: Path,
) -> None:
    out = tmp_path / "synthetic.fits"
    segment_fits(image_path, out, predictor=predictor, model=tiny_model, profile=SYNTHETIC)
    header = fits.getheader(out)
    assert header["RUSCALE"] == pytest.approx(1 / BEAM_AREA_20_4P5, rel=1e-9)
    assert header["RUVUNIT"] == "Jy/pixel"
    assert header["RUPROF"] == "synthetic"
    prob = fits.getdata(out)
    expected = segment(blanked, predictor, SYNTHETIC, scale=1 / BEAM_AREA_20_4P5)
    np.testing.assert_allclose(prob, expected, atol=1e-6, rtol=0)
    unconverted = segment(blanked, predictor, SYNTHETIC, scale=1.0)
    assert float(np.nanmax(np.abs(prob - unconverted))) > 1e-3  # the conversion matters


def test_jy_per_pixel_profile_without_beam_fails_before_writing(
    field: ExampleField,
    blanked: np.ndarray,
    tiny_model: ModelVersion,
    predictor: SavedModelPredictor,
    tmp_path: Path,
) -> None:
    header = field.header.copy()
    for key in ("BMAJ", "BMIN", "BPA"):
        del header[key]
    path = tmp_path / "nobeam.fits"
    fits.PrimaryHDU(blanked[np.newaxis, np.newaxis], header=header).writeto(path)
    with pytest.raises(InvalidImageError, match=r"nobeam\.fits: converting Jy/beam to Jy/pixel"):
        segment_fits(
            path, tmp_path / "p.fits", predictor=predictor, model=tiny_model, profile=SYNTHETIC
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nobeam.fits"]


def test_segment_fits_refuses_to_overwrite(
    image_path: Path, tiny_model: ModelVersion, predictor: SavedModelPredictor, tmp_path: Path
) -> None:
    out = tmp_path / "prob.fits"
    out.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="exists"):
        segment_fits(image_path, out, predictor=predictor, model=tiny_model, profile=LOTSS)
    assert out.read_bytes() == b"keep me"
    segment_fits(
        image_path, out, predictor=predictor, model=tiny_model, profile=LOTSS, overwrite=True
    )
    assert fits.getdata(out).shape == (400, 400)


def test_segment_fits_bad_input_writes_nothing(
    tiny_model: ModelVersion, predictor: SavedModelPredictor, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.fits"
    bad.write_text("not a FITS file")
    with pytest.raises(InvalidImageError, match=r"bad\.fits: not a readable FITS file"):
        segment_fits(bad, tmp_path / "p.fits", predictor=predictor, model=tiny_model, profile=LOTSS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fits"]


def test_failing_predictor_leaves_no_output(
    image_path: Path, tiny_model: ModelVersion, tmp_path: Path
) -> None:
    def broken(tiles: np.ndarray) -> np.ndarray:
        raise RuntimeError("serving pod unavailable")

    with pytest.raises(RuntimeError, match="serving pod unavailable"):
        segment_fits(
            image_path, tmp_path / "p.fits", predictor=broken, model=tiny_model, profile=LOTSS
        )
    assert list(tmp_path.iterdir()) == []


def test_non_ascii_input_name_segments(
    field: ExampleField, tiny_model: ModelVersion, predictor: SavedModelPredictor, tmp_path: Path
) -> None:
    path = tmp_path / "amas_étoilé.fits"
    field.to_hdu().writeto(path)
    segment_fits(path, tmp_path / "p.fits", predictor=predictor, model=tiny_model, profile=LOTSS)
    assert fits.getdata(tmp_path / "p.fits").shape == (400, 400)


def test_classify_on_a_segmented_map_flags_the_placeholder(segmented: Path) -> None:
    result = classify_map(segmented, Cluster(260.6149937, 32.1354073, theta500_arcmin=6.1))
    assert result.placeholder_model is True
    # The field's centre, read as ICRS on its FK5 J2000 map: 0.005 px (20 mas) off the pixel.
    assert result.centre_xy == pytest.approx((200.0, 200.0), abs=0.01)
    cx, cy = result.centre_xy
    prob = fits.getdata(segmented).astype(np.float64)
    r = 2.2 * 6.1 / 0.075  # 178.9 px
    yy, xx = np.mgrid[:400, :400]
    inside = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r**2) & np.isfinite(prob)
    assert result.detection.n_pixels == int(inside.sum())
    assert result.detection.ratio == pytest.approx(prob[inside].mean(), rel=1e-9)


# --- classify_map on a hand-made map -------------------------------------------------------

RA0, DEC0 = 150.0, 30.0
N = 256
C = 128  # 0-based pixel of (RA0, DEC0)
PIX_ARCMIN = 0.075  # 4.5 arcsec
DISC_R = 20.5


def tan_header(*, beam: bool = True) -> fits.Header:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [RA0, DEC0]
    w.wcs.cdelt = [-4.5 / 3600, 4.5 / 3600]
    w.wcs.crpix = [C + 1.0, C + 1.0]
    header = w.to_header()
    if beam:
        header["BMAJ"] = 20 / 3600
        header["BMIN"] = 20 / 3600
        header["BPA"] = 0.0
    return header


def grid() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:N, :N]
    return xx, yy


def disc_mask() -> np.ndarray:
    xx, yy = grid()
    return (xx - C) ** 2 + (yy - C) ** 2 <= DISC_R**2


def hand_map() -> np.ndarray:
    """Zeros, a disc of 1 on the cluster, a sub-beam blob of 0.9 and a blanked block."""
    p = np.zeros((N, N), np.float32)
    p[disc_mask()] = 1.0
    p[100:103, 180:183] = 0.9  # 9 pixels < one beam (22.4 px): no component, but part of R
    p[150:160, 60:70] = np.nan  # inside the aperture: left out of R
    return p


@pytest.fixture
def map_path(tmp_path: Path) -> Path:
    path = tmp_path / "hand_prob.fits"
    fits.PrimaryHDU(hand_map(), header=tan_header()).writeto(path)
    return path


def expected_ratio(radius_pix: float) -> tuple[float, int, float]:
    """R, valid pixel count and share of the circle's pixels in the map, computed independently."""
    p = hand_map().astype(np.float64)
    xx, yy = grid()
    circle = (xx - C) ** 2 + (yy - C) ** 2 <= radius_pix**2
    valid = circle & np.isfinite(p)
    # Pixel centres of the whole circle, wherever the map ends (the centre is a pixel centre).
    k = math.ceil(radius_pix) + 1
    dy, dx = np.mgrid[-k : k + 1, -k : k + 1]
    full = int((dx**2 + dy**2 <= radius_pix**2).sum())
    return float(p[valid].sum() / valid.sum()), int(valid.sum()), float(circle.sum()) / full


def test_ratio_is_the_mean_probability_in_the_aperture(map_path: Path) -> None:
    result = classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=3.1))
    radius = 2.2 * 3.1 / PIX_ARCMIN  # 90.93 px, whole circle inside the map
    ratio, n_valid, fraction = expected_ratio(radius)
    d = result.detection
    assert d.radius_pix == pytest.approx(radius, rel=1e-12)
    assert d.n_pixels == n_valid
    assert d.ratio == pytest.approx(ratio, rel=1e-12)
    assert fraction == 1.0  # the whole circle lies in the map
    assert d.fraction_in_image == 1.0
    # Disc + blob over the valid aperture (NaN block excluded): about 0.06.
    assert d.ratio == pytest.approx((disc_mask().sum() + 9 * 0.9) / n_valid, rel=1e-6)
    assert d.detected is True
    assert d.threshold == 0.015
    assert result.centre_xy == pytest.approx((C, C), abs=1e-9)
    assert result.theta500_arcmin == 3.1
    assert result.radius_r500 == 2.2
    assert result.placeholder_model is False


def test_one_component_on_the_centre(map_path: Path) -> None:
    result = classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=3.1))
    (component,) = result.components
    n_disc = int(disc_mask().sum())
    assert component.label == 1
    assert component.n_pixels == n_disc
    assert component.area_arcmin2 == pytest.approx(n_disc * PIX_ARCMIN**2, rel=1e-9)
    assert component.distance_r500 == pytest.approx(0.0, abs=1e-9)
    assert (component.x, component.y) == pytest.approx((C, C), abs=1e-9)
    assert (component.ra_deg, component.dec_deg) == pytest.approx((RA0, DEC0), abs=1e-9)
    assert component.peak_probability == 1.0
    assert component.mean_probability == 1.0
    assert component.flux_jy is None  # no image given
    assert component.area_kpc2 is None  # no redshift
    assert component.radial_angle_deg is None  # centroid on the centre


def test_threshold_and_radius_options(map_path: Path) -> None:
    cluster = Cluster(RA0, DEC0, theta500_arcmin=3.1)
    ratio, _, _ = expected_ratio(2.2 * 3.1 / PIX_ARCMIN)
    assert classify_map(map_path, cluster, threshold=ratio + 1e-6).detection.detected is False
    assert classify_map(map_path, cluster, threshold=ratio).detection.detected is True
    small = classify_map(map_path, cluster, radius_r500=0.4)  # 16.5 px: inside the disc
    assert small.detection.ratio == 1.0
    assert small.radius_r500 == 0.4
    with pytest.raises(ValueError, match="aperture radius must be positive"):
        classify_map(map_path, cluster, radius_r500=0.0)


def test_theta500_from_redshift_and_mass(map_path: Path) -> None:
    cluster = Cluster(RA0, DEC0, z=0.224, m500_1e14=7.77852, name="PSZ2 G055.59+31.85")
    result = classify_map(map_path, cluster)
    theta = theta500_arcmin(7.77852, 0.224)
    assert result.theta500_arcmin == pytest.approx(theta, rel=1e-12)
    assert theta == pytest.approx(6.0, abs=0.01)
    radius = 2.2 * theta / PIX_ARCMIN  # 176 px: the circle runs off the 256-px map
    ratio, n_valid, fraction = expected_ratio(radius)
    assert result.detection.radius_pix == pytest.approx(radius, rel=1e-12)
    assert result.detection.n_pixels == n_valid
    assert result.detection.ratio == pytest.approx(ratio, rel=1e-12)
    assert fraction < 0.8
    assert result.detection.fraction_in_image == pytest.approx(fraction, rel=1e-12)
    (component,) = result.components
    assert component.area_kpc2 is not None
    assert component.area_kpc2 > 0
    d = result.to_dict()
    assert d["cluster"]["theta500_arcmin"] == pytest.approx(theta, rel=1e-12)
    assert d["cluster"]["r500_kpc"] == pytest.approx(1298, abs=1)
    assert d["cluster"]["name"] == "PSZ2 G055.59+31.85"
    assert json.loads(json.dumps(d)) == d


def test_flux_from_the_image(map_path: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    image = rng.uniform(1e-4, 2e-3, (N, N)).astype(np.float32)
    header = tan_header()
    header["BUNIT"] = "JY/BEAM"
    fits.PrimaryHDU(image, header=header).writeto(tmp_path / "img.fits")
    result = classify_map(
        map_path, Cluster(RA0, DEC0, theta500_arcmin=3.1), image_path=tmp_path / "img.fits"
    )
    (component,) = result.components
    expected = image[disc_mask()].astype(np.float64).sum() / BEAM_AREA_20_4P5
    assert component.flux_jy == pytest.approx(expected, rel=1e-6)
    # The same image in mJy/beam gives the same flux.
    header["BUNIT"] = "mJy/beam"
    fits.PrimaryHDU(image * 1000, header=header).writeto(tmp_path / "img_mjy.fits")
    again = classify_map(
        map_path, Cluster(RA0, DEC0, theta500_arcmin=3.1), image_path=tmp_path / "img_mjy.fits"
    )
    assert again.components[0].flux_jy == pytest.approx(expected, rel=1e-6)


def test_image_of_another_shape_is_rejected(map_path: Path, tmp_path: Path) -> None:
    header = tan_header()
    header["BUNIT"] = "JY/BEAM"
    fits.PrimaryHDU(np.ones((N, N + 10), np.float32), header=header).writeto(tmp_path / "img.fits")
    with pytest.raises(InvalidImageError, match=r"img\.fits: shape \(256, 266\) differs"):
        classify_map(
            map_path, Cluster(RA0, DEC0, theta500_arcmin=3.1), image_path=tmp_path / "img.fits"
        )


def test_image_with_another_wcs_is_rejected(map_path: Path, tmp_path: Path) -> None:
    header = tan_header()
    header["BUNIT"] = "JY/BEAM"
    header["CRVAL1"] = RA0 + 0.1
    fits.PrimaryHDU(np.ones((N, N), np.float32), header=header).writeto(tmp_path / "img.fits")
    with pytest.raises(InvalidImageError, match=r"img\.fits: WCS differs"):
        classify_map(
            map_path, Cluster(RA0, DEC0, theta500_arcmin=3.1), image_path=tmp_path / "img.fits"
        )


def test_cluster_outside_the_map(map_path: Path) -> None:
    with pytest.raises(ValueError, match="outside the image"):
        classify_map(map_path, Cluster(RA0, DEC0 + 1.0, theta500_arcmin=1.0))


def test_cluster_on_the_far_side_of_the_sky(map_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be projected"):
        classify_map(map_path, Cluster(RA0 + 180, -DEC0, theta500_arcmin=1.0))


def test_map_without_beam_needs_the_image(map_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "nobeam_prob.fits"
    fits.PrimaryHDU(hand_map(), header=tan_header(beam=False)).writeto(path)
    cluster = Cluster(RA0, DEC0, theta500_arcmin=3.1)
    # R and the decision need no beam; only the component catalogue is left out.
    result = classify_map(path, cluster)
    assert result.detection == classify_map(map_path, cluster).detection
    assert result.components == []
    assert result.components_skipped == (
        f"{path}: no restoring beam (BMAJ/BMIN) in the map or image header"
    )
    assert result.to_dict()["components_skipped"] == result.components_skipped
    with pytest.raises(InvalidImageError, match=r"nobeam_prob\.fits: no restoring beam"):
        map_components(path)
    # The segmented image's beam serves instead.
    header = tan_header()
    header["BUNIT"] = "JY/BEAM"
    fits.PrimaryHDU(np.ones((N, N), np.float32), header=header).writeto(tmp_path / "img.fits")
    (component,) = classify_map(path, cluster, image_path=tmp_path / "img.fits").components
    assert component.flux_jy == pytest.approx(disc_mask().sum() / BEAM_AREA_20_4P5, rel=1e-6)


def test_image_given_as_map_is_not_a_probability_map(tmp_path: Path) -> None:
    header = tan_header()
    fits.PrimaryHDU(np.full((N, N), 3.0, np.float32), header=header).writeto(tmp_path / "img.fits")
    with pytest.raises(InvalidImageError, match="not a probability map"):
        classify_map(tmp_path / "img.fits", Cluster(RA0, DEC0, theta500_arcmin=3.1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ra_deg": 400.0, "dec_deg": 30.0, "theta500_arcmin": 3.0}, r"ra must be in \[0, 360\)"),
        ({"ra_deg": 360.0, "dec_deg": 30.0, "theta500_arcmin": 3.0}, r"ra must be in \[0, 360\)"),
        ({"ra_deg": math.nan, "dec_deg": 30.0, "theta500_arcmin": 3.0}, "ra must be"),
        ({"ra_deg": 150.0, "dec_deg": 95.0, "theta500_arcmin": 3.0}, r"dec must be in \[-90, 90\]"),
        ({"ra_deg": 150.0, "dec_deg": -90.5, "theta500_arcmin": 3.0}, "dec must be"),
        ({"ra_deg": 150.0, "dec_deg": 30.0}, "give theta500, or both z and M500"),
        ({"ra_deg": 150.0, "dec_deg": 30.0, "z": 0.2}, "give theta500, or both z and M500"),
        ({"ra_deg": 150.0, "dec_deg": 30.0, "m500_1e14": 5.0}, "give theta500, or both z and M500"),
        (
            {"ra_deg": 150.0, "dec_deg": 30.0, "theta500_arcmin": -1.0},
            "theta500 must be a positive",
        ),
        ({"ra_deg": 150.0, "dec_deg": 30.0, "theta500_arcmin": math.inf}, "theta500 must be"),
        (
            {"ra_deg": 150.0, "dec_deg": 30.0, "z": 50.0, "m500_1e14": 5.0},
            r"z must be in \(0, 10\], got 50\.0",
        ),
        (
            {"ra_deg": 150.0, "dec_deg": 30.0, "z": 0.0, "m500_1e14": 5.0},
            r"z must be in \(0, 10\], got 0\.0",
        ),
        (
            {"ra_deg": 150.0, "dec_deg": 30.0, "z": math.nan, "theta500_arcmin": 3.0},
            r"z must be in \(0, 10\], got nan",
        ),
    ],
)
def test_cluster_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Cluster(**kwargs)  # type: ignore[arg-type]


def test_cluster_properties() -> None:
    assert Cluster(150.0, 30.0, z=10.0, m500_1e14=5.0).z == 10.0  # the edge of (0, 10]
    given = Cluster(0.0, -90.0, theta500_arcmin=2.5)
    assert given.theta500 == 2.5
    assert given.r500_kpc is None
    derived = Cluster(359.9, 90.0, z=0.224, m500_1e14=7.77852)
    assert derived.theta500 == pytest.approx(theta500_arcmin(7.77852, 0.224), rel=1e-12)
    assert derived.r500_kpc == pytest.approx(1298, abs=1)


# --- positions are ICRS, whatever the map's frame ------------------------------------------

X0, Y0 = 90, 160  # the 0-based pixel on which each framed map puts ICRS (RA0, DEC0)
FRAMED_THETA500 = 1.52  # arcmin: a 44.59 px aperture, no pixel centre within 0.03 px of its edge


def framed_header(kind: str) -> fits.Header:
    """A SIN header on which ICRS (RA0, DEC0) falls on pixel (X0, Y0).

    The reference value is that position, transformed by astropy into the map's
    frame, at the reference pixel (X0, Y0): the expected pixel follows from the
    header alone.
    """
    icrs = SkyCoord(RA0, DEC0, unit="deg", frame="icrs")
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---SIN", "DEC--SIN"
    h["CDELT1"], h["CDELT2"] = -4.5 / 3600, 4.5 / 3600
    if kind in ("fk4", "fk4-epoch"):
        b1950 = icrs.transform_to(FK4(equinox="B1950"))
        h["CRVAL1"], h["CRVAL2"] = b1950.ra.deg, b1950.dec.deg
        h.update({"RADESYS": "FK4", "EQUINOX": 1950.0} if kind == "fk4" else {"EPOCH": 1950.0})
    elif kind == "galactic":
        h["CTYPE1"], h["CTYPE2"] = "GLON-SIN", "GLAT-SIN"
        h["CRVAL1"], h["CRVAL2"] = icrs.galactic.l.deg, icrs.galactic.b.deg
    else:  # Dec along the first axis, RA along the second
        h["CTYPE1"], h["CTYPE2"] = "DEC--SIN", "RA---SIN"
        h["CDELT1"], h["CDELT2"] = 4.5 / 3600, -4.5 / 3600
        h["CRVAL1"], h["CRVAL2"], h["RADESYS"] = DEC0, RA0, "ICRS"
    h["CRPIX1"], h["CRPIX2"] = X0 + 1.0, Y0 + 1.0
    h["BMAJ"] = h["BMIN"] = 20 / 3600
    return h


def framed_map() -> np.ndarray:
    """Noise below 0.4 and a disc of 0.9 (one component) centred on (X0, Y0)."""
    p = np.random.default_rng(7).uniform(0.0, 0.4, (N, N)).astype(np.float32)
    xx, yy = grid()
    p[(xx - X0) ** 2 + (yy - Y0) ** 2 <= 6.5**2] = 0.9
    return p


@pytest.mark.parametrize("kind", ["fk4", "fk4-epoch", "galactic", "swapped"])
def test_ra_dec_are_icrs_on_maps_of_any_frame(kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}_prob.fits"
    header = framed_header(kind)
    fits.PrimaryHDU(framed_map(), header=header).writeto(path)
    cluster = Cluster(RA0, DEC0, theta500_arcmin=FRAMED_THETA500)
    result = classify_map(path, cluster)

    radius = 2.2 * FRAMED_THETA500 / PIX_ARCMIN
    assert result.centre_xy == pytest.approx((X0, Y0), abs=1e-6)
    assert result.detection.radius_pix == pytest.approx(radius, rel=1e-9)
    p = framed_map().astype(np.float64)
    xx, yy = grid()
    inside = (xx - X0) ** 2 + (yy - Y0) ** 2 <= radius**2
    assert result.detection.n_pixels == int(inside.sum())
    assert result.detection.ratio == pytest.approx(p[inside].mean(), rel=1e-12)
    assert result.detection.fraction_in_image == 1.0
    # The quicklook's circle (segment --png) is drawn at the same place.
    (x, y), r = aperture_on_map(WCS(header), cluster)
    assert (x, y, r) == pytest.approx((X0, Y0, radius), abs=1e-6)
    # The component on the cluster is reported in ICRS, not in the map's frame.
    (component,) = result.components
    assert (component.x, component.y) == pytest.approx((X0, Y0), abs=1e-9)
    assert (component.ra_deg, component.dec_deg) == pytest.approx((RA0, DEC0), abs=1e-8)


def test_a_map_in_an_unknown_frame_is_refused(tmp_path: Path) -> None:
    header = tan_header()
    header["CTYPE1"], header["CTYPE2"] = "SLON-TAN", "SLAT-TAN"
    fits.PrimaryHDU(hand_map(), header=header).writeto(tmp_path / "sgal.fits")
    with pytest.raises(ValueError) as info:
        classify_map(tmp_path / "sgal.fits", Cluster(RA0, DEC0, theta500_arcmin=3.1))
    assert str(info.value) == (
        "the map's celestial frame (CTYPE ['SLON-TAN', 'SLAT-TAN'], RADESYS -) is not one that "
        "astropy relates to ICRS RA/Dec (equatorial ICRS/FK5/FK4, or galactic)"
    )


# --- the image given for fluxes must be on the map's pixel grid ----------------------------


@pytest.mark.parametrize(
    ("change", "offset"),
    [
        ({"CDELT1": -9 / 3600, "CDELT2": 9 / 3600}, "181"),  # twice the pixel, same centre
        ({"CDELT1": 4.5 / 3600}, "256"),  # RA mirrored
        ({"CROTA2": 30.0}, "93.7"),  # rotated about the centre
    ],
    ids=["pixel-size", "mirrored", "rotated"],
)
def test_an_image_on_another_grid_with_the_same_centre_is_refused(
    map_path: Path, tmp_path: Path, change: dict[str, float], offset: str
) -> None:
    header = tan_header()
    header["BUNIT"] = "JY/BEAM"
    header.update(change)
    image = tmp_path / "img.fits"
    fits.PrimaryHDU(np.ones((N, N), np.float32), header=header).writeto(image)
    with pytest.raises(InvalidImageError) as info:
        classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=3.1), image_path=image)
    # Mirrored, the corners (0, 0) and (0, 255) are equally far off (to rounding).
    corner = r"\(0, (0|255)\)" if offset == "256" else r"\(0, 0\)"
    assert re.fullmatch(
        re.escape(
            f"{image}: WCS differs from the probability map {map_path}'s: its pixel (x, y) = "
        )
        + corner
        + re.escape(f" is {offset} px away on the sky"),
        str(info.value),
    )


def test_an_image_on_the_same_grid_written_otherwise_is_accepted(
    map_path: Path, tmp_path: Path
) -> None:
    # A CD matrix instead of CDELT, and FK5 J2000 instead of ICRS (20 mas apart).
    header = tan_header()
    header["BUNIT"] = "JY/BEAM"
    for key in ("CDELT1", "CDELT2"):
        del header[key]
    header["CD1_1"], header["CD2_2"] = -4.5 / 3600, 4.5 / 3600
    header["RADESYS"], header["EQUINOX"] = "FK5", 2000.0
    fits.PrimaryHDU(np.ones((N, N), np.float32), header=header).writeto(tmp_path / "img.fits")
    result = classify_map(
        map_path, Cluster(RA0, DEC0, theta500_arcmin=3.1), image_path=tmp_path / "img.fits"
    )
    assert result.components[0].flux_jy == pytest.approx(
        disc_mask().sum() / BEAM_AREA_20_4P5, rel=1e-6
    )


# --- the cluster's centre must be on the map; a thin aperture warns -------------------------


def icrs_of_pixel(x: float, y: float) -> tuple[float, float]:
    ra, dec = WCS(tan_header()).pixel_to_world_values(x, y)  # no RADESYS: ICRS
    return float(ra), float(dec)


@pytest.mark.parametrize(("x", "y"), [(-40.0, 128.0), (128.0, 256.6)])
def test_a_cluster_centred_off_the_map_is_refused(map_path: Path, x: float, y: float) -> None:
    # The 91 px aperture still reaches into the map: R would rest on its edge.
    with pytest.raises(ValueError) as info:
        classify_map(map_path, Cluster(*icrs_of_pixel(x, y), theta500_arcmin=3.1))
    assert str(info.value) == (
        f"{map_path}: the cluster is outside the image: its centre is at pixel "
        f"(x, y) = ({x:.1f}, {y:.1f}) of a 256 x 256 px image"
    )


def full_circle_count(centre: tuple[float, float], radius: float) -> int:
    xx, yy = np.mgrid[-400:700, -400:700]
    return int(((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2).sum())


def test_a_centre_on_the_corner_pixel_is_accepted_with_a_warning(map_path: Path) -> None:
    result = classify_map(map_path, Cluster(*icrs_of_pixel(-0.4, -0.4), theta500_arcmin=3.1))
    assert result.centre_xy == pytest.approx((-0.4, -0.4), abs=1e-6)
    radius = result.detection.radius_pix
    xx, yy = grid()
    valid = ((xx + 0.4) ** 2 + (yy + 0.4) ** 2 <= radius**2) & np.isfinite(hand_map())
    full = full_circle_count((-0.4, -0.4), radius)
    assert result.fraction_valid == int(valid.sum()) / full
    assert result.fraction_valid == result.detection.fraction_in_image  # no blank in reach
    assert 0.25 < result.fraction_valid < 0.26
    assert result.coverage_warning == (
        "only 25% of the 2.2 R500 aperture lies on valid map pixels (inside the image, "
        "not blanked); R rests on that part"
    )
    assert result.to_dict()["fraction_valid"] == result.fraction_valid


def test_a_mostly_blank_aperture_warns(tmp_path: Path) -> None:
    p = hand_map()
    p[:, : C + 3] = np.nan  # the cluster's left half, and 3 columns more, blanked
    fits.PrimaryHDU(p, header=tan_header()).writeto(tmp_path / "blank.fits")
    result = classify_map(tmp_path / "blank.fits", Cluster(RA0, DEC0, theta500_arcmin=3.1))
    assert result.detection.fraction_in_image == 1.0
    radius = result.detection.radius_pix
    xx, yy = grid()
    valid = ((xx - C) ** 2 + (yy - C) ** 2 <= radius**2) & (xx >= C + 3)
    assert result.detection.n_pixels == int(valid.sum())
    assert result.fraction_valid == int(valid.sum()) / full_circle_count((C, C), radius)
    assert result.coverage_warning == (
        "only 48% of the 2.2 R500 aperture lies on valid map pixels (inside the image, "
        "not blanked); R rests on that part"
    )


def test_an_aperture_far_larger_than_the_map_warns(map_path: Path) -> None:
    # A nearby cluster: 2.2 R500 of 2933 px around a 256 px map.
    result = classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=100.0))
    assert result.detection.n_pixels == N * N - 100  # all but the blanked block
    assert result.fraction_valid < 0.01
    assert result.coverage_warning == (
        "less than 1% of the 2.2 R500 aperture lies on valid map pixels (inside the "
        "image, not blanked); R rests on that part"
    )


def test_a_whole_aperture_does_not_warn(map_path: Path) -> None:
    result = classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=3.1))
    assert result.fraction_valid == pytest.approx(
        1 - 100 / full_circle_count((C, C), 90.93), abs=1e-3
    )
    assert result.coverage_warning is None


# --- the aperture must hold at least one beam ------------------------------------------------


@pytest.mark.parametrize(("radius_pix", "n"), [(0.2933, 1), (2.7, 21)])
def test_an_aperture_below_one_beam_is_refused(map_path: Path, radius_pix: float, n: int) -> None:
    theta = radius_pix * PIX_ARCMIN / 2.2
    with pytest.raises(ValueError) as info:
        classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=theta))
    assert str(info.value) == (
        f"the 2.2 R500 aperture ({radius_pix:.2f} px radius) holds {n} px, less than one beam "
        f"(22.4 px): theta500 = {theta:.3g} arcmin is too small for this map"
    )


def test_an_aperture_of_one_beam_is_measured(map_path: Path) -> None:
    result = classify_map(map_path, Cluster(RA0, DEC0, theta500_arcmin=3.1 * PIX_ARCMIN / 2.2))
    assert result.detection.n_pixels == 29  # >= 22.4 px, the beam
    assert result.detection.ratio == 1.0  # inside the disc


def test_without_a_beam_the_aperture_needs_ten_pixels(tmp_path: Path) -> None:
    path = tmp_path / "nobeam_prob.fits"
    fits.PrimaryHDU(hand_map(), header=tan_header(beam=False)).writeto(path)
    theta = 1.2 * PIX_ARCMIN / 2.2
    with pytest.raises(ValueError) as info:
        classify_map(path, Cluster(RA0, DEC0, theta500_arcmin=theta))
    assert str(info.value) == (
        "the 2.2 R500 aperture (1.20 px radius) holds 5 px, fewer than 10 (the map has no beam "
        f"to compare with): theta500 = {theta:.3g} arcmin is too small for this map"
    )
