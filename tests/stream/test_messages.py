"""Wire messages: generated code in sync with protos/, decoding, validation, settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from radiounet.stream import topics as t
from radiounet.stream.errors import PermanentError
from radiounet.stream.messages import (
    CONTENT_TYPE,
    CORRELATION_ID,
    cluster_has_size,
    decode,
    header,
    headers_for,
    validate_pointing,
)
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.settings import Settings, settings_from

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_protos():
    done = subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_round_trip_keeps_every_field():
    pointing = pb.Pointing(
        id="PSZ2_G055.59+31.85",
        survey="lotss-dr2-lowres",
        ra_deg=260.6149937,
        dec_deg=32.1354073,
        size_px=960,
        pixel_scale_arcsec=4.5,
        cluster=pb.Cluster(name="PSZ2 G055.59+31.85", z=0.224, m500_1e14=7.78),
        submitted_unix_ms=1795300000000,
    )
    chunk = pb.TileChunk(
        pointing=pointing,
        probabilities=pb.ObjectRef(
            bucket="b", key="k", etag="e", shape=[16, 192, 192], dtype="<f4"
        ),
        first_tile=32,
        tile_count=16,
        total_tiles=81,
    )
    back = decode(t.TILE_CHUNKS, chunk.SerializeToString())
    assert back == chunk
    assert list(back.probabilities.shape) == [16, 192, 192]
    assert back.pointing.cluster.HasField("z") and not back.pointing.cluster.HasField(
        "theta500_arcmin"
    )


@pytest.mark.parametrize("value", [b"", None, b"\xff\xff\xff\xff"])
def test_undecodable_bytes_are_permanent_bad_message(value):
    with pytest.raises(PermanentError, match=r"radiounet\.v1\.Pointing|empty message") as info:
        decode(t.POINTINGS, value)
    assert info.value.code == "bad_message"


def test_validate_fills_paper_defaults():
    out = validate_pointing(pb.Pointing(id="p1", ra_deg=10.0, dec_deg=40.0))
    assert (out.survey, out.size_px, out.pixel_scale_arcsec) == ("lotss-dr2-lowres", 960, 4.5)


@pytest.mark.parametrize(
    ("pointing", "message"),
    [
        (pb.Pointing(id="", ra_deg=1, dec_deg=1), "pointing id must be 1-128 characters"),
        (pb.Pointing(id="a b", ra_deg=1, dec_deg=1), "got 'a b'"),
        (
            pb.Pointing(id="p", ra_deg=360.0, dec_deg=1),
            r"RA must be in \[0, 360\) degrees, got 360.0",
        ),
        (pb.Pointing(id="p", ra_deg=1, dec_deg=-91), "Dec must be in .* got -91.0"),
        (pb.Pointing(id="p", ra_deg=1, dec_deg=1, size_px=16), "cutout size must be 32..8192"),
        (
            pb.Pointing(id="p", ra_deg=1, dec_deg=1, cluster=pb.Cluster(name="c", z=0.1)),
            "needs theta500_arcmin, or both z and m500_1e14",
        ),
        (
            pb.Pointing(id="p", ra_deg=1, dec_deg=1, cluster=pb.Cluster(m500_1e14=5.0)),
            "needs theta500_arcmin, or both z and m500_1e14",
        ),
        (
            pb.Pointing(id="p", ra_deg=1, dec_deg=1, cluster=pb.Cluster(theta500_arcmin=-1)),
            "theta500 must be positive, got -1.0",
        ),
    ],
)
def test_invalid_pointings_say_why(pointing, message):
    with pytest.raises(PermanentError, match=message) as info:
        validate_pointing(pointing)
    assert info.value.code == "invalid_pointing"


def test_a_cluster_with_only_a_name_is_valid_but_has_no_size():
    named = pb.Pointing(id="p", ra_deg=1, dec_deg=1, cluster=pb.Cluster(name="Abell 2255"))
    out = validate_pointing(named)
    assert out.cluster.name == "Abell 2255"
    assert not cluster_has_size(out)
    assert not cluster_has_size(pb.Pointing(id="p", ra_deg=1, dec_deg=1))
    sized = pb.Pointing(id="p", ra_deg=1, dec_deg=1, cluster=pb.Cluster(theta500_arcmin=4.0))
    assert cluster_has_size(validate_pointing(sized))


def test_headers_carry_correlation_id_and_type():
    msg = pb.Cutout()
    headers = headers_for(msg, correlation_id="abc", producer="tiler/x")
    assert header(headers, CORRELATION_ID) == "abc"
    assert header(headers, CONTENT_TYPE) == (
        "application/x-protobuf; messageType=radiounet.v1.Cutout"
    )
    fresh = header(headers_for(msg, correlation_id=None, producer="x"), CORRELATION_ID)
    assert fresh is not None and len(fresh) == 32


def test_settings_env_then_flags_and_secret_hidden():
    import argparse

    from radiounet.stream.settings import add_settings_arguments

    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    args = parser.parse_args(["--bucket", "flag-bucket", "--topic-partitions", "3"])
    env = {
        "RADIOUNET_BUCKET": "env-bucket",
        "RADIOUNET_S3_SECURE": "yes",
        "RADIOUNET_S3_SECRET_KEY": "s3cr3t",
    }
    s = settings_from(args, env=env)
    assert (s.bucket, s.topic_partitions, s.s3_secure) == ("flag-bucket", 3, True)
    assert "s3cr3t" not in repr(s)
    assert s.topic("pointings") == "radiounet.pointings"
    with pytest.raises(ValueError, match="RADIOUNET_TOPIC_PARTITIONS"):
        settings_from(env={"RADIOUNET_TOPIC_PARTITIONS": "many"})
    assert Settings().kafka_bootstrap == "127.0.0.1:9092"


def test_settings_help_shows_each_default_but_not_the_secret():
    import argparse

    from radiounet.stream.settings import add_settings_arguments

    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    shown = {a.dest.removeprefix("settings_"): a.help for a in parser._actions if a.help}
    assert shown["kafka_bootstrap"].endswith("[RADIOUNET_KAFKA_BOOTSTRAP; default 127.0.0.1:9092]")
    assert shown["create_topics"].endswith("; default true]")
    assert shown["max_poll_interval_ms"].endswith("; default 300000]")
    assert shown["instance"].endswith("; default this host's name]")
    assert Settings().s3_secret_key not in shown["s3_secret_key"]
    assert Settings().s3_secret_key not in parser.format_help()
