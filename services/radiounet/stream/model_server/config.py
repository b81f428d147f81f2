"""TF Serving's model configuration: a ``ModelServerConfig`` text proto, or one named model.

The same two ways as ``tensorflow_model_server``: ``--model_config_file``
(``model_config_list { config { name, base_path, model_platform,
model_version_policy, version_labels } }``) or ``--model_name`` with
``--model_base_path``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from google.protobuf import text_format

from ._protos import model_server_config_pb2

__all__ = [
    "load_model_config",
    "parse_model_config",
    "resolve_base_path",
    "single_model_config",
    "validate_model_config",
]

_log = logging.getLogger(__name__)


def parse_model_config(text: str) -> Any:
    """Parse a ``ModelServerConfig`` in protobuf text format.

    Raises
    ------
    ValueError
        If the text does not parse or the configuration is invalid.
    """
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ValueError(f"invalid model config: {exc}") from exc
    validate_model_config(config)
    return config


def single_model_config(name: str, base_path: str | Path) -> Any:
    """The configuration ``--model_name``/``--model_base_path`` stand for (latest version)."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = str(base_path)
    model.model_platform = "tensorflow"
    validate_model_config(config)
    return config


def load_model_config(path: str | Path) -> Any:
    """Read a ``--model_config_file`` and resolve its base paths.

    A base path that exists is kept (a relative one is taken from the working
    directory, as TF Serving does). One that does not, but whose last component
    is a folder next to the config file, is replaced by that folder: the shipped
    ``models.config`` names the container mount (``/models/radio_unet``) and then
    also works from a source checkout.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read model config {path}: {exc}") from exc
    config = parse_model_config(text)
    for model in config.model_config_list.config:
        resolved = resolve_base_path(model.base_path, path.parent)
        if resolved != Path(model.base_path):
            _log.warning(
                "base_path %s not found; using %s next to the model config",
                model.base_path,
                resolved,
            )
        model.base_path = str(resolved)
    return config


def resolve_base_path(base_path: str, config_dir: Path) -> Path:
    """``base_path`` if it is a folder, else the folder of its name beside the config.

    Raises
    ------
    ValueError
        If neither is a folder.
    """
    given = Path(base_path)
    if given.is_dir():
        return given
    beside = config_dir / given.name
    if beside.is_dir():
        return beside
    raise ValueError(f"model base_path {base_path!r} is not a folder")


def validate_model_config(config: Any) -> None:
    """Check what this server supports: named TensorFlow models with a base path.

    Raises
    ------
    ValueError
        On an empty list, duplicate or empty names, missing base paths, another
        platform, a ``custom_model_config`` or non-positive version labels.
    """
    if config.HasField("custom_model_config"):
        raise ValueError("custom_model_config is not supported; use model_config_list")
    models = list(config.model_config_list.config)
    if not models:
        raise ValueError("model config lists no models")
    seen: set[str] = set()
    for model in models:
        if not model.name:
            raise ValueError("every model config needs a name")
        if model.name in seen:
            raise ValueError(f"model {model.name!r} is configured twice")
        seen.add(model.name)
        if not model.base_path:
            raise ValueError(f"model {model.name!r} has no base_path")
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(
                f"model {model.name!r}: platform {model.model_platform!r} is not supported "
                "(only 'tensorflow')"
            )
        for label, version in model.version_labels.items():
            if version <= 0:
                raise ValueError(f"model {model.name!r}: label {label!r} -> invalid version")
