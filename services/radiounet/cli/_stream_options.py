"""Options and helpers shared by the commands that talk to the streaming pipeline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection

from radiounet.stream.errors import StageError, TransientError
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.settings import Settings, add_settings_arguments

from ._stack_settings import add_stack_argument

__all__ = [
    "add_stream_options",
    "guarded",
    "open_store",
]


def add_stream_options(
    parser: argparse.ArgumentParser, *, only: Collection[str] | None = None
) -> None:
    """``--stack`` and one flag per connection setting (those in ``only``, if given)."""
    add_stack_argument(parser)
    add_settings_arguments(parser, only=only)


def open_store(settings: Settings) -> ObjectStore:
    """The pipeline's bucket, which must exist: a missing one is a wrong ``--bucket``
    or a pipeline that never ran, both worth saying rather than showing an empty table."""
    store = ObjectStore.from_settings(settings)
    try:
        found = store.client.bucket_exists(store.bucket)
    except Exception as exc:  # minio raises S3Error, urllib3 and OS errors here
        raise TransientError(
            f"object store {settings.s3_endpoint} unavailable ({type(exc).__name__}: {exc})",
            code="object_store",
        ) from None
    if not found:
        raise ValueError(
            f"bucket {store.bucket!r} does not exist at {settings.s3_endpoint} "
            "(nothing stored yet, or a wrong --bucket / --stack?)"
        )
    return store


def guarded(command: str, body: Callable[[], int]) -> int:
    """Run ``body``; an unreachable broker or store becomes one error line and status 1.

    Bad input (ValueError) is left to the CLI's handler, which exits with status 2.
    """
    try:
        return body()
    except StageError as exc:
        print(f"radiounet {command}: error: {exc}", file=sys.stderr)
        return 1
