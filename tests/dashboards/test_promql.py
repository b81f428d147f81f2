"""The PromQL builders refuse what would make an empty or wrong panel, naming the mistake."""

from __future__ import annotations

import pytest

from radiounet.dashboards.panels import Panel, Target
from radiounet.dashboards.promql import (
    current,
    for_prometheus,
    increase,
    mean,
    or_zero,
    quantile,
    rate,
    ratio,
)
from radiounet.dashboards.series import Metric, from_client
from radiounet.stream import telemetry as tm

TILES = from_client(tm.TILES)
LAG = from_client(tm.CONSUMER_LAG)
SECONDS = from_client(tm.STAGE_SECONDS)
REQUESTS = Metric(
    ":tensorflow:serving:request_count", "counter", ("model_name", "status"), "tf-serving"
)


def test_expressions() -> None:
    assert rate(REQUESTS, by=["status"], where_not={"status": "OK"}).text == (
        'sum by (status) (rate(:tensorflow:serving:request_count{status!="OK"}[$__rate_interval]))'
    )
    assert mean(SECONDS, by=["stage"], divide_by=1000).text == (
        "(sum by (stage) (rate(radiounet_stage_duration_seconds_sum[$__rate_interval])) / "
        "sum by (stage) (rate(radiounet_stage_duration_seconds_count[$__rate_interval]))) / 1000"
    )
    assert current(LAG, where={"topic": 'a"b\\c'}).text == (
        'sum(radiounet_consumer_lag_messages{topic="a\\"b\\\\c"})'
    )
    failed = ratio(or_zero(rate(REQUESTS, where_not={"status": "OK"})), rate(REQUESTS))
    assert failed.labels == frozenset()
    assert failed.text.startswith("((sum(rate(")
    assert failed.text.endswith(
        ") or vector(0)) / (sum(rate(:tensorflow:serving:request_count[$__rate_interval])))"
    )


def test_unknown_labels_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"radiounet_tiles_total has no label 'stag' to group by"):
        rate(TILES, by=["stag"])
    with pytest.raises(ValueError, match=r"has no label 'group' to match; it has \['stage'\]"):
        rate(TILES, where={"group": "x"})
    with pytest.raises(ValueError, match=r"_sum has no label 'le'"):
        rate(SECONDS, by=["le"], suffix="_sum")


def test_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="radiounet_consumer_lag_messages is a gauge"):
        rate(LAG)
    with pytest.raises(ValueError, match="is a histogram: give suffix"):
        rate(SECONDS)
    with pytest.raises(ValueError, match="quantile\\(\\) takes a histogram"):
        quantile(0.5, TILES)
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\), got 95"):
        quantile(95, SECONDS)
    with pytest.raises(ValueError, match="current\\(\\) takes a gauge"):
        current(TILES)
    with pytest.raises(ValueError, match="increase\\(\\) takes a counter"):
        increase(LAG, "1h")
    with pytest.raises(
        ValueError, match="window must be a Prometheus duration such as 1h, got '1 hour'"
    ):
        increase(TILES, "1 hour")


def test_ratio_and_or_zero_need_matching_labels() -> None:
    with pytest.raises(ValueError, match=r"different labels: \['stage'\] over \[\]"):
        ratio(rate(TILES, by=["stage"]), rate(TILES))
    with pytest.raises(ValueError, match=r"label-less result, got labels \['stage'\]"):
        or_zero(rate(TILES, by=["stage"]))


def test_legend_may_name_only_returned_labels() -> None:
    with pytest.raises(
        ValueError, match=r"legend '\{\{stage\}\} \{\{topic\}\}' names label 'topic'"
    ):
        Target(rate(TILES, by=["stage"]), "{{stage}} {{topic}}")
    assert Target(rate(TILES, by=["stage"]), "{{ stage }}").legend == "{{ stage }}"


def test_panel_checks() -> None:
    target = Target(rate(TILES), "tiles")
    with pytest.raises(ValueError, match=r"unit must be one of .*, got 'tiles/s'"):
        Panel("t", "d", (target,), "tiles/s")
    with pytest.raises(ValueError, match=r"kind must be one of .*, got 'graph'"):
        Panel("t", "d", (target,), "ops", kind="graph")
    with pytest.raises(ValueError, match="need 1 <= width <= 24"):
        Panel("t", "d", (target,), "ops", width=25)


def test_for_prometheus_fills_the_window_and_nothing_else() -> None:
    text = rate(TILES, by=["stage"]).text
    assert for_prometheus(text) == "sum by (stage) (rate(radiounet_tiles_total[1m]))"
    assert for_prometheus(text, "90s").endswith("[90s]))")
    with pytest.raises(ValueError, match="uses \\$namespace, which only Grafana can fill in"):
        for_prometheus('sum(x{namespace="$namespace"})')
    with pytest.raises(ValueError, match=r"window must be a Prometheus duration .*, got '1 min'"):
        for_prometheus(text, "1 min")
