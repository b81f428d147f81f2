"""Which decision threshold on R applies, and why: given, calibrated for a version, or the paper's.

A model version's threshold is calibrated by ``radiounet model calibrate``
and kept in its metadata (``decision_threshold``); a version without one gets
the paper's 0.015, which belongs to the paper's model. A probability map names
the version that made it (``RUMODEL``/``RUMODVER``), so its threshold can be
looked up later in the model repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.detection import DEFAULT_THRESHOLD
from .repository import ModelVersion, resolve_model

__all__ = [
    "GIVEN",
    "PAPER",
    "DecisionThreshold",
    "threshold_for_map",
    "threshold_of",
]

PAPER = "paper (Stuardi et al. 2024)"
GIVEN = "given"


@dataclass(frozen=True)
class DecisionThreshold:
    """A threshold on R and where it came from (``source``, said to the user as it is)."""

    value: float
    source: str

    @classmethod
    def paper(cls, reason: str = "") -> DecisionThreshold:
        """The paper's 0.015; ``reason`` says why it applies (appended to the source)."""
        return cls(DEFAULT_THRESHOLD, f"{PAPER}: {reason}" if reason else PAPER)

    @classmethod
    def given(cls, value: float) -> DecisionThreshold:
        return cls(float(value), GIVEN)


def threshold_of(model: ModelVersion) -> DecisionThreshold:
    """The version's calibrated threshold, or the paper's when it has none.

    Examples
    --------
    >>> from radiounet.model.repository import ModelMetadata
    >>> v = ModelVersion("radio_unet", 5, Path("."), ModelMetadata(16, decision_threshold=0.02))
    >>> threshold_of(v)
    DecisionThreshold(value=0.02, source='calibrated for radio_unet/5')
    """
    t = model.metadata.decision_threshold
    if t is None:
        return DecisionThreshold.paper()
    return DecisionThreshold(float(t), f"calibrated for {model.name}/{model.version}")


def threshold_for_map(
    header: Mapping[str, Any], repo: str | Path | None = None
) -> tuple[DecisionThreshold, str | None]:
    """The threshold for a map made by the version its header names, and a note if not found.

    The version is looked up in ``repo`` (default: the shipped repository).
    When the header names no version, the repository lacks it, or the version
    found there is not the one that made the map (another U-Net width), the
    paper's threshold applies and the note says why (None when nothing is amiss).
    """
    name, version = header.get("RUMODEL"), header.get("RUMODVER")
    if not isinstance(name, str) or not name or not isinstance(version, int):
        return DecisionThreshold.paper(), "the map names no model version (RUMODEL/RUMODVER)"
    try:
        model = resolve_model(repo, name=name, version=version)
    except ValueError as exc:
        return DecisionThreshold.paper(), f"model {name}/{version} not found: {exc}"
    if model.name != name:
        return DecisionThreshold.paper(), f"{model.path} is model {model.name!r}, not {name!r}"
    width = header.get("RUBASEF")
    if isinstance(width, int) and width != model.metadata.base_filters:
        return DecisionThreshold.paper(), (
            f"{model.path} has base width {model.metadata.base_filters}, the map's model "
            f"{width}: not the version that made the map"
        )
    return threshold_of(model), None
