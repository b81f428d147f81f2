"""The local stack's classifier thresholds: each map's model version's, from the stack's repository.

The stack's model server serves what its ``models.config`` policy picks from
the model repository (TF Serving's default: the latest version). The
classifier is started with ``--model-repo=<folder>``, the folder holding the
served model's version folders, so it applies to each map the calibrated
threshold of the version that made it (``radiounet model calibrate``), read
per map: a version added or recalibrated while the stack runs is judged by
its own. :func:`classifier_threshold` says which threshold the version served
now has, for ``radiounet stack status``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radiounet.model.repository import DEFAULT_MODEL_NAME, ModelVersion, resolve_model
from radiounet.model.threshold import DecisionThreshold, threshold_of
from radiounet.stream.model_server.config import parse_model_config, resolve_base_path
from radiounet.stream.model_server.versions import aspired_versions, list_versions

__all__ = ["classifier_args", "classifier_threshold", "served_model_folder", "served_version"]

MODELS_CONFIG = "models.config"


def _served_model(model_repo: str | Path, model_name: str) -> tuple[Any, Path] | None:
    """``model_name``'s ``models.config`` entry and base folder, as the server resolves them."""
    config_path = Path(model_repo) / MODELS_CONFIG
    try:
        config = parse_model_config(config_path.read_text())
    except (OSError, ValueError):
        return None
    for model in config.model_config_list.config:
        if model.name == model_name:
            try:
                return model, resolve_base_path(model.base_path, config_path.parent)
            except ValueError:
                return None
    return None


def served_model_folder(
    model_repo: str | Path, model_name: str = DEFAULT_MODEL_NAME
) -> Path | None:
    """The folder of ``model_name``'s version folders (None: no readable config names it)."""
    served = _served_model(model_repo, model_name)
    return None if served is None else served[1]


def served_version(
    model_repo: str | Path, model_name: str = DEFAULT_MODEL_NAME
) -> ModelVersion | None:
    """The version of ``model_name`` the stack's model server will serve (None if unknown).

    Unknown: no readable ``models.config``, the model is not configured, or no
    version folder with a SavedModel; the model server reports those itself.
    """
    served = _served_model(model_repo, model_name)
    if served is None:
        return None
    model, base = served
    versions = aspired_versions(model.model_version_policy, list_versions(base))
    if not versions:
        return None
    try:
        return resolve_model(base, version=versions[-1])
    except ValueError:
        return None


def classifier_threshold(
    model_repo: str | Path, model_name: str = DEFAULT_MODEL_NAME
) -> DecisionThreshold:
    """The served version's calibrated threshold, or the paper's."""
    model = served_version(model_repo, model_name)
    return DecisionThreshold.paper() if model is None else threshold_of(model)


def classifier_args(model_repo: str | Path, model_name: str = DEFAULT_MODEL_NAME) -> list[str]:
    """``["--model-repo=<folder>"]``: the folder that holds the served model's version folders.

    The classifier looks up ``<folder>/<name>/<version>``, so it gets the parent
    of the model's base path (``model_repo`` itself when that is unknown).
    """
    base = served_model_folder(model_repo, model_name)
    folder = base.parent if base is not None and base.name == model_name else Path(model_repo)
    return [f"--model-repo={folder.resolve()}"]
