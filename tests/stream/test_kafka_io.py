"""Topic creation against the real broker: created, or waited for when an operator owns them."""

from __future__ import annotations

import dataclasses

import pytest
from kafka import KafkaAdminClient

from radiounet.stream.errors import TransientError
from radiounet.stream.kafka_io import ensure_topics
from radiounet.stream.topics import CUTOUTS, POINTINGS


def _topics(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_missing_topics_are_created_or_waited_for(stream_settings) -> None:
    owned = dataclasses.replace(stream_settings, create_topics=False)
    wanted = {stream_settings.topic(POINTINGS), stream_settings.topic(CUTOUTS)}
    with pytest.raises(TransientError, match=r"RADIOUNET_CREATE_TOPICS is off") as info:
        ensure_topics(owned, (POINTINGS, CUTOUTS))
    assert info.value.code == "topics_missing"
    assert stream_settings.topic(POINTINGS) in str(info.value)
    assert not wanted & _topics(stream_settings.kafka_bootstrap)  # nothing created

    ensure_topics(stream_settings, (POINTINGS, CUTOUTS))  # the default creates them
    assert wanted <= _topics(stream_settings.kafka_bootstrap)
    ensure_topics(owned, (POINTINGS, CUTOUTS))  # and now they exist: no wait
