"""Topic names, in data-flow order, and the message type each one carries."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from google.protobuf.message import Message

from radiounet.stream.proto import pipeline_pb2 as pb

__all__ = [
    "CUTOUTS",
    "DEAD_LETTERS",
    "DETECTIONS",
    "MAPS",
    "MESSAGE_TYPES",
    "POINTINGS",
    "TILE_CHUNKS",
    "TOPICS",
]

POINTINGS = "pointings"
CUTOUTS = "cutouts"
TILE_CHUNKS = "tile-chunks"
MAPS = "maps"
DETECTIONS = "detections"
DEAD_LETTERS = "dead-letters"

#: Topic (without prefix) -> message class.
MESSAGE_TYPES: Mapping[str, type[Message]] = MappingProxyType(
    {
        POINTINGS: pb.Pointing,
        CUTOUTS: pb.Cutout,
        TILE_CHUNKS: pb.TileChunk,
        MAPS: pb.ProbabilityMap,
        DETECTIONS: pb.Detection,
        DEAD_LETTERS: pb.DeadLetter,
    }
)

TOPICS = tuple(MESSAGE_TYPES)
