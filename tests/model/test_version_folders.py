"""The one definition of a version folder, and the repository functions that follow it.

The model server stand-in (``tests/stream/model_server/test_versions.py``) and
``radiounet model push|pull`` (``tests/stream/test_model_sync.py``) check that they
follow it too, on the same ``odd_version_folders`` layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from radiounet.model.repository import (
    METADATA_FILE,
    ModelMetadata,
    next_version,
    resolve_model,
    version_folders,
    version_number,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1", 1),
        ("10", 10),
        (str(2**63 - 1), 2**63 - 1),  # TF Serving's versions are int64
        ("0", None),  # versions are positive (the model server alone takes 0)
        ("007", None),  # version 7 is found at 7/, never at 007/
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1 ", None),
        ("1\n", None),
        ("x1", None),
        ("1.0", None),
        ("", None),
        ("١", None),  # an Arabic-Indic digit: int() reads it, TF Serving does not
        ("²", None),  # str.isdigit() is True, int() fails
        (str(2**63), None),
    ],
)
def test_version_number(name: str, expected: int | None) -> None:
    assert version_number(name) == expected
    assert version_number(name, allow_zero=True) == (0 if name == "0" else expected)


def test_version_folders(tmp_path: Path, odd_version_folders: Callable[[Path], Path]) -> None:
    model_dir = odd_version_folders(tmp_path / "radio_unet")
    assert version_folders(model_dir) == {
        1: model_dir / "1",
        10: model_dir / "10",
        12: model_dir / "12",
    }
    assert list(version_folders(model_dir, allow_zero=True)) == [0, 1, 10, 12]
    assert list(version_folders(str(model_dir))) == [1, 10, 12]
    assert version_folders(tmp_path / "missing") == {}
    assert version_folders(model_dir / "3") == {}  # a file


def test_next_version_follows_the_rule(
    tmp_path: Path, odd_version_folders: Callable[[Path], Path]
) -> None:
    model_dir = odd_version_folders(tmp_path / "radio_unet")
    assert next_version(model_dir) == max(version_folders(model_dir)) + 1 == 13


def _saved_model(folder: Path) -> None:
    """What ``resolve_model`` reads of a version (no weights): saved_model.pb and metadata."""
    (folder / "saved_model.pb").write_bytes(b"")
    (folder / METADATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    (folder / METADATA_FILE).write_text(ModelMetadata(base_filters=2).to_json())


def test_resolve_model_follows_the_rule(
    tmp_path: Path, odd_version_folders: Callable[[Path], Path]
) -> None:
    model_dir = odd_version_folders(tmp_path / "radio_unet")
    for name in ("1", "10", "0", "007"):
        _saved_model(model_dir / name)
    latest = resolve_model(tmp_path)
    assert (latest.name, latest.version, latest.path) == ("radio_unet", 12, model_dir / "12")
    assert resolve_model(tmp_path, version=10).path == model_dir / "10"
    for version in (0, 7, 3):
        with pytest.raises(ValueError, match=rf"model version {version} not in .* \[1, 10, 12\]"):
            resolve_model(tmp_path, version=version)
    # A version folder given directly: the same rule for its name.
    assert resolve_model(model_dir / "10").version == 10
    for name in ("0", "007"):
        with pytest.raises(ValueError, match="must be named by its version number"):
            resolve_model(model_dir / name)
