"""The loop every stage runs in: poll, handle, publish, commit; retry or dead-letter.

At-least-once: offsets are committed only after the outputs of a message are
acknowledged by the broker (and never past a message a stage still holds), so a
crash replays work instead of losing it; stages write deterministic object keys,
so a replay overwrites. Transient errors (broker, object store or model server
down) are retried with exponential back-off while the consumer stays in its
group; permanent ones go to the dead-letter topic with the original bytes.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf.message import Message
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from radiounet.stream import telemetry as tm
from radiounet.stream.dead_letters import copy_to_store
from radiounet.stream.errors import PermanentError, StageError, TransientError
from radiounet.stream.kafka_io import consumer_lag, ensure_topics, make_consumer, make_producer
from radiounet.stream.keys import POINTING_ID_PATTERN
from radiounet.stream.messages import (
    CORRELATION_ID,
    Outgoing,
    decode,
    header,
    headers_for,
    new_correlation_id,
    now_ms,
)
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.offsets import OffsetTracker
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.settings import Settings
from radiounet.stream.topics import DEAD_LETTERS

__all__ = ["Context", "Handled", "RecordId", "Stage", "StageRunner"]

log = logging.getLogger(__name__)

LAG_EVERY_S = 10.0


@dataclass(frozen=True)
class RecordId:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Context:
    """What a handler knows about the message besides its content."""

    record: RecordId
    key: str | None
    correlation_id: str
    producer: str

    def emit(self, topic: str, key: str, message: Message) -> Outgoing:
        """An outgoing message that carries this message's correlation id."""
        headers = headers_for(message, correlation_id=self.correlation_id, producer=self.producer)
        return Outgoing(topic, key, message, headers)


@dataclass(frozen=True)
class Handled:
    """A handler's answer: what to publish, whether to hold this message, what to release."""

    outputs: Sequence[Outgoing] = ()
    hold: bool = False
    release: Sequence[RecordId] = field(default_factory=tuple)


class Stage(Protocol):
    """A stage: consumes one topic and handles one decoded message at a time.

    A stage may also have ``prefetch(message)``: called with the next polled
    message before the current one is handled, to start pure work early.
    """

    name: str
    input_topic: str

    def handle(self, message: Any, ctx: Context) -> Handled: ...

    def partitions_revoked(self, partitions: set[tuple[str, int]]) -> None: ...


