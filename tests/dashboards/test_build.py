"""The dashboards: built from the metric objects, valid PromQL, well-formed Grafana JSON."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from radiounet.dashboards import Expr, dashboards, for_prometheus
from radiounet.dashboards.panels import DATASOURCE, SCHEMA_VERSION, Dashboard
from radiounet.dashboards.series import DCGM_GPU_UTIL, from_client, from_serving, serving_metrics
from radiounet.stream import telemetry as tm
from radiounet.stream.local.binaries import promtool_binary

BY_UID = {d.uid: d for d in dashboards()}
ALL_EXPRS = [t.expr for d in dashboards() for p in d.panels() for t in p.targets]
NAMESPACE_MATCHER = ("namespace", "=~", "$namespace")

Matcher = tuple[str, str, str]
_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<range>\[[^\]]*\])|(?P<number>[0-9]+(?:\.[0-9]+)?)'
    r"|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<op>=~|!~|!=|[=(){},/*+-]))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, at = [], 0
    while text[at:].strip():
        match = _TOKEN.match(text, at)
        assert match, f"cannot tokenize {text[at:]!r}"
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        at = match.end()
    return out


def parse(text: str) -> tuple[list[tuple[str, tuple[Matcher, ...]]], list[tuple[str, ...]]]:
    """The selectors (metric name, matchers) and the ``by`` label lists of a query.

    Enough PromQL for the builders' output: functions and aggregations are a
    name followed by ``(`` or ``by``; any other name but ``or`` starts a selector.
    """
    tokens = _tokens(text)
    selectors: list[tuple[str, tuple[Matcher, ...]]] = []
    groupings: list[tuple[str, ...]] = []
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        after = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "name" and value in ("by", "without"):
            end = tokens.index(("op", ")"), i)
            groupings.append(tuple(v for k, v in tokens[i + 2 : end] if k == "name"))
            i = end + 1
        elif kind == "name" and (after in ("(", "by", "without") or value == "or"):
            i += 1
        elif kind == "name":
            matchers: list[Matcher] = []
            i += 1
            if after == "{":
                i += 1
                while tokens[i][1] != "}":
                    (_, label), (_, op), (quoted, literal) = tokens[i : i + 3]
                    assert quoted == "string", text
                    matchers.append((label, op, json.loads(literal)))
                    i += 4 if tokens[i + 3][1] == "," else 3
                i += 1
            selectors.append((value, tuple(matchers)))
        else:
            assert value != "{", f"a selector without a metric name in {text!r}"
            i += 1
    return selectors, groupings


def test_the_query_parser() -> None:
    text = (
        '((sum(rate(x_total{namespace=~"$namespace", status!="O\\"K"}[$__rate_interval]))) '
        "or vector(0)) / (sum by (le, stage) (rate(:tf:y_bucket[1h]))) / 1000000"
    )
    assert parse(text) == (
        [
            ("x_total", (NAMESPACE_MATCHER, ("status", "!=", 'O"K'))),
            (":tf:y_bucket", ()),
        ],
        [("le", "stage")],
    )


def _selectors(expr: Expr) -> list[tuple[str, tuple[Matcher, ...]]]:
    selectors, _ = parse(expr.text)
    # The parser found the series of the metrics the expression reads, and only those.
    series = {
        m.series(suffix)
        for m in expr.metrics
        for suffix in (("_bucket", "_sum", "_count") if m.kind == "histogram" else ("",))
    }
    found = {name for name, _ in selectors}
    assert found <= series, expr.text
    assert {m.name for m in expr.metrics} == {
        m.name for m in expr.metrics for name in found if name.startswith(m.name)
    }, expr.text
    return selectors


def test_every_selector_but_dcgm_matches_the_namespace_variable() -> None:
    checked = 0
    for expr in ALL_EXPRS:
        for name, matchers in _selectors(expr):
            on_namespace = [m for m in matchers if m[0] == "namespace"]
            if name == DCGM_GPU_UTIL.name:
                assert on_namespace == [], expr.text
            else:
                assert on_namespace == [NAMESPACE_MATCHER], expr.text
                checked += 1
    # Two selectors in the batch-size mean and the failure ratio, one in the other
    # queries; the GPU query's is the one left unfiltered.
    assert checked == len(ALL_EXPRS) - 1 + 2


def test_no_query_groups_by_namespace_job_or_instance() -> None:
    groupings = [g for e in ALL_EXPRS for g in parse(e.text)[1]]
    assert len(groupings) > 10
    assert not {label for g in groupings for label in g} & {"namespace", "job", "instance"}


def test_prometheus_gets_every_variable_filled_in() -> None:
    for expr in ALL_EXPRS:
        query = for_prometheus(expr.text)
        assert "$" not in query, query
        for name, matchers in parse(query)[0]:
            on_namespace = [m for m in matchers if m[0] == "namespace"]
            expected = [] if name == DCGM_GPU_UTIL.name else [("namespace", "=~", ".*")]
            assert on_namespace == expected, query


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
        f'(rate(radiounet_stage_duration_seconds_bucket{{namespace=~"$namespace"}}'
        f"[$__rate_interval])))"
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
    variable, _ = doc["templating"]["list"]
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


@pytest.mark.parametrize(
    ("uid", "metric"),
    [
        ("radiounet-model-server", ":tensorflow:core:graph_runs"),
        ("radiounet-pipeline", "radiounet_in_flight_messages"),
    ],
)
def test_namespace_variable(uid: str, metric: str) -> None:
    variables = BY_UID[uid].to_json()["templating"]["list"]
    # The data source first: the namespace query runs on it.
    assert [v["name"] for v in variables] == ["datasource", "namespace"]
    query = f"label_values({metric}, namespace)"
    assert variables[1] == {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "definition": query,
        "hide": 0,
        "includeAll": True,
        "label": "Namespace",
        "multi": True,
        "name": "namespace",
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
    assert metric in {m.name for p in BY_UID[uid].panels() for m in p.metrics}


def test_the_gpu_panel_says_it_is_not_filtered() -> None:
    (gpu,) = [p for p in BY_UID["radiounet-model-server"].panels() if p.needs_dcgm]
    assert "namespace variable does not apply" in gpu.description


def test_namespaces_come_from_a_metric_of_the_release() -> None:
    board = BY_UID["radiounet-model-server"]
    with pytest.raises(ValueError, match=r"got DCGM_FI_DEV_GPU_UTIL \(dcgm\)"):
        Dashboard(
            board.uid, board.title, board.description, board.rows, namespaces_from=DCGM_GPU_UTIL
        )
    lag = from_client(tm.CONSUMER_LAG)  # of the release, but not on this dashboard
    with pytest.raises(ValueError, match="a panel reads, got radiounet_consumer_lag_messages"):
        Dashboard(board.uid, board.title, board.description, board.rows, namespaces_from=lag)


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
        Dashboard(
            board.uid,
            board.title,
            board.description,
            doubled,
            namespaces_from=board.namespaces_from,
        )
