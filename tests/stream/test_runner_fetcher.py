"""The stage loop with the fetcher stage, against the real broker and object store."""

from __future__ import annotations

import io
import itertools
import threading

import numpy as np
from astropy.io import fits

from radiounet.stream import topics as t
from radiounet.stream.errors import TransientError
from radiounet.stream.fetcher.service import FetcherStage
from radiounet.stream.fetcher.simulated_source import SimulatedSkySource
from radiounet.stream.keys import cutout_key, dead_letter_key
from radiounet.stream.messages import CORRELATION_ID, header, headers_for
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.runner import Context, Handled


def _pointing(pid: str, ra: float = 200.0, dec: float = 45.0) -> pb.Pointing:
    return pb.Pointing(
        id=pid,
        ra_deg=ra,
        dec_deg=dec,
        size_px=256,
        cluster=pb.Cluster(name=pid, z=0.2, m500_1e14=5.0),
        submitted_unix_ms=1,
    )


def _send(topics, pointing: pb.Pointing, cid: str) -> None:
    headers = headers_for(pointing, correlation_id=cid, producer="test")
    topics.send(t.POINTINGS, pointing.id, pointing.SerializeToString(), headers)


def test_fetcher_stores_cutouts_and_dead_letters_poison(stream_settings, store, topics, run_stage):
    from prometheus_client import REGISTRY

    def latencies() -> float:
        name = "radiounet_pointing_latency_seconds_count"
        return REGISTRY.get_sample_value(name, {"stage": "fetcher"}) or 0.0

    latencies_before = latencies()
    _send(topics, _pointing("good-1"), "cid-1")
    topics.send(t.POINTINGS, "garbage", b"\xff\x00 not protobuf")
    _send(topics, _pointing("bad-dec", dec=95.0), "cid-2")
    _send(topics, _pointing("south", dec=-45.0), "cid-3")
    _send(topics, _pointing("good-2", ra=10.0, dec=30.0), "cid-4")

    stage = run_stage(FetcherStage(store, SimulatedSkySource()), stream_settings, store)
    cutouts = topics.read(t.CUTOUTS, 2)
    letters = topics.read(t.DEAD_LETTERS, 3)
    stage.stop()
    # Submission -> cutout stored, once per fetched pointing (dead letters are not timed).
    assert latencies() - latencies_before == 2

    by_key = {r.key.decode(): r for r in cutouts}
    assert sorted(by_key) == ["good-1", "good-2"]
    msg = pb.Cutout.FromString(by_key["good-1"].value)
    assert header(by_key["good-1"].headers, CORRELATION_ID) == "cid-1"
    assert msg.fits.key == cutout_key("lotss-dr2-lowres", "good-1")
    assert (msg.ny, msg.nx) == (256, 256)
    with fits.open(io.BytesIO(store.get_bytes(msg.fits))) as hdul:
        data = hdul[0].data
        assert data.shape == (256, 256) and np.isfinite(data).all()
        assert hdul[0].header["RUPOINT"] == "good-1"

    reasons = {r.key.decode(): pb.DeadLetter.FromString(r.value) for r in letters}
    assert reasons["garbage"].reason == "bad_message"
    assert reasons["garbage"].value == b"\xff\x00 not protobuf"  # original bytes kept
    assert reasons["bad-dec"].reason == "invalid_pointing"
    assert "Dec must be in [-90, 90] degrees, got 95.0" in reasons["bad-dec"].detail
    assert reasons["south"].reason == "outside_footprint"
    assert "outside the footprint of lotss-dr2-lowres" in reasons["south"].detail
    assert all(
        d.stage == "fetcher" and d.source_topic.endswith("pointings") for d in reasons.values()
    )
    # A copy for `radiounet status`, next to the pointing's objects.
    copy = store.get_json(dead_letter_key("fetcher", "south"))
    assert copy["reason"] == "outside_footprint"

    # Everything was committed: a new member of the group has nothing to redo.
    from kafka import KafkaConsumer, TopicPartition

    sent = topics.read(t.POINTINGS, 5)
    expected: dict[int, int] = {}
    for r in sent:
        expected[r.partition] = max(expected.get(r.partition, 0), r.offset + 1)
    consumer = KafkaConsumer(
        bootstrap_servers=stream_settings.kafka_bootstrap, group_id="radiounet-fetcher"
    )
    try:
        name = stream_settings.topic(t.POINTINGS)
        committed = {p: consumer.committed(TopicPartition(name, p)) for p in expected}
        assert committed == expected
    finally:
        consumer.close()


