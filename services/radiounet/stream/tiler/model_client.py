"""The tiler's gRPC client of TensorFlow Serving's PredictionService and ModelService.

It uses only TF Serving's public API (``tensorflow-serving-api``), so it talks
to the ``tensorflow/serving`` image and to the stand-in
:mod:`radiounet.stream.model_server` alike. Tiles travel as raw float32 bytes
(``tensor_content``) built from numpy, never through ``tf.make_tensor_proto``
(slow at these sizes, and it needs the TensorFlow runtime, which the services
image does not have: only TF Serving's and TensorFlow's generated protobuf
modules); only the ``probability`` output is asked for (``output_filter``).

Failures are of two kinds. Transient ones (UNAVAILABLE, DEADLINE_EXCEEDED,
RESOURCE_EXHAUSTED, ABORTED, and CANCELLED from a server going away) are
retried with exponential back-off and jitter; with ``RetryPolicy(max_attempts=None)``
a model server that is down makes the tiler wait, not drop work. Once the
attempts are spent they raise :class:`ModelUnavailableError`
(a :class:`~radiounet.stream.errors.TransientError`). Anything else
(INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION..., and gRPC's own
message-size limit) cannot succeed on retry and raises :class:`ModelRequestError`
(a :class:`~radiounet.stream.errors.PermanentError`) with the server's message.

To fill the server's batcher, keep several requests in flight: :meth:`ModelClient.submit`
returns a future, :meth:`ModelClient.predict_concurrently` splits tiles into
requests, runs up to ``max_in_flight`` at once and returns the results in order.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from numpy.typing import NDArray

# Generated protobuf modules only: in the services image `tensorflow` is a bare package of
# them (infra/docker/extract_tf_protos.py), not the TensorFlow runtime. In a development
# install it is the full TensorFlow, whose __init__ then runs (and logs) on first import.
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from ..errors import PermanentError, TransientError

__all__ = [
    "RETRYABLE_CODES",
    "ModelClient",
    "ModelInfo",
    "ModelRequestError",
    "ModelUnavailableError",
    "RetryPolicy",
    "TensorInfo",
]

#: Status codes worth retrying: the server is down, busy, slow or restarting.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        # A server stopping with requests in flight cancels them; the next one may be up.
        grpc.StatusCode.CANCELLED,
    }
)
_AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


def _label(status: grpc.StatusCode | None, fallback: str) -> str:
    return f"model_{status.name.lower()}" if status is not None else fallback


class ModelUnavailableError(TransientError):
    """The model server could not be reached or did not answer in time (retry later).

    Attributes
    ----------
    status : grpc.StatusCode or None
        The last gRPC status; ``None`` when the client stopped waiting itself.
    details : str
        The server's or gRPC's message.
    """

    def __init__(
        self, message: str, status: grpc.StatusCode | None = None, details: str = ""
    ) -> None:
        super().__init__(message, code=_label(status, "model_unavailable"))
        self.status = status
        self.details = details


class ModelRequestError(PermanentError):
    """The model server refused the request; retrying the same request cannot help.

    Attributes
    ----------
    status : grpc.StatusCode or None
        e.g. INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION; ``None`` for a
        reply this client cannot use (wrong output shape or dtype).
    details : str
        The server's message.
    """

    def __init__(
        self, message: str, status: grpc.StatusCode | None = None, details: str = ""
    ) -> None:
        super().__init__(message, code=_label(status, "model_bad_reply"))
        self.status = status
        self.details = details


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter between attempts of one call.

    Attributes
    ----------
    max_attempts : int or None
        Attempts in all (1: no retry); ``None``: retry until it works or the stop event is set.
    initial_backoff_s, max_backoff_s : float
        Wait after the first failure, and the cap as it doubles.
    multiplier : float
        Growth of the wait per failure.
    jitter : float
        Fraction of each wait drawn at random (0..1), so clients do not retry in step.
    """

    max_attempts: int | None = 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, got {self.max_attempts}")
        if not 0 < self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s")
        if self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("need multiplier >= 1 and 0 <= jitter <= 1")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        >>> RetryPolicy(initial_backoff_s=1, max_backoff_s=5, jitter=0).backoff(4)
        5.0
        """
        base = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        draw = (rng or random).random()
        return base * (1 - self.jitter * draw)


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature: dtype (``DT_FLOAT``...) and shape (``None``: any)."""

    dtype: str
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class ModelInfo:
    """What GetModelMetadata says about the served version and its signature."""

    name: str
    version: int
    signature_name: str
    method_name: str
    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]


