"""The services' /metrics, /healthz and /readyz, scraped by the real Prometheus."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from radiounet.stream import telemetry as tm


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def test_health_endpoints_follow_the_loop():
    health = tm.Health(stale_after_s=0.5)
    server = tm.TelemetryServer(health, host="127.0.0.1", port=0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert _get(f"{base}/healthz")[0] == 200
        status, body = _get(f"{base}/readyz")
        assert status == 503 and json.loads(body)["ready"] is False
        health.set_ready(True, stage="tiler")
        status, body = _get(f"{base}/readyz")
        assert status == 200 and json.loads(body)["stage"] == "tiler"
        time.sleep(0.6)  # no heartbeat: the loop is stuck, liveness fails
        assert _get(f"{base}/healthz")[0] == 503
        health.beat()
        assert _get(f"{base}/healthz")[0] == 200
        assert _get(f"{base}/nothing")[0] == 404
    finally:
        server.close()


def test_prometheus_scrapes_the_pipeline_metrics(prometheus):
    tm.TILES.labels("telemetry-test").inc(81)
    tm.DEAD_LETTERS.labels("telemetry-test", "invalid_cutout").inc()
    tm.STAGE_SECONDS.labels("telemetry-test").observe(0.2)
    server = tm.TelemetryServer(tm.Health(), host="127.0.0.1", port=0).start()
    try:
        status, text = _get(f"http://127.0.0.1:{server.port}/metrics")
        assert status == 200
        assert b'radiounet_tiles_total{stage="telemetry-test"} 81.0' in text
        prometheus.set_targets([("telemetry-test", f"127.0.0.1:{server.port}")])
        query = 'radiounet_tiles_total{job="telemetry-test",stage="telemetry-test"}'
        deadline = time.monotonic() + 60
        samples = []
        while not samples and time.monotonic() < deadline:
            samples = prometheus.query(query)
            time.sleep(0.5)
        assert [s.value for s in samples] == [81.0]
        letters = prometheus.query(
            'radiounet_dead_letters_total{job="telemetry-test",stage="telemetry-test"}'
        )
        assert [(s.labels["reason"], s.value) for s in letters] == [("invalid_cutout", 1.0)]
        counts = prometheus.query(
            'radiounet_stage_duration_seconds_count{job="telemetry-test",stage="telemetry-test"}'
        )
        assert [s.value for s in counts] == [1.0]
    finally:
        prometheus.set_targets([])
        server.close()


def test_a_stage_starts_with_its_known_series_at_zero():
    from prometheus_client import REGISTRY

    from radiounet.stream.fetcher.service import FetcherStage
    from radiounet.stream.fetcher.simulated_source import SimulatedSkySource
    from radiounet.stream.runner import StageRunner
    from radiounet.stream.settings import Settings

    stage = FetcherStage(None, SimulatedSkySource())  # type: ignore[arg-type]
    name = "init-test-fetcher"
    stage.name = name  # a stage name no other test uses, so every series is fresh
    StageRunner(stage, Settings(topic_prefix="init-test."))  # no broker needed: nothing started
    sample = REGISTRY.get_sample_value
    assert sample("radiounet_dead_letters_total", {"stage": name, "reason": "bad_message"}) == 0
    assert (
        sample("radiounet_dead_letters_total", {"stage": name, "reason": "outside_footprint"}) == 0
    )
    assert sample("radiounet_retries_total", {"stage": name, "reason": "broker"}) == 0
    assert sample("radiounet_messages_produced_total", {"stage": name, "topic": "cutouts"}) == 0
    assert sample("radiounet_messages_consumed_total", {"stage": name, "topic": "pointings"}) == 0
    assert sample("radiounet_pointing_latency_seconds_count", {"stage": name}) == 0
