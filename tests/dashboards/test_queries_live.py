"""Every panel query of every dashboard returns data from the real local Prometheus.

One :class:`~radiounet.stream.local.stack.LocalStack` (Tansu, SeaweedFS, the
model-server stand-in with the tiny model, the four services, Prometheus
scraping them) serves the module. The run makes every event a panel plots
happen for real: the model server is down while a pointing reaches the tiler
(retries), a pointing outside the survey's footprint is dead-lettered, and
good pointings go through to their results. Then every query is evaluated
as Grafana would, with ``$__rate_interval`` set to one minute and
``$namespace`` to All (``.*``, which keeps the local stack's series: they have
no ``namespace`` label). Only the GPU
panel, which needs NVIDIA's DCGM exporter, may come back empty; Prometheus
must still accept its query.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radiounet.cli.main import main
from radiounet.cli.submit_cmd import send_pointings
from radiounet.dashboards import dashboards
from radiounet.dashboards.evaluate import Evaluated, PrometheusError, evaluate, instant_query
from radiounet.stream.keys import dead_letter_key, result_key
from radiounet.stream.local.probes import LOOPBACK, http_request
from radiounet.stream.local.stack import LocalStack, StackConfig
from radiounet.stream.object_store import ObjectStore
from radiounet.stream.proto import pipeline_pb2 as pb
from radiounet.stream.settings import Settings, settings_from

CHART_DASHBOARDS = Path(__file__).resolve().parents[2] / "charts" / "radiounet" / "dashboards"
SURVEY = "lotss-dr2-lowres"
#: 384 px cutouts: 3 x 3 tiles of 192 px, fast on the tiny model.
SIZE_PX = 384
#: Generous: how long anything may take on a loaded 2-core machine (never asserted on).
TIMEOUT_S = 180.0
#: How often a wait polls.
POLL_S = 0.2


@pytest.fixture(scope="module")
def wait(wait_until: Callable[..., Any]) -> Callable[..., Any]:
    """``wait(predicate, what)``: the suite's ``wait_until`` with this module's timeout."""
    return functools.partial(wait_until, timeout_s=TIMEOUT_S, interval_s=POLL_S)


def pointing(pointing_id: str, *, ra_deg: float, dec_deg: float) -> pb.Pointing:
    return pb.Pointing(
        id=pointing_id,
        survey=SURVEY,
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        size_px=SIZE_PX,
        pixel_scale_arcsec=4.5,
        cluster=pb.Cluster(name=pointing_id, z=0.15, m500_1e14=5.0),
    )


@pytest.fixture(scope="module")
def stack(
    served_tiny_model_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    local = LocalStack(
        StackConfig(
            data_dir=tmp_path_factory.mktemp("dashboards-stack"),
            model_repo=served_tiny_model_repo,
            source="simulated",
            tiler_args=("--chunk-tiles", "4"),
            topic_prefix="dash.",
            bucket="dashboards",
            partitions=2,
        )
    )
    try:
        local.start()
        yield local
    finally:
        local.stop()


def _tiler_retries(stack: LocalStack) -> float:
    """Retries the tiler has counted so far, read from its own /metrics."""
    page = http_request(f"http://{LOOPBACK}:{stack.metrics_ports['tiler']}/metrics").body.decode()
    found = re.findall(r'^radiounet_retries_total\{[^}]*stage="tiler"[^}]*\} (\S+)$', page, re.M)
    return sum(float(v) for v in found)


def _has(stack: LocalStack, query: str, at_least: float = 1) -> bool:
    """True once Prometheus has scraped enough for ``query`` (a label-less sum)."""
    result = instant_query(stack.prometheus.url, query)
    return bool(result) and result[0].value >= at_least


def _run_pipeline(stack: LocalStack, settings: Settings, wait: Callable[..., Any]) -> None:
    store = ObjectStore.from_settings(settings)
    # Dec -40 is outside LoTSS-DR2: the fetcher dead-letters such a pointing.
    south = [pointing(f"dash-south-{i}", ra_deg=150.0, dec_deg=-40.0) for i in (1, 2)]
    # Retries, for real: the model server is down while a pointing reaches the tiler.
    stack.model_server.stop()
    send_pointings(settings, [pointing("dash-000", ra_deg=150.0, dec_deg=40.0), south[0]])
    wait(lambda: _tiler_retries(stack) > 0, "the tiler to retry the absent model server")
    stack.model_server.start()
    wait(lambda: store.exists(result_key("dash-000")), "the result of dash-000")
    # A series first appears with the value it has at its first scrape, and rate() and
    # increase() count nothing before that: let Prometheus see these series before the
    # rest of the run adds to them (the services do not create them at 0 beforehand).
    for query in (
        "sum(:tensorflow:serving:request_count)",
        "sum(radiounet_model_request_duration_seconds_count)",
        "sum(radiounet_dead_letters_total)",
    ):
        wait(functools.partial(_has, stack, query), f"Prometheus to scrape {query}")
    good = [pointing(f"dash-{i:03d}", ra_deg=150.0 + i, dec_deg=42.0) for i in (1, 2, 3)]
    send_pointings(settings, [south[1], *good])
    done = [p.id for p in good]
    wait(lambda: all(store.exists(result_key(i)) for i in done), f"the results of {done}")
    wait(
        lambda: all(store.exists(dead_letter_key("fetcher", p.id)) for p in south),
        "the dead letters of the pointings outside the footprint",
    )
    # Prometheus has scraped the end state; then one more scrape of every target.
    wait(
        lambda: (
            _has(stack, "sum(radiounet_detections_total)", 4)
            and _has(stack, "sum(radiounet_dead_letters_total)", 2)
        ),
        "Prometheus to scrape the results",
    )
    time.sleep(2 * stack.prometheus.scrape_interval)


@pytest.fixture(scope="module")
def evaluated(stack: LocalStack, wait: Callable[..., Any]) -> list[Evaluated]:
    """Every panel query of every dashboard, evaluated after the run."""
    settings = settings_from(env={}, **stack.settings(), instance="test-dashboards")
    _run_pipeline(stack, settings, wait)
    return evaluate(stack.prometheus.url)


def _describe(result: Evaluated) -> str:
    series = [(dict(s.labels), s.value) for s in result.series]
    return (
        f"{result.dashboard.uid} / {result.panel.title} [{result.ref_id}] {result.query}: {series}"
    )


def test_every_query_returns_a_finite_value(evaluated: list[Evaluated]) -> None:
    assert len(evaluated) == sum(len(p.targets) for d in dashboards() for p in d.panels())
    empty = [_describe(r) for r in evaluated if not r.panel.needs_dcgm and not r.finite]
    assert empty == [], "panel queries without data:\n" + "\n".join(empty)
    # They got that data through the namespace matcher (see the next test).
    unmatched = [r.query for r in evaluated if 'namespace=~".*"' not in r.query]
    assert unmatched == ["avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)"]


def test_local_series_have_no_namespace_label(
    stack: LocalStack, evaluated: list[Evaluated]
) -> None:
    """So ``=~".*"`` (All) is what keeps them: it matches series without the label."""
    url = stack.prometheus.url
    assert instant_query(url, 'count({__name__=~"radiounet_.+|:tensorflow:.+"})')[0].value > 0
    assert (
        instant_query(url, 'count({__name__=~"radiounet_.+|:tensorflow:.+", namespace!=""})') == []
    )


def test_only_the_dcgm_panels_are_exempt_and_prometheus_accepts_them(
    evaluated: list[Evaluated],
) -> None:
    exempt = [r for r in evaluated if r.panel.needs_dcgm]
    assert [r.panel.title for r in exempt] == ["GPU utilisation"]
    # Evaluated without error (evaluate raises on any), and empty: no DCGM exporter here.
    assert [r.series for r in exempt] == [()]


def _series(evaluated: list[Evaluated], title: str, ref_id: str = "A") -> list[Any]:
    (result,) = [r for r in evaluated if r.panel.title == title and r.ref_id == ref_id]
    return [(dict(s.labels), s.value) for s in result.series]


def test_values_reflect_the_run(evaluated: list[Evaluated]) -> None:
    letters = _series(evaluated, "Dead letters per second by stage and reason")
    # Every stage's known reasons exist from its start, at zero; only one moved.
    assert {(labels["stage"], labels["reason"]) for labels, v in letters if v > 0} == {
        ("fetcher", "outside_footprint")
    }
    assert ("tiler", "invalid_cutout") in {(lb["stage"], lb["reason"]) for lb, _ in letters}
    ((_, last_hour),) = _series(evaluated, "Dead letters, last hour")
    assert last_hour >= 1  # the second one (the first made the series appear)
    retries = _series(evaluated, "Retries per second by stage and reason")
    assert any(
        labels["stage"] == "tiler" and labels["reason"].startswith("model_")
        for labels, _ in retries
    ), retries
    by_status = _series(evaluated, "Requests per second by status")
    assert {labels["status"] for labels, _ in by_status} == {"OK"}
    assert {labels["model_name"] for labels, _ in by_status} == {"radio_unet"}
    ((_, mean_batch),) = _series(evaluated, "Batch size (mean, p95)")
    assert 1 <= mean_batch <= 64  # tiles per model call, at most the server's max_batch_size
    tiles = {labels["stage"] for labels, _ in _series(evaluated, "Tiles per second by stage")}
    assert tiles == {"tiler", "reassembler"}
    for title in ("Request latency (p50, p95)", "Time per message by stage (p50, p95)"):
        for _, seconds in _series(evaluated, title, "B"):
            assert not math.isfinite(seconds) or 0 < seconds < TIMEOUT_S


def test_the_chart_files_hold_exactly_these_queries(evaluated: list[Evaluated]) -> None:
    in_files = set()
    for path in sorted(CHART_DASHBOARDS.glob("*.json")):
        doc = json.loads(path.read_text())
        for panel in doc["panels"]:
            for target in panel.get("targets", []):
                in_files.add((doc["uid"], panel["title"], target["refId"], target["expr"]))
    evaluated_here = {
        (r.dashboard.uid, r.panel.title, r.ref_id, r.target.expr.text) for r in evaluated
    }
    assert in_files == evaluated_here


def test_show_prints_every_panel(
    stack: LocalStack, evaluated: list[Evaluated], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboards", "show", "--data-dir", str(stack.config.data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Prometheus {stack.prometheus.url}, rate window 1m\n")
    for result in evaluated:
        assert result.panel.title in out
    assert re.search(r"GPU utilisation .*\(no data: needs the DCGM exporter\)", out)
    assert re.search(
        r"Dead letters per second by stage and reason +fetcher: outside_footprint", out
    )
    assert re.search(r"\.\.\. +\d+ more \(\d+ at 0\)", out)  # the series still at zero


def test_a_query_prometheus_rejects_is_one_clear_error(stack: LocalStack) -> None:
    with pytest.raises(PrometheusError, match=r"failed query 'sum\(' \(400\): .*parse error"):
        instant_query(stack.prometheus.url, "sum(")
