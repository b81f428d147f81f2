"""model_sync against the real object store: push, pull, idempotence, waiting and errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from radiounet.model.repository import default_model_repo, version_folders
from radiounet.stream import model_sync
from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.local.components import ObjectStore as LocalStore
from radiounet.stream.model_server.versions import list_versions
from radiounet.stream.model_sync import (
    MARKER,
    VersionManifest,
    config_model_folders,
    local_versions,
    normalise_prefix,
    pull,
    push,
    read_remote,
)
from radiounet.stream.object_store import ObjectStore

CONFIG = 'model_config_list { config { name: "m" base_path: "/models/m" } }\n'


@pytest.fixture
def client(store_client: Callable[..., ObjectStore], bucket: str) -> ObjectStore:
    return store_client(bucket)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _version_files(repo: Path) -> dict[str, bytes]:
    """models.config and every version folder's files (what push copies), by relative path."""
    files = {"models.config": (repo / "models.config").read_bytes()}
    for name, version, folder in local_versions(repo):
        for rel, data in _tree(folder).items():
            if rel != MARKER:
                files[f"{name}/{version}/{rel}"] = data
    return files


def _small_repo(root: Path, versions: dict[int, dict[str, bytes]]) -> Path:
    root.mkdir(parents=True)
    (root / "models.config").write_text(CONFIG)
    for version, files in versions.items():
        for rel, data in files.items():
            path = root / "m" / str(version) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return root


def _keys(store: ObjectStore, prefix: str = "model_repo/") -> list[str]:
    return store.list_keys(prefix)


# --- push and pull ---------------------------------------------------------------------------


def test_push_then_pull_gives_identical_files(client: ObjectStore, tmp_path: Path) -> None:
    repo = default_model_repo()
    shipped = [f"radio_unet/{v}" for v in list_versions(repo / "radio_unet")]
    assert shipped[:2] == ["radio_unet/1", "radio_unet/2"]
    first = push(client, repo)
    assert first.created_bucket is False  # the fixture's bucket exists
    assert first.versions == shipped
    assert first.changed_versions == first.versions
    expected = _version_files(repo)
    assert len(first.uploaded) == len(expected) + len(shipped)  # + one marker per version
    assert first.uploaded[-1] == "model_repo/models.config"  # the config goes last
    assert first.uploaded_bytes == sum(len(v) for v in expected.values())

    dest = tmp_path / "models"
    report = pull(client, dest)
    assert report.downloaded == shipped
    assert report.config_written and not report.present
    pulled = {k: v for k, v in _tree(dest).items() if not k.endswith(MARKER)}
    assert pulled == expected
    # Each version carries its manifest, the same as the stored one.
    for label in shipped:
        local = json.loads((dest / label / MARKER).read_bytes())
        stored = json.loads(client.get_bytes(f"model_repo/{label}/{MARKER}"))
        assert local == stored
        assert {f["path"] for f in local["files"]} >= {
            "saved_model.pb",
            "variables/variables.index",
        }

    again = pull(client, dest)
    assert again.downloaded == [] and again.present == shipped
    assert not again.config_written


def test_second_push_uploads_nothing(client: ObjectStore) -> None:
    push(client, default_model_repo())
    second = push(client, default_model_repo())
    assert second.uploaded == [] and second.changed_versions == []
    assert second.unchanged == len(_version_files(default_model_repo()))


def test_push_creates_the_bucket(
    store_client: Callable[..., ObjectStore], bucket: str, tmp_path: Path
) -> None:
    store = store_client(bucket + "-new")
    repo = _small_repo(tmp_path / "repo", {1: {"saved_model.pb": b"x"}})
    report = push(store, repo, prefix="deep/er")
    assert report.created_bucket
    assert store.list_keys("") == [
        "deep/er/m/1/.complete",
        "deep/er/m/1/saved_model.pb",
        "deep/er/models.config",
    ]


def test_changed_file_is_uploaded_and_pulled_again(client: ObjectStore, tmp_path: Path) -> None:
    repo = _small_repo(
        tmp_path / "repo",
        {1: {"saved_model.pb": b"graph-1", "variables/variables.index": b"idx", "old.txt": b"o"}},
    )
    push(client, repo)
    dest = tmp_path / "dest"
    pull(client, dest)

    (repo / "m" / "1" / "saved_model.pb").write_bytes(b"graph-1, retrained")
    (repo / "m" / "1" / "old.txt").unlink()
    report = push(client, repo)
    assert report.uploaded == ["model_repo/m/1/saved_model.pb", "model_repo/m/1/.complete"]
    assert report.deleted == ["model_repo/m/1/old.txt"]
    assert report.unchanged == 2  # variables.index and models.config

    again = pull(client, dest)
    assert again.downloaded == ["m/1"] and again.replaced == ["m/1"]
    assert (dest / "m" / "1" / "saved_model.pb").read_bytes() == b"graph-1, retrained"
    assert not (dest / "m" / "1" / "old.txt").exists()
    assert not list(dest.glob(".radiounet-pull-*"))  # no temporary folder left


