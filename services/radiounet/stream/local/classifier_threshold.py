"""The decision threshold the local stack's classifier gets: the served version's calibrated one.

The stack's model server serves what its ``models.config`` policy picks from
the model repository (TF Serving's default: the latest version); the tiler
asks for the latest of those. When that version has a calibrated threshold
(``radiounet model calibrate``) the classifier is started with
``--threshold=<t>``; otherwise with no flag, and it applies the paper's. The
choice is made when the stack starts: a version added later is served, but
the classifier keeps the threshold it was started with until the stack restarts.
"""

from __future__ import annotations

from pathlib import Path

from radiounet.model.repository import DEFAULT_MODEL_NAME, ModelVersion, resolve_model
from radiounet.model.threshold import PAPER, DecisionThreshold, threshold_of
from radiounet.stream.model_server.config import parse_model_config, resolve_base_path
from radiounet.stream.model_server.versions import aspired_versions, list_versions

__all__ = ["classifier_args", "classifier_threshold", "served_version", "threshold_flag"]

MODELS_CONFIG = "models.config"


def served_version(
    model_repo: str | Path, model_name: str = DEFAULT_MODEL_NAME
) -> ModelVersion | None:
    """The version of ``model_name`` the stack's model server will serve (None if unknown).

    Unknown: no readable ``models.config``, the model is not configured, or no
    version folder with a SavedModel; the model server reports those itself.
    """
    config_path = Path(model_repo) / MODELS_CONFIG
    try:
        config = parse_model_config(config_path.read_text())
    except (OSError, ValueError):
        return None
    for model in config.model_config_list.config:
        if model.name != model_name:
            continue
        try:
            base = resolve_base_path(model.base_path, config_path.parent)  # as the server does
        except ValueError:
            return None
        versions = aspired_versions(model.model_version_policy, list_versions(base))
        if not versions:
            return None
        try:
            return resolve_model(base, version=versions[-1])
        except ValueError:
            return None
    return None


def classifier_threshold(
    model_repo: str | Path, model_name: str = DEFAULT_MODEL_NAME
) -> DecisionThreshold:
    """The served version's calibrated threshold, or the paper's."""
    model = served_version(model_repo, model_name)
    return DecisionThreshold.paper() if model is None else threshold_of(model)


def threshold_flag(threshold: DecisionThreshold) -> list[str]:
    """``["--threshold=<t>"]`` for a calibrated threshold; no flag for the paper's (the default)."""
    return [] if threshold.source == PAPER else [f"--threshold={threshold.value!r}"]


def classifier_args(model_repo: str | Path, model_name: str = DEFAULT_MODEL_NAME) -> list[str]:
    """The classifier's threshold flag for the version the stack will serve from ``model_repo``."""
    return threshold_flag(classifier_threshold(model_repo, model_name))
