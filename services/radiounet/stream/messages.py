"""The one edge where bytes become messages: encoding, decoding, headers, validation.

Messages are keyed by pointing id; headers carry the correlation id (set once by
the submitter), the message type and the producer.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from radiounet.stream.errors import PermanentError
from radiounet.stream.keys import validate_pointing_id
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.topics import MESSAGE_TYPES

__all__ = [
    "CONTENT_TYPE",
    "CORRELATION_ID",
    "DEFAULT_PIXEL_SCALE_ARCSEC",
    "DEFAULT_SIZE_PX",
    "DEFAULT_SURVEY",
    "MAX_SIZE_PX",
    "MIN_SIZE_PX",
    "PRODUCER",
    "Outgoing",
    "cluster_has_size",
    "content_type",
    "decode",
    "header",
    "headers_for",
    "new_correlation_id",
    "now_ms",
    "validate_pointing",
]

CORRELATION_ID = "correlation-id"
CONTENT_TYPE = "content-type"
PRODUCER = "producer"

DEFAULT_SURVEY = "lotss-dr2-lowres"
DEFAULT_SIZE_PX = 960
DEFAULT_PIXEL_SCALE_ARCSEC = 4.5
MIN_SIZE_PX = 32
MAX_SIZE_PX = 8192

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class Outgoing:
    """A message a stage wants published (to ``topic``, without the prefix)."""

    topic: str
    key: str
    message: Message
    headers: tuple[tuple[str, bytes], ...]


def now_ms() -> int:
    return int(time.time() * 1000)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def content_type(message: Message) -> str:
    return f"application/x-protobuf; messageType={message.DESCRIPTOR.full_name}"


def header(headers: Iterable[tuple[str, bytes | None]] | None, name: str) -> str | None:
    """The first value of header ``name`` as text, or None."""
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


def headers_for(
    message: Message, *, correlation_id: str | None, producer: str
) -> tuple[tuple[str, bytes], ...]:
    """Headers of an outgoing message; a missing correlation id gets a new one."""
    return (
        (CORRELATION_ID, (correlation_id or new_correlation_id()).encode()),
        (CONTENT_TYPE, content_type(message).encode()),
        (PRODUCER, producer.encode()),
    )


def decode(topic: str, value: bytes | None) -> Message:
    """Parse ``value`` as the message type of ``topic`` (unprefixed name).

    Raises
    ------
    PermanentError
        ``bad_message`` if the bytes are empty or not that protobuf message.
    """
    cls = MESSAGE_TYPES[topic]
    if not value:
        raise PermanentError(f"empty message on {topic}", code="bad_message")
    msg = cls()
    try:
        msg.ParseFromString(value)
    except DecodeError as exc:
        raise PermanentError(
            f"not a {cls.DESCRIPTOR.full_name} protobuf message ({exc})", code="bad_message"
        ) from None
    return msg


def cluster_has_size(pointing: pb.Pointing) -> bool:
    """True when the pointing's cluster gives a size (z, M500 or theta500), so R can be measured.

    A cluster with only a name is valid: its pointing is segmented, not classified.
    """
    c = pointing.cluster
    return pointing.HasField("cluster") and any(
        c.HasField(f) for f in ("z", "m500_1e14", "theta500_arcmin")
    )


def validate_pointing(pointing: pb.Pointing) -> pb.Pointing:
    """A copy of ``pointing`` with defaults filled in, or a precise PermanentError.

    Raises
    ------
    PermanentError
        ``invalid_pointing`` for a bad id, coordinates, size, scale or cluster.
    """

    def bad(detail: str) -> PermanentError:
        label = pointing.id or "<no id>"
        return PermanentError(f"pointing {label}: {detail}", code="invalid_pointing")

    try:
        validate_pointing_id(pointing.id)
    except ValueError as exc:
        raise bad(str(exc)) from None
    out = pb.Pointing()
    out.CopyFrom(pointing)
    if not (math.isfinite(out.ra_deg) and 0.0 <= out.ra_deg < 360.0):
        raise bad(f"RA must be in [0, 360) degrees, got {out.ra_deg!r}")
    if not (math.isfinite(out.dec_deg) and -90.0 <= out.dec_deg <= 90.0):
        raise bad(f"Dec must be in [-90, 90] degrees, got {out.dec_deg!r}")
    out.survey = out.survey or DEFAULT_SURVEY
    out.size_px = out.size_px or DEFAULT_SIZE_PX
    if not MIN_SIZE_PX <= out.size_px <= MAX_SIZE_PX:
        raise bad(f"cutout size must be {MIN_SIZE_PX}..{MAX_SIZE_PX} pixels, got {out.size_px}")
    out.pixel_scale_arcsec = out.pixel_scale_arcsec or DEFAULT_PIXEL_SCALE_ARCSEC
    if not (math.isfinite(out.pixel_scale_arcsec) and out.pixel_scale_arcsec > 0):
        raise bad(f"pixel scale must be a positive number, got {out.pixel_scale_arcsec!r}")
    if out.HasField("cluster"):
        c = out.cluster
        has_theta = c.HasField("theta500_arcmin")
        if has_theta and not (math.isfinite(c.theta500_arcmin) and c.theta500_arcmin > 0):
            raise bad(f"theta500 must be positive, got {c.theta500_arcmin!r}")
        partial = c.HasField("z") != c.HasField("m500_1e14")
        if not has_theta and partial:
            raise bad("the cluster needs theta500_arcmin, or both z and m500_1e14")
        if c.HasField("z") and not (math.isfinite(c.z) and c.z > 0):
            raise bad(f"z must be positive, got {c.z!r}")
        if c.HasField("m500_1e14") and not (math.isfinite(c.m500_1e14) and c.m500_1e14 > 0):
            raise bad(f"M500 must be positive, got {c.m500_1e14!r}")
    return out
