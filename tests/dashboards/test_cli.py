"""``radiounet dashboards``: export with Grafana provisioning; show's errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radiounet.cli.main import main
from radiounet.dashboards.generate import check
from radiounet.stream.local.ports import free_port
from radiounet.stream.local.stack_state import StackState, save_state


def test_help_names_both_actions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["dashboards", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "export" in out and "show" in out and "provisioning" in out


def test_export_writes_dashboards_and_provisioning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "grafana"
    url = "http://127.0.0.1:9090"
    args = ["dashboards", "export", str(out_dir), "--prometheus", url, "--scrape-interval", "5s"]
    assert main(args) == 0
    written = capsys.readouterr().out.split()
    assert written == [
        str(out_dir / "radiounet-model-server.json"),
        str(out_dir / "radiounet-pipeline.json"),
        str(out_dir / "provisioning" / "datasources" / "radiounet.yaml"),
        str(out_dir / "provisioning" / "dashboards" / "radiounet.yaml"),
    ]
    assert check(out_dir) == []
    (source,) = json.loads(Path(written[2]).read_text())["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == ("prometheus", url, True)
    assert source["jsonData"]["timeInterval"] == "5s"
    (provider,) = json.loads(Path(written[3]).read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == str(out_dir.resolve())


def test_export_takes_the_url_of_the_local_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_dir = tmp_path / "stack"
    save_state(
        StackState(str(stack_dir), {}, "k", "s", extra={"prometheus": "http://127.0.0.1:1234"})
    )
    assert main(["dashboards", "export", str(tmp_path / "g"), "--data-dir", str(stack_dir)]) == 0
    doc = json.loads(
        (tmp_path / "g" / "provisioning" / "datasources" / "radiounet.yaml").read_text()
    )
    assert doc["datasources"][0]["url"] == "http://127.0.0.1:1234"
    assert doc["datasources"][0]["jsonData"]["timeInterval"] == "2s"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["export", "X", "--prometheus", "localhost:9090"],
            "Prometheus URL must be http(s)://host[:port][/path], got 'localhost:9090'",
        ),
        (
            ["export", "X", "--prometheus", "http://h:1", "--scrape-interval", "5"],
            "scrape interval must be a duration such as 2s or 30s, got '5'",
        ),
        (["show", "--prometheus", "http://h:1", "--window", "a minute"], "got 'a minute'"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    args = [str(tmp_path / a) if a == "X" else a for a in args]
    assert main(["dashboards", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("radiounet dashboards: error: ")
    assert message in err
    assert not (tmp_path / "X").exists()


def test_show_without_a_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboards", "show", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"radiounet dashboards: error: no local stack in {tmp_path} ({tmp_path}/stack.json does "
        f"not exist): start one with `radiounet stack up --data-dir {tmp_path}`, or give "
        "--prometheus URL\n"
    )


def test_show_with_a_stack_without_prometheus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_state(StackState(str(tmp_path), {}, "k", "s", extra={}))
    assert main(["dashboards", "show", "--data-dir", str(tmp_path)]) == 2
    assert "records no Prometheus; give --prometheus URL" in capsys.readouterr().err


def test_show_with_prometheus_down(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["dashboards", "show", "--prometheus", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"radiounet dashboards: error: cannot reach Prometheus at {url}: ")
    assert "Connection refused" in err


def test_show_lists_what_moved_and_counts_the_zeros() -> None:
    from radiounet.dashboards import dashboards
    from radiounet.dashboards.evaluate import Evaluated, Series, format_table

    board = next(d for d in dashboards() if d.uid == "radiounet-pipeline")
    panel = next(p for p in board.panels() if p.title.startswith("Dead letters per second"))
    target = panel.targets[0]
    series = (
        Series({"stage": "fetcher", "reason": "outside_footprint"}, 0.25),
        Series({"stage": "fetcher", "reason": "bad_message"}, 0.0),
        Series({"stage": "tiler", "reason": "invalid_cutout"}, 0.0),
    )
    result = Evaluated(board, panel, "A", target, target.expr.text, series)
    lines = format_table([result]).splitlines()
    assert lines[0] == board.title
    assert "fetcher: outside_footprint" in lines[1] and lines[1].endswith("0.25/s")
    assert lines[2].split() == ["...", "2", "more", "(2", "at", "0)"]
    assert len(lines) == 3
    # All at zero: one of them is shown, so the panel still says "0", not "no data".
    quiet = Evaluated(board, panel, "A", target, target.expr.text, series[1:])
    lines = format_table([quiet]).splitlines()
    assert "fetcher: bad_message" in lines[1] and lines[2].split()[:3] == ["...", "1", "more"]
