"""Predict and GetModelMetadata over gRPC: values, TF Serving's status codes and messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest
from numpy.typing import NDArray

from radiounet.stream.model_server._protos import (
    get_model_metadata_pb2,
    predict_pb2,
    tensor_pb2,
    tensor_shape_pb2,
    types_pb2,
)
from radiounet.stream.model_server.tensors import from_ndarray, to_ndarray


def _request(
    array: NDArray[Any], *, name: str = "radio_unet", key: str = "image", **spec: Any
) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for field, value in spec.items():
        if field == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, field, value)
    request.inputs[key].CopyFrom(from_ndarray(array))
    return request


def _error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_predict_equals_in_process_model(predict_stub, tiles, reference) -> None:
    response = predict_stub.Predict(_request(tiles[..., None]))
    out = to_ndarray(response.outputs["probability"])
    assert out.shape == (6, 192, 192, 1)
    np.testing.assert_allclose(out[..., 0], reference(tiles), atol=1e-6)
    assert response.model_spec.name == "radio_unet"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_predict_reads_typed_value_fields(predict_stub, tiles, reference) -> None:
    # tf.make_tensor_proto-style request: float_val instead of tensor_content.
    proto = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in (1, 192, 192, 1)]
        ),
    )
    proto.float_val.extend(tiles[0].ravel().tolist())
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "radio_unet"
    request.inputs["image"].CopyFrom(proto)
    out = to_ndarray(predict_stub.Predict(request).outputs["probability"])
    np.testing.assert_allclose(out[..., 0], reference(tiles[:1]), atol=1e-6)


def test_message_above_4_mib(predict_stub, reference) -> None:
    tiles = np.random.default_rng(1).random((64, 192, 192), dtype=np.float32)  # 9.4 MB
    out = to_ndarray(predict_stub.Predict(_request(tiles[..., None])).outputs["probability"])
    np.testing.assert_allclose(out[..., 0], reference(tiles), atol=1e-6)


def test_version_and_label_lookups(predict_stub, tiles) -> None:
    ok = predict_stub.Predict(_request(tiles[:1, ..., None], version=1))
    assert ok.model_spec.version.value == 1
    error = _error(lambda: predict_stub.Predict(_request(tiles[:1, ..., None], version=9)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Specific(radio_unet, 9)"
    error = _error(lambda: predict_stub.Predict(_request(tiles[:1, ..., None], version_label="x")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Unrecognized servable version label: x" in error.details()


def test_unknown_model_is_not_found(predict_stub, tiles) -> None:
    error = _error(lambda: predict_stub.Predict(_request(tiles[..., None], name="nope")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Latest(nope)"


def test_unknown_signature_is_failed_precondition(predict_stub, tiles) -> None:
    request = _request(tiles[..., None], signature_name="other")
    error = _error(lambda: predict_stub.Predict(request))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == 'Serving signature key "other" not found.'


@pytest.mark.parametrize(
    ("array", "key", "expected"),
    [
        (np.zeros((2, 192, 192, 1), np.float32), "img", "Send extra: {img}"),
        (np.zeros((2, 192, 192, 1), np.float64), "image", "dtype DT_DOUBLE"),
        (np.zeros((2, 100, 100, 1), np.float32), "image", "shape [2,100,100,1]"),
        (np.zeros((2, 192, 192), np.float32), "image", "expects [-1,192,192,1]"),
    ],
)
def test_bad_inputs_are_invalid_argument(predict_stub, array, key, expected) -> None:
    error = _error(lambda: predict_stub.Predict(_request(array, key=key)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in error.details()


def test_content_that_does_not_fill_the_shape_is_rejected(predict_stub) -> None:
    request = _request(np.zeros((1, 192, 192, 1), np.float32))
    request.inputs["image"].tensor_shape.dim[0].size = 2
    error = _error(lambda: predict_stub.Predict(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tensor parsing error" in error.details()


def test_output_filter(predict_stub, tiles) -> None:
    request = _request(tiles[:1, ..., None])
    request.output_filter.append("probability")
    assert list(predict_stub.Predict(request).outputs) == ["probability"]
    request.output_filter[:] = ["logits"]
    error = _error(lambda: predict_stub.Predict(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output tensor alias not found in signature: logits" in error.details()


def test_get_model_metadata(predict_stub) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "radio_unet"
    request.metadata_field.append("signature_def")
    response = predict_stub.GetModelMetadata(request)
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    image = signature.inputs["image"]
    assert image.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in image.tensor_shape.dim] == [-1, 192, 192, 1]
    assert [d.size for d in signature.outputs["probability"].tensor_shape.dim] == [-1, 192, 192, 1]

    request.metadata_field[:] = ["labels"]
    error = _error(lambda: predict_stub.GetModelMetadata(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Metadata field labels is not supported"
    del request.metadata_field[:]
    error = _error(lambda: predict_stub.GetModelMetadata(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_reports_serving(channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tensorflow.serving.PredictionService"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
