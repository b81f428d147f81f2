"""The dashboards: built from the metric objects, valid PromQL, well-formed Grafana JSON."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from radiounet.dashboards import dashboards, for_prometheus
from radiounet.dashboards.panels import DATASOURCE, SCHEMA_VERSION, Dashboard
from radiounet.dashboards.series import DCGM_GPU_UTIL, from_client, from_serving, serving_metrics
from radiounet.stream import telemetry as tm
from radiounet.stream.local.binaries import promtool_binary

BY_UID = {d.uid: d for d in dashboards()}
ALL_EXPRS = [t.expr for d in dashboards() for p in d.panels() for t in p.targets]


def test_the_two_dashboards() -> None:
    assert {uid: d.title for uid, d in BY_UID.items()} == {
        "radiounet-model-server": "radiounet model server",
        "radiounet-pipeline": "radiounet pipeline",
    }


def test_every_pipeline_metric_is_on_the_pipeline_dashboard() -> None:
    objects = [getattr(tm, name) for name in tm.__all__ if name.isupper()]
    assert len(objects) == 13
    read = {m.name for p in BY_UID["radiounet-pipeline"].panels() for m in p.metrics}
    assert {from_client(o).name for o in objects} - read == set()


def test_model_server_dashboard_reads_tf_serving_names() -> None:
    serving = serving_metrics()
    read = {m.name for p in BY_UID["radiounet-model-server"].panels() for m in p.metrics}
    expected = {
        from_serving(m).name
        for m in (
            serving.request_count,
            serving.request_latency,
            serving.runtime_latency,
            serving.processed_batch_size,
            serving.queuing_latency,
            serving.wrapped_run_count,
            serving.graph_runs,
        )
    }
    assert read == expected | {"DCGM_FI_DEV_GPU_UTIL"}
    assert ":tensorflow:serving:batching_session:processed_batch_size" in read


def test_names_come_from_the_metric_objects() -> None:
    # Counters get the _total that prometheus_client adds on exposition; TF Serving's do not.
    assert from_client(tm.TILES).name == "radiounet_tiles_total"
    assert from_client(tm.STAGE_SECONDS).name == "radiounet_stage_duration_seconds"
    assert from_client(tm.CONSUMER_LAG).labels == ("group", "topic")
    assert from_serving(serving_metrics().request_count).name == (
        ":tensorflow:serving:request_count"
    )


def test_exactly_the_gpu_panel_needs_dcgm() -> None:
    needing = [(d.uid, p.title) for d in dashboards() for p in d.panels() if p.needs_dcgm]
    assert needing == [("radiounet-model-server", "GPU utilisation")]
    (gpu,) = [p for p in BY_UID["radiounet-model-server"].panels() if p.needs_dcgm]
    assert gpu.metrics == (DCGM_GPU_UTIL,)
    assert gpu.unit == "percent"
    panel_json = next(
        p for p in BY_UID["radiounet-model-server"].to_json()["panels"] if p["title"] == gpu.title
    )
    assert "DCGM exporter" in panel_json["description"]


def test_rate_windows_are_grafanas_rate_interval() -> None:
    windows = {w for e in ALL_EXPRS for w in re.findall(r"\[([^\]]+)\]", e.text)}
    # $__rate_interval everywhere, but for the fixed one-hour count of dead letters.
    assert windows == {"$__rate_interval", "1h"}
    assert all("[1m]" in for_prometheus(e.text) for e in ALL_EXPRS if "$__rate" in e.text)


def test_tf_serving_latencies_are_shown_in_seconds() -> None:
    latency = [
        (p.unit, t.expr.text)
        for p in BY_UID["radiounet-model-server"].panels()
        for t in p.targets
        if "latency" in t.expr.text
    ]
    assert len(latency) == 6  # request, runtime, queuing: p50 and p95 each
    assert all(unit == "s" and text.endswith(" / 1000000") for unit, text in latency)


def test_latency_quantiles_group_by_le_and_stage() -> None:
    (panel,) = [p for p in BY_UID["radiounet-pipeline"].panels() if p.title.startswith("Time per")]
    assert [t.expr.text for t in panel.targets] == [
        f"histogram_quantile({q}, sum by (le, stage) "
        f"(rate(radiounet_stage_duration_seconds_bucket[$__rate_interval])))"
        for q in ("0.5", "0.95")
    ]
    assert [t.legend for t in panel.targets] == ["{{stage}} p50", "{{stage}} p95"]


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool checks recording rules offline: one rule per panel query.
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"radiounet:dashboard_query:{i}", "expr": for_prometheus(e.text)}
                    for i, e in enumerate(ALL_EXPRS)
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))
    done = subprocess.run(
        [str(promtool_binary()), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALL_EXPRS)} rules found" in done.stdout


@pytest.mark.parametrize("uid", sorted(BY_UID))
def test_grafana_json_model(uid: str) -> None:
    doc = BY_UID[uid].to_json()
    assert doc["schemaVersion"] == SCHEMA_VERSION == 39
    assert doc["uid"] == uid
    (variable,) = doc["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    panels = [p for p in doc["panels"] if p["type"] != "row"]
    assert {p["type"] for p in panels} <= {"timeseries", "stat"}
    for panel in panels:
        assert panel["datasource"] == DATASOURCE
        assert panel["fieldConfig"]["defaults"]["unit"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    ids = [p["id"] for p in doc["panels"]]
    assert ids == list(range(1, len(ids) + 1))


@pytest.mark.parametrize("uid", sorted(BY_UID))
def test_panels_do_not_overlap(uid: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in BY_UID[uid].to_json()["panels"]:
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_panel_titles_must_be_unique() -> None:
    board = BY_UID["radiounet-pipeline"]
    doubled = board.rows + board.rows[:1]
    with pytest.raises(
        ValueError,
        match=r"pipeline: panel titles must be unique, repeated: \['Detections per second",
    ):
        Dashboard(board.uid, board.title, board.description, doubled)
