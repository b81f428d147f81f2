"""One loaded model version: its SavedModel signatures, checked inputs, and the model call.

The signatures come from ``saved_model.pb`` itself (the ``SignatureDef`` map
TF Serving returns from GetModelMetadata); the callable functions come from
``tf.saved_model.load``. Requests are checked against the signature (input
names, dtypes, known dimensions) before they reach TensorFlow, so a bad request
gets a clear INVALID_ARGUMENT instead of a TensorFlow stack message.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from numpy.typing import NDArray

from ...tf_runtime import tf
from ._protos import saved_model_pb2
from .batching import Batcher, BatchingOptions
from .metrics import ServingMetrics
from .status import ServingError
from .tensors import dtype_name, proto_shape, to_ndarray

__all__ = ["DEFAULT_SIGNATURE", "Servable", "read_signature_defs"]

DEFAULT_SIGNATURE = "serving_default"
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


def read_signature_defs(path: str | Path) -> dict[str, Any]:
    """The ``SignatureDef`` map of a SavedModel's (first, serving) meta graph."""
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    if not saved.meta_graphs:
        raise ValueError(f"{path} holds no meta graph")
    return dict(saved.meta_graphs[0].signature_def)


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "<unknown rank>" if shape is None else "[" + ",".join(map(str, shape)) + "]"


def _batchable(signature: Any) -> bool:
    # Merging requests needs dimension 0 to be the (free) batch dimension everywhere.
    infos = [*signature.inputs.values(), *signature.outputs.values()]
    shapes = [proto_shape(info.tensor_shape) for info in infos]
    return bool(infos) and all(s is not None and len(s) > 0 and s[0] == -1 for s in shapes)


class Servable:
    """A loaded version of a model, ready to run its signatures.

    Parameters
    ----------
    name, version : str, int
        What the model server calls it.
    path : path
        The version folder (``saved_model.pb`` + ``variables/``).
    batching : BatchingOptions or None
        Merge concurrent requests per signature; ``None`` or disabled runs each alone.
    metrics : ServingMetrics or None
        Where model runs and batch queueing are counted.
    """

    def __init__(
        self,
        name: str,
        version: int,
        path: str | Path,
        *,
        batching: BatchingOptions | None = None,
        metrics: ServingMetrics | None = None,
    ) -> None:
        self.name = name
        self.version = int(version)
        self.path = Path(path)
        self.metrics = metrics
        self.signature_defs = read_signature_defs(self.path)
        self._loaded = tf.saved_model.load(str(self.path))  # keeps the variables alive
        self._functions = dict(self._loaded.signatures)
        self.run_count = 0  # model calls (batches), for tests and logs
        self._count_lock = threading.Lock()
        self._batchers: dict[str, Batcher] = {}
        if batching is not None and batching.enabled:
            for key in self._functions:
                if _batchable(self.signature_defs[key]):
                    self._batchers[key] = Batcher(
                        functools.partial(self.run, key),
                        batching,
                        name=f"{name}-{self.version}-{key}",
                        on_queued=self._record_queued,
                    )

    def signature(self, key: str) -> Any:
        """The ``SignatureDef`` named ``key`` ("" means ``serving_default``).

        Raises
        ------
        ServingError
            FAILED_PRECONDITION if there is no such (callable) signature, as TF Serving.
        """
        key = key or DEFAULT_SIGNATURE
        if key not in self._functions:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.'
            )
        return self.signature_defs[key]

    def decode_inputs(self, signature_name: str, inputs: Mapping[str, Any]) -> dict[str, NDArray]:
        """Check request ``TensorProto``s against the signature and decode them.

        Raises
        ------
        ServingError
            INVALID_ARGUMENT for missing or extra inputs, a dtype other than the
            signature's, or a shape that disagrees with its known dimensions.
        """
        signature = self.signature(signature_name)
        expected, given = set(signature.inputs), set(inputs)
        if expected != given:
            raise ServingError.invalid_argument(
                f"Request inputs do not match required inputs for model `{self.name}`. "
                f"Send extra: {{{','.join(sorted(given - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - given))}}}."
            )
        arrays: dict[str, NDArray] = {}
        for key in sorted(expected):
            info, proto = signature.inputs[key], inputs[key]
            if proto.dtype != info.dtype:
                raise ServingError.invalid_argument(
                    f"input {key!r} has dtype {dtype_name(proto.dtype)} but the signature "
                    f"expects {dtype_name(info.dtype)}"
                )
            array = to_ndarray(proto, key)
            want = proto_shape(info.tensor_shape)
            if want is not None and (
                len(want) != array.ndim
                or any(w not in (-1, g) for w, g in zip(want, array.shape, strict=True))
            ):
                raise ServingError.invalid_argument(
                    f"input {key!r} has shape {_shape_text(array.shape)} but the signature "
                    f"expects {_shape_text(want)} (-1: any size)"
                )
            arrays[key] = array
        return arrays

    def predict(self, signature_name: str, inputs: Mapping[str, NDArray]) -> dict[str, NDArray]:
        """Run a signature on decoded inputs, through the batcher when it has one."""
        key = signature_name or DEFAULT_SIGNATURE
        self.signature(key)
        batcher = self._batchers.get(key)
        if batcher is None:
            return self.run(key, inputs)
        return batcher.submit(inputs).result()

    def run(self, signature_name: str, inputs: Mapping[str, NDArray]) -> dict[str, NDArray]:
        """One model call (no batching).

        Raises
        ------
        ServingError
            With TensorFlow's status code when the model call fails.
        """
        function = self._functions[signature_name or DEFAULT_SIGNATURE]
        started = time.monotonic()
        try:
            tensors = {k: tf.convert_to_tensor(v) for k, v in inputs.items()}
            outputs = function(**tensors)
            result = {k: np.asarray(v.numpy()) for k, v in outputs.items()}
        except tf.errors.OpError as exc:
            code = _GRPC_CODES.get(exc.error_code, grpc.StatusCode.INTERNAL)
            raise ServingError(code, exc.message) from exc
        with self._count_lock:
            self.run_count += 1
        if self.metrics is not None:
            self.metrics.graph_runs.inc()
            self.metrics.graph_run_time_usecs.inc(by=int((time.monotonic() - started) * 1e6))
            if signature_name in self._batchers:
                self.metrics.wrapped_run_count.inc()
        return result

    def unload(self) -> None:
        """Finish queued requests and release the batch threads."""
        for batcher in self._batchers.values():
            batcher.close()
        self._batchers.clear()

    def _record_queued(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.queuing_latency.add(seconds * 1e6, "batch_threads")
