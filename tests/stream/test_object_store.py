"""The services' object-store client against the real SeaweedFS S3 gateway: its errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from radiounet.stream.errors import PermanentError, TransientError
from radiounet.stream.local.ports import free_port
from radiounet.stream.object_store import ObjectStore


def test_an_array_comes_back_with_its_shape_and_dtype(
    store_client: Callable[..., ObjectStore], bucket: str
) -> None:
    store = store_client(bucket)
    array = np.arange(12, dtype=np.float16).reshape(3, 4)
    ref = store.put_array("chunks/a.npy", array)
    assert (list(ref.shape), ref.dtype, ref.bucket, ref.key) == (
        [3, 4],
        "<f2",
        bucket,
        "chunks/a.npy",
    )
    np.testing.assert_array_equal(store.get_array(ref), array)


def test_a_missing_object_is_permanent(
    store_client: Callable[..., ObjectStore], bucket: str
) -> None:
    with pytest.raises(
        PermanentError, match=rf"reading s3://{bucket}/nothing/here: NoSuchKey"
    ) as info:
        store_client(bucket).get_bytes("nothing/here")
    assert info.value.code == "missing_object"


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"access_key": "nobody"}, "InvalidAccessKeyId: unknown access key"),
        ({"secret_key": "not-the-secret"}, "SignatureDoesNotMatch: wrong secret key"),
    ],
)
def test_refused_credentials_say_which_and_what_to_check(
    store_client: Callable[..., ObjectStore], bucket: str, overrides: dict[str, str], why: str
) -> None:
    # Retried, not dead-lettered: the message is fine, the service's keys are not.
    store = store_client(bucket, **overrides)
    for action in (lambda: store.get_bytes("a"), lambda: store.put_bytes("a", b"x")):
        with pytest.raises(TransientError) as info:
            action()
        assert info.value.code == "object_store"
        message = str(info.value)
        assert f"the object store refused the credentials ({why})" in message
        assert "check RADIOUNET_S3_ACCESS_KEY and RADIOUNET_S3_SECRET_KEY" in message


def test_an_unreachable_store_is_transient() -> None:
    store = ObjectStore(
        f"127.0.0.1:{free_port()}", access_key="k", secret_key="s", bucket="radiounet", timeout_s=2
    )
    with pytest.raises(TransientError, match=r"reading s3://radiounet/a: object store unavailable"):
        store.get_bytes("a")
