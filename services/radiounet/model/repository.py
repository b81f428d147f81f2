"""The model repository: TensorFlow Serving's ``<base>/<name>/<version>/`` layout.

Each version folder holds ``saved_model.pb`` and ``variables/`` (what TF
Serving loads) and ``assets.extra/radiounet.json``, this project's metadata
(TF Serving ignores it). Version folders are positive integers; "latest" is the
highest, as in TF Serving's default version policy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MODEL_NAME",
    "METADATA_FILE",
    "SIGNATURE",
    "ModelMetadata",
    "ModelVersion",
    "ServingSignature",
    "default_model_repo",
    "next_version",
    "resolve_model",
]

DEFAULT_MODEL_NAME = "radio_unet"
METADATA_FILE = Path("assets.extra") / "radiounet.json"


@dataclass(frozen=True)
class ServingSignature:
    """The serving signature every exported version carries."""

    name: str = "serving_default"
    input_key: str = "image"
    output_key: str = "probability"
    tile: int = 192


SIGNATURE = ServingSignature()


@dataclass(frozen=True)
class ModelMetadata:
    """What a version is: architecture, training profile and provenance."""

    base_filters: int
    depth: int = 4
    tile: int = 192
    profile: str = "synthetic"
    trained: bool = False
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


@dataclass(frozen=True)
class ModelVersion:
    """One resolved version folder of the repository."""

    name: str
    version: int
    path: Path
    metadata: ModelMetadata


def default_model_repo() -> Path:
    """``model_repo/`` of the source checkout (the shipped models)."""
    return Path(__file__).resolve().parents[3] / "model_repo"


def _versions(model_dir: Path) -> list[int]:
    return sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and int(p.name) > 0
    )


def next_version(model_dir: Path) -> int:
    """The version number an export into ``model_dir`` should take."""
    if not model_dir.is_dir():
        return 1
    versions = _versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _read_metadata(version_dir: Path) -> ModelMetadata:
    path = version_dir / METADATA_FILE
    if not path.is_file():
        raise ValueError(f"model version {version_dir} has no {METADATA_FILE}")
    try:
        return ModelMetadata(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"invalid model metadata file {path}: {exc}") from exc


def resolve_model(
    path: str | Path | None = None,
    *,
    name: str = DEFAULT_MODEL_NAME,
    version: int | None = None,
) -> ModelVersion:
    """Find a model version from a repository, a model folder or a version folder.

    Parameters
    ----------
    path : path or None
        ``model_repo/`` (then ``name`` is appended), ``model_repo/<name>/``
        or ``model_repo/<name>/<version>/``; ``None`` means the shipped repository.
    version : int or None, keyword-only
        Version to use; ``None`` picks the latest.

    Raises
    ------
    ValueError
        If no such folder or version exists, or it is not a SavedModel.
    """
    base = Path(path) if path is not None else default_model_repo()
    if (base / "saved_model.pb").is_file():
        version_dir = base
        if not base.name.isdigit():
            raise ValueError(f"SavedModel folder must be named by its version number, got {base}")
        if version is not None and int(base.name) != version:
            raise ValueError(f"{base} is version {base.name}, not the requested {version!r}")
    else:
        model_dir = base / name if (base / name).is_dir() else base
        if not model_dir.is_dir():
            raise ValueError(f"model folder not found: {model_dir}")
        versions = _versions(model_dir)
        if not versions:
            raise ValueError(f"no version folders (1, 2, ...) with a SavedModel in {model_dir}")
        chosen = versions[-1] if version is None else version
        if chosen not in versions:
            raise ValueError(f"model version {version!r} not in {model_dir} (have {versions})")
        version_dir = model_dir / str(chosen)
        if not (version_dir / "saved_model.pb").is_file():
            raise ValueError(f"{version_dir} is not a SavedModel (no saved_model.pb)")
    return ModelVersion(
        name=version_dir.parent.name,
        version=int(version_dir.name),
        path=version_dir,
        metadata=_read_metadata(version_dir),
    )
