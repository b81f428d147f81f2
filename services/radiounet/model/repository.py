"""The model repository: TensorFlow Serving's ``<base>/<name>/<version>/`` layout.

Each version folder holds ``saved_model.pb`` and ``variables/`` (what TF
Serving loads) and ``assets.extra/radiounet.json``, this project's metadata
(TF Serving ignores it). Version folders are positive integers; "latest" is the
highest, as in TF Serving's default version policy. :func:`version_number` and
:func:`version_folders` are the one definition of a version folder, for the
whole project (the model server stand-in and ``radiounet model push|pull`` too).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_MODEL_NAME",
    "METADATA_FILE",
    "SIGNATURE",
    "ModelMetadata",
    "ModelVersion",
    "ServingSignature",
    "check_writable_folder",
    "config_model_folders",
    "default_model_repo",
    "ensure_model_config",
    "next_version",
    "parse_metadata",
    "resolve_model",
    "saved_model_problem",
    "update_metadata",
    "version_folders",
    "version_number",
]

DEFAULT_MODEL_NAME = "radio_unet"
METADATA_FILE = Path("assets.extra") / "radiounet.json"
#: TF Serving's model config at the top of a repository (``--model_config_file``).
CONFIG_FILE = "models.config"


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


def check_writable_folder(path: str | Path, option: str) -> None:
    """Refuse an output folder (``option``: ``--out``...) that cannot be written; create nothing.

    For the commands that write run folders, reports and versions: called before
    any slow work, so that a read-only place or a path through a regular file ends
    in one line at once instead of a ``PermissionError`` traceback afterwards.
    The folder or its nearest existing parent must be a writable folder
    (``os.access``, which also sees read-only mounts and immutable folders).

    Raises
    ------
    ValueError
        Naming the option, the path and what is wrong.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot write into {existing} (permission denied)")


#: A version folder's name: a number as ``str(version)`` writes it (ASCII digits, no sign,
#: no leading zero), so that ``<model folder>/<str(version)>`` is the folder.
_VERSION_NAME = re.compile(r"0|[1-9][0-9]*")
#: TF Serving's versions are int64 (it parses a folder's name with ``safe_strto64``).
_MAX_VERSION = 2**63 - 1


def version_number(name: str, *, allow_zero: bool = False) -> int | None:
    """The version a folder named ``name`` holds, or None if it is not a version folder's name.

    The name is the version as ``str(version)`` writes it: ASCII digits without a
    sign or leading zeros, at most 2**63 - 1. Versions are positive (an export
    takes 1, 2, ...); ``allow_zero`` also takes ``"0"``, which TF Serving serves
    (the model server stand-in). TF Serving itself also takes ``"007"`` (as 7,
    loaded from ``007/``), ``"+7"``, ``"-7"`` and names with spaces; nothing here
    does, since every reader finds version ``v`` at ``<model folder>/<str(v)>``.

    >>> [version_number(n) for n in ("1", "10", "0", "007", "x1", "+1", " 1", "١")]
    [1, 10, None, None, None, None, None, None]
    >>> version_number("0", allow_zero=True)
    0
    """
    if not _VERSION_NAME.fullmatch(name):
        return None
    version = int(name)
    if version > _MAX_VERSION or (version == 0 and not allow_zero):
        return None
    return version


def version_folders(model_dir: str | Path, *, allow_zero: bool = False) -> dict[int, Path]:
    """The version folders of a model folder: version -> folder, by ascending version.

    A version folder is a folder (or a link to one) named by :func:`version_number`
    (``allow_zero`` as there); anything else, such as an export's staging folder or a
    file named ``3``, is not. Empty if ``model_dir`` is not a folder.
    """
    base = Path(model_dir)
    if not base.is_dir():
        return {}
    found = {}
    for path in base.iterdir():
        version = version_number(path.name, allow_zero=allow_zero)
        if version is not None and path.is_dir():
            found[version] = path
    return dict(sorted(found.items()))


def next_version(model_dir: Path) -> int:
    """The version number an export into ``model_dir`` should take."""
    return max(version_folders(model_dir), default=0) + 1


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
        number = version_number(base.name)
        if number is None:
            raise ValueError(
                f"SavedModel folder must be named by its version number (1, 2, ...), got {base}"
            )
        if version is not None and number != version:
            raise ValueError(f"{base} is version {base.name}, not the requested {version!r}")
    else:
        model_dir = base / name if (base / name).is_dir() else base
        if not model_dir.is_dir():
            raise ValueError(f"model folder not found: {model_dir}")
        folders = version_folders(model_dir)
        versions = list(folders)
        if not versions:
            raise ValueError(f"no version folders (1, 2, ...) with a SavedModel in {model_dir}")
        number = versions[-1] if version is None else version
        if number not in folders:
            raise ValueError(f"model version {version!r} not in {model_dir} (have {versions})")
        version_dir = folders[number]
        if not (version_dir / "saved_model.pb").is_file():
            raise ValueError(f"{version_dir} is not a SavedModel (no saved_model.pb)")
    return ModelVersion(
        name=version_dir.parent.name,
        version=number,
        path=version_dir,
        metadata=_read_metadata(version_dir),
    )


# --- cheap checks and models.config ------------------------------------------------------------


