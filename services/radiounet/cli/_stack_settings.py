"""Connection settings from a local stack's state file, ``<DIR>/stack.json``.

The local stack (``radiounet.stream.local``) records where it listens with
:func:`radiounet.stream.local.stack_state.save_state`; commands that talk to the
pipeline read the ``settings`` it keeps under ``extra`` (the ``RADIOUNET_*``
names of :class:`~radiounet.stream.settings.Settings`, lower case) so that no
flag is needed against a stack started on this machine. Only
:data:`STACK_KEYS` are taken; other keys are ignored, so the writer may add more.

Precedence, lowest first: built-in defaults, the state file, ``RADIOUNET_*``
variables, flags; so an explicit flag or variable wins over the file, field by field.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from radiounet.stream.local.stack_state import STATE_FILE, load_state, state_path
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
STACK_FILE = STATE_FILE
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
        "--data-dir",  # the name `radiounet stack` and `dashboards` use for the same folder
        dest="stack",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"data folder of a local stack: connection settings not given by a flag or "
        f"RADIOUNET_* variable come from DIR/{STACK_FILE} when it exists "
        f"[{STACK_DIR_ENV}, default {DEFAULT_STACK_DIR}]",
    )


def read_stack_settings(data_dir: Path) -> dict[str, str | int]:
    """The settings the stack in ``data_dir`` recorded (only :data:`STACK_KEYS`).

    Raises
    ------
    ValueError
        If there is no state file, it is not one, it has no ``settings``, or a
        value has the wrong type.
    """
    path = state_path(data_dir)
    state = load_state(data_dir)
    if state is None:
        raise ValueError(f"no local stack state at {path} (is the stack running?)")
    section = state.extra.get("settings")
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
    data_dir = explicit or DEFAULT_STACK_DIR
    overrides: dict[str, str | int] = {}
    if state_path(data_dir).is_file():
        for name, value in read_stack_settings(data_dir).items():
            given = getattr(args, f"settings_{name}", None) is not None
            if not given and ENV_PREFIX + name.upper() not in env:
                overrides[name] = value
    elif explicit is not None:
        raise ValueError(f"no local stack state at {state_path(data_dir)} (is the stack running?)")
    return settings_from(args, env, **overrides)
