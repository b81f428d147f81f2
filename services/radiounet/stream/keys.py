"""Deterministic object-store keys: a replayed message overwrites, never duplicates.

>>> cutout_key("lotss-dr2-lowres", "PSZ2_G055.59+31.85")
'cutouts/lotss-dr2-lowres/PSZ2_G055.59+31.85.fits'
>>> chunk_key("p1", "radio_unet", 2, first_tile=32, tile_count=16)
'tiles/p1/radio_unet-2/00032-00047.npy'
>>> pointing_id_from_name("PSZ2 G055.59+31.85")
'PSZ2_G055.59+31.85'
"""

from __future__ import annotations

import re

__all__ = [
    "POINTING_ID_PATTERN",
    "RESULTS_PREFIX",
    "chunk_key",
    "chunk_prefix",
    "cutout_key",
    "dead_letter_key",
    "map_key",
    "pointing_id_from_name",
    "quicklook_key",
    "result_key",
    "validate_pointing_id",
]

POINTING_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
RESULTS_PREFIX = "results/"


def validate_pointing_id(pointing_id: str) -> str:
    """Return ``pointing_id`` if it is safe as a key and object name, else raise ValueError."""
    if not isinstance(pointing_id, str) or not POINTING_ID_PATTERN.fullmatch(pointing_id):
        raise ValueError(
            "pointing id must be 1-128 characters of [A-Za-z0-9._+-] starting with a letter "
            f"or digit, got {pointing_id!r}"
        )
    return pointing_id


def pointing_id_from_name(name: str) -> str:
    """A valid pointing id from a catalogue name (spaces and other characters become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", name.strip()).strip("_.+-")
    return validate_pointing_id(cleaned[:128])


def cutout_key(survey: str, pointing_id: str) -> str:
    return f"cutouts/{survey}/{pointing_id}.fits"


def chunk_prefix(pointing_id: str, model_name: str, model_version: int) -> str:
    return f"tiles/{pointing_id}/{model_name}-{model_version}/"


def chunk_key(
    pointing_id: str, model_name: str, model_version: int, *, first_tile: int, tile_count: int
) -> str:
    last = first_tile + tile_count - 1
    return f"{chunk_prefix(pointing_id, model_name, model_version)}{first_tile:05d}-{last:05d}.npy"


def map_key(pointing_id: str) -> str:
    return f"maps/{pointing_id}/probability.fits"


def quicklook_key(pointing_id: str) -> str:
    return f"maps/{pointing_id}/quicklook.png"


def result_key(pointing_id: str) -> str:
    return f"{RESULTS_PREFIX}{pointing_id}.json"


def dead_letter_key(stage: str, pointing_id: str) -> str:
    return f"dead-letters/{pointing_id}/{stage}.json"