def _wire_fields(data: Any) -> list[tuple[int, Any]]:
    """``(field number, value)`` of a serialised protobuf message, decoded without its schema.

    google.protobuf's own parser (as ``Empty``, keeping every field as unknown) checks
    the wire format; the message types are TensorFlow's, whose generated modules
    import all of TensorFlow (seconds), which a check before a push must not need.
    """
    from google.protobuf import empty_pb2
    from google.protobuf.message import DecodeError
    from google.protobuf.unknown_fields import UnknownFieldSet

    if not isinstance(data, bytes):  # a field of the wrong wire type
        raise DecodeError("a message field is not length-delimited")
    message = empty_pb2.Empty()
    message.ParseFromString(data)
    return [(f.field_number, f.data) for f in UnknownFieldSet(message)]


def _map_keys(entries: list[Any]) -> list[str]:
    """The string keys (field 1) of a protobuf map's serialised entries."""
    keys = []
    for entry in entries:
        key = dict(_wire_fields(entry)).get(1, b"")
        keys.append(key.decode() if isinstance(key, bytes) else "")
    return keys


def _signatures(saved_model: bytes) -> dict[str, tuple[list[str], list[str]]]:
    """Signature name -> (input keys, output keys) of a serialised ``SavedModel``.

    Field numbers of tensorflow/core/protobuf: ``SavedModel.meta_graphs`` 2,
    ``MetaGraphDef.signature_def`` 5 (a map: key 1, value 2), ``SignatureDef.inputs`` 1
    and ``outputs`` 2 (maps keyed by name).
    """
    found = {}
    for number, meta_graph in _wire_fields(saved_model):
        if number != 2:
            continue
        for field_number, entry in _wire_fields(meta_graph):
            if field_number != 5:
                continue
            parts = dict(_wire_fields(entry))
            name = _map_keys([entry])[0]
            fields = _wire_fields(parts.get(2, b""))
            found[name] = (
                _map_keys([v for n, v in fields if n == 1]),
                _map_keys([v for n, v in fields if n == 2]),
            )
    return found


def saved_model_problem(
    version_dir: str | Path, *, signature: bool = True, metadata: bool = True
) -> str | None:
    """Why a version folder cannot be served and classified, or None if it can.

    Cheap (no TensorFlow, tens of milliseconds): ``saved_model.pb`` must parse as a
    ``SavedModel`` whose (``signature``) :data:`SIGNATURE` takes its input and returns
    its output, and (``metadata``) :data:`METADATA_FILE` must be valid: the classifier reads the
    calibrated decision threshold there. The weights are not read.
    """
    from google.protobuf.message import DecodeError

    folder = Path(version_dir)
    pb = folder / "saved_model.pb"
    if not pb.is_file():
        return "no saved_model.pb"
    try:
        signatures = _signatures(pb.read_bytes())
    except (DecodeError, UnicodeDecodeError) as exc:
        reason = str(exc).rsplit(": ", 1)[-1]  # drop "Error parsing message with type Empty"
        return f"corrupt saved_model.pb ({reason})"
    wanted = ([SIGNATURE.input_key], [SIGNATURE.output_key])
    if signature and signatures.get(SIGNATURE.name) != wanted:
        have = {k: v for k, v in signatures.items() if not k.startswith("__")}
        return (
            f"saved_model.pb has no {SIGNATURE.name!r} signature from {SIGNATURE.input_key!r} "
            f"to {SIGNATURE.output_key!r} (has {have})"
        )
    if metadata:
        try:
            _read_metadata(folder)
        except ValueError as exc:
            return str(exc).replace(f"model version {folder} has no ", "no ")
    return None


def config_model_folders(config_text: str) -> list[str]:
    """The model folders a ``models.config`` names: the last component of each ``base_path``.

    The same rule as the model server's (and the chart's mount of the repository
    at ``/models``): ``base_path: "/models/radio_unet"`` is ``radio_unet/``.

    >>> config_model_folders('config { name: "a" base_path: "/models/radio_unet" }')
    ['radio_unet']
    """
    paths = re.findall(r'\bbase_path\s*:\s*"([^"]*)"', config_text)
    return sorted({p.rstrip("/").rsplit("/", 1)[-1] for p in paths if p.strip("/")})


_CONFIG_HEAD = """\
# TensorFlow Serving model configuration (ModelServerConfig, text format).
# Mount this repository at /models and start:
#   tensorflow_model_server --model_config_file=/models/models.config ...
model_config_list {
}
"""
_CONFIG_ENTRY = """\
  config {{
    name: "{name}"
    base_path: "/models/{name}"
    model_platform: "tensorflow"
    # TF Serving's default policy: serve the highest version folder.
    model_version_policy {{ latest {{ num_versions: 1 }} }}
  }}
"""


def ensure_model_config(repo: str | Path, name: str = DEFAULT_MODEL_NAME) -> str | None:
    """Make ``repo/models.config`` serve ``name`` (as the shipped one), keeping other models.

    TF Serving and ``radiounet model push`` need the file; a repository that an
    export created has none. Returns ``"written"`` (new file), ``"updated"`` (entry
    added) or None (it already names ``name``).

    Raises
    ------
    ValueError
        If an existing file has no ``model_config_list { ... }`` to add the entry to.
    """
    path = Path(repo) / CONFIG_FILE
    text = path.read_text() if path.exists() else None
    if text is not None and name in config_model_folders(text):
        return None
    base = _CONFIG_HEAD if text is None else text
    close = base.rstrip().rfind("}")  # the end of model_config_list
    if "model_config_list" not in base or close < 0:
        raise ValueError(f"{path} has no model_config_list {{ ... }} to add {name!r} to")
    path.write_text(base[:close] + _CONFIG_ENTRY.format(name=name) + base[close:])
    return "written" if text is None else "updated"
