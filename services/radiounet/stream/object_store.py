"""The object store (MinIO in the cluster, SeaweedFS's S3 gateway locally), via ``minio``.

Failures are translated once, here: a store that cannot be reached, or that
refuses the credentials (the message names which keys to check), is a
:class:`TransientError` (the stage backs off and retries the message), a
missing object a :class:`PermanentError`.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from numpy.typing import NDArray

from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.settings import Settings

__all__ = ["ObjectStore", "refused_credentials"]

log = logging.getLogger(__name__)

_MISSING = {"NoSuchKey", "NoSuchBucket", "NoSuchObject"}

#: S3 error codes of a store refusing the credentials, and what each usually means.
_REFUSED = {
    "InvalidAccessKeyId": "unknown access key",
    "SignatureDoesNotMatch": "wrong secret key",
    "AccessDenied": "wrong keys, or no permission on this bucket",
    "InvalidToken": "",
    "ExpiredToken": "",
}


def refused_credentials(exc: S3Error) -> str | None:
    """What to tell the user when ``exc`` is the store refusing the credentials, else None.

    Examples
    --------
    >>> from minio.error import S3Error
    >>> error = S3Error(None, "SignatureDoesNotMatch", "...", None, None, None)
    >>> refused_credentials(error)  # doctest: +NORMALIZE_WHITESPACE
    'refused the credentials (SignatureDoesNotMatch: wrong secret key); check
    RADIOUNET_S3_ACCESS_KEY and RADIOUNET_S3_SECRET_KEY (--s3-access-key, --s3-secret-key)'
    >>> refused_credentials(S3Error(None, "NoSuchKey", "...", None, None, None)) is None
    True
    """
    if exc.code not in _REFUSED:
        return None
    return (
        f"refused the credentials ({exc.code}: {_REFUSED[exc.code] or exc.message}); check "
        "RADIOUNET_S3_ACCESS_KEY and RADIOUNET_S3_SECRET_KEY (--s3-access-key, --s3-secret-key)"
    )


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except S3Error as exc:
        if exc.code in _MISSING:
            raise PermanentError(f"{what}: {exc.code}", code="missing_object") from None
        refused = refused_credentials(exc)
        if refused is not None:
            # Not the message's fault: retried (with back-off) until the keys are fixed.
            raise TransientError(
                f"{what}: the object store {refused}", code="object_store"
            ) from None
        raise TransientError(f"{what}: S3 error {exc.code}", code="object_store") from None
    except (ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError) as exc:
        raise TransientError(
            f"{what}: object store unavailable ({type(exc).__name__}: {exc})",
            code="object_store",
        ) from None


class ObjectStore:
    """Put and get FITS, arrays and JSON in one bucket; every write returns an ObjectRef."""

    def __init__(
        self,
        endpoint: str,
        *,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        timeout_s: float = 30.0,
    ) -> None:
        # Few, quick retries here: the stage's own back-off handles long outages.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=3.0, read=timeout_s),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(502, 503, 504)),
            maxsize=16,
        )
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, http_client=http
        )
        self.bucket = bucket
        self.endpoint = endpoint

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        return cls(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.bucket,
            secure=settings.s3_secure,
        )

    def ensure_bucket(self) -> None:
        with _translated(f"creating bucket {self.bucket}"):
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    # Another replica created it first.
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

    # --- writing ---------------------------------------------------------------------------

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> pb.ObjectRef:
        with _translated(f"writing s3://{self.bucket}/{key}"):
            result = self.client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
            )
        return pb.ObjectRef(
            bucket=self.bucket,
            key=key,
            etag=(result.etag or "").strip('"'),
            size_bytes=len(data),
            content_type=content_type,
        )

    def put_array(self, key: str, array: NDArray[Any]) -> pb.ObjectRef:
        """Store ``array`` as a ``.npy`` object; the ref records shape and dtype."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        ref = self.put_bytes(key, buf.getvalue(), content_type="application/x-npy")
        ref.shape.extend(int(n) for n in array.shape)
        ref.dtype = array.dtype.str
        return ref

    def put_json(self, key: str, payload: Any) -> pb.ObjectRef:
        data = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False).encode()
        return self.put_bytes(key, data, content_type="application/json")

    # --- reading ---------------------------------------------------------------------------

    def get_bytes(self, ref: pb.ObjectRef | str) -> bytes:
        """The object's bytes; ``ref`` is an ObjectRef (its bucket) or a key in this bucket."""
        bucket, key = (self.bucket, ref) if isinstance(ref, str) else (ref.bucket, ref.key)
        with _translated(f"reading s3://{bucket}/{key}"):
            response = self.client.get_object(bucket, key)
            try:
                data = response.read()
                etag = (response.headers.get("ETag") or "").strip('"')
            finally:
                response.close()
                response.release_conn()
        if not isinstance(ref, str) and ref.etag and etag and etag != ref.etag:
            # A replayed upstream message rewrote the object (same key); the newer one wins.
            log.info(
                "s3://%s/%s: ETag %s differs from the message's %s", bucket, key, etag, ref.etag
            )
        return bytes(data)

    def get_array(self, ref: pb.ObjectRef | str) -> NDArray[Any]:
        data = self.get_bytes(ref)
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError) as exc:
            name = ref if isinstance(ref, str) else ref.key
            raise PermanentError(f"{name}: not a .npy array ({exc})", code="bad_object") from None
        return np.asarray(array)

    def get_json(self, ref: pb.ObjectRef | str) -> Any:
        data = self.get_bytes(ref)
        try:
            return json.loads(data)
        except ValueError as exc:
            name = ref if isinstance(ref, str) else ref.key
            raise PermanentError(f"{name}: not JSON ({exc})", code="bad_object") from None

    def exists(self, key: str) -> bool:
        try:
            with _translated(f"checking s3://{self.bucket}/{key}"):
                self.client.stat_object(self.bucket, key)
        except PermanentError:
            return False
        return True

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (recursive), sorted."""
        with _translated(f"listing s3://{self.bucket}/{prefix}"):
            return sorted(
                o.object_name
                for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if o.object_name is not None
            )
