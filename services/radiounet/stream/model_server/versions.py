"""Which versions of a model to serve: TF Serving's version policy and version labels.

Version folders are ``<base_path>/<integer>/``, as
:func:`radiounet.model.repository.version_folders` defines them, with version 0
too (TF Serving serves it); anything else (such as the staging folder an export
writes before renaming it) is ignored. The policy is
``ModelConfig.model_version_policy``: ``latest { num_versions }`` (the
default, one version), ``all {}`` or ``specific { versions }``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from radiounet.model.repository import version_folders

__all__ = ["aspired_versions", "list_versions", "policy_description", "resolve_label"]


def list_versions(base_path: str | Path) -> list[int]:
    """The version folders under ``base_path``, ascending; empty if it is missing.

    Version 0 counts, as in TF Serving. Names TF Serving would also read but this
    stand-in does not (``007``, ``+7``, ``-7``): see
    :func:`~radiounet.model.repository.version_number`.
    """
    return list(version_folders(base_path, allow_zero=True))


def aspired_versions(policy: Any, on_disk: Iterable[int]) -> list[int]:
    """The versions ``policy`` (a ``ServableVersionPolicy``) wants served, ascending.

    Examples
    --------
    >>> from radiounet.stream.model_server._protos import model_server_config_pb2 as pb
    >>> policy = pb.ModelConfig().model_version_policy
    >>> aspired_versions(policy, [1, 2, 3])
    [3]
    >>> policy.latest.num_versions = 2
    >>> aspired_versions(policy, [1, 2, 3])
    [2, 3]
    >>> policy.specific.versions[:] = [1, 3, 7]
    >>> aspired_versions(policy, [1, 2, 3])
    [1, 3]
    >>> policy.all.SetInParent()
    >>> aspired_versions(policy, [1, 2, 3])
    [1, 2, 3]
    """
    versions = sorted(set(on_disk))
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return versions
    if choice == "specific":
        return sorted(set(policy.specific.versions) & set(versions))
    # latest (also when no policy is set); TF Serving treats num_versions 0 as 1.
    count = max(int(policy.latest.num_versions), 1) if choice == "latest" else 1
    return versions[-count:]


def policy_description(policy: Any) -> str:
    """A short human-readable form of a version policy, for logs."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return "all"
    if choice == "specific":
        return f"specific {sorted(policy.specific.versions)}"
    count = max(int(policy.latest.num_versions), 1) if choice == "latest" else 1
    return f"latest {count}"


def resolve_label(labels: Mapping[str, int], label: str) -> int:
    """The version a ``version_label`` names.

    Raises
    ------
    KeyError
        If the label is not configured.
    """
    if label not in labels:
        raise KeyError(f"Unrecognized servable version label: {label}")
    return int(labels[label])
