"""``radiounet model push|pull`` against a real object store (SeaweedFS on loopback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from radiounet.cli.main import main
from radiounet.model.repository import default_model_repo
from radiounet.stream.local.components import ObjectStore
from radiounet.stream.model_server.versions import list_versions

RADIOUNET = Path(sys.executable).parent / "radiounet"


@pytest.fixture
def store(object_store: ObjectStore) -> ObjectStore:
    """The suite's shared object store (tests/conftest.py); each test gets its own bucket."""
    return object_store


@pytest.fixture
def bucket(store: ObjectStore) -> Iterator[str]:
    """A new bucket name (push creates the bucket); the bucket is removed after the test."""
    name = f"m-{uuid.uuid4().hex[:12]}"
    yield name
    store.remove_bucket(name)  # each bucket holds volumes of its own: do not keep them


@pytest.fixture
def flags(store: ObjectStore, bucket: str) -> list[str]:
    """Connection flags for a new bucket (push creates it); they win over any local stack's."""
    return [
        "--s3-endpoint",
        store.s3_endpoint,
        "--s3-access-key",
        store.credentials.access_key,
        "--s3-secret-key",
        store.credentials.secret_key,
        "--bucket",
        bucket,
    ]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, command: str) -> str:
    """The single ``radiounet COMMAND: error: ...`` line, last on stderr, no traceback."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"radiounet {command}: error: ")
    assert err.rstrip("\n").splitlines()[-1] == errors[0]
    return errors[0]


def test_push_pull_and_push_again(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = default_model_repo()
    versions = list_versions(repo / "radio_unet")
    assert versions[:2] == [1, 2]
    shipped = ", ".join(f"radio_unet/{v}" for v in versions)
    files = [repo / "models.config"] + [
        p for v in versions for p in (repo / "radio_unet" / str(v)).rglob("*") if p.is_file()
    ]
    megabytes = f"{sum(p.stat().st_size for p in files) / 1e6:.1f} MB"
    code, out, err = run(["model", "push", "--repo", str(repo), *flags], capsys)
    assert code == 0, err
    assert "created bucket" in out
    # Every file, plus one .complete marker per version.
    assert (
        f"{len(files) + len(versions)} objects uploaded ({megabytes}), 0 unchanged; "
        f"versions changed: {shipped}"
    ) in out

    code, out, _ = run(
        ["model", "push", "--repo", str(repo), "--prefix", "model_repo", *flags], capsys
    )
    assert code == 0
    assert out.strip().endswith(f"already up to date ({shipped})")

    dest = tmp_path / "models"
    code, out, err = run(["model", "pull", "--dest", str(dest), "--wait", "5", *flags], capsys)
    assert code == 0, err
    version_mb = f"{sum(p.stat().st_size for p in files[1:]) / 1e6:.1f} MB"
    assert f"downloaded {shipped} ({version_mb}); already present none" in out
    for rel in (
        "models.config",
        "radio_unet/2/saved_model.pb",
        "radio_unet/1/variables/variables.index",
    ):
        assert (dest / rel).read_bytes() == (repo / rel).read_bytes(), rel

    code, out, _ = run(["model", "pull", "--dest", str(dest), *flags], capsys)
    assert code == 0
    assert f"downloaded none (0.0 MB); already present {shipped}" in out


def test_pull_wait_times_out_with_one_line(
    store: ObjectStore,
    bucket: str,
    flags: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store.ensure_bucket(bucket)
    code, _, err = run(
        ["model", "pull", "--dest", str(tmp_path / "d"), "--wait", "0.6", *flags], capsys
    )
    assert code == 1
    line = one_error_line(err, "model pull")
    assert line.endswith(
        f"model repository s3://{bucket}/model_repo/ not ready after waiting 0.6 s: "
        f"no models.config under s3://{bucket}/model_repo/"
    )
    assert f"radiounet model pull: waiting for s3://{bucket}/model_repo/" in err


def test_missing_bucket_wrong_credentials_and_store_down(
    store: ObjectStore, flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = ["--dest", str(tmp_path / "d")]
    code, _, err = run(["model", "pull", *dest, *flags], capsys)
    assert code == 1
    assert "does not exist at object store" in one_error_line(err, "model pull")

    wrong = [*flags, "--s3-secret-key", "not-the-secret"]  # the last flag wins
    for argv in (
        ["model", "pull", *dest, *wrong],
        ["model", "push", "--repo", str(default_model_repo()), *wrong],
    ):
        code, _, err = run(argv, capsys)
        assert code == 1
        line = one_error_line(err, " ".join(argv[:2]))
        assert "refused the credentials (SignatureDoesNotMatch: wrong secret key)" in line

    down = [*flags, "--s3-endpoint", "127.0.0.1:9"]
    code, _, err = run(["model", "pull", *dest, *down], capsys)
    assert code == 1
    assert "object store 127.0.0.1:9 unreachable" in one_error_line(err, "model pull")


def test_bad_input_is_exit_status_2(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["model", "push", "--repo", str(tmp_path), *flags], capsys)
    assert code == 2
    assert "has no models.config" in one_error_line(err, "model")
    code, _, err = run(["model", "pull", "--dest", str(tmp_path), "--prefix", "/x", *flags], capsys)
    assert code == 2
    assert "--prefix must be relative to the bucket, got '/x'" in one_error_line(err, "model")


def test_push_refuses_unusable_versions_and_uploads_nothing(
    store: ObjectStore,
    bucket: str,
    flags: list[str],
    tiny_model_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A corrupt, truncated or metadata-less version is named, one line each, before any upload."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_model_repo, repo)
    (repo / "models.config").write_text('config { name: "r" base_path: "/models/radio_unet" }\n')
    good = repo / "radio_unet" / "1"
    for version in (2, 3, 4):
        shutil.copytree(good, repo / "radio_unet" / str(version))
    pb = (good / "saved_model.pb").read_bytes()
    (repo / "radio_unet" / "2" / "saved_model.pb").write_bytes(b"hello not protobuf\n")
    (repo / "radio_unet" / "3" / "saved_model.pb").write_bytes(pb[:1000])
    (repo / "radio_unet" / "4" / "assets.extra" / "radiounet.json").unlink()
    code, out, err = run(["model", "push", "--repo", str(repo), *flags], capsys)
    assert code == 2
    assert out == ""
    folder = repo / "radio_unet"
    assert err.splitlines() == [
        f"radiounet model push: error: {folder / '2'}: corrupt saved_model.pb "
        "(Wire format was corrupt); nothing pushed",
        f"radiounet model push: error: {folder / '3'}: corrupt saved_model.pb "
        "(Wire format was corrupt); nothing pushed",
        f"radiounet model push: error: {folder / '4'}: no assets.extra/radiounet.json; "
        "nothing pushed",
    ]
    assert not store.client().bucket_exists(bucket)  # not even created


def test_the_process_reads_the_environment(
    store: ObjectStore, bucket: str, tiny_model_repo: Path, tmp_path: Path
) -> None:
    """What TF Serving's init container runs: settings from RADIOUNET_*, no flags."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADIOUNET_")} | {
        "RADIOUNET_S3_ENDPOINT": store.s3_endpoint,
        "RADIOUNET_S3_ACCESS_KEY": store.credentials.access_key,
        "RADIOUNET_S3_SECRET_KEY": store.credentials.secret_key,
        "RADIOUNET_BUCKET": bucket,
    }
    repo = tmp_path / "repo"
    shutil.copytree(tiny_model_repo / "radio_unet" / "1", repo / "m" / "1")  # push checks it
    (repo / "models.config").write_text('config { name: "m" base_path: "/models/m" }\n')
    graph = (repo / "m" / "1" / "saved_model.pb").read_bytes()
    pushed = subprocess.run(
        [str(RADIOUNET), "model", "push", "--repo", str(repo)],
        env=env,
        cwd=tmp_path,  # no out/stack/stack.json here
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pushed.returncode == 0, pushed.stderr
    pulled = subprocess.run(
        [str(RADIOUNET), "model", "pull", "--dest", str(tmp_path / "out"), "--wait", "10"],
        env=env,
        cwd=tmp_path,  # no out/stack/stack.json here
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "out" / "m" / "1" / "saved_model.pb").read_bytes() == graph
    assert f"pulled s3://{bucket}/model_repo/ into" in pulled.stdout
