"""The object-store copy of a dead letter, next to the pointing's other objects.

The dead-letter topic is the record; the copy at ``dead-letters/<id>/<stage>.json``
lets ``radiounet status`` say why a pointing failed without reading Kafka.
"""

from __future__ import annotations

import logging

from radiounet.stream.errors import TransientError
from radiounet.stream.keys import dead_letter_key
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb

__all__ = ["copy_to_store"]

log = logging.getLogger(__name__)


def copy_to_store(store: ObjectStore, letter: pb.DeadLetter) -> None:
    """Write the letter's summary to the store; an unreachable store only logs (best effort)."""
    try:
        store.put_json(
            dead_letter_key(letter.stage, letter.pointing_id),
            {
                "stage": letter.stage,
                "reason": letter.reason,
                "detail": letter.detail,
                "topic": letter.source_topic,
                "partition": letter.partition,
                "offset": letter.offset,
                "failed_unix_ms": letter.failed_unix_ms,
            },
        )
    except TransientError as exc:
        log.warning("dead letter of %s not copied to the store: %s", letter.pointing_id, exc)