def test_multipart_objects_are_recognised_by_their_recorded_etag(
    client: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Force multipart uploads (5 MiB parts): the ETag is then not the file's MD5.
    monkeypatch.setattr(model_sync, "_SINGLE_PUT_MAX", 2**20)
    monkeypatch.setattr(model_sync, "_MULTIPART_SIZE", model_sync.MIN_PART_SIZE)
    big = bytes(range(256)) * (11 * 2**12)  # 11 MiB: 3 parts
    repo = _small_repo(tmp_path / "repo", {3: {"variables/variables.data": big}})
    push(client, repo)
    stored = client.client.stat_object(client.bucket, "model_repo/m/3/variables/variables.data")
    assert (stored.etag or "").endswith("-3")
    assert push(client, repo).uploaded == []
    dest = tmp_path / "dest"
    pull(client, dest)
    assert (dest / "m" / "3" / "variables" / "variables.data").read_bytes() == big


def test_pull_replaces_a_half_written_version(client: ObjectStore, tmp_path: Path) -> None:
    repo = _small_repo(
        tmp_path / "repo",
        {1: {"saved_model.pb": b"one"}, 2: {"saved_model.pb": b"two", "variables/v": b"vv"}},
    )
    push(client, repo)
    dest = tmp_path / "dest"
    half = dest / "m" / "2"
    half.mkdir(parents=True)
    (half / "saved_model.pb").write_bytes(b"tw")  # cut short, no marker
    keep = dest / "m" / "9"  # a version only here: left alone
    keep.mkdir()
    (keep / "saved_model.pb").write_bytes(b"nine")

    report = pull(client, dest)
    assert report.downloaded == ["m/1", "m/2"] and report.replaced == ["m/2"]
    assert _tree(half).keys() == {"saved_model.pb", "variables/v", MARKER}
    assert (half / "saved_model.pb").read_bytes() == b"two"
    assert (keep / "saved_model.pb").read_bytes() == b"nine"
    assert (dest / "models.config").read_text() == CONFIG


def test_pull_waits_for_a_push_in_progress(client: ObjectStore, tmp_path: Path) -> None:
    repo = _small_repo(tmp_path / "repo", {1: {"saved_model.pb": b"one"}})
    # A push cut short: the version's file and the config, no marker.
    client.put_bytes("model_repo/m/1/saved_model.pb", b"one")
    client.put_bytes("model_repo/models.config", CONFIG.encode())
    assert (
        read_remote(client).not_ready("here")
        == "no complete version of m under here (m/1 not complete)"
    )

    messages: list[str] = []
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        if len(sleeps) == 2:
            push(client, repo)  # the push finishes while the pull waits

    report = pull(
        client, tmp_path / "dest", wait_s=60, say=messages.append, clock=lambda: now[0], sleep=sleep
    )
    assert report.downloaded == ["m/1"]
    assert sleeps == [0.5, 1.0]  # back-off doubles
    assert messages[0].startswith("waiting for s3://")
    assert "no complete version of m" in messages[0]


def test_pull_wait_times_out_with_the_reason(client: ObjectStore, tmp_path: Path) -> None:
    client.put_bytes("model_repo/m/1/saved_model.pb", b"one")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(TransientError) as info:
        pull(client, tmp_path / "dest", wait_s=30, clock=lambda: now[0], sleep=sleep, say=print)
    assert info.value.code == "not_ready"
    assert str(info.value) == (
        f"model repository s3://{client.bucket}/model_repo/ not ready after waiting 30 s: "
        f"no models.config under s3://{client.bucket}/model_repo/"
    )
    assert now[0] == pytest.approx(30)  # waited the whole time, not beyond
    assert not (tmp_path / "dest").exists()


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"access_key": "nobody"}, "InvalidAccessKeyId"),
        ({"secret_key": "not-the-secret"}, "SignatureDoesNotMatch"),
    ],
)
def test_wrong_credentials_are_a_clear_permanent_error(
    store_client: Callable[..., ObjectStore],
    bucket: str,
    tmp_path: Path,
    overrides: dict[str, str],
    code: str,
) -> None:
    store = store_client(bucket, **overrides)
    repo = _small_repo(tmp_path / "repo", {1: {"saved_model.pb": b"one"}})
    for action in (lambda: push(store, repo), lambda: pull(store, tmp_path / "dest", wait_s=30)):
        with pytest.raises(PermanentError, match=f"refused the credentials \\({code}") as info:
            action()
        assert info.value.code == "credentials"
        assert "RADIOUNET_S3_SECRET_KEY" in str(info.value)


