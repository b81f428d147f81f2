"""Reliability of the whole pipeline: crashes, outages and poison messages, on a real stack.

One :class:`~radiounet.stream.local.stack.LocalStack` (Tansu, SeaweedFS, the
model-server stand-in with a tiny model, the four services, Prometheus) serves
the whole module; every test submits pointings with ids of its own prefix and
looks only at those. Nothing is mocked: services are killed with SIGKILL,
the broker and the object store are stopped and started again, and the
outcome is read back from the bucket and the dead-letter topic.

What is checked is the issue's reliability contract:

* at-least-once with idempotent outputs: after a crash of any one service
  (or of the model server) mid-run, every pointing ends with exactly one
  result object, carrying the correlation id it was submitted with, and
  nothing is dead-lettered;
* the broker or the object store going away for a while stalls the pipeline
  but loses nothing, and the services stay alive and healthy;
* poison messages (not protobuf, outside the survey, corrupt or blank FITS)
  go to the dead-letter topic with the stage and reason, and the stream keeps
  flowing behind them.

Timeouts are generous (a loaded 2-core CI machine) and nothing asserts on time.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from radiounet.cli.submit_cmd import Sent, send_pointings
from radiounet.stream.classifier.results import load_results
from radiounet.stream.fetcher.request import CutoutRequest
from radiounet.stream.fetcher.simulated_source import SimulatedSkySource
from radiounet.stream.fits_objects import fits_bytes
from radiounet.stream.kafka_io import make_producer
from radiounet.stream.keys import chunk_key, cutout_key, map_key, quicklook_key, result_key
from radiounet.stream.local.probes import LOOPBACK, http_request
from radiounet.stream.local.stack import LocalStack, StackConfig
from radiounet.stream.messages import headers_for, new_correlation_id
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.settings import Settings, settings_from
from radiounet.stream.topics import CUTOUTS, DEAD_LETTERS, POINTINGS

SURVEY = "lotss-dr2-lowres"
#: 384 px cutouts: 3 x 3 tiles of 192 px (stride 96): fast on the tiny model.
SIZE_PX = 384
#: Tiles per chunk: 3 chunks (4 + 4 + 1) per pointing, so the reassembler holds partial
#: pointings (uncommitted chunk messages) when it is killed, and a killed tiler's rerun
#: sends chunks the reassembler already has.
CHUNK_TILES = 4
TILES_PER_POINTING = 9
#: The model the stack serves (the tiny model's only version), as named in chunk keys.
MODEL_NAME, MODEL_VERSION = "radio_unet", 1
PIXEL_SCALE_ARCSEC = 4.5
#: Pointings per crash test: enough that a crash lands mid-run.
N_POINTINGS = 50
#: Pointings per outage test (fewer: the reassembler's ~1 s per map sets the pace).
N_OUTAGE = 30
#: Generous: how long anything may take on a loaded machine (never asserted on).
TIMEOUT_S = 240.0
#: How often a wait polls.
POLL_S = 0.1
#: Outputs (of the test's pointings) a service must have written before it is killed, or
#: before an outage: under way with work left, and the stages after it have work meanwhile.
KILL_AFTER = 10


# --- the stack ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(
    served_tiny_model_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """The module's stack, stopped at the end whatever happened."""
    local = LocalStack(
        StackConfig(
            data_dir=tmp_path_factory.mktemp("reliability-stack"),
            model_repo=served_tiny_model_repo,
            source="simulated",
            tilers=1,
            tiler_args=("--chunk-tiles", str(CHUNK_TILES)),
            topic_prefix="rel.",
            bucket="reliability",
            partitions=6,
            stop_at_exit=True,
        )
    )
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def settings(stack: LocalStack) -> Settings:
    return settings_from(env={}, **stack.settings(), instance="test-reliability")


@pytest.fixture(scope="module")
def store(settings: Settings) -> ObjectStore:
    return ObjectStore.from_settings(settings)


@pytest.fixture(autouse=True)
def all_running(stack: LocalStack) -> Iterator[None]:
    """Each test starts with every component up, whatever an earlier test left behind."""
    for _, component in stack.components():
        if not component.alive():
            component.start()
    yield


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wait(wait_until: Callable[..., Any]) -> Callable[..., Any]:
    """``wait(predicate, what)``: the suite's ``wait_until`` with this module's timeout."""
    return functools.partial(wait_until, timeout_s=TIMEOUT_S, interval_s=POLL_S)


