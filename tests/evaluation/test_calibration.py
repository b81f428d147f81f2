"""``radiounet model calibrate``: the threshold chosen, the metadata written, the guards."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from radiounet import __version__
from radiounet.cli.main import main
from radiounet.evaluation.calibration import calibrate, check_not_training_data
from radiounet.evaluation.metrics import calibrated_threshold, classification_at
from radiounet.evaluation.run import evaluate, load_dataset, select_fields
from radiounet.model.repository import METADATA_FILE, ModelVersion, resolve_model

SEED, SETUP = 12345, "paper-6arcsec"  # the fixture dataset's manifest


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def copy(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture dataset again elsewhere: 10 test clusters with the original (4 with emission)."""
    target = tmp_path_factory.mktemp("moved") / "data"
    shutil.copytree(dataset, target)
    return target


@pytest.fixture
def repo(tiny_model_repo: Path, dataset: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model whose metadata says it trained on ``dataset``."""
    shutil.copytree(tiny_model_repo / "radio_unet", tmp_path / "radio_unet")
    path = tmp_path / "radio_unet" / "1" / METADATA_FILE
    meta = json.loads(path.read_text())
    meta["training"] = {
        "epochs": 1,
        "datasets": [{"path": str(dataset.resolve()), "seed": SEED, "setup": SETUP, "fields": 1}],
    }
    path.write_text(json.dumps(meta, indent=2))
    return tmp_path


def cluster_truth(model: ModelVersion, data: list[Path], **kwargs: Any) -> tuple[list, list]:
    """R and truth of the test clusters, from ``radiounet evaluate``'s own run."""
    rows = evaluate(model, data, use_pybdsf=False, n_examples=0, **kwargs).report["classification"][
        "clusters"
    ]
    used = [r for r in rows if r["ratio"] is not None]
    return [r["ratio"] for r in used], [r["positive"] for r in used]


# --- the function ---------------------------------------------------------------------------


def test_calibrate_with_an_oracle_separates_emission_from_radio_galaxies(
    oracle_dataset: Path,
    tiny_model: ModelVersion,
    oracle_predictor: Callable[[np.ndarray], np.ndarray],
    tmp_path: Path,
) -> None:
    moved = tmp_path / "again"
    shutil.copytree(oracle_dataset, moved)
    result = calibrate(
        tiny_model, [oracle_dataset, moved], split="test", predictor=oracle_predictor
    )
    assert result.fields == ["f0000", "f0001", "f0000", "f0001"]
    assert result.profile == "synthetic"
    by_id = {(c["field"], c["cluster"]): c["ratio"] for c in result.used}
    assert len(result.used) == 10 and len(by_id) == 5  # the copy repeats each R
    # The oracle sees the emission and the radio galaxies; the empty cluster has R = 0.
    assert by_id[("f0000", "c2")] == 0.0
    ratios, truth = cluster_truth(tiny_model, [oracle_dataset], predictor=oracle_predictor)
    expected = calibrated_threshold(ratios * 2, truth * 2)
    assert result.choice == expected
    levels = sorted(set(by_id.values()))
    k = next(i for i, r in enumerate(levels) if r > result.threshold)
    assert levels[k - 1] < result.threshold < levels[k]
    lo, hi = levels[k - 1], levels[k]
    assert result.threshold == pytest.approx(math.sqrt(lo * hi) if lo > 0 else hi / 2)
    assert result.paper == classification_at(ratios * 2, truth * 2, 0.015)
    record = result.record(command="radiounet model calibrate ...")
    assert record["clusters"] == 10 and record["positives"] == 4 and record["negatives"] == 6
    assert record["accuracy"] == expected.point.accuracy
    assert record["paper_threshold"]["accuracy"] == result.paper.accuracy


def test_guard_follows_a_fine_tuned_version_to_its_base(
    dataset: Path, tmp_path: Path, fake_version: Callable[..., Path]
) -> None:
    base = {"datasets": [{"path": "/gone/sim", "seed": SEED, "setup": SETUP}]}
    fake_version(tmp_path, 1, {"base_filters": 2, "training": base})
    finetune = {"base_name": "radio_unet", "base_version": 1, "base_model": "/gone/repo/1"}
    fake_version(tmp_path, 2, {"base_filters": 2, "training": {"finetune": finetune}})
    tuned = resolve_model(tmp_path, version=2)
    data = [load_dataset(dataset)]
    with pytest.raises(ValueError, match=r"trained radio_unet/1 \(training dataset /gone/sim"):
        check_not_training_data(tuned, select_fields(data, split="train"))
    check_not_training_data(tuned, select_fields(data, split="test"))  # held out: fine


# --- the command ----------------------------------------------------------------------------


def test_calibrate_writes_the_threshold_and_its_record(
    repo: Path, dataset: Path, copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = repo / "radio_unet" / "1" / METADATA_FILE
    before = json.loads(path.read_text())
    argv = ["model", "calibrate", "--model", str(repo), "--data", str(dataset), str(copy),
            "--split", "test"]  # fmt: skip
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    assert "placeholder (untrained)" in err

    model = resolve_model(repo)
    ratios, truth = cluster_truth(model, [dataset, copy])
    expected = calibrated_threshold(ratios, truth)
    paper = classification_at(ratios, truth, 0.015)
    stored = json.loads(path.read_text())
    assert stored["decision_threshold"] == expected.threshold
    assert model.metadata.decision_threshold == expected.threshold
    # Every other key as it was.
    assert {k: v for k, v in stored.items() if k not in ("decision_threshold", "calibration")} == {
        k: v for k, v in before.items() if k not in ("decision_threshold", "calibration")
    }
    cal = stored["calibration"]
    assert cal["datasets"] == [
        {"path": str(dataset.resolve()), "seed": SEED, "setup": SETUP},
        {"path": str(copy.resolve()), "seed": SEED, "setup": SETUP},
    ]
    assert (cal["split"], cal["fields"], cal["clusters"]) == ("test", 4, 10)
    assert (cal["positives"], cal["negatives"], cal["skipped_clusters"]) == (4, 6, 0)
    assert cal["threshold"] == expected.threshold and cal["margin"] == expected.margin
    assert cal["accuracy"] == expected.point.accuracy
    assert cal["precision"] == expected.point.precision
    assert cal["recall"] == expected.point.recall
    assert (cal["tp"], cal["fp"], cal["tn"], cal["fn"]) == (
        expected.point.tp, expected.point.fp, expected.point.tn, expected.point.fn,
    )  # fmt: skip
    assert cal["paper_threshold"]["threshold"] == 0.015
    assert cal["paper_threshold"]["accuracy"] == paper.accuracy
    assert cal["paper_threshold"]["recall"] == paper.recall
    assert cal["profile"] == "synthetic"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cal["created"])
    assert cal["software"] == f"radiounet {__version__}"
    assert cal["command"] == (
        f"radiounet model calibrate --model {repo / 'radio_unet' / '1'} "
        f"--data {dataset} {copy} --split test"
    )

    # The printed table: counts, both thresholds, where it went.
    assert "10: 4 with diffuse emission, 6 without" in out
    calibrated = next(line for line in out.splitlines() if line.startswith("calibrated"))
    assert calibrated.split()[1:3] == [
        f"{expected.threshold:.6g}",
        f"{expected.point.accuracy:.3f}",
    ]
    paper_line = next(line for line in out.splitlines() if line.startswith("paper"))
    assert f"{paper.accuracy:.3f}" in paper_line
    assert f"wrote decision_threshold {expected.threshold:.6g}" in out
    assert "weights and serving signature untouched" in out

    # model info shows it and where it came from.
    code, out, err = run_main(["model", "info", "--model", str(repo)], capsys)
    assert code == 0, err
    info = json.loads(out)["decision_threshold"]
    assert info["value"] == expected.threshold
    assert info["source"] == "calibrated for radio_unet/1"
    assert info["calibrated_on"] == (
        f"10 clusters of split 'test' of {dataset.resolve()}, {copy.resolve()}: accuracy "
        f"{expected.point.accuracy} (paper's 0.015: {paper.accuracy}), {cal['created']}"
    )
    assert json.loads(out)["metadata"]["calibration"] == cal


def test_dry_run_writes_nothing(
    repo: Path, dataset: Path, copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = repo / "radio_unet" / "1"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    argv = ["model", "calibrate", "--model", str(repo), "--data", str(dataset), str(copy),
            "--split", "test", "--dry-run", "--max-fields", "4"]  # fmt: skip
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    assert f"dry run: {folder / METADATA_FILE} not changed" in out
    assert any(line.startswith("calibrated") for line in out.splitlines())
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert resolve_model(repo).metadata.decision_threshold is None


@pytest.mark.parametrize("which", ["same-folder", "moved-copy"])
def test_training_fields_are_refused(
    repo: Path, dataset: Path, copy: Path, which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = dataset if which == "same-folder" else copy
    before = (repo / "radio_unet" / "1" / METADATA_FILE).read_bytes()
    argv = ["model", "calibrate", "--model", str(repo), "--data", str(data), "--split", "train"]
    code, out, err = run_main(argv, capsys)
    assert code == 2
    assert out == ""
    (line,) = [x for x in err.splitlines() if x.startswith("radiounet")]
    assert line.startswith("radiounet model: error: ")
    assert f"the 'train' fields of {data} trained radio_unet/1" in line
    assert ("the same folder" if which == "same-folder" else "the same seed and set-up") in line
    assert (repo / "radio_unet" / "1" / METADATA_FILE).read_bytes() == before


def test_too_few_clusters_are_refused(
    repo: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["model", "calibrate", "--model", str(repo), "--data", str(dataset), "--split", "test"]
    code, _, err = run_main(argv, capsys)
    assert code == 2
    assert "cannot calibrate on 2 'test' field(s): need at least 6 calibration clusters, got 5" in (
        err
    )
    assert resolve_model(repo).metadata.decision_threshold is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--split", "validation"], "no field with split 'validation' in ["),
        (
            ["--split", "test", "--max-fields", "0"],
            "--max-fields must be a positive integer, got 0",
        ),
        (["--split", "test", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    ],
)
def test_bad_field_options_are_refused(
    repo: Path, dataset: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["model", "calibrate", "--model", str(repo), "--data", str(dataset), *extra]
    code, out, err = run_main(argv, capsys)
    assert code == 2
    assert out == ""
    assert message in err
    if "split" in message:
        assert "(splits present: ['test', 'train'])" in err
    assert resolve_model(repo).metadata.decision_threshold is None


def test_calibrate_help_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["model", "calibrate", "--help"], capsys)
    assert code == 0
    for option in ("--model", "--model-version", "--data", "--split", "--max-fields",
                   "--batch-size", "--dry-run"):  # fmt: skip
        assert option in out
    assert "weights and the serving signature are untouched" in " ".join(out.split())
    code, _, err = run_main(["model", "calibrate", "--data", "x"], capsys)
    assert code == 2 and "the following arguments are required: --split" in err