class _Listener(ConsumerRebalanceListener):
    def __init__(self, runner: StageRunner) -> None:
        self.runner = runner

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.runner._revoked({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


class StageRunner:
    """Runs ``stage`` until :meth:`stop` (or SIGTERM/SIGINT when run in the main thread)."""

    def __init__(
        self,
        stage: Stage,
        settings: Settings,
        *,
        store: ObjectStore | None = None,
        health: tm.Health | None = None,
        group: str | None = None,
    ) -> None:
        self.stage = stage
        self.settings = settings
        self.store = store
        self.health = health or tm.Health()
        self.group = group or f"radiounet-{stage.name}"
        self.tracker = OffsetTracker()
        self._stop = threading.Event()
        self._consumer: Any = None
        self._producer: Any = None
        self._assigned: set[tuple[str, int]] = set()
        self._committed: dict[tuple[str, int], int] = {}
        self._last_lag = 0.0
        self._input = settings.topic(stage.input_topic)
        tm.init_stage(
            stage.name,
            input_topic=stage.input_topic,
            output_topics=tuple(getattr(stage, "output_topics", ())),
            dead_letter_reasons=tuple(getattr(stage, "dead_letter_reasons", ())),
            retry_reasons=tuple(getattr(stage, "retry_reasons", ())),
        )

    # --- life cycle ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        try:
            self._start()
            self.health.set_ready(True, stage=self.stage.name, group=self.group)
            while not self._stop.is_set():
                self.health.beat()
                self._poll_once()
        finally:
            self.health.set_ready(False)
            self._close()

    def _start(self) -> None:
        self._retrying("creating topics", lambda: ensure_topics(self.settings))
        if self.store is not None:
            self._retrying("creating the bucket", self.store.ensure_bucket)
        self._producer = self._retrying(
            "connecting the producer", lambda: make_producer(self.settings)
        )
        self._consumer = self._retrying(
            "connecting the consumer",
            lambda: make_consumer(
                self.settings, self.group, [self._input], listener=_Listener(self)
            ),
        )

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._commit()
            finally:
                self._consumer.close(autocommit=False)
        if self._producer is not None:
            self._producer.close(timeout=5)

    def _retrying(self, what: str, fn: Any) -> Any:
        attempt = 0
        while True:
            try:
                return fn()
            except (TransientError, KafkaError) as exc:
                if self._stop.is_set():
                    raise
                code = exc.code if isinstance(exc, StageError) else "broker"
                tm.RETRIES.labels(self.stage.name, code).inc()
                log.warning("%s failed (%s); retrying", what, exc)
                # Waiting on a dependency is not a hang: stay live (not ready) meanwhile.
                self.health.beat()
                self._sleep(self._delay(attempt))
                attempt += 1

    # --- the loop --------------------------------------------------------------------------

    def _poll_once(self) -> None:
        try:
            batch = self._consumer.poll(timeout_ms=500)
        except KafkaError as exc:
            tm.RETRIES.labels(self.stage.name, "broker").inc()
            log.warning("poll failed (%s); retrying", exc)
            self._sleep(self._delay(0))
            return
        self._assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        records = [record for part in batch.values() for record in part]
        for i, record in enumerate(records):
            if self._stop.is_set():
                break
            if (record.topic, record.partition) not in self._assigned:
                continue  # revoked while this batch was handled: its new owner replays it
            if i + 1 < len(records):
                self._look_ahead(records[i + 1])
            self._process(record)
        self._commit()
        self._update_lag()

    def _look_ahead(self, record: Any) -> None:
        """Let a stage with a ``prefetch`` method start on the next record meanwhile."""
        prefetch = getattr(self.stage, "prefetch", None)
        if prefetch is None:
            return
        try:
            prefetch(decode(self.stage.input_topic, record.value))
        except Exception as exc:  # best effort: handling the record meets any real problem
            log.debug("%s: no prefetch of %s: %s", self.stage.name, record.offset, exc)

    def _process(self, record: Any) -> None:
        rid = RecordId(record.topic, record.partition, record.offset)
        self.tracker.add(rid.topic, rid.partition, rid.offset)
        key = record.key.decode("utf-8", errors="replace") if record.key else None
        ctx = Context(
            rid,
            key,
            header(record.headers, CORRELATION_ID) or new_correlation_id(),
            f"{self.stage.name}/{self.settings.instance}",
        )
        tm.MESSAGES_CONSUMED.labels(self.stage.name, self.stage.input_topic).inc()
        tm.IN_FLIGHT.labels(self.stage.name).inc()
        started = time.perf_counter()
        message = None
        attempt = 0
        try:
            while True:
                try:
                    message = decode(self.stage.input_topic, record.value)
                    handled = self.stage.handle(message, ctx)
                    self._publish(handled.outputs)
                    break
                except TransientError as exc:
                    tm.RETRIES.labels(self.stage.name, exc.code).inc()
                    log.warning("%s %s: %s; retrying", self.stage.name, _where(rid, key), exc)
                    if not self._wait_keeping_membership(self._delay(attempt), rid):
                        return  # stopping or partition revoked: left uncommitted, replayed later
                    attempt += 1
                except PermanentError as exc:
                    handled = self._give_up(record, ctx, exc, message)
                    break
                except Exception as exc:
                    log.exception("%s %s: unexpected error", self.stage.name, _where(rid, key))
                    error = PermanentError(f"{type(exc).__name__}: {exc}", code="internal_error")
                    handled = self._give_up(record, ctx, error, message)
                    break
        finally:
            tm.IN_FLIGHT.labels(self.stage.name).dec()
        tm.STAGE_SECONDS.labels(self.stage.name).observe(time.perf_counter() - started)
        if not handled.hold:
            self.tracker.done(rid.topic, rid.partition, rid.offset)
        for other in handled.release:
            self.tracker.done(other.topic, other.partition, other.offset)
        # The fetcher's input is the pointing itself; every later message carries it.
        pointing = (
            message if isinstance(message, pb.Pointing) else getattr(message, "pointing", None)
        )
        if handled.outputs and pointing is not None and pointing.submitted_unix_ms > 0:
            latency = max(0.0, (now_ms() - pointing.submitted_unix_ms) / 1000)
            tm.POINTING_SECONDS.labels(self.stage.name).observe(latency)

    def _publish(self, outputs: Sequence[Outgoing]) -> None:
        futures = [
            self._producer.send(
                self.settings.topic(out.topic),
                key=out.key.encode(),
                value=out.message.SerializeToString(),
                headers=list(out.headers),
            )
            for out in outputs
        ]
        try:
            acks = [future.get(timeout=30) for future in futures]
        except KafkaError as exc:
            raise TransientError(f"publishing: {exc}", code="broker") from None
        if any(ack.offset < 0 for ack in acks):
            # An "ack" without an offset is not a stored message: publish again.
            raise TransientError(
                "publishing: the broker acknowledged without an offset", code="broker"
            )
        for out in outputs:
            tm.MESSAGES_PRODUCED.labels(self.stage.name, out.topic).inc()

    def _give_up(self, record: Any, ctx: Context, error: PermanentError, message: Any) -> Handled:
        pointing_id = ""
        if message is not None and getattr(message, "pointing", None) is not None:
            pointing_id = message.pointing.id
        elif message is not None and hasattr(message, "id"):
            pointing_id = message.id
        elif ctx.key and POINTING_ID_PATTERN.fullmatch(ctx.key):
            pointing_id = ctx.key
        letter = pb.DeadLetter(
            stage=self.stage.name,
            reason=error.code,
            detail=error.detail,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key or b"",
            value=record.value or b"",
            headers=[pb.Header(key=k, value=v or b"") for k, v in record.headers or ()],
            producer=ctx.producer,
            failed_unix_ms=now_ms(),
            pointing_id=pointing_id,
        )
        log.error(
            "%s %s -> dead letter [%s] %s",
            self.stage.name,
            _where(ctx.record, ctx.key),
            error.code,
            error.detail,
        )
        out = ctx.emit(DEAD_LETTERS, ctx.key or pointing_id or "", letter)
        self._retrying("publishing a dead letter", lambda: self._publish([out]))
        tm.DEAD_LETTERS.labels(self.stage.name, error.code).inc()
        if self.store is not None and pointing_id:
            copy_to_store(self.store, letter)
        return Handled()

    # --- offsets ---------------------------------------------------------------------------

    def _commit(self) -> None:
        if self._consumer is None:
            return
        offsets = {
            TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
            for (t, p), o in self.tracker.committable().items()
            if (t, p) in self._assigned and self._committed.get((t, p)) != o
        }
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except CommitFailedError as exc:
            log.warning("commit refused after a rebalance (%s); the messages will be replayed", exc)
            return
        except KafkaError as exc:
            log.warning("commit failed (%s); will retry", exc)
            return
        for tp, om in offsets.items():
            self._committed[(tp.topic, tp.partition)] = om.offset

    def _revoked(self, partitions: set[tuple[str, int]]) -> None:
        self._commit()
        self.tracker.forget(partitions)
        for tp in partitions:
            self._committed.pop(tp, None)
        self._assigned -= partitions
        revoke = getattr(self.stage, "partitions_revoked", None)
        if revoke is not None:
            revoke(partitions)

    def _update_lag(self) -> None:
        if time.monotonic() - self._last_lag < LAG_EVERY_S:
            return
        self._last_lag = time.monotonic()
        try:
            lags = consumer_lag(self._consumer)
        except KafkaError:
            return
        # Set even when this member owns no partition of the topic any more: a stale
        # value would be added into the group's lag by every dashboard.
        tm.CONSUMER_LAG.labels(self.group, self.stage.input_topic).set(lags.get(self._input, 0))

    # --- waiting ---------------------------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        base = min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** min(attempt, 20))
        return base * random.uniform(0.5, 1.0)  # jitter: replicas do not retry in lock step

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.health.beat()
            self._stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))

    def _wait_keeping_membership(self, seconds: float, rid: RecordId) -> bool:
        """Back off while polling paused partitions, so the group does not evict us.

        Returns False if we are stopping or lost the record's partition meanwhile.
        """
        assignment = list(self._consumer.assignment())
        self._consumer.pause(*assignment)
        try:
            deadline = time.monotonic() + seconds
            while not self._stop.is_set() and time.monotonic() < deadline:
                self.health.beat()
                try:
                    wait_ms = int(max(0.0, min(0.5, deadline - time.monotonic())) * 1000)
                    stray = self._consumer.poll(timeout_ms=wait_ms)
                except KafkaError:
                    self._stop.wait(0.5)
                    stray = {}
                # Partitions assigned by a rebalance meanwhile are not paused: rewind what
                # they returned, or it would be skipped.
                for tp, records in stray.items():
                    self._consumer.seek(tp, records[0].offset)
                    self._consumer.pause(tp)
                    assignment.append(tp)
                self._assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        finally:
            self._consumer.resume(*[tp for tp in assignment if tp in self._consumer.assignment()])
        return not self._stop.is_set() and (rid.topic, rid.partition) in self._assigned


def _where(rid: RecordId, key: str | None) -> str:
    return f"{rid.topic}[{rid.partition}]@{rid.offset} key={key!r}"
