"""submit, status and results against the real broker (Tansu) and object store (SeaweedFS)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from kafka import KafkaConsumer
from minio import Minio

from radiounet.cli.results_cmd import TABLE_COLUMNS
from radiounet.stream.classifier.results import RESULT_COLUMNS, result_row
from radiounet.stream.local.components import Broker, ObjectStore
from radiounet.stream.local.ports import free_port
from radiounet.stream.local.stack_state import StackState, save_state
from radiounet.stream.messages import cluster_has_size, decode, header
from radiounet.stream.proto import pipeline_pb2 as pb

RunCli = Callable[[list[str]], tuple[int, str, str]]
ErrorCheck = Callable[[str, str, str], str]

CATALOGUE = """\
Name,RAdeg,DEdeg,z,MSZ_1e14,R500_kpc,theta500_arcmin
PSZ2 G048.10+57.16,230.3160862,30.6278283,0.0777,3.589891,1054.3,11.95
PSZ2 G000.13+78.04,203.5586828,20.2559905,0.171,5.122391,1150.3,
Plain,10.0,20.0,,,,
"""
INVALID = "Dec95,10,95,0.1,3,1000,5\nNoRA,,20,0.1,3,1000,5\n"
# Bound on waiting for messages, only so a broken broker cannot hang the suite.
WAIT_S = 60.0


@pytest.fixture
def kafka_flags(broker: Broker, topic_prefix: str) -> list[str]:
    return ["--kafka-bootstrap", broker.bootstrap, "--topic-prefix", topic_prefix]


@pytest.fixture
def store_flags(object_store: ObjectStore, bucket: str) -> list[str]:
    return [
        "--s3-endpoint",
        object_store.s3_endpoint,
        "--s3-access-key",
        object_store.credentials.access_key,
        "--s3-secret-key",
        object_store.credentials.secret_key,
        "--bucket",
        bucket,
    ]


def consume(bootstrap: str, topic: str, count: int) -> list[Any]:
    """The first ``count`` records of ``topic`` (and any beyond, polled once more)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[bootstrap],
        group_id=f"check-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_interval_ms=5000,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    try:
        got: list[Any] = []
        deadline = time.monotonic() + WAIT_S
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
        for records in consumer.poll(timeout_ms=1000).values():
            got.extend(records)
        return got
    finally:
        consumer.close()


def put(client: Minio, bucket: str, key: str, data: bytes) -> None:
    client.put_object(bucket, key, io.BytesIO(data), len(data))


def put_json(client: Minio, bucket: str, key: str, payload: Any) -> None:
    put(client, bucket, key, json.dumps(payload).encode())


def fits_image(ny: int, nx: int) -> bytes:
    buf = io.BytesIO()
    fits.PrimaryHDU(np.zeros((ny, nx), dtype=np.float32)).writeto(buf)
    return buf.getvalue()


# --- submit --------------------------------------------------------------------------------