def _too_large(code: grpc.StatusCode, details: str) -> bool:
    # gRPC's own message-size limit: RESOURCE_EXHAUSTED, but no retry can fix it.
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details


def _tensor_info(info: Any) -> TensorInfo:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(d.size if d.size >= 0 else None for d in shape.dim)
    return TensorInfo(str(types_pb2.DataType.Name(info.dtype)), dims)


def _encode(array: NDArray[np.float32]) -> Any:
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in array.shape]
        ),
        tensor_content=np.ascontiguousarray(array, dtype="<f4").tobytes(),
    )


def _decode(proto: Any, key: str) -> NDArray[np.float32]:
    if proto.dtype != types_pb2.DT_FLOAT:
        raise ModelRequestError(
            f"output {key!r} is {types_pb2.DataType.Name(proto.dtype)}, expected DT_FLOAT"
        )
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    size = int(np.prod(shape))
    if proto.tensor_content:
        flat = np.frombuffer(proto.tensor_content, dtype="<f4")
    else:  # small replies may use float_val; a single value fills the tensor
        flat = np.asarray(proto.float_val, dtype=np.float32)
        if flat.size == 1 and size > 1:
            flat = np.full(size, flat[0], dtype=np.float32)
    if flat.size != size:
        raise ModelRequestError(f"output {key!r}: {flat.size} values for shape {list(shape)}")
    # A writable copy: callers blank pixels in place.
    return flat.reshape(shape).astype(np.float32, copy=True)