def make_pointings(prefix: str, n: int, *, dec_deg: float = 40.0) -> list[pb.Pointing]:
    """``n`` cluster pointings in the LoTSS-DR2 footprint, ids ``<prefix>-000``..."""
    return [
        pb.Pointing(
            id=f"{prefix}-{i:03d}",
            survey=SURVEY,
            ra_deg=150.0 + 0.7 * i,
            dec_deg=dec_deg + 0.1 * (i % 10),
            size_px=SIZE_PX,
            pixel_scale_arcsec=PIXEL_SCALE_ARCSEC,
            cluster=pb.Cluster(name=f"{prefix} cluster {i}", z=0.15, m500_1e14=5.0),
        )
        for i in range(n)
    ]


def submit(settings: Settings, pointings: list[pb.Pointing]) -> dict[str, Sent]:
    """Submit; pointing id -> what the broker acknowledged (correlation id, partition...)."""
    return {s.pointing_id: s for s in send_pointings(settings, pointings)}


def _ids_under(store: ObjectStore, prefix: str, id_of: Callable[[str], str]) -> set[str]:
    return {id_of(key) for key in store.list_keys(prefix)}


def cutout_ids(store: ObjectStore, prefix: str) -> set[str]:
    head = f"cutouts/{SURVEY}/"
    return _ids_under(
        store, f"{head}{prefix}-", lambda k: k.removeprefix(head).removesuffix(".fits")
    )


def tiled_ids(store: ObjectStore, prefix: str) -> set[str]:
    return _ids_under(store, f"tiles/{prefix}-", lambda k: k.split("/")[1])


def map_ids(store: ObjectStore, prefix: str) -> set[str]:
    return _ids_under(store, f"maps/{prefix}-", lambda k: k.split("/")[1])


def result_ids(store: ObjectStore, prefix: str) -> set[str]:
    return _ids_under(
        store, f"results/{prefix}-", lambda k: k.removeprefix("results/").removesuffix(".json")
    )


#: What a service has finished so far: the pointings whose output it wrote.
PROGRESS: dict[str, Callable[[ObjectStore, str], set[str]]] = {
    "fetcher": cutout_ids,
    "tiler": tiled_ids,
    "model-server": tiled_ids,
    "reassembler": map_ids,
    "classifier": result_ids,
}


def expected_objects(pointing_id: str) -> set[str]:
    """Every object a pointing leaves in the bucket, under keys fixed by its id."""
    chunks = {
        chunk_key(
            pointing_id,
            MODEL_NAME,
            MODEL_VERSION,
            first_tile=first,
            tile_count=min(CHUNK_TILES, TILES_PER_POINTING - first),
        )
        for first in range(0, TILES_PER_POINTING, CHUNK_TILES)
    }
    return {
        cutout_key(SURVEY, pointing_id),
        *chunks,
        map_key(pointing_id),
        quicklook_key(pointing_id),
        result_key(pointing_id),
    }


def objects_of(store: ObjectStore, prefix: str) -> set[str]:
    """The keys of every object of the pointings ``<prefix>-*``."""
    heads = (f"cutouts/{SURVEY}/", "tiles/", "maps/", "results/")
    return {key for head in heads for key in store.list_keys(f"{head}{prefix}-")}


