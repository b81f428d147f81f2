"""One settings class for every service: environment (``RADIOUNET_*``) overridden by flags.

The Helm chart's environment maps one-to-one onto these fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "ENV_PREFIX",
    "OBJECT_STORE_SETTINGS",
    "Settings",
    "add_settings_arguments",
    "settings_from",
]

ENV_PREFIX = "RADIOUNET_"


@dataclass(frozen=True)
class Settings:
    """Connection and behaviour settings shared by the services."""

    kafka_bootstrap: str = dataclasses.field(
        default="127.0.0.1:9092",
        metadata={"help": "Kafka bootstrap servers, host:port[,host:port]"},
    )
    topic_prefix: str = dataclasses.field(
        default="radiounet.", metadata={"help": "prefix of every topic name"}
    )
    topic_partitions: int = dataclasses.field(
        default=6, metadata={"help": "partitions of topics this service creates"}
    )
    topic_replicas: int = dataclasses.field(
        default=1,
        metadata={"help": "replicas of each partition of topics this service creates"},
    )
    create_topics: bool = dataclasses.field(
        default=True,
        metadata={
            "help": "create missing topics; off where an operator (Strimzi's KafkaTopics) owns "
            "them: the service then waits until they exist"
        },
    )
    s3_endpoint: str = dataclasses.field(
        default="127.0.0.1:8333", metadata={"help": "S3 endpoint host:port (MinIO, SeaweedFS)"}
    )
    s3_secure: bool = dataclasses.field(default=False, metadata={"help": "use HTTPS for S3"})
    s3_access_key: str = dataclasses.field(default="radiounet", metadata={"help": "S3 access key"})
    s3_secret_key: str = dataclasses.field(
        default="radiounet-secret", metadata={"help": "S3 secret key", "secret": True}
    )
    bucket: str = dataclasses.field(
        default="radiounet", metadata={"help": "bucket for cutouts, tiles, maps and results"}
    )
    model_server: str = dataclasses.field(
        default="127.0.0.1:8500", metadata={"help": "TensorFlow Serving gRPC host:port"}
    )
    model_name: str = dataclasses.field(default="radio_unet", metadata={"help": "served model"})
    model_version: int = dataclasses.field(
        default=0, metadata={"help": "model version to request; 0 = the server's latest"}
    )
    model_signature: str = dataclasses.field(
        default="serving_default", metadata={"help": "signature name"}
    )
    metrics_port: int = dataclasses.field(
        default=9400, metadata={"help": "port of /metrics and /healthz (0 = any free port)"}
    )
    metrics_host: str = dataclasses.field(
        default="0.0.0.0", metadata={"help": "address /metrics and /healthz listen on"}
    )
    instance: str = dataclasses.field(
        default_factory=socket.gethostname,
        metadata={"help": "name of this replica (producer header, logs)"},
    )
    max_poll_records: int = dataclasses.field(
        default=16, metadata={"help": "messages taken per poll"}
    )
    max_poll_interval_ms: int = dataclasses.field(
        default=300_000,
        metadata={"help": "longest gap between polls before the group evicts this consumer"},
    )
    session_timeout_ms: int = dataclasses.field(
        default=10_000, metadata={"help": "consumer-group session timeout"}
    )
    retry_initial_s: float = dataclasses.field(
        default=0.5, metadata={"help": "first back-off after a transient error"}
    )
    retry_max_s: float = dataclasses.field(
        default=15.0, metadata={"help": "longest back-off between retries"}
    )
    log_level: str = dataclasses.field(default="INFO", metadata={"help": "logging level"})

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'***' if f.metadata.get('secret') else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"Settings({shown})"

    def topic(self, name: str) -> str:
        """Full name of topic ``name`` (``pointings``, ``cutouts``...)."""
        return f"{self.topic_prefix}{name}"


def _parse(kind: Any, text: str) -> Any:
    if kind in (bool, "bool"):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if kind in (int, "int"):
        return int(text)
    if kind in (float, "float"):
        return float(text)
    return text


#: The settings of a command that only talks to the object store.
OBJECT_STORE_SETTINGS = frozenset(
    {"s3_endpoint", "s3_secure", "s3_access_key", "s3_secret_key", "bucket", "log_level"}
)


def add_settings_arguments(
    parser: argparse.ArgumentParser, *, only: Collection[str] | None = None
) -> None:
    """Add one ``--flag`` per setting (or per setting in ``only``); each defaults to its
    ``RADIOUNET_*`` variable."""
    group = parser.add_argument_group("connection and behaviour (env RADIOUNET_<NAME>)")
    for f in fields(Settings):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        group.add_argument(
            flag,
            dest=f"settings_{f.name}",
            metavar=f.name.upper(),
            default=None,
            help=f"{f.metadata['help']} [{env}; default {_shown_default(f)}]",
        )


def _shown_default(f: dataclasses.Field[Any]) -> str:
    """A setting's default as ``--help`` shows it (``%`` doubled for argparse)."""
    if f.metadata.get("secret"):
        return "the local stack's"
    if f.default is dataclasses.MISSING:  # a default_factory: the instance's host name
        return "this host's name"
    text = str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
    return text.replace("%", "%%")


def settings_from(
    args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings from defaults, then ``env`` (default ``os.environ``), then flags, then overrides.

    Raises
    ------
    ValueError
        If a value does not parse, naming the variable or flag.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Settings):
        env_name = ENV_PREFIX + f.name.upper()
        raw = env.get(env_name)
        source = env_name
        flag_value = getattr(args, f"settings_{f.name}", None) if args is not None else None
        if flag_value is not None:
            raw, source = flag_value, "--" + f.name.replace("_", "-")
        if raw is not None:
            try:
                values[f.name] = _parse(f.type, str(raw))
            except ValueError as exc:
                raise ValueError(f"{source}: {exc}") from None
    values.update(overrides)
    return Settings(**values)
