"""TF Serving's processed-batch-size histogram: each batch counted once, by its examples."""

from __future__ import annotations

import re
import threading
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from radiounet.stream.model_server._protos import predict_pb2
from radiounet.stream.model_server.batching import Batcher, BatchingOptions
from radiounet.stream.model_server.metrics import PROCESSED_BATCH_SIZE, Sampler, prometheus_name
from radiounet.stream.model_server.server import ModelServer
from radiounet.stream.model_server.tensors import from_ndarray

NAME = ":tensorflow:serving:batching_session:processed_batch_size"


class _GatedModel:
    """Echoes its input; the first call waits at the gate, so later requests queue up."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def __call__(self, inputs: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        self.entered.set()
        self.gate.wait()
        self.batches.append(len(inputs["x"]))
        return {"y": inputs["x"]}


def _rows(n: int) -> dict[str, NDArray[np.float32]]:
    return {"x": np.zeros((n, 1), np.float32)}


def _bucket_counts(page: str) -> dict[str, int]:
    pattern = re.escape(NAME) + r'_bucket\{le="([^"]+)"\} (\d+)$'
    return {le: int(n) for le, n in re.findall(pattern, page, re.M)}


def test_name_labels_and_buckets_are_tf_servings() -> None:
    assert prometheus_name(PROCESSED_BATCH_SIZE.name) == NAME
    assert PROCESSED_BATCH_SIZE.labels == ()
    # Buckets::Exponential(1, 2, 14) of TF Serving's batching_util.h.
    assert PROCESSED_BATCH_SIZE.bounds == tuple(float(2**i) for i in range(14))


def test_batches_of_known_sizes_land_in_their_buckets() -> None:
    sampler = Sampler(PROCESSED_BATCH_SIZE.name, "test", (), PROCESSED_BATCH_SIZE.bounds)
    model = _GatedModel()
    batcher = Batcher(
        model,
        BatchingOptions(max_batch_size=64, batch_timeout_micros=0, num_batch_threads=1),
        processed_batch_size=sampler,
    )
    try:
        first = batcher.submit(_rows(2))
        assert model.entered.wait(30)  # the batch thread holds [2] at the gate
        queued = [batcher.submit(_rows(5)) for _ in range(3)]  # merged into one of 15
        model.gate.set()
        for future in [first, *queued]:
            future.result(timeout=30)
        for n in (1, 4, 64):  # one at a time: a batch each
            batcher.submit(_rows(n)).result(timeout=30)
    finally:
        batcher.close()
    assert model.batches == [2, 15, 1, 4, 64]
    assert sampler.count() == 5
    assert sampler.total() == 86
    # TensorFlow's histogram puts a value equal to a bound in the next bucket up:
    # 1 -> le 2, 2 -> le 4, 4 -> le 8, 15 -> le 16, 64 -> le 128.
    cumulative = {
        "1": 0,
        "2": 1,
        "4": 2,
        "8": 3,
        "16": 4,
        "32": 4,
        "64": 4,
        "128": 5,
        "8192": 5,
        "+Inf": 5,
    }
    page = "\n".join(sampler.render()) + "\n"
    counts = _bucket_counts(page)
    assert len(counts) == 15
    assert {le: counts[le] for le in cumulative} == cumulative
    assert f"{NAME}_sum{{}} 86\n" in page
    assert f"{NAME}_count{{}} 5\n" in page


def test_batcher_refuses_a_labelled_histogram() -> None:
    labelled = Sampler("/x", "x", ("model_name",), (1.0, 2.0))
    with pytest.raises(ValueError, match=r"must have no labels, got \('model_name',\)"):
        Batcher(_GatedModel(), BatchingOptions(), processed_batch_size=labelled)


def _page(server: ModelServer) -> str:
    url = f"http://127.0.0.1:{server.http_port}/monitoring/prometheus/metrics"
    with urllib.request.urlopen(url) as reply:
        return str(reply.read().decode())


def _value(page: str, series: str) -> float:
    match = re.search("^" + re.escape(series) + r" (\S+)$", page, re.M)
    return float(match.group(1)) if match else 0.0


def test_server_exports_the_batches_it_ran(server: ModelServer, predict_stub, tiles) -> None:
    # The histogram is process-wide (as in TF Serving): compare before and after.
    before = _page(server)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "radio_unet"
    request.inputs["image"].CopyFrom(from_ndarray(tiles[:3, ..., None]))
    for _ in range(2):  # one after the other: one batch of 3 tiles each
        predict_stub.Predict(request)
    after = _page(server)
    assert f"# TYPE {NAME} histogram" in after
    assert _value(after, f"{NAME}_count{{}}") - _value(before, f"{NAME}_count{{}}") == 2
    assert _value(after, f"{NAME}_sum{{}}") - _value(before, f"{NAME}_sum{{}}") == 6
    grew = {le: n - _bucket_counts(before).get(le, 0) for le, n in _bucket_counts(after).items()}
    assert (grew["2"], grew["4"], grew["+Inf"]) == (0, 2, 2)