def read_dead_letters(settings: Settings) -> list[tuple[pb.DeadLetter, Any]]:
    """Every dead letter so far (with its record), read from the start to the end.

    The end is where a poll finds nothing more once past the end offsets the broker
    reports: after a restart Tansu may report end offsets below its last records.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="test-reliability-dead-letters",
    )
    try:
        topic = settings.topic(DEAD_LETTERS)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        out: list[tuple[pb.DeadLetter, Any]] = []
        deadline = time.monotonic() + 60.0
        while True:
            assert time.monotonic() < deadline, "could not read the dead-letter topic"
            batch = consumer.poll(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    letter = pb.DeadLetter()
                    letter.ParseFromString(record.value)
                    out.append((letter, record))
            if not batch and all(consumer.position(tp) >= ends[tp] for tp in partitions):
                return out
    finally:
        consumer.close()


def dead_letters_of(settings: Settings, prefix: str) -> list[pb.DeadLetter]:
    return [
        letter
        for letter, record in read_dead_letters(settings)
        if letter.pointing_id.startswith(f"{prefix}-")
        or (record.key or b"").decode(errors="replace").startswith(f"{prefix}-")
    ]


def assert_exactly_once(
    store: ObjectStore,
    settings: Settings,
    prefix: str,
    sent: dict[str, Sent],
    wait: Callable[..., Any],
) -> None:
    """One result per submitted pointing, with its correlation id; nothing dead-lettered.

    Every pointing's objects (cutout, chunks, map, quicklook, result) exist once, under
    their deterministic keys, and there are no others.
    """
    wait(
        lambda: result_ids(store, prefix) >= set(sent),
        f"the {len(sent)} results of {prefix}-*",
    )
    # Replays overwrote: exactly the objects of one clean run, nothing else.
    assert objects_of(store, prefix) == set().union(*map(expected_objects, sent))
    loaded = load_results(store)
    assert loaded.unreadable == []
    rows = [r for r in loaded.rows if r["pointing_id"].startswith(f"{prefix}-")]
    assert sorted(r["pointing_id"] for r in rows) == sorted(sent)
    for row in rows:
        assert row["correlation_id"] == sent[row["pointing_id"]].correlation_id, row["pointing_id"]
    assert dead_letters_of(settings, prefix) == []
    assert store.list_keys(f"dead-letters/{prefix}-") == []


def retries(stack: LocalStack, service: str, reason_prefix: str = "") -> float:
    """``radiounet_retries_total`` of ``service`` (reasons starting with ``reason_prefix``)."""
    url = f"http://{LOOPBACK}:{stack.metrics_ports[service]}/metrics"
    answer = http_request(url, timeout=10.0)
    assert answer.status == 200, f"{service}: /metrics {answer.status}"
    return sum(
        sample.value
        for family in text_string_to_metric_families(answer.body.decode())
        if family.name == "radiounet_retries"
        for sample in family.samples
        if sample.name == "radiounet_retries_total"
        and sample.labels.get("reason", "").startswith(reason_prefix)
    )


def assert_services_healthy(stack: LocalStack) -> None:
    """Every process runs and every service answers /healthz with 200."""
    for name, component in stack.components():
        assert component.alive(), f"{name} is not running"
    for name, port in stack.metrics_ports.items():
        answer = http_request(f"http://{LOOPBACK}:{port}/healthz", timeout=10.0)
        assert answer.status == 200, f"{name}: /healthz {answer.status} {answer.body!r}"


# --- 1. at-least-once, idempotent outputs ----------------------------------------------------


@pytest.mark.parametrize(
    "service", ["fetcher", "tiler", "reassembler", "classifier", "model-server"]
)
def test_killed_service_loses_and_duplicates_nothing(
    stack: LocalStack,
    settings: Settings,
    store: ObjectStore,
    wait: Callable[..., Any],
    service: str,
) -> None:
    prefix = f"kill-{service}"
    progress = PROGRESS[service]
    model_retries = retries(stack, "tiler", "model_")
    sent = submit(settings, make_pointings(prefix, N_POINTINGS))
    assert len(sent) == N_POINTINGS

    # Kill once the service is under way, with work left: some outputs but not all.
    wait(lambda: len(progress(store, prefix)) >= KILL_AFTER, f"{service} to start on {prefix}-*")
    stack.process(service).kill()
    done_at_kill = len(progress(store, prefix))
    assert not stack.process(service).alive()
    assert done_at_kill < N_POINTINGS, f"{service} finished before it could be killed"
    time.sleep(2.0)
    stack.process(service).start()

    assert_exactly_once(store, settings, prefix, sent, wait)
    assert_services_healthy(stack)
    if service == "model-server":
        # The tiler noticed the outage, waited and retried (instead of dead-lettering).
        assert retries(stack, "tiler", "model_") > model_retries


# --- 4. poison messages -----------------------------------------------------------------------


def _send_raw(settings: Settings, topic: str, key: str, value: bytes) -> None:
    producer = make_producer(settings)
    try:
        producer.send(
            settings.topic(topic),
            key=key.encode(),
            value=value,
            headers=[("correlation-id", new_correlation_id().encode())],
        ).get(timeout=30)
    finally:
        producer.close(timeout=5)


def _send_cutout(settings: Settings, pointing: pb.Pointing, ref: pb.ObjectRef) -> None:
    cutout = pb.Cutout(
        pointing=pointing, fits=ref, ny=SIZE_PX, nx=SIZE_PX, source="test-reliability"
    )
    headers = headers_for(cutout, correlation_id=new_correlation_id(), producer="test")
    producer = make_producer(settings)
    try:
        producer.send(
            settings.topic(CUTOUTS),
            key=pointing.id.encode(),
            value=cutout.SerializeToString(),
            headers=list(headers),
        ).get(timeout=30)
    finally:
        producer.close(timeout=5)


def test_poison_messages_are_dead_lettered_and_the_stream_flows_on(
    stack: LocalStack, settings: Settings, store: ObjectStore, wait: Callable[..., Any]
) -> None:
    prefix = "poison"
    raw = b"this is not a protobuf message \x00\xff\xff"
    _send_raw(settings, POINTINGS, f"{prefix}-raw", raw)

    (south,) = make_pointings(f"{prefix}-south", 1, dec_deg=-40.0)
    submit(settings, [south])

    (corrupt,) = make_pointings(f"{prefix}-corrupt", 1)
    corrupt_ref = store.put_bytes(
        cutout_key(SURVEY, corrupt.id),
        b"SIMPLE  = garbage, not a FITS file" + bytes(range(256)) * 8,
        content_type="application/fits",
    )
    _send_cutout(settings, corrupt, corrupt_ref)

    (blank,) = make_pointings(f"{prefix}-blank", 1)
    hdu = SimulatedSkySource().fetch(
        CutoutRequest(
            blank.id,
            SURVEY,
            blank.ra_deg,
            blank.dec_deg,
            size_px=SIZE_PX,
            pixel_scale_arcsec=PIXEL_SCALE_ARCSEC,
        )
    )
    hdu.data = np.full_like(hdu.data, np.nan)
    blank_ref = store.put_bytes(
        cutout_key(SURVEY, blank.id), fits_bytes(hdu), content_type="application/fits"
    )
    _send_cutout(settings, blank, blank_ref)

    good = submit(settings, make_pointings(f"{prefix}-good", 12))

    expected = {
        f"{prefix}-raw": ("fetcher", "bad_message"),
        south.id: ("fetcher", "outside_footprint"),
        corrupt.id: ("tiler", "invalid_cutout"),
        blank.id: ("tiler", "invalid_cutout"),
    }

    def letters() -> dict[str, list[pb.DeadLetter]]:
        by_id: dict[str, list[pb.DeadLetter]] = {}
        for letter in dead_letters_of(settings, prefix):
            by_id.setdefault(letter.pointing_id, []).append(letter)
        return by_id if set(by_id) >= set(expected) else {}

    by_id = wait(letters, "the dead letters of the poison messages")
    assert set(by_id) == set(expected), "only the poison messages are dead-lettered"
    for pointing_id, (stage, reason) in expected.items():
        for letter in by_id[pointing_id]:
            assert (letter.stage, letter.reason) == (stage, reason), (pointing_id, letter)
            assert letter.detail
        copy = store.get_json(f"dead-letters/{pointing_id}/{stage}.json")
        assert (copy["stage"], copy["reason"]) == (stage, reason)
        assert not store.exists(result_key(pointing_id))

    # The original message travels with its letter, byte for byte.
    (raw_letter, *_) = by_id[f"{prefix}-raw"]
    assert raw_letter.value == raw
    assert raw_letter.source_topic == settings.topic(POINTINGS)
    (south_letter, *_) = by_id[south.id]
    decoded = pb.Pointing()
    decoded.ParseFromString(south_letter.value)
    assert decoded.id == south.id

    # Behind every poison message, on its partition, came good pointings (the partitions
    # are the same on every topic: same keys, same partitioner, same partition count).
    good_partitions = {s.partition for s in good.values()}
    for pointing_id, its_letters in by_id.items():
        assert its_letters[0].partition in good_partitions, pointing_id
    # Good pointings submitted after the poison complete.
    assert_exactly_once(store, settings, f"{prefix}-good", good, wait)
    assert_services_healthy(stack)


# --- 2 and 3. broker and object store outages -------------------------------------------------
# Last in the module: they disturb the shared stack the most.


@pytest.mark.parametrize("component", ["broker", "object-store"])
def test_outage_stalls_but_loses_nothing(
    stack: LocalStack,
    settings: Settings,
    store: ObjectStore,
    wait: Callable[..., Any],
    component: str,
) -> None:
    prefix = f"outage-{component}"
    sent = submit(settings, make_pointings(prefix, N_OUTAGE))

    # Mid-run: cutouts are being made, results are not all there.
    wait(lambda: len(cutout_ids(store, prefix)) >= KILL_AFTER, f"{prefix}-* under way")
    assert len(result_ids(store, prefix)) < N_OUTAGE, "the run ended before the outage"
    stack.process(component).stop()
    assert not stack.process(component).alive()
    time.sleep(5.0)
    stack.process(component).start()

    assert_exactly_once(store, settings, prefix, sent, wait)
    assert_services_healthy(stack)