class FlakyStage:
    """Fails with a transient error ``failures`` times, then echoes the pointing as a cutout."""

    name = "flaky"
    input_topic = t.POINTINGS

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.lock = threading.Lock()

    def handle(self, message: pb.Pointing, ctx: Context) -> Handled:
        with self.lock:
            self.calls += 1
            if self.calls <= self.failures:
                raise TransientError("model server down", code="model_server")
        return Handled([ctx.emit(t.CUTOUTS, message.id, pb.Cutout(pointing=message))])


def test_transient_errors_are_retried_not_dropped(stream_settings, store, topics, run_stage):
    from prometheus_client import REGISTRY

    before = (
        REGISTRY.get_sample_value(
            "radiounet_retries_total", {"stage": "flaky", "reason": "model_server"}
        )
        or 0.0
    )
    _send(topics, _pointing("p1"), "cid")
    stage = FlakyStage(failures=3)
    running = run_stage(stage, stream_settings, store)
    out = topics.read(t.CUTOUTS, 1)
    running.stop()
    assert [r.key for r in out] == [b"p1"]
    assert stage.calls == 4
    after = REGISTRY.get_sample_value(
        "radiounet_retries_total", {"stage": "flaky", "reason": "model_server"}
    )
    assert after - before == 3
    assert not topics.read(t.DEAD_LETTERS, 0, timeout=1)


def test_held_messages_are_not_committed(stream_settings, store, topics, run_stage):
    """A held message pins the commit point: a restarted consumer gets it again."""

    class Holder:
        name = "holder"
        input_topic = t.POINTINGS

        def __init__(self) -> None:
            self.seen: list[str] = []

        def handle(self, message: pb.Pointing, ctx: Context) -> Handled:
            self.seen.append(message.id)
            return Handled(hold=message.id == "held")

    # One key: the three messages share a partition, so their order is defined.
    for pid in ("a", "held", "b"):
        p = _pointing(pid)
        topics.send(
            t.POINTINGS,
            "same-key",
            p.SerializeToString(),
            headers_for(p, correlation_id=pid, producer="test"),
        )
    first = Holder()
    running = run_stage(first, stream_settings, store)
    topics.read(t.POINTINGS, 3)
    import time

    deadline = time.monotonic() + 60
    while len(first.seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    running.stop()
    assert first.seen == ["a", "held", "b"]

    second = Holder()
    running = run_stage(second, stream_settings, store)
    deadline = time.monotonic() + 60
    while len(second.seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    running.stop()
    # Resumes at the held message (b after it is replayed too: at-least-once).
    assert second.seen == ["held", "b"]


class LookAheadStage:
    """Echoes pointings as cutouts and records the order of prefetch and handle calls."""

    name = "lookahead"
    input_topic = t.POINTINGS

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def prefetch(self, message: pb.Pointing) -> None:
        self.events.append(("prefetch", message.id))

    def handle(self, message: pb.Pointing, ctx: Context) -> Handled:
        self.events.append(("handle", message.id))
        return Handled([ctx.emit(t.CUTOUTS, message.id, pb.Cutout(pointing=message))])

    def partitions_revoked(self, partitions: set[tuple[str, int]]) -> None:
        pass


def test_the_next_polled_message_is_offered_for_prefetch(stream_settings, store, topics, run_stage):
    ids = [f"la-{i}" for i in range(4)]
    for pid in ids:  # one partition, so one poll sees them in this order
        pointing = _pointing(pid)
        headers = headers_for(pointing, correlation_id=pid, producer="test")
        topics.send(t.POINTINGS, "same-key", pointing.SerializeToString(), headers)
    stage = LookAheadStage()
    running = run_stage(stage, stream_settings, store)
    topics.read(t.CUTOUTS, 4)
    running.stop()
    handled = [pid for kind, pid in stage.events if kind == "handle"]
    assert handled == ids
    # Every message but the first of a poll is offered before the one ahead of it is handled.
    for before, after in itertools.pairwise(ids):
        if ("prefetch", after) in stage.events:
            assert stage.events.index(("prefetch", after)) < stage.events.index(("handle", before))
    assert ("prefetch", ids[0]) not in stage.events
    assert sum(kind == "prefetch" for kind, _ in stage.events) >= 1
