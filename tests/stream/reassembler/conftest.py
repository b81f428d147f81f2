"""Service tests run against a real S3 store: SeaweedFS, from tests/stream/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from radiounet.stream.local.components import ObjectStore as LocalObjectStore
from radiounet.stream.object_store import ObjectStore


@pytest.fixture
def store(object_store: LocalObjectStore, bucket: str) -> Iterator[ObjectStore]:
    """A client of a fresh, empty bucket of the shared test store."""
    client = ObjectStore(
        object_store.s3_endpoint,
        access_key=object_store.credentials.access_key,
        secret_key=object_store.credentials.secret_key,
        bucket=bucket,
    )
    yield client
    client.client._http.clear()  # close pooled connections: no ResourceWarning at exit
