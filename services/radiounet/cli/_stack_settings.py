"""Connection settings from a local stack's state file, ``<DIR>/stack.json``.

The local stack (``radiounet.stream.local``) records where it listens in a JSON
file; commands that talk to the pipeline read it so that no flag is needed
against a stack started on this machine. The contract, which the stack writer
follows::

    {
      "settings": {
        "kafka_bootstrap": "127.0.0.1:PORT",
        "s3_endpoint": "127.0.0.1:PORT",
        "s3_access_key": "...",
        "s3_secret_key": "...",
        "bucket": "...",
        "topic_prefix": "...",
        "topic_partitions": 6          (optional, an integer)
      },
      ...                  (anything else: ignored here)
    }

Every key under ``settings`` is optional; all but ``topic_partitions`` are
strings. Unknown keys are ignored, so the writer may add more. A file without a top-level
``settings`` may hold it under ``extra`` (``{"extra": {"settings": {...}}}``,
the layout of :func:`radiounet.stream.local.stack_state.save_state`).

Precedence, lowest first: built-in defaults, the state file, ``RADIOUNET_*``
variables, flags; so an explicit flag or variable wins over the file, field by field.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from radiounet.stream.settings import ENV_PREFIX, Settings, settings_from

__all__ = [
    "DEFAULT_STACK_DIR",
    "STACK_DIR_ENV",
    "STACK_FILE",
    "STACK_KEYS",
    "add_stack_argument",
    "read_stack_settings",
    "settings_with_stack",
]

STACK_DIR_ENV = "RADIOUNET_STACK_DIR"
DEFAULT_STACK_DIR = Path("out/stack")
STACK_FILE = "stack.json"
#: The settings a state file may provide (names of :class:`Settings` fields), and their type.
STACK_KEYS: Mapping[str, type] = MappingProxyType(
    {
        "kafka_bootstrap": str,
        "s3_endpoint": str,
        "s3_access_key": str,
        "s3_secret_key": str,
        "bucket": str,
        "topic_prefix": str,
        # Partitions of a topic the submitter creates before the stack's services do.
        "topic_partitions": int,
    }
)


def add_stack_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"data folder of a local stack: connection settings not given by a flag or "
        f"RADIOUNET_* variable come from DIR/{STACK_FILE} when it exists "
        f"[{STACK_DIR_ENV}, default {DEFAULT_STACK_DIR}]",
    )


def read_stack_settings(path: Path) -> dict[str, str | int]:
    """The settings recorded in the state file ``path`` (only :data:`STACK_KEYS`).

    Raises
    ------
    ValueError
        If the file is not JSON, has no ``settings`` object, or a value is not a string.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"stack state {path}: cannot read it ({exc})") from None
    section = None
    if isinstance(document, dict):
        extra = document.get("extra")
        section = document.get("settings")
        if section is None and isinstance(extra, dict):
            section = extra.get("settings")
    if not isinstance(section, dict):
        raise ValueError(f'stack state {path}: no "settings" object')
    values: dict[str, str | int] = {}
    for name, kind in STACK_KEYS.items():
        if name not in section:
            continue
        value = section[name]
        if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f'stack state {path}: "{name}" must be a positive integer')
        if kind is str and (not isinstance(value, str) or not value):
            raise ValueError(f'stack state {path}: "{name}" must be a non-empty string')
        values[name] = value
    return values


def settings_with_stack(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags and environment, filling what neither gives from the stack's file.

    A missing state file is fine in the default folder (no local stack: plain
    defaults) but an error where ``--stack`` or ``RADIOUNET_STACK_DIR`` named one.
    """
    env = os.environ if env is None else env
    explicit: Path | None = getattr(args, "stack", None)
    if explicit is None and env.get(STACK_DIR_ENV):
        explicit = Path(env[STACK_DIR_ENV])
    state = (explicit or DEFAULT_STACK_DIR) / STACK_FILE
    overrides: dict[str, str | int] = {}
    if state.is_file():
        for name, value in read_stack_settings(state).items():
            given = getattr(args, f"settings_{name}", None) is not None
            if not given and ENV_PREFIX + name.upper() not in env:
                overrides[name] = value
    elif explicit is not None:
        raise ValueError(f"no local stack state at {state} (is the stack running?)")
    return settings_from(args, env, **overrides)
