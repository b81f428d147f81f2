"""Fixtures shared by the suite: a tiny exported model, so no test needs a shipped one.

Also helpers that test modules take as fixtures (they cannot import each other or
this file: ``--import-mode=importlib``): ``wait_until`` and ``odd_version_folders``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF Serving repository holding ``radio_unet/1``: a 2-filter U-Net, seeded weights."""
    from radiounet.model.export import export_saved_model
    from radiounet.model.repository import ModelMetadata
    from radiounet.model.unet import build_radio_unet
    from radiounet.tf_runtime import keras

    repo = tmp_path_factory.mktemp("cli_model_repo")
    keras.utils.set_random_seed(0)
    model = build_radio_unet(base_filters=2, tile=192)
    export_saved_model(model, repo, ModelMetadata(base_filters=2, description="tiny test model"))
    return repo


def _write_fake_version(repo: Path, version: int, metadata: dict[str, Any] | str) -> Path:
    folder = repo / "radio_unet" / str(version)
    (folder / "assets.extra").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"")
    text = metadata if isinstance(metadata, str) else json.dumps(metadata, indent=2)
    (folder / "assets.extra" / "radiounet.json").write_text(text)
    return folder


@pytest.fixture
def fake_version() -> Callable[[Path, int, dict[str, Any] | str], Path]:
    """Writes ``repo/radio_unet/<version>/`` with metadata and an empty saved_model.pb.

    ``resolve_model`` accepts it (it reads no weights): enough for what only reads metadata.
    """
    return _write_fake_version


@pytest.fixture(scope="session")
def served_tiny_model_repo(tiny_model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``tiny_model_repo`` with the ``models.config`` a local stack serves."""
    import shutil

    repo = tmp_path_factory.mktemp("served-model-repo")
    shutil.copytree(tiny_model_repo / "radio_unet", repo / "radio_unet")
    (repo / "models.config").write_text(
        "model_config_list {\n"
        "  config {\n"
        '    name: "radio_unet"\n'
        f'    base_path: "{(repo / "radio_unet").resolve()}"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy { latest { num_versions: 1 } }\n"
        "  }\n"
        "}\n"
    )
    return repo


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The shared project object store (SeaweedFS S3); use a bucket of your own in it."""
    from radiounet.stream.local.components import ObjectStore

    store = ObjectStore(tmp_path_factory.mktemp("object-store"))
    try:
        store.start()
        yield store
    finally:
        store.stop()


def _wait_until(
    predicate: Callable[[], Any], what: str, *, timeout_s: float, interval_s: float
) -> Any:
    """Call ``predicate`` every ``interval_s`` seconds until it returns something truthy.

    Returns that value. Fails the test, naming ``what`` and the timeout, once
    ``timeout_s`` seconds have passed (``predicate`` is called at least once, and
    once more at the deadline).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., Any]:
    """``wait_until(predicate, what, *, timeout_s, interval_s)``: poll until truthy, or fail."""
    return _wait_until


def _odd_version_folders(model_dir: Path) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in ("1", "10", "0", "007", "+2", "x1", ".4-staging", "١", "²", "9" * 20):
        (model_dir / name).mkdir()
    (model_dir / "3").write_text("a file, not a version")
    (model_dir / "12").symlink_to(model_dir / "10", target_is_directory=True)
    (model_dir / "13").symlink_to(model_dir / "gone", target_is_directory=True)
    return model_dir


@pytest.fixture(scope="session")
def odd_version_folders() -> Callable[[Path], Path]:
    """``odd_version_folders(model_dir)``: a model folder of names that are, or look like, versions.

    Returns ``model_dir``. Its version folders (``radiounet.model.repository.version_folders``)
    are ``1``, ``10`` and ``12`` (a link to ``10``), and ``0`` where version 0 counts (the
    model server). Not version folders: ``007``, ``+2``, ``x1``, ``.4-staging``, ``١`` and
    ``²`` (non-ASCII digits), 20 nines (more than int64), the file ``3`` and the dangling
    link ``13``.
    """
    return _odd_version_folders
