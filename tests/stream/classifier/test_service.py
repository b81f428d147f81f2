"""ClassifierStage.handle() against a real object store: result rows, detections, the table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from prometheus_client import REGISTRY

from radiounet.core.cosmology import theta500_arcmin
from radiounet.core.detection import detection_ratio
from radiounet.core.normalisation import get_profile
from radiounet.examples import example_field
from radiounet.io.probability_map import Provenance, probability_header, writing_probability_map
from radiounet.stream.classifier.results import load_results
from radiounet.stream.classifier.service import ClassifierStage
from radiounet.stream.errors import PermanentError
from radiounet.stream.fits_objects import fits_bytes, read_fits_object
from radiounet.stream.keys import cutout_key, map_key, quicklook_key, result_key
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.runner import Context, Handled, RecordId
from radiounet.stream.topics import DETECTIONS
from radiounet.workflows import Cluster, classify_map, map_components

MODEL = pb.ModelRef(name="radio_unet", version=2, signature="serving_default")
NOW_MS = 1_700_000_123_456


def put_map(
    store: ObjectStore,
    pointing_id: str,
    tmp_path: Path,
    *,
    cluster: bool = True,
    seed: int = 0,
    with_beam: bool = True,
) -> pb.ProbabilityMap:
    """Store a cutout (the example field) and a probability map of it: a halo and a relic."""
    field = example_field(size=300, seed=seed)
    pointing = pb.Pointing(
        id=pointing_id,
        survey="lotss-dr2-lowres",
        ra_deg=field.ra_deg,
        dec_deg=field.dec_deg,
        size_px=300,
        pixel_scale_arcsec=4.5,
        submitted_unix_ms=1_700_000_000_000,
    )
    if cluster:
        pointing.cluster.CopyFrom(pb.Cluster(name=field.name, z=field.z, m500_1e14=field.m500_1e14))
    cutout = store.put_bytes(
        cutout_key("lotss-dr2-lowres", pointing_id),
        fits_bytes(field.to_hdu()),
        content_type="application/fits",
    )
    image = read_fits_object(store, cutout)
    yy, xx = np.mgrid[:300, :300]
    probability = 0.95 * np.exp(-(((xx - 150) ** 2 + (yy - 150) ** 2) / 30.0**2))
    probability[40:50, 200:280] = 0.8  # an elongated "relic"
    probability[:15, :15] = np.nan  # blank input
    provenance = Provenance(
        model_name=MODEL.name,
        model_version=MODEL.version,
        base_filters=32,
        trained=True,
        profile=get_profile("lotss-dr2-lowres"),
        scale=1.0,
        tile=192,
        stride=96,
        source=cutout.key,
    )
    header = probability_header(image, provenance)
    if not with_beam:
        for key in ("BMAJ", "BMIN", "BPA"):
            del header[key]
    path = tmp_path / f"{pointing_id}-map.fits"
    with writing_probability_map(path, header) as out:
        out[...] = probability
    del out
    stored = store.put_bytes(
        map_key(pointing_id), path.read_bytes(), content_type="application/fits"
    )
    return pb.ProbabilityMap(
        pointing=pointing,
        map=stored,
        quicklook=pb.ObjectRef(bucket=store.bucket, key=quicklook_key(pointing_id)),
        cutout=cutout if with_beam else pb.ObjectRef(),
        model=MODEL,
        n_tiles=9,
    )


def classify(stage: ClassifierStage, message: pb.ProbabilityMap, offset: int = 0) -> Handled:
    ctx = Context(RecordId("radiounet.maps", 0, offset), message.pointing.id, "cid", "test")
    return stage.handle(message, ctx)


def local_copies(
    store: ObjectStore, message: pb.ProbabilityMap, tmp_path: Path
) -> tuple[Path, Path]:
    map_path, cutout_path = tmp_path / "map.fits", tmp_path / "cutout.fits"
    map_path.write_bytes(store.get_bytes(message.map))
    cutout_path.write_bytes(store.get_bytes(message.cutout))
    return map_path, cutout_path


def detections(outcome: str) -> float:
    return REGISTRY.get_sample_value("radiounet_detections_total", {"outcome": outcome}) or 0.0


def json_like(value: object) -> object:
    """What a value becomes in the stored JSON (NaN -> null, tuples -> lists)."""
    if isinstance(value, dict):
        return {k: json_like(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_like(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- results -------------------------------------------------------------------------------


def test_a_cluster_gets_r_the_decision_and_components(store: ObjectStore, tmp_path: Path) -> None:
    message = put_map(store, "PSZ2_G055.59+31.85", tmp_path)
    before = detections("diffuse")
    handled = classify(ClassifierStage(store, clock=lambda: NOW_MS), message)

    (out,) = handled.outputs
    assert (out.topic, out.key) == (DETECTIONS, "PSZ2_G055.59+31.85")
    assert not handled.hold and not handled.release
    row = store.get_json(result_key("PSZ2_G055.59+31.85"))

    # R as defined in the paper, computed here from the stored map on its own.
    map_path, cutout_path = local_copies(store, message, tmp_path)
    with fits.open(map_path, memmap=False) as hdul:
        data, wcs = np.array(hdul[0].data), WCS(hdul[0].header)
    # The pointing is ICRS, the example map FK5 J2000.
    icrs = SkyCoord(message.pointing.ra_deg, message.pointing.dec_deg, unit="deg", frame="icrs")
    x, y = wcs.world_to_pixel(icrs)
    r500_pix = theta500_arcmin(message.pointing.cluster.m500_1e14, message.pointing.cluster.z) * (
        60 / 4.5
    )
    expected = detection_ratio(data, (float(x), float(y)), 2.2 * r500_pix)
    assert row["ratio"] == pytest.approx(expected.ratio, rel=1e-9)
    assert row["diffuse"] is expected.detected is True
    assert row["threshold"] == 0.015
    assert row["aperture"]["n_pixels"] == expected.n_pixels
    assert row["aperture"]["radius_pix"] == pytest.approx(2.2 * r500_pix, rel=1e-6)

    # The same as `radiounet classify` on the files.
    cli = classify_map(
        map_path,
        Cluster(
            message.pointing.ra_deg,
            message.pointing.dec_deg,
            z=message.pointing.cluster.z,
            m500_1e14=message.pointing.cluster.m500_1e14,
            name=message.pointing.cluster.name,
        ),
        image_path=cutout_path,
    ).to_dict()
    assert row["ratio"] == cli["ratio"]
    assert row["cluster"] == json_like(cli["cluster"])
    assert row["components"] == json_like(cli["components"])
    assert row["n_components"] == len(cli["components"]) >= 2
    assert all(c["flux_jy"] is not None for c in row["components"])  # from the cutout

    assert row["pointing_id"] == "PSZ2_G055.59+31.85"
    assert row["model"] == {"name": "radio_unet", "version": 2, "signature": "serving_default"}
    assert row["map_key"] == map_key("PSZ2_G055.59+31.85")
    assert row["quicklook_key"] == quicklook_key("PSZ2_G055.59+31.85")
    assert row["cutout_key"] == message.cutout.key
    assert row["correlation_id"] == "cid"
    assert (row["submitted_unix_ms"], row["classified_unix_ms"]) == (1_700_000_000_000, NOW_MS)

    detection = out.message
    assert isinstance(detection, pb.Detection)
    assert detection.pointing == message.pointing
    assert detection.result.key == result_key("PSZ2_G055.59+31.85")
    assert detection.map == message.map
    assert detection.model == MODEL
    assert detection.has_cluster and detection.diffuse
    assert detection.ratio == row["ratio"]
    assert detection.threshold == 0.015
    assert detection.n_components == row["n_components"]
    assert detections("diffuse") == before + 1


def test_threshold_and_aperture_are_options(store: ObjectStore, tmp_path: Path) -> None:
    message = put_map(store, "A", tmp_path)
    before = detections("none")
    stage = ClassifierStage(store, threshold=0.99, radius_r500=1.0)
    (out,) = classify(stage, message).outputs
    row = store.get_json(result_key("A"))
    assert (row["threshold"], row["diffuse"], row["aperture"]["radius_r500"]) == (0.99, False, 1.0)
    assert out.message.diffuse is False and out.message.threshold == 0.99
    assert detections("none") == before + 1


def test_a_pointing_without_a_cluster_gets_components_only(
    store: ObjectStore, tmp_path: Path
) -> None:
    message = put_map(store, "field-1", tmp_path, cluster=False)
    before = detections("no_cluster")
    (out,) = classify(ClassifierStage(store), message).outputs
    row = store.get_json(result_key("field-1"))
    assert row["has_cluster"] is False
    assert (row["ratio"], row["diffuse"], row["cluster"], row["aperture"]) == (None,) * 4
    map_path, cutout_path = local_copies(store, message, tmp_path)
    expected = [c.to_dict() for c in map_components(map_path, image_path=cutout_path)]
    assert row["components"] == json_like(expected)
    assert len(expected) >= 2
    assert all(c["distance_r500"] is None for c in row["components"])
    d = out.message
    assert (d.has_cluster, d.ratio, d.diffuse, d.n_components) == (False, 0.0, False, len(expected))
    assert detections("no_cluster") == before + 1


def test_a_named_pointing_without_a_size_keeps_its_name_in_the_row(
    store: ObjectStore, tmp_path: Path
) -> None:
    message = put_map(store, "named-1", tmp_path, cluster=False)
    message.pointing.cluster.name = "PSZ2 G053.53+59.52"  # a name, no z/M500/theta500
    (out,) = classify(ClassifierStage(store), message).outputs
    row = store.get_json(result_key("named-1"))
    assert (row["has_cluster"], row["ratio"], row["aperture"]) == (False, None, None)
    assert row["cluster"]["name"] == "PSZ2 G053.53+59.52"
    assert (load_results(store).rows[0]["cluster"] or {})["name"] == "PSZ2 G053.53+59.52"
    assert out.message.has_cluster is False
    assert out.message.pointing.cluster.name == "PSZ2 G053.53+59.52"


def test_a_replay_overwrites_the_one_result_of_the_pointing(
    store: ObjectStore, tmp_path: Path
) -> None:
    message = put_map(store, "A", tmp_path)
    times = iter([NOW_MS, NOW_MS + 5000])
    stage = ClassifierStage(store, clock=lambda: next(times))
    classify(stage, message, offset=0)
    classify(stage, message, offset=1)
    assert store.list_keys("results/") == [result_key("A")]
    assert store.get_json(result_key("A"))["classified_unix_ms"] == NOW_MS + 5000


def test_load_results_reads_the_table_and_reports_unreadable_objects(
    store: ObjectStore, tmp_path: Path
) -> None:
    stage = ClassifierStage(store)
    for pid, cluster in (("b-field", False), ("A", True)):
        classify(stage, put_map(store, pid, tmp_path, cluster=cluster))
    store.put_bytes("results/broken.json", b"{not json")
    store.put_bytes("results/notes.txt", b"hello")
    store.put_json("results/renamed.json", store.get_json(result_key("A")))
    store.put_json("results/list.json", [1, 2])

    loaded = load_results(store)
    assert [r["pointing_id"] for r in loaded.rows] == ["A", "b-field"]
    assert loaded.rows[0] == store.get_json(result_key("A"))
    reasons = dict(loaded.unreadable)
    assert sorted(reasons) == [
        "results/broken.json",
        "results/list.json",
        "results/notes.txt",
        "results/renamed.json",
    ]
    assert "not JSON" in reasons["results/broken.json"]
    assert reasons["results/list.json"] == "not a result row (no pointing_id)"
    assert reasons["results/notes.txt"] == "not a .json object"
    assert reasons["results/renamed.json"] == "holds the result of pointing 'A'"


def test_load_results_of_an_empty_store(store: ObjectStore) -> None:
    loaded = load_results(store)
    assert (loaded.rows, loaded.unreadable) == ([], [])


# --- failures ------------------------------------------------------------------------------


def test_a_cluster_outside_the_map_is_unclassifiable(store: ObjectStore, tmp_path: Path) -> None:
    message = put_map(store, "A", tmp_path)
    message.pointing.dec_deg += 1.0  # the cluster, at the pointing's position, is off the map
    with pytest.raises(PermanentError) as info:
        classify(ClassifierStage(store), message)
    assert info.value.code == "unclassifiable"
    assert "the cluster is outside the image" in info.value.detail
    assert not store.exists(result_key("A"))


def test_a_pointing_just_off_its_map_is_unclassifiable(store: ObjectStore, tmp_path: Path) -> None:
    # 160 px beyond the 300 px map: the 176 px aperture still overlaps it, but R would
    # rest on its rim. The stage refuses it (a dead letter), it does not crash.
    message = put_map(store, "A", tmp_path)
    message.pointing.dec_deg += 160 * 4.5 / 3600
    with pytest.raises(PermanentError) as info:
        classify(ClassifierStage(store), message)
    assert info.value.code == "unclassifiable"
    assert info.value.detail == (
        f"pointing A: s3://{store.bucket}/maps/A/probability.fits: the cluster is outside the "
        "image: its centre is at pixel (x, y) = (150.0, 310.0) of a 300 x 300 px image"
    )
    assert not store.exists(result_key("A"))


def test_a_map_without_a_beam_is_invalid(store: ObjectStore, tmp_path: Path) -> None:
    message = put_map(store, "A", tmp_path, with_beam=False)  # and no cutout to take it from
    with pytest.raises(PermanentError) as info:
        classify(ClassifierStage(store), message)
    assert info.value.code == "invalid_map"
    # The error names the object, not the temporary file it was read from.
    assert info.value.detail.startswith(f"pointing A: s3://{store.bucket}/maps/A/probability.fits")
    assert "no restoring beam" in info.value.detail


def test_a_missing_map_is_permanent(store: ObjectStore, tmp_path: Path) -> None:
    message = put_map(store, "A", tmp_path)
    message.map.key = "maps/A/gone.fits"
    with pytest.raises(PermanentError) as info:
        classify(ClassifierStage(store), message)
    assert info.value.code == "missing_object"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda m: setattr(m.pointing, "id", "no spaces allowed"), "bad_map"),
        (lambda m: m.ClearField("map"), "bad_map"),
        (lambda m: m.pointing.cluster.ClearField("m500_1e14"), "invalid_pointing"),
    ],
)
def test_bad_messages(store: ObjectStore, tmp_path: Path, mutate: object, code: str) -> None:
    message = put_map(store, "A", tmp_path)
    mutate(message)  # type: ignore[operator]
    with pytest.raises(PermanentError) as info:
        classify(ClassifierStage(store), message)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.5}, "threshold must be in \\[0, 1\\]"),
        ({"threshold": math.nan}, "threshold must be in"),
        ({"radius_r500": 0.0}, "aperture radius must be positive"),
    ],
)
def test_options_are_checked(store: ObjectStore, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClassifierStage(store, **kwargs)