def test_missing_bucket_and_unreachable_store(
    object_store: LocalStore,
    store_client: Callable[..., ObjectStore],
    bucket: str,
    tmp_path: Path,
) -> None:
    with pytest.raises(TransientError) as info:
        pull(store_client(bucket + "-none"), tmp_path / "dest")
    assert info.value.code == "missing_bucket"
    assert (
        f"bucket '{bucket}-none' does not exist at object store {object_store.s3_endpoint}"
        in str(info.value)
    )

    down = ObjectStore("127.0.0.1:9", access_key="a", secret_key="b", bucket=bucket)
    with pytest.raises(
        TransientError, match=re.escape("object store 127.0.0.1:9 unreachable")
    ) as info:
        pull(down, tmp_path / "dest")
    assert info.value.code == "object_store"


def test_a_marker_for_another_version_is_refused(client: ObjectStore, tmp_path: Path) -> None:
    manifest = VersionManifest("m", 2, (model_sync.FileEntry("a", 1, "0" * 32),))
    client.put_bytes("model_repo/m/1/.complete", manifest.to_json())
    client.put_bytes("model_repo/models.config", CONFIG.encode())
    with pytest.raises(PermanentError, match="the manifest is for m/2") as info:
        pull(client, tmp_path / "dest")
    assert info.value.code == "bad_manifest"


# --- local input -----------------------------------------------------------------------------


def test_local_repository_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a folder"):
        local_versions(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"has no models\.config"):
        local_versions(tmp_path)
    (tmp_path / "models.config").write_text(CONFIG)
    (tmp_path / "m" / "0").mkdir(parents=True)  # not a version: versions are positive
    (tmp_path / "m" / "latest").mkdir()
    with pytest.raises(ValueError, match="has no version folder"):
        local_versions(tmp_path)
    (tmp_path / "m" / "4").mkdir()
    assert [(n, v) for n, v, _ in local_versions(tmp_path)] == [("m", 4)]


def test_local_versions_follow_the_version_folder_rule(
    tmp_path: Path, odd_version_folders: Callable[[Path], Path]
) -> None:
    (tmp_path / "models.config").write_text(CONFIG)
    odd_version_folders(tmp_path / "m")
    odd_version_folders(tmp_path / "n")
    (tmp_path / ".hidden" / "5").mkdir(parents=True)  # not a model folder
    expected = [
        (model, version, folder)
        for model in ("m", "n")
        for version, folder in version_folders(tmp_path / model).items()
    ]
    assert local_versions(tmp_path) == expected
    assert [(n, v) for n, v, _ in expected] == [(n, v) for n in "mn" for v in (1, 10, 12)]


def test_read_remote_follows_the_version_folder_rule(client: ObjectStore) -> None:
    for name in ("1", "10", "0", "007", "+2", "x1", "١", "9" * 20):
        client.put_bytes(f"model_repo/m/{name}/saved_model.pb", b"x")
    remote = read_remote(client)
    assert remote.manifests == ()
    assert remote.incomplete == ("m/1", "m/10")


@pytest.mark.parametrize(
    ("given", "expected"), [("model_repo/", "model_repo/"), ("a/b//", "a/b/"), ("", "")]
)
def test_prefix_is_normalised(given: str, expected: str) -> None:
    assert normalise_prefix(given) == expected


@pytest.mark.parametrize("bad", ["/abs", "a/../b", "a//b"])
def test_bad_prefixes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        normalise_prefix(bad)


@pytest.mark.parametrize("path", ["../etc/passwd", "/abs", "a/./b", ""])
def test_manifests_with_unsafe_paths_are_refused(path: str) -> None:
    data = json.dumps(
        {"format": 1, "name": "m", "version": 1, "files": [{"path": path, "size": 1, "md5": "x"}]}
    ).encode()
    with pytest.raises(ValueError, match="unsafe file path"):
        VersionManifest.from_json(data, where="marker")


def test_config_names_the_model_folders() -> None:
    text = (default_model_repo() / "models.config").read_text()
    assert config_model_folders(text) == ["radio_unet"]
    two = 'config { base_path: "/models/a/" } config { name: "b" base_path: "rel/b" }'
    assert config_model_folders(two) == ["a", "b"]


def test_pull_refuses_a_file_as_destination(client: ObjectStore, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        pull(client, target)
    with pytest.raises(ValueError, match="--wait must be >= 0"):
        pull(client, tmp_path / "d", wait_s=-1)
