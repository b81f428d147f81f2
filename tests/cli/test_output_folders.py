"""Output folders of train, finetune, evaluate and model (--run-dir, --repo, --out, --model)
that cannot be written: one error line and status 2 before any work, nothing created."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from radiounet.cli.main import main


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], Path]]:
    """Makes a folder read-only (for root too: an immutable folder), undone afterwards."""
    done: list[Path] = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            folder.chmod(0o555)
        elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("root ignores permission bits and chattr +i is not available here")
        done.append(folder)
        return folder

    yield make
    for folder in done:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


@pytest.fixture
def empty_dataset(tmp_path: Path) -> Path:
    """A valid manifest without fields: enough to get past the dataset checks."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "manifest.json").write_text(
        json.dumps({"format": "radiounet-sim/1", "setup": {"name": "paper-6arcsec"}, "fields": []})
    )
    return folder


def unusable(kind: str, tmp_path: Path, read_only: Callable[[Path], Path]) -> tuple[Path, str]:
    """A path no output can go under (a plain file, or a read-only folder) and why."""
    if kind == "file":
        blocker = tmp_path / "plainfile"
        blocker.write_text("x")
        return blocker, f"{blocker} is a file, not a folder"
    blocker = read_only(tmp_path / "ro")
    return blocker, f"cannot write into {blocker} (permission denied)"


def assert_refused(code: int, out: str, err: str, line: str) -> None:
    assert (code, out) == (2, "")
    assert err.splitlines() == [line]


@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_train_run_dir_and_repo(
    kind: str,
    tmp_path: Path,
    empty_dataset: Path,
    read_only: Callable[[Path], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker, why = unusable(kind, tmp_path, read_only)
    # The dataset has no fields: had the folder not been checked first, loading it would fail.
    argv = ["train", "--data", str(empty_dataset), "--base-filters", "2", "--no-progress"]
    code, out, err = run_main([*argv, "--run-dir", str(blocker / "run")], capsys)
    assert_refused(code, out, err, f"radiounet train: error: --run-dir {blocker}/run: {why}")
    run = tmp_path / "run"
    code, out, err = run_main([*argv, "--run-dir", str(run), "--export", "--repo", str(blocker)],
                              capsys)  # fmt: skip
    line = f"radiounet train: error: --repo {blocker}/radio_unet: {why}"
    assert_refused(code, out, err, line)
    assert not run.exists()  # refused before the training, not after it
    code, out, err = run_main(["model", "init", "--repo", str(blocker)], capsys)
    assert_refused(code, out, err, f"radiounet model: error: --repo {blocker}/radio_unet: {why}")


@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_evaluate_out_is_checked_before_segmenting(
    kind: str,
    tmp_path: Path,
    empty_dataset: Path,
    tiny_model_repo: Path,
    read_only: Callable[[Path], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluate ran before --out was checked")

    monkeypatch.setattr("radiounet.evaluation.run.evaluate", never)
    blocker, why = unusable(kind, tmp_path, read_only)
    argv = ["evaluate", "--model", str(tiny_model_repo), "--data", str(empty_dataset)]
    code, out, err = run_main([*argv, "--out", str(blocker / "ev"), "--no-pybdsf"], capsys)
    assert_refused(code, out, err, f"radiounet evaluate: error: --out {blocker}/ev: {why}")


def test_calibrate_checks_the_version_folder_before_segmenting(
    tmp_path: Path,
    empty_dataset: Path,
    tiny_model_repo: Path,
    read_only: Callable[[Path], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_model_repo, repo)
    folder = read_only(repo / "radio_unet" / "1" / "assets.extra")
    argv = ["model", "calibrate", "--model", str(repo), "--data", str(empty_dataset)]
    code, out, err = run_main([*argv, "--split", "test"], capsys)
    line = (
        f"radiounet model: error: --model {folder}: cannot write into {folder} (permission denied)"
    )
    assert_refused(code, out, err[err.index("radiounet model: error") :], line)
    # A dry run writes nothing: it goes on (here to the dataset without fields).
    code, _, err = run_main([*argv, "--split", "test", "--dry-run"], capsys)
    assert code == 2 and "no field with split 'test'" in err
