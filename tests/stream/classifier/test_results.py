"""Result rows and the results table (pure): what the classifier stores for each pointing."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import pytest

from radiounet.core.components import Component
from radiounet.core.detection import DetectionResult, circle_pixel_count
from radiounet.stream.classifier.results import (
    RESULT_COLUMNS,
    SCHEMA_VERSION,
    cluster_of,
    result_row,
    results_table,
    to_csv,
)
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.workflows import Classification, Cluster

RA0, DEC0 = 260.6149937, 32.1354073
MODEL = pb.ModelRef(name="radio_unet", version=3, signature="serving_default")


def component(label: int, *, flux_jy: float | None = 0.012) -> Component:
    return Component(
        label=label,
        n_pixels=120,
        x=50.0,
        y=60.5,
        ra_deg=RA0,
        dec_deg=DEC0,
        area_arcmin2=0.7,
        area_kpc2=2.1e5,
        flux_jy=flux_jy,
        flux_err_jy=None if flux_jy is None else 0.0015,
        snr=None if flux_jy is None else flux_jy / 0.0015,
        peak_probability=0.93,
        mean_probability=0.71,
        distance_r500=0.4,
        elongation=1.8,
        position_angle_deg=30.0,
        radial_angle_deg=12.0,
    )


def pointing(*, cluster: bool = True) -> pb.Pointing:
    p = pb.Pointing(
        id="PSZ2_G055.59+31.85",
        survey="lotss-dr2-lowres",
        ra_deg=RA0,
        dec_deg=DEC0,
        size_px=960,
        pixel_scale_arcsec=4.5,
        submitted_unix_ms=1_700_000_000_123,
    )
    if cluster:
        p.cluster.CopyFrom(pb.Cluster(name="PSZ2 G055.59+31.85", z=0.224, m500_1e14=7.78))
    return p


def classification(components: list[Component], *, ratio: float = 0.021) -> Classification:
    return Classification(
        cluster=Cluster(RA0, DEC0, z=0.224, m500_1e14=7.78, name="PSZ2 G055.59+31.85"),
        detection=DetectionResult(
            ratio=ratio,
            detected=ratio >= 0.015,
            threshold=0.015,
            n_pixels=31_000,
            radius_pix=99.5,
            fraction_in_image=1.0,
            fraction_valid=31_000 / circle_pixel_count((479.5, 480.0), 99.5),
        ),
        centre_xy=(479.5, 480.0),
        theta500_arcmin=3.4,
        radius_r500=2.2,
        components=components,
    )


def row(**kwargs: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "classification": classification([component(1), component(2, flux_jy=math.nan)]),
        "map_key": "maps/PSZ2_G055.59+31.85/probability.fits",
        "quicklook_key": "maps/PSZ2_G055.59+31.85/quicklook.png",
        "cutout_key": "cutouts/lotss-dr2-lowres/PSZ2_G055.59+31.85.fits",
        "correlation_id": "c0ffee",
        "classified_unix_ms": 1_700_000_060_000,
    }
    defaults.update(kwargs)
    return result_row(defaults.pop("pointing", pointing()), MODEL, **defaults)


# --- cluster_of ------------------------------------------------------------------------------


def test_cluster_of_a_pointing() -> None:
    assert cluster_of(pointing(cluster=False)) is None
    c = cluster_of(pointing())
    assert c == Cluster(RA0, DEC0, z=0.224, m500_1e14=7.78, name="PSZ2 G055.59+31.85")
    p = pointing(cluster=False)
    p.cluster.theta500_arcmin = 5.0
    assert cluster_of(p) == Cluster(RA0, DEC0, theta500_arcmin=5.0)


def test_cluster_of_an_incomplete_cluster() -> None:
    p = pointing(cluster=False)
    p.cluster.z = 0.1
    with pytest.raises(ValueError, match="give theta500, or both z and M500"):
        cluster_of(p)


# --- result rows -----------------------------------------------------------------------------


def test_row_of_a_cluster() -> None:
    r = row()
    assert r["schema_version"] == SCHEMA_VERSION
    assert r["pointing_id"] == "PSZ2_G055.59+31.85"
    assert (r["survey"], r["ra_deg"], r["dec_deg"]) == ("lotss-dr2-lowres", RA0, DEC0)
    assert (r["size_px"], r["pixel_scale_arcsec"]) == (960, 4.5)
    assert r["model"] == {"name": "radio_unet", "version": 3, "signature": "serving_default"}
    assert r["has_cluster"] is True
    assert r["cluster"]["name"] == "PSZ2 G055.59+31.85"
    assert r["cluster"]["theta500_arcmin"] == 3.4
    assert r["cluster"]["r500_kpc"] == pytest.approx(Cluster(RA0, DEC0, 0.224, 7.78).r500_kpc)
    assert (r["ratio"], r["threshold"], r["diffuse"]) == (0.021, 0.015, True)
    assert r["aperture"] == {
        "radius_r500": 2.2,
        "radius_pix": 99.5,
        "centre_xy": [479.5, 480.0],
        "n_pixels": 31_000,
        "fraction_in_image": 1.0,
        "fraction_valid": 31_000 / 31_100,  # the whole 99.5 px circle holds 31 100 pixels
    }
    assert r["placeholder_model"] is False
    assert r["n_components"] == 2
    assert r["components"][0] == component(1).to_dict()
    assert r["map_key"] == "maps/PSZ2_G055.59+31.85/probability.fits"
    assert r["quicklook_key"] == "maps/PSZ2_G055.59+31.85/quicklook.png"
    assert r["cutout_key"] == "cutouts/lotss-dr2-lowres/PSZ2_G055.59+31.85.fits"
    assert r["correlation_id"] == "c0ffee"
    assert (r["submitted_unix_ms"], r["classified_unix_ms"]) == (
        1_700_000_000_123,
        1_700_000_060_000,
    )


def test_row_below_the_threshold() -> None:
    r = row(classification=classification([], ratio=0.003))
    assert (r["ratio"], r["diffuse"], r["n_components"], r["components"]) == (
        0.003,
        False,
        0,
        [],
    )


def test_row_without_a_cluster_has_components_but_no_ratio() -> None:
    r = row(pointing=pointing(cluster=False), classification=None, components=[component(1)])
    assert r["has_cluster"] is False
    for key in ("cluster", "ratio", "threshold", "diffuse", "aperture", "placeholder_model"):
        assert r[key] is None, key
    assert r["n_components"] == 1
    assert r["components"] == [component(1).to_dict()]


def test_a_named_pointing_without_a_size_keeps_its_name() -> None:
    p = pointing(cluster=False)
    p.cluster.name = "PSZ2 G053.53+59.52"  # no z, M500 nor theta500: nothing to classify in
    assert cluster_of(p) is None
    r = row(pointing=p, classification=None, components=[component(1)])
    assert (r["has_cluster"], r["ratio"], r["diffuse"], r["aperture"]) == (False, None, None, None)
    assert r["cluster"] == {
        "name": "PSZ2 G053.53+59.52",
        "ra_deg": RA0,
        "dec_deg": DEC0,
        "z": None,
        "m500_1e14": None,
        "theta500_arcmin": None,
        "r500_kpc": None,
    }
    (flat,) = results_table([r])
    assert (flat["cluster"], flat["has_cluster"], flat["ratio"]) == (
        "PSZ2 G053.53+59.52",
        False,
        None,
    )
    (record,) = csv.DictReader(io.StringIO(to_csv([r])))
    assert (record["cluster"], record["z"], record["ratio"]) == ("PSZ2 G053.53+59.52", "", "")
    # A name-only pointing with a classification is as inconsistent as a plain one.
    with pytest.raises(ValueError, match="names no cluster"):
        row(pointing=p)


def test_row_is_strict_json_without_nan() -> None:
    r = row()
    assert r["components"][1]["flux_jy"] is None  # NaN flux: the component is over blank pixels
    assert json.loads(json.dumps(r, allow_nan=False)) == r


def test_row_without_a_submission_time() -> None:
    p = pointing()
    p.submitted_unix_ms = 0
    assert row(pointing=p)["submitted_unix_ms"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classification": None}, "names a cluster but has no classification"),
        ({"pointing": pointing(cluster=False)}, "names no cluster"),
        ({"components": [component(1)]}, "components come from the classification"),
    ],
)
def test_inconsistent_row_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        row(**kwargs)


# --- the table ------------------------------------------------------------------------------


def test_results_table_flattens_rows() -> None:
    cluster_row = row()
    plain_row = row(pointing=pointing(cluster=False), classification=None)
    plain_row["pointing_id"] = "field-2"
    table = results_table([cluster_row, plain_row])
    assert [list(t) for t in table] == [list(RESULT_COLUMNS)] * 2
    first, second = table
    assert first["pointing_id"] == "PSZ2_G055.59+31.85"
    assert (first["cluster"], first["z"], first["m500_1e14"]) == ("PSZ2 G055.59+31.85", 0.224, 7.78)
    assert (first["ratio"], first["diffuse"], first["aperture_pixels"]) == (0.021, True, 31_000)
    assert (first["model"], first["model_version"], first["n_components"]) == ("radio_unet", 3, 2)
    assert first["submitted_utc"] == "2023-11-14T22:13:20.123Z"
    assert first["classified_utc"] == "2023-11-14T22:14:20.000Z"
    assert second["pointing_id"] == "field-2"
    assert (second["has_cluster"], second["ratio"], second["cluster"]) == (False, None, None)


def test_results_table_gives_the_share_of_the_aperture_on_valid_pixels() -> None:
    at = RESULT_COLUMNS.index("aperture_in_image")
    assert RESULT_COLUMNS[at : at + 2] == ("aperture_in_image", "aperture_valid")
    (flat,) = results_table([row()])
    assert (flat["aperture_in_image"], flat["aperture_valid"]) == (1.0, 31_000 / 31_100)
    (record,) = csv.DictReader(io.StringIO(to_csv([row()])))
    assert (record["aperture_in_image"], record["aperture_valid"]) == ("1.0", "0.9967845659163987")
    # Rows stored before the column existed leave it empty.
    (old,) = results_table([{"pointing_id": "p1", "aperture": {"fraction_in_image": 0.5}}])
    assert (old["aperture_in_image"], old["aperture_valid"]) == (0.5, None)


def test_results_table_tolerates_missing_fields() -> None:
    (flat,) = results_table([{"pointing_id": "p1"}])
    assert flat["pointing_id"] == "p1"
    assert all(flat[c] is None for c in RESULT_COLUMNS if c != "pointing_id")


def test_to_csv_round_trips_through_a_csv_reader() -> None:
    text = to_csv([row(), row(pointing=pointing(cluster=False), classification=None)])
    records = list(csv.DictReader(io.StringIO(text)))
    assert list(records[0]) == list(RESULT_COLUMNS)
    assert records[0]["ratio"] == "0.021"
    assert records[0]["diffuse"] == "true"
    assert records[1]["has_cluster"] == "false"
    assert records[1]["ratio"] == ""  # None: an empty cell
    assert to_csv([]) == ",".join(RESULT_COLUMNS) + "\n"
