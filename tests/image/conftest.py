"""The services' environment as the image builds it, made here offline.

``services_venv`` runs infra/docker/build_services_venv.sh, the image's own
build steps, with pip offline: its wheelhouse holds the distributions of the
services lock repacked from this test environment (whose versions the lock
must pin, see test_lock.py) and a radiounet wheel built from the source tree.
TensorFlow's protos come from the installed tensorflow package, which holds the
same files as the pinned wheel.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "infra" / "docker"
SERVICES_LOCK = DOCKER / "requirements-services.lock"
BUILD = DOCKER / "build_services_venv.sh"
# Files pip writes at install time: a fresh install writes its own.
_INSTALL_ONLY = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def read_pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a ``name==version`` lock file (comments skipped)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert match, f"{path.name}: not a name==version pin: {line!r}"
        name = canonical(match[1])
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = match[2]
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def repack(dist: importlib.metadata.Distribution, into: Path) -> Path:
    """A wheel of an installed distribution: its files under site-packages, from RECORD."""
    site = Path(str(dist.locate_file("")))
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    wheel = into / f"{name}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for entry in dist.files or ():
            parts = entry.parts
            if parts[0] == ".." or "__pycache__" in parts:
                continue  # scripts (pip makes them from entry points), bytecode
            if parts[0].endswith(".dist-info") and parts[-1] in _INSTALL_ONLY:
                continue
            path = site / entry
            if path.is_file():
                archive.write(path, entry.as_posix())
        # pip writes the installed RECORD itself; the wheel's may be empty.
        info = next(p.parts[0] for p in dist.files or () if p.parts[0].endswith(".dist-info"))
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def _build(venv: Path, wheelhouse: Path) -> None:
    env = {
        **os.environ,
        # Offline: only the wheelhouse; no user or site pip configuration.
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse),
        # No bytecode at install (most of the time here); the image compiles it.
        "PIP_COMPILE": "0",
        "PYTHON": sys.executable,
    }
    tensorflow_dir = Path(
        str(importlib.metadata.distribution("tensorflow-cpu").locate_file("tensorflow"))
    )
    radiounet = next(wheelhouse.glob("radiounet-*.whl"))
    for step in (["deps", str(venv), str(tensorflow_dir)], ["package", str(venv), str(radiounet)]):
        done = subprocess.run(
            ["bash", str(BUILD), *step], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{step[0]}: {done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def services_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv built by build_services_venv.sh from the services lock, offline."""
    base = tmp_path_factory.mktemp("image")
    wheelhouse = base / "wheelhouse"
    wheelhouse.mkdir()
    for name in read_pins(SERVICES_LOCK):
        repack(importlib.metadata.distribution(name), wheelhouse)
    # radiounet from a copy of the sources: building in the tree would leave build/ there.
    source = base / "src"
    source.mkdir()
    for item in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / item, source / item)
    shutil.copytree(
        ROOT / "services",
        source / "services",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(wheelhouse),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )
    assert built.returncode == 0, built.stderr
    venv = base / "venv"
    _build(venv, wheelhouse)
    return venv


@pytest.fixture(scope="session")
def lock_reader() -> Callable[[Path], dict[str, str]]:
    """:func:`read_pins`, for the test modules (conftest is not importable under importlib mode)."""
    return read_pins
