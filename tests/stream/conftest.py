"""Real servers on loopback for the streaming tests: broker, object store, Prometheus.

Session-scoped servers start only when a test first asks for them and are
shared; tests stay apart through unique names (``bucket``, ``topic_prefix``).
Tests that stop or kill a server get private ones from the ``restartable_*``
factories, stopped when the test ends.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radiounet.stream.local.components import Broker, ObjectStore, Prometheus

# kafka-python 3.0 builds its protocol classes at import time with a deprecated
# importlib.resources call; under `filterwarnings = error` the first import
# would fail, so import it once here with that warning silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka  # noqa: F401

ObjectStoreFactory = Callable[..., ObjectStore]
BrokerFactory = Callable[[], Broker]


def _stop_all(components: list[ObjectStore | Broker | Prometheus]) -> None:
    # Last started first: a broker before its storage.
    for component in reversed(components):
        component.stop()


@pytest.fixture
def bucket(object_store: ObjectStore) -> Iterator[str]:
    """A fresh, empty bucket in ``object_store``, unique to this test (removed after it)."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    object_store.ensure_bucket(name)
    yield name
    # Each bucket holds volumes of its own: a suite that kept them all would run out.
    object_store.remove_bucket(name)


@pytest.fixture(scope="session")
def broker_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """The object store behind ``broker``, separate from ``object_store``."""
    store = ObjectStore(tmp_path_factory.mktemp("broker-storage"), role="broker-storage")
    try:
        store.start()
        yield store
    finally:
        store.stop()


@pytest.fixture(scope="session")
def broker(
    tmp_path_factory: pytest.TempPathFactory, broker_storage: ObjectStore
) -> Iterator[Broker]:
    """The shared Kafka broker (Tansu); use ``topic_prefix`` to keep topics apart."""
    broker = Broker(tmp_path_factory.mktemp("broker"), broker_storage)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """The shared Prometheus (2 s scrapes, no targets until ``set_targets``)."""
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"))
    try:
        prom.start()
        yield prom
    finally:
        prom.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A topic-name prefix unique to this test (``t<8 hex>.``)."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def restartable_object_store(tmp_path: Path) -> Iterator[ObjectStoreFactory]:
    """Factory of private, started object stores this test may stop, kill and restart.

    Keyword arguments go to :class:`ObjectStore`; all are stopped at the end.
    """
    made: list[ObjectStore | Broker | Prometheus] = []

    def make(**kwargs: Any) -> ObjectStore:
        store = ObjectStore(tmp_path / f"object-store-{len(made)}", **kwargs)
        made.append(store)
        store.start()
        return store

    try:
        yield make
    finally:
        _stop_all(made)


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[BrokerFactory]:
    """Factory of private, started brokers, each on its own storage (``broker.storage``).

    The test may stop, kill and restart them; all are stopped at the end.
    """
    made: list[ObjectStore | Broker | Prometheus] = []

    def make() -> Broker:
        base = tmp_path / f"broker-{len(made)}"
        storage = ObjectStore(base / "storage", role="broker-storage")
        made.append(storage)
        storage.start()
        broker = Broker(base / "broker", storage)
        made.append(broker)
        broker.start()
        return broker

    try:
        yield make
    finally:
        _stop_all(made)


# --- pipeline-level helpers -------------------------------------------------------------------


@pytest.fixture
def store_client(object_store: ObjectStore) -> Iterator[Callable[..., Any]]:
    """``store_client(bucket, **overrides)``: the services' S3 client of ``object_store``.

    ``overrides`` replace its ``access_key`` / ``secret_key`` (e.g. wrong ones).
    The clients' connections are closed when the test ends.
    """
    from radiounet.stream.object_store import ObjectStore as StoreClient

    made: list[StoreClient] = []

    def make(bucket: str, **overrides: str) -> StoreClient:
        keys = {
            "access_key": object_store.credentials.access_key,
            "secret_key": object_store.credentials.secret_key,
            **overrides,
        }
        made.append(StoreClient(object_store.s3_endpoint, bucket=bucket, **keys))
        return made[-1]

    yield make
    for client in made:
        client.client._http.clear()


@pytest.fixture
def stream_settings(broker: Broker, object_store: ObjectStore, bucket: str, topic_prefix: str):
    """Settings of a pipeline on the shared broker/store, private topics and bucket."""
    from radiounet.stream.settings import Settings

    return Settings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=topic_prefix,
        topic_partitions=3,
        s3_endpoint=object_store.s3_endpoint,
        s3_access_key=object_store.credentials.access_key,
        s3_secret_key=object_store.credentials.secret_key,
        bucket=bucket,
        instance="test",
        max_poll_interval_ms=10_000,
        session_timeout_ms=6_000,
        retry_initial_s=0.05,
        retry_max_s=0.5,
    )


@pytest.fixture
def store(object_store: ObjectStore, bucket: str) -> Iterator[Any]:
    """A client (the pipeline's own ObjectStore) of a fresh, empty bucket of the test store."""
    from radiounet.stream.object_store import ObjectStore as StoreClient

    client = StoreClient(
        object_store.s3_endpoint,
        access_key=object_store.credentials.access_key,
        secret_key=object_store.credentials.secret_key,
        bucket=bucket,
    )
    yield client
    client.client._http.clear()  # close pooled connections: no ResourceWarning at exit


class TopicIO:
    """Produce raw messages to, and read everything from, the test's topics."""

    def __init__(self, settings: Any) -> None:
        from radiounet.stream.kafka_io import ensure_topics, make_producer

        self.settings = settings
        ensure_topics(settings)
        self.producer = make_producer(settings)

    def send(self, topic: str, key: str | None, value: bytes, headers: Any = ()) -> None:
        self.producer.send(
            self.settings.topic(topic),
            key=None if key is None else key.encode(),
            value=value,
            headers=list(headers),
        ).get(timeout=30)

    def read(self, topic: str, n: int, *, timeout: float = 60.0) -> list[Any]:
        """At least ``n`` records of ``topic`` from the beginning (fails after ``timeout`` s)."""
        import time

        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            name = self.settings.topic(topic)
            parts = consumer.partitions_for_topic(name) or set()
            consumer.assign([TopicPartition(name, p) for p in parts])
            consumer.seek_to_beginning()
            out: list[Any] = []
            deadline = time.monotonic() + timeout
            while len(out) < n and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    out.extend(records)
            assert len(out) >= n, f"{topic}: got {len(out)} records, expected {n}"
            return out
        finally:
            consumer.close()

    def close(self) -> None:
        self.producer.close(timeout=5)


@pytest.fixture
def topics(stream_settings: Any) -> Iterator[TopicIO]:
    io = TopicIO(stream_settings)
    try:
        yield io
    finally:
        io.close()


class RunningStage:
    """A StageRunner on a background thread; ``stop()`` joins it."""

    def __init__(self, stage: Any, settings: Any, store: Any) -> None:
        import threading

        from radiounet.stream.runner import StageRunner

        self.runner = StageRunner(stage, settings, store=store)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "stage did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def run_stage() -> Iterator[Callable[..., RunningStage]]:
    """Start stages in threads: ``run_stage(stage, settings, store)``; stopped at the end."""
    started: list[RunningStage] = []

    def start(stage: Any, settings: Any, store: Any) -> RunningStage:
        running = RunningStage(stage, settings, store)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            if running.thread.is_alive():
                running.stop()