class ModelClient:
    """Call a model served by TensorFlow Serving (or the stand-in) over gRPC.

    Parameters
    ----------
    target : str
        ``host:port`` (or any gRPC target, e.g. ``dns:///tf-serving:8500``).
    model_name, signature_name, input_key, output_key : str
        What to call; the defaults are the Radio U-Net model card's.
    version, version_label : int, str or None
        Pin a version or a label (at most one); ``None``: the latest the server serves.
    deadline_s : float
        Deadline of each attempt.
    max_message_bytes : int
        gRPC send/receive limit (64 tiles of 192² are 9.4 MB; gRPC's default is 4 MiB).
    retry : RetryPolicy
        Back-off of transient failures.
    on_retry : callable or None
        ``on_retry(attempt, error)`` before each back-off wait, with the failed
        attempt's number and a :class:`ModelUnavailableError` (for metrics, logs).
    stop : threading.Event or None
        When set, back-off waits end at once with :class:`ModelUnavailableError`
        (service shutdown). :meth:`close` also cancels calls in flight.
    max_in_flight : int
        Requests :meth:`submit` and :meth:`predict_concurrently` run at once.
    channel_options : sequence of (str, value)
        Extra gRPC channel arguments, e.g. ``("grpc.lb_policy_name", "round_robin")``
        to spread requests over several server pods behind a headless service.
    """

    def __init__(
        self,
        target: str,
        *,
        model_name: str = "radio_unet",
        signature_name: str = "serving_default",
        version: int | None = None,
        version_label: str | None = None,
        input_key: str = "image",
        output_key: str = "probability",
        deadline_s: float = 30.0,
        max_message_bytes: int = 64 * 2**20,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[int, ModelUnavailableError], None] | None = None,
        stop: threading.Event | None = None,
        max_in_flight: int = 4,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if version is not None and version_label:
            raise ValueError("give a version or a version_label, not both")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.target = target
        self.model_name = model_name
        self.signature_name = signature_name
        self.version = version
        self.version_label = version_label
        self.input_key = input_key
        self.output_key = output_key
        self.deadline_s = deadline_s
        self.retry = retry or RetryPolicy()
        self.max_in_flight = max_in_flight
        self._on_retry = on_retry
        self._stop = stop
        self._closed = threading.Event()
        self._rng = random.Random()
        backoff_ms = int(self.retry.initial_backoff_s * 1000)
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
                # Reconnect to a restarted server about as fast as we retry (gRPC's
                # own reconnect back-off grows to 2 minutes).
                ("grpc.initial_reconnect_backoff_ms", max(backoff_ms, 100)),
                ("grpc.min_reconnect_backoff_ms", max(backoff_ms, 100)),
                ("grpc.max_reconnect_backoff_ms", int(self.retry.max_backoff_s * 1000)),
                *channel_options,
            ],
        )
        self._predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model_stub = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    # -- calls -----------------------------------------------------------------

    def predict(self, tiles: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
        """Probabilities of ``tiles``, ``(n, h, w)`` or ``(n, h, w, 1)`` -> ``(n, h, w)`` float32.

        Raises
        ------
        ModelUnavailableError
            When the retries are spent (or the stop event is set).
        ModelRequestError
            When the server refuses the request or its reply has the wrong shape.
        ValueError
            For tiles of another rank.
        """
        batch = np.asarray(tiles, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[..., np.newaxis]
        elif batch.ndim != 4 or batch.shape[-1] != 1:
            raise ValueError(f"tiles must be (n, h, w) or (n, h, w, 1), got {batch.shape}")
        n, h, w = batch.shape[:3]
        if n == 0:
            return np.empty((0, h, w), dtype=np.float32)
        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec)
        request.model_spec.signature_name = self.signature_name
        request.inputs[self.input_key].CopyFrom(_encode(batch))
        request.output_filter.append(self.output_key)
        response = self._call(self._predict_stub.Predict, request, "Predict")
        if self.output_key not in response.outputs:
            raise ModelRequestError(f"reply has no output {self.output_key!r}")
        out = _decode(response.outputs[self.output_key], self.output_key)
        if out.shape not in ((n, h, w, 1), (n, h, w)):
            raise ModelRequestError(
                f"output {self.output_key!r} has shape {out.shape} for {n} tiles of {h}x{w}"
            )
        return out.reshape(n, h, w)

    def submit(self, tiles: NDArray[np.floating[Any]]) -> Future[NDArray[np.float32]]:
        """:meth:`predict` on a worker thread (``max_in_flight`` run at once)."""
        with self._executor_lock:
            if self._closed.is_set():
                raise ModelUnavailableError("model client is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.max_in_flight, thread_name_prefix="model-client"
                )
            return self._executor.submit(self.predict, tiles)

    def predict_concurrently(
        self, tiles: NDArray[np.floating[Any]], batch_size: int = 16
    ) -> NDArray[np.float32]:
        """:meth:`predict` in requests of ``batch_size`` tiles, ``max_in_flight`` at a time.

        Several requests in flight let the server merge them into full batches
        and overlap transfer with computation. Results are in the order of ``tiles``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        batch = np.asarray(tiles, dtype=np.float32)
        if len(batch) <= batch_size:
            return self.predict(batch)
        parts = self.predict_many(
            batch[i : i + batch_size] for i in range(0, len(batch), batch_size)
        )
        return np.concatenate(parts)

    def predict_many(
        self, batches: Iterable[NDArray[np.floating[Any]]]
    ) -> list[NDArray[np.float32]]:
        """:meth:`predict` on each batch, ``max_in_flight`` at a time; results in order.

        On the first failure the batches not yet started are cancelled and the error raised.
        """
        pending = [self.submit(b) for b in batches]
        try:
            return [f.result() for f in pending]
        except BaseException:
            for f in pending:
                f.cancel()
            raise

    def metadata(self) -> ModelInfo:
        """GetModelMetadata: the served version and this client's signature.

        Raises
        ------
        ModelRequestError
            If the model or the signature is unknown.
        ModelUnavailableError
            When the retries are spent.
        """
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._fill_spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._call(self._predict_stub.GetModelMetadata, request, "GetModelMetadata")
        signatures = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata["signature_def"].Unpack(signatures):
            raise ModelRequestError("GetModelMetadata reply holds no SignatureDefMap")
        if self.signature_name not in signatures.signature_def:
            raise ModelRequestError(
                f"model {self.model_name!r} has no signature {self.signature_name!r} "
                f"(has {sorted(signatures.signature_def)})"
            )
        signature = signatures.signature_def[self.signature_name]
        return ModelInfo(
            name=response.model_spec.name or self.model_name,
            version=int(response.model_spec.version.value),
            signature_name=self.signature_name,
            method_name=signature.method_name,
            inputs={k: _tensor_info(v) for k, v in signature.inputs.items()},
            outputs={k: _tensor_info(v) for k, v in signature.outputs.items()},
        )

    def wait_until_available(self, timeout: float | None = None) -> int:
        """Poll GetModelStatus until the model (or the pinned version) is AVAILABLE.

        Unreachable servers and unknown models (which a config reload may add)
        count as not available yet. Returns the available version (the highest).

        Raises
        ------
        ModelUnavailableError
            After ``timeout`` seconds (``None``: no limit), or when the stop event is set.
        ModelRequestError
            For a request the server rejects outright (e.g. an unknown version label).
        """
        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec)
        give_up = None if timeout is None else time.monotonic() + timeout
        attempt, last = 0, "no answer yet"
        while True:
            attempt += 1
            remaining = None if give_up is None else give_up - time.monotonic()
            try:
                response = self._model_stub.GetModelStatus(
                    request,
                    timeout=self.deadline_s if remaining is None else max(0.01, remaining),
                )
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details() or ""
                if self._closed.is_set():
                    raise ModelUnavailableError("model client is closed", code, details) from None
                if code not in RETRYABLE_CODES and code != grpc.StatusCode.NOT_FOUND:
                    raise ModelRequestError(
                        f"GetModelStatus {self._describe()}: {code.name}: {details}", code, details
                    ) from None
                last = f"{code.name}: {details}"
            else:
                states = {s.version: s.state for s in response.model_version_status}
                ready = [v for v, s in states.items() if s == _AVAILABLE]
                if self.version is not None:
                    ready = [v for v in ready if v == self.version]
                if ready:
                    return max(ready)
                last = "states " + ", ".join(
                    f"{v}: {get_model_status_pb2.ModelVersionStatus.State.Name(s)}"
                    for v, s in sorted(states.items())
                )
            delay = self.retry.backoff(min(attempt, 32), self._rng)
            if give_up is not None and time.monotonic() + delay > give_up:
                raise ModelUnavailableError(
                    f"{self._describe()} not available after {timeout} s ({last})"
                )
            if self._sleep(delay):
                raise ModelUnavailableError(f"stopped waiting for {self._describe()} ({last})")

    # -- plumbing --------------------------------------------------------------

    def _fill_spec(self, spec: Any) -> None:
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.version_label:
            spec.version_label = self.version_label

    def _describe(self) -> str:
        if self.version is not None:
            return f"model {self.model_name!r} version {self.version}"
        if self.version_label:
            return f"model {self.model_name!r} label {self.version_label!r}"
        return f"model {self.model_name!r}"

    def _call(self, method: Callable[..., Any], request: Any, what: str) -> Any:
        attempt = 0
        while True:
            attempt += 1
            if self._closed.is_set():
                raise ModelUnavailableError("model client is closed")
            try:
                return method(request, timeout=self.deadline_s)
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details() or ""
            except ValueError as exc:  # gRPC's "Cannot invoke RPC on closed channel!"
                if self._closed.is_set():
                    raise ModelUnavailableError("model client is closed") from exc
                raise
            if self._closed.is_set():
                raise ModelUnavailableError("model client is closed", code, details)
            text = f"{what} {self._describe()} at {self.target}: {code.name}: {details}"
            if code not in RETRYABLE_CODES or _too_large(code, details):
                raise ModelRequestError(text, code, details)
            limit = self.retry.max_attempts
            if limit is not None and attempt >= limit:
                raise ModelUnavailableError(
                    f"{text} (gave up after {attempt} attempts)", code, details
                )
            if self._on_retry is not None:
                self._on_retry(attempt, ModelUnavailableError(text, code, details))
            # Cap the exponent: with max_attempts=None attempts grow without bound.
            if self._sleep(self.retry.backoff(min(attempt, 32), self._rng)):
                raise ModelUnavailableError(f"{text} (stopped while retrying)", code, details)

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; ``True`` if the stop event was set or the client closed first."""
        end = time.monotonic() + seconds
        while True:
            if self._closed.is_set() or (self._stop is not None and self._stop.is_set()):
                return True
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            # Two events cannot be waited on at once; short slices keep both prompt.
            (self._stop or self._closed).wait(min(remaining, 0.05))

    # -- lifetime --------------------------------------------------------------

    def close(self) -> None:
        """Cancel waits and calls in flight, drop queued requests, close the channel."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        self._channel.close()
        if executor is not None:
            executor.shutdown(wait=True)

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
