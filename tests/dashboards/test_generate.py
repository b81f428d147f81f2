"""The chart's dashboard files are exactly what the code generates (like ``make protos``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from radiounet.dashboards import dashboards
from radiounet.dashboards.generate import check, main, render, write

CHART_DASHBOARDS = Path(__file__).resolve().parents[2] / "charts" / "radiounet" / "dashboards"


def test_committed_files_are_up_to_date() -> None:
    assert check(CHART_DASHBOARDS) == [], "run `make dashboards` and commit the result"
    assert sorted(p.name for p in CHART_DASHBOARDS.glob("*.json")) == [
        "radiounet-model-server.json",
        "radiounet-pipeline.json",
    ]


def test_committed_files_filter_by_the_namespace_variable() -> None:
    for path in sorted(CHART_DASHBOARDS.glob("*.json")):
        doc = json.loads(path.read_text())
        (variable,) = [v for v in doc["templating"]["list"] if v["name"] == "namespace"]
        assert (variable["allValue"], variable["includeAll"], variable["multi"]) == (
            ".*",
            True,
            True,
        )
        exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
        unfiltered = [e for e in exprs if 'namespace=~"$namespace"' not in e]
        assert unfiltered == (
            ["avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)"]
            if doc["uid"] == "radiounet-model-server"
            else []
        ), path.name


def test_files_are_stable_sorted_json_with_a_trailing_newline(tmp_path: Path) -> None:
    paths = write(tmp_path)
    first = {p.name: p.read_bytes() for p in paths}
    write(tmp_path)
    assert {p.name: p.read_bytes() for p in paths} == first
    for path in paths:
        text = path.read_text()
        assert text.endswith("}\n") and not text.endswith("\n\n")
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


def test_check_names_what_is_stale(tmp_path: Path) -> None:
    boards = {d.uid: d for d in dashboards()}
    pipeline, model_server = boards["radiounet-pipeline"], boards["radiounet-model-server"]
    write(tmp_path)
    (tmp_path / pipeline.file_name).write_text(render(pipeline).replace("Tiles", "Tyles"))
    (tmp_path / model_server.file_name).unlink()
    (tmp_path / "old.json").write_text("{}\n")
    assert check(tmp_path) == [
        f"{tmp_path / 'radiounet-model-server.json'}: missing",
        f"{tmp_path / 'radiounet-pipeline.json'}: differs from the generated dashboard",
        f"{tmp_path / 'old.json'}: no dashboard of the code writes this file",
    ]


def test_main_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "dashboards"
    assert main([str(target), "--check"]) == 1
    assert "run `make dashboards`" in capsys.readouterr().err
    assert main([str(target)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(target / "radiounet-model-server.json"),
        str(target / "radiounet-pipeline.json"),
    ]
    assert main([str(target), "--check"]) == 0


def test_module_entry_point_of_make_dashboards(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "radiounet.dashboards.generate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert check(tmp_path) == []
