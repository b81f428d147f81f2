"""TF Serving's Prometheus names and format, and the counts after real requests."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

from radiounet.stream.model_server._protos import predict_pb2
from radiounet.stream.model_server.config import single_model_config
from radiounet.stream.model_server.metrics import (
    Counter,
    MetricRegistry,
    Sampler,
    exponential_buckets,
)
from radiounet.stream.model_server.server import ModelServer, serve
from radiounet.stream.model_server.tensors import from_ndarray


def test_format_matches_tf_serving_exporter() -> None:
    # The expected lines are TF Serving's prometheus_exporter_test.cc cases.
    registry = MetricRegistry()
    counter = registry.register(Counter("/test/path/total", "A counter.", ("name",)))
    counter.inc("abc", by=2)
    histogram = registry.register(
        Sampler("/test/path/histogram", "A histogram.", ("status",), exponential_buckets(1, 2, 10))
    )
    for value in (2, 20, 200):
        histogram.add(value, "good")
    registry.register(Counter("/test/path/runs", "Runs."))
    page = registry.render()
    assert '# TYPE :test:path:total counter\n:test:path:total{name="abc"} 2\n' in page
    assert "# TYPE :test:path:runs counter\n:test:path:runs{} 0\n" in page
    expected = [
        "# TYPE :test:path:histogram histogram",
        *(
            f':test:path:histogram_bucket{{status="good",le="{le}"}} {n}'
            for le, n in [
                (1, 0),
                (2, 0),
                (4, 1),
                (8, 1),
                (16, 1),
                (32, 2),
                (64, 2),
                (128, 2),
                (256, 3),
                (512, 3),
                ("+Inf", 3),
            ]
        ),
        ':test:path:histogram_sum{status="good"} 222',
        ':test:path:histogram_count{status="good"} 3',
    ]
    assert "\n".join(expected) + "\n" in page


def test_label_values_are_escaped() -> None:
    counter = Counter("/x", "x", ("name",))
    counter.inc('"abc\\"')
    assert counter.render()[1] == ':x{name="\\"abc\\\\\\""} 1'


@pytest.fixture(scope="module")
def fresh_server(tiny_model_dir) -> ModelServer:
    with serve(
        single_model_config("radio_unet", tiny_model_dir),
        host="127.0.0.1",
        port=0,
        http_port=0,
        file_system_poll_wait_seconds=0,
    ) as running:
        yield running


def _get(server: ModelServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}{path}") as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def _value(page: str, line_start: str) -> float:
    match = re.search("^" + re.escape(line_start) + r" (\S+)$", page, re.M)
    assert match, f"no line {line_start!r} in the metrics page"
    return float(match.group(1))


def test_counts_after_requests(fresh_server: ModelServer) -> None:
    def request(name: str, shape: tuple[int, ...]) -> predict_pb2.PredictRequest:
        req = predict_pb2.PredictRequest()
        req.model_spec.name = name
        req.inputs["image"].CopyFrom(from_ndarray(np.zeros(shape, np.float32)))
        return req

    from radiounet.stream.model_server._protos import prediction_service_pb2_grpc

    with grpc.insecure_channel(fresh_server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(3):
            stub.Predict(request("radio_unet", (2, 192, 192, 1)))
        for name, shape in [("radio_unet", (2, 10, 10, 1)), ("nope", (1, 192, 192, 1))]:
            with pytest.raises(grpc.RpcError):
                stub.Predict(request(name, shape))

    status, page = _get(fresh_server, "/monitoring/prometheus/metrics")
    assert status == 200
    assert _get(fresh_server, "/metrics") == (200, page)
    count = ":tensorflow:serving:request_count"
    assert _value(page, f'{count}{{model_name="radio_unet",status="OK"}}') == 3
    assert _value(page, f'{count}{{model_name="radio_unet",status="INVALID_ARGUMENT"}}') == 1
    assert _value(page, f'{count}{{model_name="nope",status="NOT_FOUND"}}') == 1
    latency = ':tensorflow:serving:request_latency_{}{{model_name="radio_unet",API="Predict",'
    assert _value(page, latency.format("count") + 'entrypoint="GRPC"}') == 3
    assert _value(page, latency.format("bucket") + 'entrypoint="GRPC",le="+Inf"}') == 3
    runtime = ':tensorflow:serving:runtime_latency_count{model_name="radio_unet",API="Predict",'
    assert _value(page, runtime + 'runtime="TF1"}') == 3
    runs = _value(page, ":tensorflow:core:graph_runs{}")
    assert 1 <= runs <= 3
    assert _value(page, ":tensorflow:serving:batching_session:wrapped_run_count{}") == runs
    assert _value(page, ":tensorflow:core:graph_run_time_usecs{}") > 0
    queued = ":tensorflow:serving:batching_session:queuing_latency_count{thread_pool_name="
    assert _value(page, queued + '"batch_threads"}') == 3
    assert "# TYPE :tensorflow:serving:request_latency histogram" in page
    loads = r":tensorflow:cc:saved_model:load_attempt_count"
    assert re.search(loads + r'\{model_path="[^"]+/1",status="success"\} 1$', page, re.M)


def test_model_status_over_http(fresh_server: ModelServer) -> None:
    status, body = _get(fresh_server, "/v1/models/radio_unet")
    assert status == 200
    assert json.loads(body) == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert _get(fresh_server, "/v1/models/radio_unet/versions/1")[0] == 200
    assert _get(fresh_server, "/v1/models/radio_unet/versions/5")[0] == 404
    assert _get(fresh_server, "/v1/models/radio_unet/labels/x")[0] == 400
    assert _get(fresh_server, "/v1/models/radio_unet/metadata")[0] == 501
    assert _get(fresh_server, "/nothing")[0] == 404
