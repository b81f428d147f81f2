"""The PromQL builders refuse what would make an empty or wrong panel, naming the mistake."""

from __future__ import annotations

import pytest

from radiounet.dashboards.panels import Panel, Target
from radiounet.dashboards.promql import (
    TARGET_LABELS,
    current,
    for_prometheus,
    increase,
    label_values,
    mean,
    or_zero,
    quantile,
    rate,
    ratio,
)
from radiounet.dashboards.series import DCGM_GPU_UTIL, Metric, from_client
from radiounet.stream import telemetry as tm

TILES = from_client(tm.TILES)
LAG = from_client(tm.CONSUMER_LAG)
SECONDS = from_client(tm.STAGE_SECONDS)
REQUESTS = Metric(
    ":tensorflow:serving:request_count", "counter", ("model_name", "status"), "tf-serving"
)


def test_expressions() -> None:
    assert rate(REQUESTS, by=["status"], where_not={"status": "OK"}).text == (
        "sum by (status) (rate(:tensorflow:serving:request_count"
        '{namespace=~"$namespace", status!="OK"}[$__rate_interval]))'
    )
    assert mean(SECONDS, by=["stage"], divide_by=1000).text == (
        "(sum by (stage) (rate(radiounet_stage_duration_seconds_sum"
        '{namespace=~"$namespace"}[$__rate_interval])) / '
        "sum by (stage) (rate(radiounet_stage_duration_seconds_count"
        '{namespace=~"$namespace"}[$__rate_interval]))) / 1000'
    )
    assert current(LAG, where={"topic": 'a"b\\c'}).text == (
        'sum(radiounet_consumer_lag_messages{namespace=~"$namespace", topic="a\\"b\\\\c"})'
    )
    assert increase(TILES, "1h", by=["stage"]).text == (
        'sum by (stage) (increase(radiounet_tiles_total{namespace=~"$namespace"}[1h]))'
    )
    failed = ratio(or_zero(rate(REQUESTS, where_not={"status": "OK"})), rate(REQUESTS))
    assert failed.labels == frozenset()
    assert failed.text.startswith("((sum(rate(")
    assert failed.text.endswith(
        ") or vector(0)) / (sum(rate(:tensorflow:serving:request_count"
        '{namespace=~"$namespace"}[$__rate_interval])))'
    )


def test_dcgm_selectors_are_not_filtered_by_namespace() -> None:
    # The exporter's namespace is its own, not the model server's.
    assert current(DCGM_GPU_UTIL, by=["gpu"], how="avg").text == (
        "avg by (gpu) (DCGM_FI_DEV_GPU_UTIL)"
    )
    assert current(DCGM_GPU_UTIL, where={"namespace": "gpu-operator"}).text == (
        'sum(DCGM_FI_DEV_GPU_UTIL{namespace="gpu-operator"})'
    )


def test_unknown_labels_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"radiounet_tiles_total has no label 'stag' to group by"):
        rate(TILES, by=["stag"])
    with pytest.raises(ValueError, match=r"has no label 'group' to match; it has \['stage'\]"):
        rate(TILES, where={"group": "x"})
    with pytest.raises(ValueError, match=r"_sum has no label 'le'"):
        rate(SECONDS, by=["le"], suffix="_sum")


def test_target_labels_may_be_matched_never_grouped_by() -> None:
    assert TARGET_LABELS == frozenset({"namespace"})
    # Neither a label of the metric nor a target label Prometheus adds.
    with pytest.raises(
        ValueError,
        match=r"radiounet_tiles_total has no label 'pod' to match; it has \['stage'\] "
        r"\(and the target labels \['namespace'\]\)",
    ):
        rate(TILES, where={"pod": "tiler-0"})
    with pytest.raises(ValueError, match=r"no label 'container' to match"):
        current(LAG, where={"container": "tiler"})
    with pytest.raises(ValueError, match=r"no label 'namespace' to group by; it has \['stage'\]$"):
        rate(TILES, by=["namespace"])
    with pytest.raises(ValueError, match=r"no label 'namespace' to group by"):
        current(LAG, by=["namespace"])
    # The builders own the namespace matcher of the release's metrics.
    with pytest.raises(ValueError, match=r'matches namespace=~"\$namespace" already'):
        rate(TILES, where={"namespace": "radiounet"})
    with pytest.raises(ValueError, match=r'matches namespace=~"\$namespace" already'):
        rate(REQUESTS, where_not={"namespace": "radiounet"})


def test_label_values() -> None:
    assert label_values(LAG, "namespace") == (
        "label_values(radiounet_consumer_lag_messages, namespace)"
    )
    assert label_values(SECONDS, "stage") == (
        "label_values(radiounet_stage_duration_seconds_count, stage)"
    )
    with pytest.raises(ValueError, match=r"has no label 'pod' to take values of"):
        label_values(TILES, "pod")


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


def test_for_prometheus_fills_the_window_and_namespace_and_nothing_else() -> None:
    text = rate(TILES, by=["stage"]).text
    assert for_prometheus(text) == (
        'sum by (stage) (rate(radiounet_tiles_total{namespace=~".*"}[1m]))'
    )
    assert for_prometheus(text, "90s").endswith("[90s]))")
    assert for_prometheus('sum(x{namespace=~"${namespace}"}[${__rate_interval}])') == (
        'sum(x{namespace=~".*"}[1m])'
    )
    for query, variable in (
        ('sum(x{cluster=~"$cluster"})', "$cluster"),
        ('sum(x{namespace=~"$namespaces"})', "$namespaces"),
        ('sum(x{namespace=~"${namespace:csv}"})', "${namespace:csv}"),
    ):
        with pytest.raises(ValueError) as info:
            for_prometheus(query)
        assert str(info.value) == (
            f"query {query!r} uses {variable}, which only Grafana can fill in"
        )
    with pytest.raises(ValueError, match=r"window must be a Prometheus duration .*, got '1 min'"):
        for_prometheus(text, "1 min")
