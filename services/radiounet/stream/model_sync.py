"""Copy a TF Serving model repository to and from the object store (``radiounet model push|pull``).

TensorFlow Serving reads models from a local folder (it has not read S3 itself
since 2.7), so in the cluster a setup Job pushes the image's ``model_repo/`` to
the bucket and each TF Serving pod pulls it into a shared volume first. The
layout under ``prefix`` (default ``model_repo/``) in the bucket::

    <prefix>models.config                       TF Serving's model config, written last
    <prefix><name>/<version>/saved_model.pb    ... every file of the version folder
    <prefix><name>/<version>/.complete          the version's manifest, written after its files

A version exists for readers only once its ``.complete`` marker does: a JSON
manifest listing each file with its size, MD5 and the ETag the store gave it.
:func:`push` uploads a version's files before its marker (and deletes an
outdated marker before changing files), skips files whose size and MD5 already
match, and writes ``models.config`` after every version. :func:`pull` waits
until ``models.config`` is there and every model it names (the last component
of each ``base_path``) has a complete version, downloads each complete version
it lacks into a temporary folder beside the destination, checks every file
against the manifest, and renames the folder into place; versions already
present with the same manifest are skipped.

Errors: refused credentials and unreadable markers raise
:class:`~radiounet.stream.errors.PermanentError` (codes ``credentials``,
``bad_manifest``); an unreachable store, a missing bucket or an incomplete
repository raise :class:`~radiounet.stream.errors.TransientError` (``object_store``,
``missing_bucket``, ``not_ready``) once the wait, if any, is over. Bad local input
(no repository, no versions, a bad prefix) raises ``ValueError``. One process
pulls into a destination at a time (a TF Serving pod's init container).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import MIN_PART_SIZE
from tqdm import tqdm

from radiounet.model.repository import (
    CONFIG_FILE,
    config_model_folders,
    version_folders,
    version_number,
)
from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.object_store import ObjectStore, refused_credentials

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_PREFIX",
    "MARKER",
    "FileEntry",
    "PullReport",
    "PushReport",
    "RemoteRepository",
    "VersionManifest",
    "config_model_folders",
    "local_versions",
    "normalise_prefix",
    "pull",
    "push",
    "read_remote",
]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "model_repo/"
#: Marker (and manifest) of a complete version, written after the version's files.
MARKER = ".complete"
#: Temporary folders of :func:`pull` inside the destination start with this.
_PULL_TMP = ".radiounet-pull-"
_MANIFEST_FORMAT = 1
#: Files up to this size go up in one PUT, so the store's ETag is their MD5; larger ones in
#: parts (minio holds a part, three at a time, in memory: the pods have 512 MiB).
_SINGLE_PUT_MAX = 64 * 2**20
_MULTIPART_SIZE = 16 * 2**20
_CHUNK = 2**20

Say = Callable[[str], None]


# --- manifests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: path relative to the version folder (``/``-separated)."""

    path: str
    size: int
    md5: str
    etag: str = ""


@dataclass(frozen=True)
class VersionManifest:
    """Every file of one model version; serialised as the ``.complete`` marker."""

    name: str
    version: int
    files: tuple[FileEntry, ...]

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def content(self) -> frozenset[tuple[str, int, str]]:
        """What makes two copies of the version the same: paths, sizes and MD5s."""
        return frozenset((f.path, f.size, f.md5) for f in self.files)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": _MANIFEST_FORMAT,
                "name": self.name,
                "version": self.version,
                "files": [
                    {"path": f.path, "size": f.size, "md5": f.md5, "etag": f.etag}
                    for f in sorted(self.files, key=lambda f: f.path)
                ],
            },
            indent=2,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> VersionManifest:
        """Parse a marker.

        Raises
        ------
        ValueError
            If ``data`` is not a manifest this code writes (naming ``where``).
        """
        try:
            raw = json.loads(data)
            if raw.get("format") != _MANIFEST_FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {_MANIFEST_FORMAT}")
            files = tuple(
                FileEntry(str(f["path"]), int(f["size"]), str(f["md5"]), str(f.get("etag", "")))
                for f in raw["files"]
            )
            manifest = cls(str(raw["name"]), int(raw["version"]), files)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"{where}: not a version manifest ({exc})") from None
        for f in manifest.files:
            _check_relative(f.path, where)
        return manifest


