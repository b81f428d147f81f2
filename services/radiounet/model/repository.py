"""The model repository: TensorFlow Serving's ``<base>/<name>/<version>/`` layout.

Each version folder holds ``saved_model.pb`` and ``variables/`` (what TF
Serving loads) and ``assets.extra/radiounet.json``, this project's metadata
(TF Serving ignores it). Version folders are positive integers; "latest" is the
highest, as in TF Serving's default version policy.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
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
    "parse_metadata",
    "resolve_model",
    "update_metadata",
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
    """What a version is: architecture, training profile and provenance.

    ``decision_threshold`` is the R threshold calibrated for this version
    (``radiounet model calibrate``; None: not calibrated, the paper's applies)
    and ``calibration`` how it was chosen.
    """

    base_filters: int
    depth: int = 4
    tile: int = 192
    profile: str = "synthetic"
    trained: bool = False
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    decision_threshold: float | None = None
    calibration: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.decision_threshold
        if t is not None and (
            isinstance(t, bool)
            or not isinstance(t, int | float)
            or not (math.isfinite(t) and 0.0 < t < 1.0)
        ):
            raise ValueError(f"decision_threshold must be a number in (0, 1) or null, got {t!r}")
        if not isinstance(self.calibration, dict):
            raise ValueError(
                f"calibration must be a JSON object, got {type(self.calibration).__name__}"
            )

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


def parse_metadata(text: str | bytes, where: str) -> ModelMetadata:
    """A version's metadata from the text of its :data:`METADATA_FILE` (``where``: for errors).

    Raises
    ------
    ValueError
        If it is not JSON or not valid metadata.
    """
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise TypeError(f"a JSON object is needed, got {type(raw).__name__}")
        return ModelMetadata(**raw)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid model metadata file {where}: {exc}") from exc


def _read_metadata(version_dir: Path) -> ModelMetadata:
    path = version_dir / METADATA_FILE
    if not path.is_file():
        raise ValueError(f"model version {version_dir} has no {METADATA_FILE}")
    return parse_metadata(path.read_text(), str(path))


def update_metadata(version_dir: str | Path, changes: dict[str, Any]) -> ModelMetadata:
    """Set ``changes`` in a version's metadata file, keeping every other key as it is.

    The result is checked as :class:`ModelMetadata` before anything is written,
    and the file is replaced atomically (a temporary file renamed over it), so
    a reader (TF Serving copying the folder, a concurrent ``model info``) sees
    the old file or the new one, never half of one.

    Raises
    ------
    ValueError
        If the file is missing or invalid, or the changes make it invalid.
    """
    path = Path(version_dir) / METADATA_FILE
    _read_metadata(Path(version_dir))  # refuses a missing or invalid file
    raw = json.loads(path.read_text())
    raw.update(changes)
    try:
        updated = ModelMetadata(**raw)
        text = json.dumps(raw, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot update {path}: {exc}") from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(path.stat().st_mode & 0o777)  # mkstemp's 0600 would hide it from TF Serving
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return updated


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
