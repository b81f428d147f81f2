"""Kafka clients (kafka-python) configured once for every service, and topic creation."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kafka import (
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from radiounet.stream.errors import TransientError
from radiounet.stream.settings import Settings
from radiounet.stream.topics import TOPICS

__all__ = ["consumer_lag", "ensure_topics", "make_consumer", "make_producer"]

log = logging.getLogger(__name__)


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer that waits for the broker's acknowledgement and retries sends."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "client_id": f"{settings.instance}-producer",
        "acks": "all",
        "retries": 5,
        "linger_ms": 2,
        "max_block_ms": 10_000,
        "request_timeout_ms": 15_000,
        # Tansu 0.6 answers DUPLICATE_SEQUENCE_NUMBER for a batch it lost when it stopped, and
        # the idempotent producer takes that as success: the message is gone. Without it a
        # retry may duplicate instead, which every stage tolerates (deterministic keys).
        "enable_idempotence": False,
    }
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaError as exc:
        raise TransientError(f"Kafka producer: {exc}", code="broker") from None


#: How long the broker may hold a fetch when no message is there. Brokers (Kafka and
#: Tansu) answer as soon as one arrives, so a longer wait adds no latency; it only cuts
#: the idle fetches that an idle stage costs the broker and itself (Kafka's default
#: is 500 ms).
FETCH_MAX_WAIT_MS = 2_000


def make_consumer(
    settings: Settings,
    group: str,
    topics: Iterable[str],
    *,
    listener: ConsumerRebalanceListener | None = None,
    **overrides: Any,
) -> Any:
    """A consumer in ``group`` with manual commits (after the side effects)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "group_id": group,
        "client_id": f"{settings.instance}-{group}",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.max_poll_records,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
        "session_timeout_ms": settings.session_timeout_ms,
        # Kafka's advice: at most a third of the session timeout.
        "heartbeat_interval_ms": max(500, settings.session_timeout_ms // 3),
        "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
        "request_timeout_ms": max(30_000, settings.session_timeout_ms + 5_000),
    }
    config.update(overrides)
    try:
        consumer = KafkaConsumer(**config)
    except KafkaError as exc:
        raise TransientError(f"Kafka consumer: {exc}", code="broker") from None
    consumer.subscribe(list(topics), listener=listener)
    return consumer


def ensure_topics(settings: Settings, names: Iterable[str] = TOPICS) -> None:
    """Create the pipeline's topics (prefixed) if they are missing.

    Raises
    ------
    TransientError
        If the broker cannot be reached, or topics are missing and
        ``settings.create_topics`` is off (the caller retries until they exist).
    """
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            client_id=f"{settings.instance}-admin",
            request_timeout_ms=15_000,
        )
    except KafkaError as exc:
        raise TransientError(f"Kafka admin: {exc}", code="broker") from None
    try:
        existing = set(admin.list_topics())
        missing = [settings.topic(n) for n in names if settings.topic(n) not in existing]
        if missing and not settings.create_topics:
            raise TransientError(
                f"topics {', '.join(missing)} do not exist yet (RADIOUNET_CREATE_TOPICS is off: "
                "waiting for whoever owns them, e.g. Strimzi's topic operator)",
                code="topics_missing",
            )
        for name in missing:
            try:
                topic = NewTopic(
                    name,
                    num_partitions=settings.topic_partitions,
                    replication_factor=settings.topic_replicas,
                )
                admin.create_topics([topic])
                log.info(
                    "created topic %s (%d partitions, %d replicas)",
                    name,
                    settings.topic_partitions,
                    settings.topic_replicas,
                )
            except TopicAlreadyExistsError:
                pass  # another service created it meanwhile
    except KafkaError as exc:
        raise TransientError(f"creating topics: {exc}", code="broker") from None
    finally:
        admin.close()


def consumer_lag(consumer: Any) -> dict[str, int]:
    """Messages behind the end of each assigned topic, summed over its partitions."""
    assigned: set[TopicPartition] = set(consumer.assignment())
    if not assigned:
        return {}
    ends = consumer.end_offsets(list(assigned))
    lag: dict[str, int] = {}
    for tp in assigned:
        position = consumer.position(tp)
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, int(ends.get(tp, position)) - int(position))
    return lag