def test_submit_catalogue_reaches_the_topic(
    run_cli: RunCli, kafka_flags: list[str], broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "clusters.csv"
    path.write_text(CATALOGUE)
    code, out, err = run_cli(["submit", "--catalogue", str(path), "--size", "480", *kafka_flags])
    assert code == 0, err
    lines = out.splitlines()
    topic = f"{topic_prefix}pointings"
    assert lines[0] == f"sent 3 pointing(s) to {topic} at {broker.bootstrap}"
    ids = ["PSZ2_G048.10+57.16", "PSZ2_G000.13+78.04", "Plain"]
    assert [line.split()[0] for line in lines[1:]] == ids

    records = consume(broker.bootstrap, topic, 3)
    assert sorted(r.key.decode() for r in records) == sorted(ids)
    by_id = {r.key.decode(): r for r in records}
    correlation = {header(r.headers, "correlation-id") for r in records}
    assert len(correlation) == 3 and None not in correlation
    for line in lines[1:]:  # the printed correlation id is the one in the header
        pointing_id, cid = line.split()[0], line.split()[-1]
        assert header(by_id[pointing_id].headers, "correlation-id") == cid
    first = by_id["PSZ2_G048.10+57.16"]
    assert header(first.headers, "content-type") == (
        "application/x-protobuf; messageType=radiounet.v1.Pointing"
    )
    assert (header(first.headers, "producer") or "").startswith("submit/")
    p = decode("pointings", first.value)
    assert isinstance(p, pb.Pointing)
    assert (p.id, p.ra_deg, p.dec_deg) == ("PSZ2_G048.10+57.16", 230.3160862, 30.6278283)
    assert (p.survey, p.size_px, p.pixel_scale_arcsec) == ("lotss-dr2-lowres", 480, 4.5)
    assert p.cluster.name == "PSZ2 G048.10+57.16"
    assert (p.cluster.z, p.cluster.m500_1e14, p.cluster.theta500_arcmin) == (
        0.0777,
        3.589891,
        11.95,
    )
    assert p.submitted_unix_ms > 0
    second = decode("pointings", by_id["PSZ2_G000.13+78.04"].value)
    assert isinstance(second, pb.Pointing)
    assert not second.cluster.HasField("theta500_arcmin")  # z and M500 give the size
    plain = decode("pointings", by_id["Plain"].value)
    assert isinstance(plain, pb.Pointing)
    assert not cluster_has_size(plain) and plain.cluster.name == "Plain"


def test_invalid_rows_send_nothing_unless_skipped(
    run_cli: RunCli,
    one_line_error: ErrorCheck,
    kafka_flags: list[str],
    broker: Broker,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(CATALOGUE + INVALID)
    code, out, err = run_cli(["submit", "--catalogue", str(path), *kafka_flags])
    assert code == 2
    assert out == ""
    assert err.splitlines()[:2] == [
        "invalid: line 5: pointing Dec95: Dec must be in [-90, 90] degrees, got 95.0",
        "invalid: line 6: pointing NoRA: no RA (column 'RAdeg' is empty)",
    ]
    one_line_error(err, "submit", "2 of 5 pointings invalid; nothing sent")

    code, out, err = run_cli(["submit", "--catalogue", str(path), "--skip-invalid", *kafka_flags])
    assert code == 0, err
    assert "skipped: line 5: pointing Dec95" in err
    assert out.splitlines()[0].endswith("(2 skipped)")
    # Only the valid pointings of the second run: the first sent nothing.
    records = consume(broker.bootstrap, f"{topic_prefix}pointings", 3)
    assert sorted(r.key.decode() for r in records) == [
        "PSZ2_G000.13+78.04",
        "PSZ2_G048.10+57.16",
        "Plain",
    ]


def test_submit_position_with_settings_from_the_stack_file(
    run_cli: RunCli, broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    stack = tmp_path / "stack"
    settings = {"kafka_bootstrap": broker.bootstrap, "topic_prefix": topic_prefix}
    save_state(StackState(str(stack), {}, "ak", "sk", extra={"settings": settings}))
    code, out, err = run_cli(
        ["submit", "--ra", "258.2", "--dec", "64.06", "--z", "0.0806", "--m500", "5.4",
         "--name", "Abell 2255", "--stack", str(stack)]
    )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[1].split()[0] == "Abell_2255"
    (record,) = consume(broker.bootstrap, f"{topic_prefix}pointings", 1)
    p = decode("pointings", record.value)
    assert isinstance(p, pb.Pointing)
    assert (record.key, p.cluster.name, p.cluster.m500_1e14) == (b"Abell_2255", "Abell 2255", 5.4)


def test_submit_without_a_broker_is_one_error_line(
    run_cli: RunCli, one_line_error: ErrorCheck
) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    code, _, err = run_cli(["submit", "--ra", "1", "--dec", "20", "--kafka-bootstrap", bootstrap])
    assert code == 1
    one_line_error(err, "submit", f"no Kafka broker reachable at {bootstrap}")


# --- status --------------------------------------------------------------------------------


@pytest.fixture
def stored_pipeline(object_store: ObjectStore, bucket: str) -> None:
    """Objects of pointings at every stage, as the stages would have written them."""
    client = object_store.client()
    cutout = fits_image(300, 300)  # a 3x3 grid of 192-pixel tiles, stride 96
    for pid in ("fetched", "tiling", "mapped", "done", "failed"):
        put(client, bucket, f"cutouts/lotss-dr2-lowres/{pid}.fits", cutout)
    put(client, bucket, "cutouts/nvss/other-survey.fits", cutout)
    for first, last in ((0, 3), (4, 5)):
        put(client, bucket, f"tiles/tiling/radio_unet-1/{first:05d}-{last:05d}.npy", b"x")
    for pid in ("mapped", "done"):
        put(client, bucket, f"maps/{pid}/probability.fits", b"x")
        put(client, bucket, f"maps/{pid}/quicklook.png", b"x")
    put_json(client, bucket, "results/done.json", {"pointing_id": "done", "ratio": 0.5})
    put_json(
        client,
        bucket,
        "dead-letters/failed/tiler.json",
        {
            "stage": "tiler",
            "reason": "invalid_cutout",
            "detail": "s3://b/cutouts/x.fits: the image is blank",
            "topic": "radiounet.cutouts",
            "partition": 0,
            "offset": 7,
            "failed_unix_ms": 1,
        },
    )
    # Not a pointing's key: ignored.
    put(client, bucket, "results/done.json.bak", b"x")


@pytest.mark.usefixtures("stored_pipeline")
def test_status_of_named_pointings(run_cli: RunCli, store_flags: list[str]) -> None:
    ids = ["fetched", "tiling", "mapped", "done", "failed", "other-survey", "never"]
    code, out, err = run_cli(["status", *ids, "--json", *store_flags])
    assert code == 0, err
    got = {s["pointing_id"]: s for s in json.loads(out)}
    assert {p: got[p]["summary"] for p in ids} == {
        "fetched": "fetched",
        "tiling": "tiling 6/9",
        "mapped": "reassembled",
        "done": "classified",
        "failed": "failed (tiler: invalid_cutout)",
        "other-survey": "fetched",
        "never": "not-seen",
    }
    assert got["tiling"]["tiles"] == {"model": "radio_unet-1", "chunks": 2, "tiles": 6, "total": 9}
    assert got["done"]["result"] == "results/done.json"
    assert got["mapped"]["quicklook"] == "maps/mapped/quicklook.png"
    assert got["other-survey"]["cutout"] == "cutouts/nvss/other-survey.fits"
    (letter,) = got["failed"]["dead_letters"]
    assert letter["detail"] == "s3://b/cutouts/x.fits: the image is blank"

    # The table shows the failure's detail under its row.
    code, out, err = run_cli(["status", "failed", "tiling", *store_flags])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["failed", "failed", "(tiler:", "invalid_cutout)"]
    assert "dead letter tiler: invalid_cutout: s3://b/cutouts/x.fits: the image is blank" in out
    assert lines[-1].split()[:3] == ["tiling", "tiling", "6/9"]


@pytest.mark.usefixtures("stored_pipeline")
def test_status_all(run_cli: RunCli, store_flags: list[str]) -> None:
    code, out, err = run_cli(["status", "--all", "--json", *store_flags])
    assert code == 0, err
    states = {s["pointing_id"]: s["state"] for s in json.loads(out)}
    assert states == {
        "done": "classified",
        "failed": "failed",
        "fetched": "fetched",
        "mapped": "reassembled",
        "other-survey": "fetched",
        "tiling": "tiling",
    }


def test_status_errors(
    run_cli: RunCli, one_line_error: ErrorCheck, store_flags: list[str], bucket: str
) -> None:
    code, _, err = run_cli(["status", *store_flags])
    assert code == 2
    one_line_error(err, "status", "give pointing ids or --all")
    code, _, err = run_cli(["status", "southern", "--all", *store_flags])
    assert code == 2
    one_line_error(err, "status", "give pointing ids or --all, not both")
    code, _, err = run_cli(["status", "--all", *store_flags, "--bucket", f"{bucket}-missing"])
    assert code == 2
    one_line_error(err, "status", f"bucket '{bucket}-missing' does not exist")
    code, out, err = run_cli(["status", "--all", *store_flags])
    assert (code, out) == (0, "no pointings in the object store\n")
    dead = f"127.0.0.1:{free_port()}"
    code, _, err = run_cli(["status", "p1", *store_flags, "--s3-endpoint", dead])
    assert code == 1
    one_line_error(err, "status", f"object store {dead} unavailable")


# --- results -------------------------------------------------------------------------------


@pytest.fixture
def stored_results(object_store: ObjectStore, bucket: str) -> None:
    """Two result rows as the classifier writes them, and objects that are not rows."""
    client = object_store.client()
    model = pb.ModelRef(name="radio_unet", version=3, signature="serving_default")
    for pid, ra, dec in (("quiet", 1.0, 2.0), ("halo", 258.2, 64.06)):
        row = result_row(
            pb.Pointing(id=pid, survey="lotss-dr2-lowres", ra_deg=ra, dec_deg=dec),
            model,
            classification=None,
            map_key=f"maps/{pid}/probability.fits",
            classified_unix_ms=1_700_000_000_000,
        )
        if pid == "halo":
            # What a classification adds (see radiounet.stream.classifier.results).
            row.update(
                has_cluster=True,
                cluster={"name": "Abell 2255", "theta500_arcmin": 9.0},
                ratio=0.61,
                threshold=0.2,
                diffuse=True,
                n_components=2,
            )
        put_json(client, bucket, f"results/{pid}.json", row)
    put(client, bucket, "results/broken.json", b"{not json")


@pytest.mark.usefixtures("stored_results")
def test_results_csv_json_and_diffuse_only(
    run_cli: RunCli, store_flags: list[str], tmp_path: Path
) -> None:
    table = tmp_path / "results.csv"
    code, out, err = run_cli(["results", "--format", "csv", "--output", str(table), *store_flags])
    assert code == 0, err
    assert out == ""
    assert "skipped: results/broken.json: not JSON" in err
    assert "2 row(s) written to" in err
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert [r["pointing_id"] for r in rows] == ["halo", "quiet"]
    halo, quiet = rows
    assert (halo["cluster"], halo["ra_deg"], halo["dec_deg"]) == ("Abell 2255", "258.2", "64.06")
    assert (halo["ratio"], halo["diffuse"], halo["n_components"]) == ("0.61", "true", "2")
    assert (halo["model"], halo["model_version"]) == ("radio_unet", "3")
    assert halo["map_key"] == "maps/halo/probability.fits"
    assert (quiet["has_cluster"], quiet["ratio"], quiet["diffuse"]) == ("false", "", "")
    assert quiet["classified_utc"] == "2023-11-14T22:13:20.000Z"

    code, out, err = run_cli(["results", "--format", "json", "--diffuse-only", *store_flags])
    assert code == 0, err
    (only,) = json.loads(out)
    assert (only["pointing_id"], only["ratio"], only["diffuse"]) == ("halo", 0.61, True)
    code, out, err = run_cli(["results", *store_flags])
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["pointing", "halo", "quiet"]
    assert out.splitlines()[1].split()[-5:] == [
        "yes",
        "-",  # no aperture in this row
        "2",
        "radio_unet-3",
        "maps/halo/probability.fits",
    ]


# --- resubmitted pointings: the latest event decides ---------------------------------------

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
OUTSIDE = "RA 233.828 Dec -60.000 is outside the footprint of lotss-dr2-lowres (dec >= 10)"


def put_result(client: Minio, bucket: str, pid: str, classified_ms: int, **fields: Any) -> None:
    row = result_row(
        pb.Pointing(id=pid, survey="lotss-dr2-lowres", ra_deg=233.8283054, dec_deg=34.3446164),
        pb.ModelRef(name="radio_unet", version=4),
        classification=None,
        map_key=f"maps/{pid}/probability.fits",
        classified_unix_ms=classified_ms,
    )
    put_json(client, bucket, f"results/{pid}.json", {**row, **fields})


def put_dead_letter(client: Minio, bucket: str, pid: str, failed_ms: int) -> None:
    letter = {"stage": "fetcher", "reason": "outside_footprint", "detail": OUTSIDE}
    put_json(
        client, bucket, f"dead-letters/{pid}/fetcher.json", {**letter, "failed_unix_ms": failed_ms}
    )


@pytest.fixture
def resubmitted(object_store: ObjectStore, bucket: str) -> None:
    """theta_only: classified, then failed when submitted again; southern: the other way round."""
    client = object_store.client()
    put_result(client, bucket, "theta_only", T0, ratio=0.0253, correlation_id="c-old")
    put_dead_letter(client, bucket, "theta_only", T0 + 60_000)
    put_dead_letter(client, bucket, "southern", T0)
    put_result(client, bucket, "southern", T0 + 60_000, correlation_id="c-new")
    put_dead_letter(client, bucket, "gone", T0)
    put_result(client, bucket, "fine", T0, correlation_id="c-fine")


@pytest.mark.usefixtures("resubmitted")
def test_status_follows_the_latest_submission(run_cli: RunCli, store_flags: list[str]) -> None:
    code, out, err = run_cli(["status", "theta_only", "southern", *store_flags])
    assert code == 0, err
    state = len("failed (fetcher: outside_footprint)")
    assert out.splitlines() == [
        f"pointing    {'state':<{state}}  stored",
        f"theta_only  {'failed (fetcher: outside_footprint)':<{state}}  result",
        f"            dead letter fetcher: outside_footprint: {OUTSIDE}",
        "            an earlier submission was classified at 2023-11-14T22:13:20.000Z "
        "(R 0.0253, correlation-id c-old); its row is still in radiounet results",
        f"southern    {'classified':<{state}}  result, superseded dead letter (fetcher)",
    ]
    code, out, err = run_cli(["status", "--all", "--json", *store_flags])
    assert code == 0, err
    got = {s["pointing_id"]: s for s in json.loads(out)}
    assert {p: s["state"] for p, s in got.items()} == {
        "fine": "classified",
        "gone": "failed",
        "southern": "classified",
        "theta_only": "failed",
    }
    assert got["theta_only"]["earlier_result"] == {
        "classified_utc": "2023-11-14T22:13:20.000Z",
        "ratio": 0.0253,
        "correlation_id": "c-old",
    }
    assert [d["superseded"] for d in got["southern"]["dead_letters"]] == [True]


@pytest.mark.usefixtures("resubmitted")
@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_results_say_which_pointings_failed(
    run_cli: RunCli, store_flags: list[str], fmt: str
) -> None:
    code, out, err = run_cli(["results", "--format", fmt, *store_flags])
    assert code == 0, err
    ids = [line.split(",")[0].split()[0] for line in out.splitlines()[1:]]
    assert ids == ["fine", "southern", "theta_only"]
    assert err.splitlines() == [
        "1 listed pointing(s) failed when submitted again; their rows are from an earlier "
        "submission: theta_only (radiounet status ID)",
        "1 pointing(s) failed and are not listed: radiounet status --all",
    ]


def test_results_before_any_result(
    run_cli: RunCli, store_flags: list[str], object_store: ObjectStore, bucket: str
) -> None:
    code, out, err = run_cli(["results", "--format", "csv", *store_flags])
    assert (code, out.splitlines(), err) == (
        0,
        [",".join(RESULT_COLUMNS)],
        "no results yet: no pointing has been classified\n",
    )
    put_dead_letter(object_store.client(), bucket, "southern", T0)
    code, out, err = run_cli(["results", *store_flags])
    assert code == 0, err
    assert out.split() == [heading for heading, _ in TABLE_COLUMNS]
    assert err.splitlines() == [
        "no results yet: no pointing has been classified",
        "1 pointing(s) failed and are not listed: radiounet status --all",
    ]


@pytest.mark.usefixtures("resubmitted")
@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--all"],
        ["status", "theta_only", "--json"],
        ["results"],
        ["results", "--format", "csv"],
        ["results", "--format", "json"],
    ],
)
def test_a_closed_stdout_ends_quietly(
    argv: list[str], store_flags: list[str], tmp_path: Path
) -> None:
    """``radiounet ... | head -1`` through a real pipe whose reader has already gone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADIOUNET_")}
    command = [str(Path(sys.executable).parent / "radiounet"), *argv, *store_flags]
    read_end, write_end = os.pipe()
    os.close(read_end)  # before the command writes: every write to stdout fails (EPIPE)
    try:
        done = subprocess.run(
            command,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")
    # The same command with a reader: the output is all there.
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "theta_only" in done.stdout


def test_status_counts_only_the_chunks_of_the_current_grid(
    run_cli: RunCli, store_flags: list[str], object_store: ObjectStore, bucket: str
) -> None:
    client = object_store.client()
    # First submitted with a small --size: one chunk of a 3x3 grid.
    put(client, bucket, "tiles/resized/radio_unet-4/00000-00008.npy", b"x")
    time.sleep(1.1)  # the store's times have a resolution of one second
    # Submitted again at 960 px: a new cutout (9x9 grid), two chunks tiled so far.
    put(client, bucket, "cutouts/lotss-dr2-lowres/resized.fits", fits_image(960, 960))
    for first, last in ((0, 15), (16, 31)):
        put(client, bucket, f"tiles/resized/radio_unet-4/{first:05d}-{last:05d}.npy", b"x")
    for argv in (["resized"], ["--all"]):
        code, out, err = run_cli(["status", *argv, "--json", *store_flags])
        assert code == 0, err
        (got,) = json.loads(out)
        assert got["summary"] == "tiling 32/81"
        assert got["tiles"] == {"model": "radio_unet-4", "chunks": 2, "tiles": 32, "total": 81}