def _check_relative(path: str, where: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{where}: unsafe file path {path!r} in manifest")


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _scan_version(folder: Path, name: str, version: int) -> VersionManifest:
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if not path.is_file() or relative == MARKER:
            continue
        files.append(FileEntry(relative, path.stat().st_size, _md5_file(path)))
    if not files:
        raise ValueError(f"version folder {folder} holds no file")
    return VersionManifest(name, version, tuple(files))


def local_versions(repo: Path) -> list[tuple[str, int, Path]]:
    """``(model name, version, folder)`` of every version folder of ``repo``, sorted.

    A model is a folder of ``repo`` holding version folders (positive integers, see
    :func:`radiounet.model.repository.version_folders`).

    Raises
    ------
    ValueError
        If ``repo`` is not a folder, has no ``models.config`` or no version folder.
    """
    if not repo.is_dir():
        raise ValueError(f"model repository {str(repo)!r} is not a folder")
    if not (repo / CONFIG_FILE).is_file():
        raise ValueError(f"model repository {str(repo)!r} has no {CONFIG_FILE}")
    found = []
    for model in sorted(p for p in repo.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version, folder in version_folders(model).items():
            found.append((model.name, version, folder))
    if not found:
        raise ValueError(
            f"model repository {str(repo)!r} has no version folder (<name>/<integer>/)"
        )
    return sorted(found, key=lambda item: (item[0], item[1]))


def normalise_prefix(prefix: str) -> str:
    """``prefix`` as a key prefix: no leading ``/``, one trailing ``/`` (``""`` stays ``""``).

    >>> normalise_prefix("model_repo")
    'model_repo/'

    Raises
    ------
    ValueError
        If it starts with ``/`` or has an empty, ``.`` or ``..`` component.
    """
    if prefix.startswith("/"):
        raise ValueError(f"--prefix must be relative to the bucket, got {prefix!r}")
    stripped = prefix.rstrip("/")
    if not stripped:
        return ""
    if any(p in ("", ".", "..") for p in stripped.split("/")):
        raise ValueError(f"--prefix has an empty, '.' or '..' component: {prefix!r}")
    return stripped + "/"


# --- talking to the store ----------------------------------------------------------------


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    # urllib3 puts the connection object's repr first: keep what follows it.
    return text.split(">: ", 1)[-1]


@contextmanager
def _s3(store: ObjectStore, what: str) -> Iterator[None]:
    """Translate minio's and urllib3's errors into one-line StageErrors."""
    where = f"object store {store.endpoint}"
    try:
        yield
    except S3Error as exc:
        refused = refused_credentials(exc)
        if refused is not None:
            raise PermanentError(f"{what}: {where} {refused}", code="credentials") from None
        if exc.code == "NoSuchBucket":
            raise TransientError(
                f"bucket {store.bucket!r} does not exist at {where}", code="missing_bucket"
            ) from None
        raise TransientError(
            f"{what}: {where}: S3 error {exc.code} ({exc.message})", code="object_store"
        ) from None
    except (ServerError, InvalidResponseError) as exc:
        raise TransientError(
            f"{what}: {where} failed ({_short(exc)})", code="object_store"
        ) from None
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        raise TransientError(
            f"{what}: {where} unreachable ({_short(exc)})", code="object_store"
        ) from None


def _check_bucket(store: ObjectStore) -> bool:
    with _s3(store, f"checking bucket {store.bucket!r}"):
        return bool(store.client.bucket_exists(store.bucket))


def _ensure_bucket(store: ObjectStore) -> bool:
    """Create the bucket if missing; True if this call created it."""
    if _check_bucket(store):
        return False
    with _s3(store, f"creating bucket {store.bucket!r}"):
        try:
            store.client.make_bucket(store.bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
            return False
    return True


@dataclass(frozen=True)
class _Remote:
    size: int
    etag: str


def _list(store: ObjectStore, prefix: str) -> dict[str, _Remote]:
    with _s3(store, f"listing s3://{store.bucket}/{prefix}"):
        return {
            o.object_name: _Remote(int(o.size or 0), (o.etag or "").strip('"'))
            for o in store.client.list_objects(store.bucket, prefix=prefix, recursive=True)
            if o.object_name is not None and not o.is_dir
        }


def _get(store: ObjectStore, key: str) -> bytes:
    with _s3(store, f"reading s3://{store.bucket}/{key}"):
        response = store.client.get_object(store.bucket, key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()


class _Progress:
    """minio's progress protocol onto a tqdm bar."""

    def __init__(self, bar: tqdm[Any]) -> None:
        self.bar = bar

    def set_meta(self, object_name: str, total_length: int) -> None:
        self.bar.set_postfix_str(object_name.rsplit("/", 1)[-1], refresh=False)

    def update(self, length: int) -> None:
        self.bar.update(length)


def _put(
    store: ObjectStore,
    key: str,
    stream: BinaryIO,
    size: int,
    *,
    content_type: str = "application/octet-stream",
    progress: _Progress | None = None,
) -> str:
    # One PUT up to _SINGLE_PUT_MAX, so that the ETag is the MD5 (what the next push compares).
    part = max(MIN_PART_SIZE, size) if size <= _SINGLE_PUT_MAX else _MULTIPART_SIZE
    with _s3(store, f"writing s3://{store.bucket}/{key}"):
        result = store.client.put_object(
            store.bucket,
            key,
            stream,
            size,
            content_type=content_type,
            part_size=part,
            progress=progress,
        )
    return (result.etag or "").strip('"')


def _remove(store: ObjectStore, keys: list[str]) -> None:
    for key in keys:
        with _s3(store, f"deleting s3://{store.bucket}/{key}"):
            store.client.remove_object(store.bucket, key)


def _bar(total: int, desc: str, show: bool | None) -> tqdm[Any]:
    # show None: only on a terminal (tqdm's disable=None).
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None if show is None else not show,
        file=sys.stderr,
        leave=False,
    )


# --- push ------------------------------------------------------------------------------------


@dataclass
class PushReport:
    """What :func:`push` did; ``uploaded`` are keys, ``versions`` labels (``name/version``)."""

    bucket: str
    prefix: str
    created_bucket: bool = False
    versions: list[str] = field(default_factory=list)
    changed_versions: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    uploaded_bytes: int = 0
    unchanged: int = 0
    deleted: list[str] = field(default_factory=list)


def _same(local: FileEntry, remote: _Remote | None, recorded: FileEntry | None) -> bool:
    if remote is None or remote.size != local.size:
        return False
    if remote.etag == local.md5:
        return True
    # A multipart (or encrypted) object's ETag is not its MD5: trust the ETag the
    # marker recorded when this content was uploaded.
    return (
        recorded is not None
        and recorded.md5 == local.md5
        and bool(recorded.etag)
        and recorded.etag == remote.etag
    )


def _remote_manifest(
    store: ObjectStore, key: str, listing: Mapping[str, _Remote]
) -> VersionManifest | None:
    if key not in listing:
        return None
    try:
        return VersionManifest.from_json(_get(store, key), where=f"s3://{store.bucket}/{key}")
    except ValueError as exc:
        log.warning("%s; the version is uploaded again", exc)
        return None


def push(
    store: ObjectStore,
    repo: Path,
    *,
    prefix: str = DEFAULT_PREFIX,
    say: Say = log.info,
    show_progress: bool | None = None,
) -> PushReport:
    """Upload ``repo`` (``models.config`` and every version folder) under ``prefix``.

    Idempotent: files whose size and MD5 match the stored object are skipped, a
    version whose marker and files all match is left alone. The bucket is
    created if missing.

    Raises
    ------
    ValueError
        If ``repo`` is not a model repository (see :func:`local_versions`) or ``prefix`` is bad.
    PermanentError
        If the store refuses the credentials.
    TransientError
        If the store cannot be reached or fails.
    """
    prefix = normalise_prefix(prefix)
    versions = local_versions(repo)
    manifests = [_scan_version(folder, name, version) for name, version, folder in versions]
    folders = {m.label: folder for m, (_, _, folder) in zip(manifests, versions, strict=True)}
    report = PushReport(store.bucket, prefix, created_bucket=_ensure_bucket(store))
    listing = _list(store, prefix)

    plan: list[tuple[VersionManifest, list[FileEntry], list[str], VersionManifest | None]] = []
    for manifest in manifests:
        base = f"{prefix}{manifest.label}/"
        marker = _remote_manifest(store, base + MARKER, listing)
        recorded = {f.path: f for f in marker.files} if marker is not None else {}
        upload = [
            f
            for f in manifest.files
            if not _same(f, listing.get(base + f.path), recorded.get(f.path))
        ]
        wanted = {base + f.path for f in manifest.files} | {base + MARKER}
        stale = sorted(k for k in listing if k.startswith(base) and k not in wanted)
        in_sync = marker is not None and marker.content() == manifest.content()
        report.versions.append(manifest.label)
        report.unchanged += len(manifest.files) - len(upload)
        if upload or stale or not in_sync:
            plan.append((manifest, upload, stale, marker))

    total = sum(f.size for _, upload, _, _ in plan for f in upload)
    with _bar(total, "push", show_progress) as bar:
        progress = _Progress(bar)
        for manifest, upload, stale, marker in plan:
            base = f"{prefix}{manifest.label}/"
            say(f"uploading {manifest.label}: {len(upload)} of {len(manifest.files)} files")
            if marker is not None:
                # Readers must not take the version while its files change.
                _remove(store, [base + MARKER])
            etags = {}
            for entry in upload:
                path = folders[manifest.label] / entry.path
                with path.open("rb") as stream:
                    etags[entry.path] = _put(
                        store, base + entry.path, stream, entry.size, progress=progress
                    )
                report.uploaded.append(base + entry.path)
                report.uploaded_bytes += entry.size
            _remove(store, stale)
            report.deleted.extend(stale)
            for entry in manifest.files:
                if entry.path not in etags:
                    etags[entry.path] = listing[base + entry.path].etag
            final = VersionManifest(
                manifest.name,
                manifest.version,
                tuple(FileEntry(f.path, f.size, f.md5, etags[f.path]) for f in manifest.files),
            )
            data = final.to_json()
            _put(
                store,
                base + MARKER,
                _bytes_stream(data),
                len(data),
                content_type="application/json",
            )
            report.uploaded.append(base + MARKER)
            report.changed_versions.append(manifest.label)

    # The config last: a reader that sees it also sees the versions it names.
    config = (repo / CONFIG_FILE).read_bytes()
    key = prefix + CONFIG_FILE
    current = listing.get(key)
    if current is None or current.size != len(config) or current.etag != _md5(config):
        _put(store, key, _bytes_stream(config), len(config), content_type="text/plain")
        report.uploaded.append(key)
        report.uploaded_bytes += len(config)
    else:
        report.unchanged += 1
    return report


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _bytes_stream(data: bytes) -> BinaryIO:
    return io.BytesIO(data)


# --- pull ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteRepository:
    """What the bucket holds under a prefix: the config and the complete versions."""

    config: bytes | None
    manifests: tuple[VersionManifest, ...]
    incomplete: tuple[str, ...]

    def missing(self) -> list[str]:
        """Model folders the config names that have no complete version yet."""
        if self.config is None:
            return []
        have = {m.name for m in self.manifests}
        names = config_model_folders(self.config.decode("utf-8", "replace"))
        return [n for n in names if n not in have]

    def not_ready(self, where: str) -> str | None:
        """Why a pull cannot start yet, or None when it can."""
        if self.config is None:
            return f"no {CONFIG_FILE} under {where}"
        missing = self.missing()
        if missing:
            waiting = f" ({', '.join(self.incomplete)} not complete)" if self.incomplete else ""
            return f"no complete version of {', '.join(missing)} under {where}{waiting}"
        if not self.manifests:
            return f"no complete version under {where}"
        return None


def read_remote(store: ObjectStore, prefix: str = DEFAULT_PREFIX) -> RemoteRepository:
    """The repository under ``prefix``: ``models.config`` and the versions with a marker.

    Raises
    ------
    TransientError
        ``missing_bucket`` if the bucket does not exist, ``object_store`` if unreachable.
    PermanentError
        If the store refuses the credentials.
    """
    prefix = normalise_prefix(prefix)
    if not _check_bucket(store):
        raise TransientError(
            f"bucket {store.bucket!r} does not exist at object store {store.endpoint}",
            code="missing_bucket",
        )
    listing = _list(store, prefix)
    config = _get(store, prefix + CONFIG_FILE) if prefix + CONFIG_FILE in listing else None
    versions: dict[str, bool] = {}
    # Model folders as TF Serving names them; no "." or ".." (the names become local paths).
    pattern = re.compile(re.escape(prefix) + r"([^/.][^/]*)/([^/]+)/(.+)$")
    for key in listing:
        match = pattern.match(key)
        version = version_number(match[2]) if match else None
        if match and version is not None:
            label = f"{match[1]}/{version}"
            versions[label] = versions.get(label, False) or match[3] == MARKER
    manifests = []
    for label, complete in sorted(versions.items()):
        if not complete:
            continue
        key = f"{prefix}{label}/{MARKER}"
        where = f"s3://{store.bucket}/{key}"
        try:
            manifest = VersionManifest.from_json(_get(store, key), where=where)
        except ValueError as exc:
            raise PermanentError(str(exc), code="bad_manifest") from None
        if manifest.label != label:
            raise PermanentError(
                f"{where}: the manifest is for {manifest.label}", code="bad_manifest"
            )
        manifests.append(manifest)
    incomplete = tuple(label for label, complete in sorted(versions.items()) if not complete)
    return RemoteRepository(config, tuple(manifests), incomplete)


@dataclass
class PullReport:
    """What :func:`pull` did (labels ``name/version``)."""

    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    downloaded_bytes: int = 0
    config_written: bool = False
    waited_s: float = 0.0


def _local_manifest(folder: Path) -> VersionManifest | None:
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        return VersionManifest.from_json(marker.read_bytes(), where=str(marker))
    except (ValueError, OSError):
        return None


def _wait_ready(
    store: ObjectStore,
    prefix: str,
    wait_s: float,
    say: Say,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[RemoteRepository, float]:
    where = f"s3://{store.bucket}/{prefix}"
    start = clock()
    delay, attempt = 0.5, 0
    while True:
        attempt += 1
        try:
            remote = read_remote(store, prefix)
            reason = remote.not_ready(where)
            code = "not_ready"
        except TransientError as exc:  # unreachable store, no bucket yet: wait for them too
            remote, reason, code = None, str(exc), exc.code
        if remote is not None and reason is None:
            return remote, clock() - start
        elapsed = clock() - start
        if elapsed + 1e-9 >= wait_s:
            waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
            raise TransientError(f"model repository {where} not ready{waited}: {reason}", code=code)
        pause = min(delay, wait_s - elapsed)
        if attempt == 1 or attempt % 5 == 0:
            say(f"waiting for {where} ({elapsed:.0f} of {wait_s:g} s): {reason}")
        sleep(pause)
        delay = min(delay * 2, 10.0)


def _download_version(
    store: ObjectStore, prefix: str, manifest: VersionManifest, into: Path, bar: tqdm[Any]
) -> None:
    base = f"{prefix}{manifest.label}/"
    for entry in manifest.files:
        path = into / entry.path
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with _s3(store, f"reading s3://{store.bucket}/{base}{entry.path}"):
            response = store.client.get_object(store.bucket, base + entry.path)
            try:
                with path.open("wb") as out:
                    for chunk in response.stream(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        bar.update(len(chunk))
            finally:
                response.close()
                response.release_conn()
        if size != entry.size or digest.hexdigest() != entry.md5:
            raise TransientError(
                f"s3://{store.bucket}/{base}{entry.path}: got {size} bytes, MD5 "
                f"{digest.hexdigest()}; the manifest says {entry.size} bytes, MD5 {entry.md5} "
                "(a push in progress?)",
                code="object_store",
            )
    (into / MARKER).write_bytes(manifest.to_json())


def _replace_dir(new: Path, target: Path, scratch: Path) -> bool:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside, then removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists() or target.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=_PULL_TMP + "old-", dir=scratch))
        os.rename(target, old / "v")
    os.rename(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return old is not None


def pull(
    store: ObjectStore,
    dest: Path,
    *,
    prefix: str = DEFAULT_PREFIX,
    wait_s: float = 0.0,
    say: Say = log.info,
    show_progress: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PullReport:
    """Download the repository under ``prefix`` into ``dest`` (TF Serving's layout).

    Waits up to ``wait_s`` seconds (0: look once) for ``models.config`` and a
    complete version of every model it names, then copies each complete version
    not already in ``dest`` with the same manifest, and ``models.config`` last.
    Each version lands by a rename of a finished folder, so TF Serving never
    loads a half-written one; one that is there but incomplete or different is
    replaced. Versions only in ``dest`` are left alone.

    Raises
    ------
    TransientError
        When the wait is over (``missing_bucket``, ``object_store`` or ``not_ready``),
        or a downloaded file does not match its manifest.
    PermanentError
        If the store refuses the credentials.
    ValueError
        For a bad ``prefix`` or ``wait_s``, or ``dest`` that is a file.
    """
    prefix = normalise_prefix(prefix)
    if wait_s < 0:
        raise ValueError(f"--wait must be >= 0 seconds, got {wait_s:g}")
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"--dest {str(dest)!r} is not a folder")
    remote, waited = _wait_ready(store, prefix, wait_s, say, clock, sleep)
    report = PullReport(waited_s=waited)
    dest.mkdir(parents=True, exist_ok=True)
    for leftover in dest.glob(_PULL_TMP + "*"):  # from a pull that was killed
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)

    todo = []
    for manifest in remote.manifests:
        local = _local_manifest(dest / manifest.name / str(manifest.version))
        if local is not None and local.content() == manifest.content():
            report.present.append(manifest.label)
        else:
            todo.append(manifest)
    with _bar(sum(m.total_bytes for m in todo), "pull", show_progress) as bar:
        for manifest in todo:
            say(f"downloading {manifest.label}: {len(manifest.files)} files")
            scratch = Path(tempfile.mkdtemp(prefix=_PULL_TMP, dir=dest))
            try:
                _download_version(store, prefix, manifest, scratch / "v", bar)
                target = dest / manifest.name / str(manifest.version)
                if _replace_dir(scratch / "v", target, dest):
                    report.replaced.append(manifest.label)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            report.downloaded.append(manifest.label)
            report.downloaded_bytes += manifest.total_bytes

    assert remote.config is not None  # _wait_ready returns only with a config
    config = dest / CONFIG_FILE
    if not config.is_file() or config.read_bytes() != remote.config:
        partial = dest / (_PULL_TMP + CONFIG_FILE)
        partial.write_bytes(remote.config)
        os.replace(partial, config)
        report.config_written = True
    return report
