"""TF Serving's gRPC services: PredictionService (Predict, GetModelMetadata) and ModelService.

Status codes and messages follow TF Serving's: an unknown model or version is
NOT_FOUND ("Servable not found for request: Specific(name, version)"), an
unknown signature FAILED_PRECONDITION, a bad input INVALID_ARGUMENT. Classify,
Regress and MultiInference (tf.Example APIs) answer UNIMPLEMENTED, as does any
method a generated servicer base leaves alone.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn

import grpc

from ._protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from .manager import ModelManager
from .metrics import ServingMetrics
from .servable import DEFAULT_SIGNATURE
from .status import ServingError
from .tensors import from_ndarray

__all__ = ["ModelServicer", "PredictionServicer"]

_log = logging.getLogger(__name__)


def _abort(context: Any, error: ServingError) -> NoReturn:
    context.abort(error.code, error.message)
    raise AssertionError("context.abort returned")  # pragma: no cover


def _version_choice(spec: Any) -> tuple[int | None, str]:
    """(version, label) of a ``ModelSpec``; at most one is set (a proto oneof)."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return int(spec.version.value), ""
    if choice == "version_label":
        return None, spec.version_label
    return None, ""


def _require_name(spec: Any) -> str:
    if not spec.name:
        raise ServingError.invalid_argument("Missing model name in request.")
    return str(spec.name)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata over the models of a :class:`ModelManager`."""

    def __init__(self, manager: ModelManager, metrics: ServingMetrics) -> None:
        self._manager = manager
        self._metrics = metrics

    def Predict(self, request: Any, context: Any) -> Any:
        started = time.monotonic()
        name = request.model_spec.name
        try:
            response = self._predict(request)
        except ServingError as exc:
            self._metrics.request_count.inc(name, exc.code.name)
            _abort(context, exc)
        except Exception as exc:  # a bug here must still answer, and be counted
            _log.exception("Predict failed")
            self._metrics.request_count.inc(name, grpc.StatusCode.INTERNAL.name)
            _abort(context, ServingError(grpc.StatusCode.INTERNAL, f"Predict failed: {exc}"))
        self._metrics.request_count.inc(name, grpc.StatusCode.OK.name)
        micros = (time.monotonic() - started) * 1e6
        self._metrics.request_latency.add(micros, name, "Predict", "GRPC")
        return response

    def _predict(self, request: Any) -> Any:
        spec = request.model_spec
        name = _require_name(spec)
        version, label = _version_choice(spec)
        servable = self._manager.servable(name, version, label)
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature(signature_name)
        wanted = list(request.output_filter) or sorted(signature.outputs)
        for alias in wanted:
            if alias not in signature.outputs:
                raise ServingError.invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to "
                    f"be in the set {{{','.join(sorted(signature.outputs))}}}."
                )
        if len(set(wanted)) != len(wanted):
            raise ServingError.invalid_argument("duplicate output tensor alias in output_filter")
        inputs = servable.decode_inputs(signature_name, request.inputs)
        started = time.monotonic()
        outputs = servable.predict(signature_name, inputs)
        micros = (time.monotonic() - started) * 1e6
        self._metrics.runtime_latency.add(micros, name, "Predict", "TF1")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for alias in wanted:
            response.outputs[alias].CopyFrom(from_ndarray(outputs[alias]))
        return response

    def GetModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            return self._metadata(request)
        except ServingError as exc:
            _abort(context, exc)

    def _metadata(self, request: Any) -> Any:
        spec = request.model_spec
        name = _require_name(spec)
        if not request.metadata_field:
            raise ServingError.invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in request.metadata_field:
            if field != "signature_def":
                raise ServingError.invalid_argument(f"Metadata field {field} is not supported")
        version, label = _version_choice(spec)
        servable = self._manager.servable(name, version, label)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signatures.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(signatures)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus (version states) and HandleReloadConfigRequest (a new model list)."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def GetModelStatus(self, request: Any, context: Any) -> Any:
        try:
            spec = request.model_spec
            version, label = _version_choice(spec)
            statuses = self._manager.statuses(_require_name(spec), version, label)
        except ServingError as exc:
            _abort(context, exc)
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in statuses:
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = status.state
            entry.status.error_code = status.error_code.value[0]
            entry.status.error_message = status.error_message
        return response

    def HandleReloadConfigRequest(self, request: Any, context: Any) -> Any:
        try:
            self._manager.reload(request.config)
        except ValueError as exc:
            _abort(context, ServingError.invalid_argument(str(exc)))
        return model_management_pb2.ReloadConfigResponse()
