"""Fixtures shared by the suite: a tiny exported model, so no test needs a shipped one."""

from __future__ import annotations

import json
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
