"""The R threshold the classifier applies to a map: a fixed one, or the map's model version's.

A map's message names the version that made it (``ModelRef``). Given a model
repository to look in, the classifier applies that version's calibrated
``decision_threshold`` (``radiounet model calibrate``), read from
``<repository>/<name>/<version>/assets.extra/radiounet.json`` for every map:
a version that TF Serving starts serving, or one recalibrated while the
classifier runs, is judged by its own threshold without a restart. The
repository is a folder (the local stack's ``model_repo/``) or
``s3://BUCKET/PREFIX`` (the copy ``radiounet model push`` keeps in the object
store, which the chart's TF Serving pods pull). A version without a calibrated
threshold, or a map that names no version, gets the paper's 0.015; a version
absent from the repository too, with the reason in the result row's
``threshold_source``. A fixed ``--threshold`` applies to every map.

Errors: an unreachable store raises :class:`TransientError` (the runner
retries, nothing is lost); an unreadable metadata file raises
:class:`PermanentError` (``bad_model_metadata``), since guessing another
threshold would silently change decisions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from minio.helpers import check_bucket_name

from radiounet.model.repository import METADATA_FILE, parse_metadata
from radiounet.model.threshold import DecisionThreshold
from radiounet.stream.errors import PermanentError
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb

__all__ = [
    "FixedThreshold",
    "RepositoryThresholds",
    "ThresholdSource",
    "parse_repository",
]

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"


class ThresholdSource(Protocol):
    """The decision threshold for maps made by one model version."""

    def for_model(self, model: pb.ModelRef) -> DecisionThreshold: ...


class FixedThreshold:
    """One threshold for every map (``--threshold``, or the paper's)."""

    def __init__(self, threshold: DecisionThreshold) -> None:
        self.threshold = threshold

    def for_model(self, model: pb.ModelRef) -> DecisionThreshold:
        return self.threshold

    def __str__(self) -> str:
        return f"{self.threshold.value:g} ({self.threshold.source})"


class RepositoryThresholds:
    """Each version's calibrated threshold, read from a model repository for every map.

    Parameters
    ----------
    folder : path, keyword-only
        A repository folder (``model_repo/``); or
    store, bucket, prefix : keyword-only
        The object store holding the repository under ``prefix`` in ``bucket``.
    """

    def __init__(
        self,
        *,
        folder: str | Path | None = None,
        store: ObjectStore | None = None,
        bucket: str = "",
        prefix: str = "",
    ) -> None:
        if (folder is None) == (store is None):
            raise ValueError("give a repository folder or an object store, not both or neither")
        if store is not None and not bucket:
            raise ValueError("an object-store repository needs a bucket")
        self.folder = None if folder is None else Path(folder)
        self.store = store
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def __str__(self) -> str:
        where = self.folder if self.folder is not None else f"s3://{self.bucket}/{self.prefix}"
        return f"per model version, calibrated thresholds from {where}"

    def _read(self, relative: str) -> tuple[bytes | None, str]:
        """The file's bytes (None if absent) and its full name."""
        if self.folder is not None:
            path = self.folder / relative
            try:
                return path.read_bytes(), str(path)
            except FileNotFoundError:
                return None, str(path)
        assert self.store is not None
        ref = pb.ObjectRef(bucket=self.bucket, key=self.prefix + relative)
        name = f"s3://{ref.bucket}/{ref.key}"
        try:
            return self.store.get_bytes(ref), name
        except PermanentError as exc:
            if exc.code == "missing_object":
                return None, name
            raise

    def for_model(self, model: pb.ModelRef) -> DecisionThreshold:
        if not model.name or model.version <= 0:
            return DecisionThreshold.paper("the map names no model version")
        label = f"{model.name}/{model.version}"
        # The name comes off a topic: keep it one path component.
        if "/" in model.name or model.name in {".", ".."}:
            raise PermanentError(f"invalid model name {model.name!r}", code="bad_model_metadata")
        data, where = self._read(f"{model.name}/{model.version}/{METADATA_FILE.as_posix()}")
        if data is None:
            log.warning("%s: no metadata at %s; applying the paper's threshold", label, where)
            return DecisionThreshold.paper(f"{label} is not in the model repository")
        try:
            metadata = parse_metadata(data, where)
        except ValueError as exc:
            raise PermanentError(str(exc), code="bad_model_metadata") from None
        t = metadata.decision_threshold
        if t is None:
            return DecisionThreshold.paper(f"{label} has no calibrated threshold")
        return DecisionThreshold(float(t), f"calibrated for {label}")


def parse_repository(location: str, store: ObjectStore | None) -> RepositoryThresholds:
    """A :class:`RepositoryThresholds` from ``--model-repo`` (a folder or ``s3://BUCKET/PREFIX``).

    Raises
    ------
    ValueError
        For an ``s3://`` location without a bucket or without a store to read it, or a
        folder that does not exist.
    """
    if location.startswith(S3_SCHEME):
        bucket, _, prefix = location[len(S3_SCHEME) :].partition("/")
        if not bucket:
            raise ValueError(f"--model-repo {location!r}: no bucket (s3://BUCKET/PREFIX)")
        try:
            check_bucket_name(bucket)
        except ValueError as exc:
            raise ValueError(f"--model-repo {location!r}: {exc}") from None
        if store is None:
            raise ValueError(f"--model-repo {location!r}: no object store to read it from")
        return RepositoryThresholds(store=store, bucket=bucket, prefix=prefix)
    folder = Path(location)
    if not folder.is_dir():
        raise ValueError(f"--model-repo {location!r}: no such folder")
    return RepositoryThresholds(folder=folder)
