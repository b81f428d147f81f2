"""The real servers through real clients: Kafka via Tansu, S3 via SeaweedFS, Prometheus."""

from __future__ import annotations

import io
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from minio import Minio
from prometheus_client import CollectorRegistry, Counter, start_http_server

from radiounet.stream.local.components import (
    WEED_RESERVED_BYTES,
    WEED_VOLUME_BYTES,
    Broker,
    DiskSpaceError,
    ObjectStore,
    Prometheus,
    PrometheusError,
    WeedPorts,
    weed_disk_problem,
)
from radiounet.stream.local.ports import free_port, port_is_free
from radiounet.stream.local.probes import http_ok, tcp_open

_WAIT_S = 60.0


def _eventually(check: Callable[[], Any], what: str, timeout: float = _WAIT_S) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for value in values:
            producer.send(topic, value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _consume(bootstrap: str, topic: str, group: str, count: int, *, commit: bool) -> list[bytes]:
    """Read ``count`` messages of ``topic`` as member of ``group``, then poll once more."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # Short timeouts: otherwise joining a group takes tens of seconds.
        max_poll_interval_ms=5000,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    try:
        got: list[bytes] = []

        def poll() -> bool:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in records)
            return len(got) >= count

        _eventually(poll, f"{count} messages on {topic} (got {len(got)})")
        # Anything beyond `count` would be a message the group should not see.
        for records in consumer.poll(timeout_ms=1000).values():
            got.extend(r.value for r in records)
        if commit:
            consumer.commit()
        return got
    finally:
        consumer.close()


def _get(client: Minio, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def _put(client: Minio, bucket: str, key: str, data: bytes) -> None:
    client.put_object(bucket, key, io.BytesIO(data), len(data))


# --- broker -----------------------------------------------------------------


def test_broker_produce_and_consume(broker: Broker, topic_prefix: str) -> None:
    topic = f"{topic_prefix}pointings"
    values = [f"pointing-{i}".encode() for i in range(5)]
    _produce(broker.bootstrap, topic, values)
    got = _consume(broker.bootstrap, topic, f"{topic_prefix}g", len(values), commit=False)
    assert sorted(got) == values


def test_broker_restart_and_crash_keep_messages_and_offsets(
    restartable_broker: Callable[[], Broker], topic_prefix: str
) -> None:
    broker = restartable_broker()
    bootstrap = broker.bootstrap
    topic, group = f"{topic_prefix}maps", f"{topic_prefix}classifier"
    first = [b"a0", b"a1", b"a2"]
    _produce(bootstrap, topic, first)
    assert sorted(_consume(bootstrap, topic, group, 3, commit=True)) == first

    broker.restart()
    assert broker.bootstrap == bootstrap
    second = [b"b0", b"b1"]
    _produce(bootstrap, topic, second)
    # Same group: the committed offsets survived, so only the new messages come.
    assert sorted(_consume(bootstrap, topic, group, 2, commit=True)) == second

    broker.kill()
    assert not broker.alive()
    broker.start()
    # A crash loses nothing either: a new group reads everything from the start.
    everything = _consume(bootstrap, topic, f"{topic_prefix}other", 5, commit=False)
    assert sorted(everything) == first + second


def test_broker_refuses_to_start_without_its_storage(
    restartable_broker: Callable[[], Broker], tmp_path: Path
) -> None:
    broker = restartable_broker()
    broker.storage.stop()
    orphan = Broker(tmp_path / "orphan", broker.storage)
    with pytest.raises(RuntimeError, match=r"broker storage .* is not running"):
        orphan.start()
    assert not orphan.alive()


def test_broker_outlives_the_project_object_store(
    broker: Broker, restartable_object_store: Callable[..., ObjectStore], topic_prefix: str
) -> None:
    # The broker keeps its data in its own store: stopping another one is harmless.
    project_store = restartable_object_store()
    project_store.stop()
    topic = f"{topic_prefix}cutouts"
    _produce(broker.bootstrap, topic, [b"x"])
    assert _consume(broker.bootstrap, topic, f"{topic_prefix}g", 1, commit=False) == [b"x"]


# --- object store -----------------------------------------------------------


def test_weed_disk_problem_at_the_boundary() -> None:
    gib = 2**30
    assert WEED_VOLUME_BYTES == WEED_RESERVED_BYTES == gib
    assert weed_disk_problem(4 * gib, 3) is None
    assert weed_disk_problem(2 * gib, 0) is None  # a store with no bucket yet needs one's
    assert weed_disk_problem(4 * gib - 1, 3) == (
        "4.0 GiB free: weed mini keeps about 1 GiB free and gives each bucket written a volume "
        "of up to 1 GiB, so it needs 4.0 GiB for 3 bucket(s)"
    )
    # Measured: 1 GiB free gave no writable volume at all.
    assert weed_disk_problem(gib, 1) is not None


def test_object_store_refuses_a_disk_too_full_for_its_buckets(tmp_path: Path) -> None:
    # More buckets than this disk has volume slots for: refused before weed starts.
    n = shutil.disk_usage(tmp_path).free // WEED_VOLUME_BYTES + 1
    store = ObjectStore(tmp_path / "store", buckets=[f"b{i}" for i in range(n)], stop_at_exit=True)
    with pytest.raises(
        DiskSpaceError, match=r"^object-store: .* GiB free: weed mini keeps about 1 GiB free"
    ):
        store.start()
    assert not store.alive()
    assert not (tmp_path / "store" / "object-store.log").exists()


def test_object_store_put_get_list(object_store: ObjectStore, bucket: str) -> None:
    client = object_store.client()
    _put(client, bucket, "cutouts/p1.fits", b"SIMPLE  =   T")
    _put(client, bucket, "cutouts/p2.fits", b"SIMPLE  =   F")
    assert _get(client, bucket, "cutouts/p1.fits") == b"SIMPLE  =   T"
    keys = sorted(o.object_name for o in client.list_objects(bucket, prefix="cutouts/"))
    assert keys == ["cutouts/p1.fits", "cutouts/p2.fits"]


def test_bucket_fixture_gives_each_test_an_empty_bucket(
    object_store: ObjectStore, bucket: str
) -> None:
    client = object_store.client()
    assert client.bucket_exists(bucket)
    assert list(client.list_objects(bucket, recursive=True)) == []


def test_remove_bucket_empties_and_deletes_it(object_store: ObjectStore) -> None:
    client = object_store.client()
    name = "t-remove-me"
    object_store.ensure_bucket(name)
    for key in ("a.fits", "maps/p1/probability.fits", "maps/p1/quicklook.png"):
        _put(client, name, key, b"x" * 100)
    object_store.remove_bucket(name)
    assert not client.bucket_exists(name)
    object_store.remove_bucket(name)  # gone already: nothing to do
    # The name is free again, and a new bucket of that name starts empty.
    object_store.ensure_bucket(name)
    assert list(client.list_objects(name, recursive=True)) == []
    object_store.remove_bucket(name)


def test_object_store_rejects_wrong_credentials(object_store: ObjectStore) -> None:
    from minio.error import S3Error

    intruder = Minio(object_store.s3_endpoint, "radiounet", "wrong-secret", secure=False)
    with pytest.raises(S3Error):
        intruder.list_buckets()


def test_object_store_data_survive_restart_and_crash(
    restartable_object_store: Callable[..., ObjectStore],
) -> None:
    store = restartable_object_store(buckets=["maps"])
    endpoint = store.s3_endpoint
    client = store.client()
    payload = uuid.uuid4().bytes * 1000
    _put(client, "maps", "m/1.fits", payload)

    store.restart()
    assert store.s3_endpoint == endpoint
    assert _get(client, "maps", "m/1.fits") == payload

    _put(client, "maps", "m/2.fits", b"after restart")
    store.kill()
    assert not tcp_open("127.0.0.1", store.ports.s3)
    store.start()
    assert _get(client, "maps", "m/1.fits") == payload
    assert _get(client, "maps", "m/2.fits") == b"after restart"


def test_object_store_uses_only_the_ports_it_was_given(object_store: ObjectStore) -> None:
    p = object_store.ports
    for port in p.as_dict().values():
        assert not port_is_free(port)
    # A second store (another stack) picks ports that clash with none of these.
    other = WeedPorts.pick()
    taken = {q + off for q in p.as_dict().values() for off in (0, WeedPorts.GRPC_OFFSET)}
    assert not taken & {q + off for q in other.as_dict().values() for off in (0, 10000)}


# --- Prometheus -------------------------------------------------------------


def test_prometheus_scrapes_a_target(prometheus: Prometheus) -> None:
    registry = CollectorRegistry()
    counter = Counter("radiounet_test_events", "events seen by the test", registry=registry)
    counter.inc(7)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    job = f"job{uuid.uuid4().hex[:8]}"
    try:
        prometheus.set_targets([(job, f"127.0.0.1:{port}")])
        assert prometheus.targets == ((job, f"127.0.0.1:{port}"),)

        def up() -> bool:
            return [s.value for s in prometheus.query(f'up{{job="{job}"}}')] == [1.0]

        _eventually(up, f"prometheus to scrape {job}")
        samples = prometheus.query(f'radiounet_test_events_total{{job="{job}"}}')
        assert [s.value for s in samples] == [7.0]
        assert samples[0].labels["instance"] == f"127.0.0.1:{port}"
    finally:
        prometheus.set_targets([])
        server.shutdown()
        server.server_close()
        thread.join()


def test_prometheus_scrapes_the_object_store(
    prometheus: Prometheus, object_store: ObjectStore
) -> None:
    job = f"weed{uuid.uuid4().hex[:8]}"
    try:
        prometheus.set_targets([(job, object_store.metrics_target)])
        _eventually(
            lambda: [s.value for s in prometheus.query(f'up{{job="{job}"}}')] == [1.0],
            "prometheus to scrape SeaweedFS",
        )
    finally:
        prometheus.set_targets([])


def test_prometheus_rejected_targets_leave_the_old_config(prometheus: Prometheus) -> None:
    before = prometheus.targets
    config = prometheus.config_path.read_text()
    with pytest.raises(PrometheusError, match="not a valid hostname"):
        prometheus.set_targets([("bad", "http://127.0.0.1:1")])
    assert prometheus.targets == before
    assert prometheus.config_path.read_text() == config
    assert http_ok(f"{prometheus.url}/-/ready")


def test_prometheus_query_errors_are_raised(prometheus: Prometheus) -> None:
    with pytest.raises(PrometheusError, match="parse error"):
        prometheus.query("up{")


def test_prometheus_scalar_query(prometheus: Prometheus) -> None:
    (sample,) = prometheus.query("1 + 1")
    assert sample.value == 2.0
    assert sample.labels == {}
