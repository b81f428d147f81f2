"""End-to-end tests of the evaluation: datasets, run, report files and the CLI subcommand."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from radiounet.cli.evaluate_cmd import register
from radiounet.cli.main import main
from radiounet.evaluation.calibration import calibrate
from radiounet.evaluation.metrics import mean_iou
from radiounet.evaluation.report import FIGURES, render_markdown, write_report
from radiounet.evaluation.run import (
    choose_profile,
    evaluate,
    load_dataset,
    select_fields,
)
from radiounet.model.repository import METADATA_FILE, ModelVersion, resolve_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def no_nan(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in JSON")

    return json.loads(text, parse_constant=refuse)


# --- datasets and profile -------------------------------------------------------------------


def test_dataset_loading_and_field_selection(dataset: Path, tmp_path: Path) -> None:
    d = load_dataset(dataset)
    assert [f.id for f in select_fields([d])] == ["f0000", "f0001"]
    assert [f.id for f in select_fields([d], split="train")] == ["f0002"]
    assert [f.id for f in select_fields([d], max_fields=1)] == ["f0000"]
    assert d.summary()["n_fields_by_split"] == {"test": 2, "train": 1}
    with pytest.raises(FileNotFoundError, match=r"manifest.json not found"):
        load_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "manifest.json").write_text('{"format": "other/1", "fields": []}')
    with pytest.raises(ValueError, match="format must be 'radiounet-sim/1', got 'other/1'"):
        load_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable JSON manifest"):
        load_dataset(tmp_path)


def test_choose_profile() -> None:
    assert choose_profile("synthetic", ["lotss-dr2-lowres"])[0].name == "synthetic"
    profile, why = choose_profile("custom", ["lotss-dr2-lowres"])
    assert profile.name == "lotss-dr2-lowres" and "set-up" in why
    assert choose_profile(None, ["paper-6arcsec"])[0].name == "synthetic"
    assert choose_profile("synthetic", [], "1e-6:1e-1:Jy/beam")[0].unit == "Jy/beam"
    assert choose_profile("1e-6:1e-1:Jy/beam", ["paper-6arcsec"])[0].vmin == 1e-6
    with pytest.raises(ValueError, match="cannot choose a normalisation profile"):
        choose_profile("custom", ["paper-6arcsec", "lotss-dr2-lowres"])


# --- the run --------------------------------------------------------------------------------


def test_oracle_run_measures_what_was_built(
    oracle_dataset: Path,
    tiny_model: ModelVersion,
    oracle_predictor: Callable[[np.ndarray], np.ndarray],
) -> None:
    """An oracle network (the image above the truth threshold) gives the numbers we built in."""
    ev = evaluate(tiny_model, [oracle_dataset], predictor=oracle_predictor, use_pybdsf=False)
    truth_jy_pix = ev.report["datasets"][0]["truth_threshold_jy_arcsec2"] * 2.0**2  # 2" pixels
    r = ev.report
    assert r["fields_evaluated"] == ["f0000", "f0001"]  # never the training field
    assert r["methods"] == ["network", "sigma3"]
    assert r["profile"]["name"] == "synthetic"

    # Segmentation: the prediction is the reference mask plus the radio galaxies.
    for f, values in zip(ev.examples, r["segmentation"]["network"]["per_field"], strict=True):
        mask_file = oracle_dataset / "fields" / f"{f.id}_mask.fits"
        sky = fits.getdata(oracle_dataset / "fields" / f"{f.id}_sky.fits")
        expected = mean_iou(fits.getdata(mask_file), sky > truth_jy_pix)
        assert values == pytest.approx(expected, abs=1e-3)
        assert 0.8 < values < 1.0

    # Detection: 4 counted sources (the sub-beam one skipped), all found; the FR I and the
    # tailed galaxy are the only false positives, both on contaminant emission; the compact
    # source is a single pixel, below a beam.
    net = r["detection"]["network"]
    assert (net["tp_sources"], net["fn_sources"], net["n_sources_skipped"]) == (4, 0, 1)
    assert (net["true_regions"], net["fp_regions"]) == (4, 2)
    assert net["recall"] == 1.0
    assert net["precision"] == pytest.approx(4 / 6)
    assert net["fp_regions_on_contaminant_emission"] == 2
    assert 0.0 < net["contaminant_area_fraction"] < 0.2

    # Clusters: both diffuse hosts and both radio-galaxy hosts are "detected".
    cls = r["classification"]
    assert (cls["n_clusters"], cls["n_positive"], cls["n_negative"]) == (5, 2, 3)
    at = cls["at_threshold"]
    assert (at["tp"], at["fp"], at["tn"], at["fn"]) == (2, 2, 1, 0)
    fpr = cls["false_positive_rate"]
    assert fpr["negative_with_radio_galaxy"] == {"n": 2, "n_detected": 2, "rate": 1.0}
    assert fpr["negative_no_radio_galaxy"] == {"n": 1, "n_detected": 0, "rate": 0.0}
    assert fpr["negative_with_extended_radio_galaxy"]["n"] == 2
    assert cls["positive_detection_rate"]["rate"] == 1.0

    # Morphology: the rule recovers halo (x2), relic and filament.
    morph = r["morphology"]
    assert morph["matrix"] == [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    assert morph["accuracy"] == 1.0


def test_end_to_end_with_a_tiny_model(
    dataset: Path, tiny_model: ModelVersion, tmp_path: Path
) -> None:
    ev = evaluate(tiny_model, [dataset], command="radiounet evaluate ...")
    paths = write_report(ev, tmp_path / "out")
    for key in ("json", "markdown", "iou", "detection", "sweep", "confusion", "examples"):
        assert paths[key].is_file(), key
    for key in ("iou", "detection", "sweep", "confusion", "examples"):
        data = paths[key].read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, key

    r = no_nan(paths["json"].read_text())
    assert r["format"] == "radiounet-eval/1"
    assert r["model"]["placeholder"] is True and r["model"]["version"] == 1
    assert r["methods"] == ["network", "sigma3", "pybdsf"]
    assert r["pybdsf"]["n_fields"] == 2 and r["warnings"] == []
    for m in r["methods"]:
        seg = r["segmentation"][m]
        assert seg["n"] == 2 and 0.0 <= seg["mean"] <= 1.0 and seg["sem"] >= 0.0
        det = r["detection"][m]
        assert det["n_sources_counted"] == 4 and det["tp_sources"] + det["fn_sources"] == 4
    seg = r["segmentation"]
    assert seg["n_fields_with_emission"] == 2 and seg["empty_mask"]["n"] == 2
    assert seg["network"]["fields_with_emission"]["n"] == 2
    assert seg["network_minus_sigma3"]["n"] == 2
    # The 3-sigma mask sees the bright radio galaxies: false positives the reference lacks.
    assert r["detection"]["sigma3"]["fp_regions"] >= 2
    assert r["segmentation"]["sigma3"]["mean"] < 1.0
    assert isinstance(r["detection"]["only_network"]["tp_sources"], int)
    # The network's pixel-threshold sweep: its 0.5 entry is the headline, and a higher
    # threshold detects a subset of the pixels, so never more sources.
    sweep = r["detection"]["network_sweep"]
    assert [p["pixel_threshold"] for p in sweep] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    headline = r["detection"]["network"]
    assert {k: v for k, v in sweep[0].items() if k != "pixel_threshold"} == {
        k: headline[k] for k in sweep[0] if k != "pixel_threshold"
    }
    tps = [p["tp_sources"] for p in sweep]
    assert tps == sorted(tps, reverse=True)
    assert all(p["n_sources_counted"] == 4 for p in sweep)
    cls = r["classification"]
    assert cls["n_clusters"] == 5 and len(cls["sweep"]) >= 40
    assert {"accuracy", "precision", "recall", "threshold"} <= set(cls["sweep"][0])
    assert cls["threshold"] == 0.015 and cls["at_threshold"]["threshold"] == 0.015
    assert np.asarray(r["morphology"]["matrix"]).shape == (3, 4)
    assert [t["status"] for t in r["targets"]] != [] and len(r["targets"]) == 4
    assert all(t["status"] in {"PASS", "FAIL", "N/A"} for t in r["targets"] + r["sanity"])
    assert [t["name"] for t in r["sanity"]] == [
        "IoU network > empty mask (all fields)",
        "IoU network > empty mask (fields with emission)",
    ]
    assert r["reference"]["precision"] == 0.86 and r["reference"]["recall"] == 0.65
    assert r["reference"]["iou_network"]["mean"] == 0.64
    assert [f["id"] for f in r["fields"]] == ["f0000", "f0001"]

    md = paths["markdown"].read_text()
    assert "PLACEHOLDER WEIGHTS: FIGURES MEANINGLESS" in md
    assert md.count("IoU network > ") == 4  # two targets, two sanity checks
    assert "IoU network > 3-sigma mask" in md and "IoU network > PyBDSF islands" in md
    assert "precision >= paper's 0.86" in md and "recall >= paper's 0.65" in md
    assert "0.64 ± 0.02" in md and "0.58 ± 0.02" in md and "(paper: 0.35)" in md
    for rel in ("figures/iou.png", "figures/classification_sweep.png", "figures/examples.png"):
        assert f"]({rel})" in md
    assert "radiounet evaluate ..." in md
    assert "### Network detection at other pixel thresholds (diagnostic" in md


# --- command line ---------------------------------------------------------------------------


def harness(argv: list[str]) -> tuple[argparse.Namespace, int]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    register(sub)
    args = parser.parse_args(argv)
    return args, int(args.run(args))


def test_cli_writes_the_report(
    oracle_dataset: Path,
    tiny_model: ModelVersion,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        "--model",
        str(tiny_model.path),
        "--data",
        str(oracle_dataset),
        "--out",
        str(out),
        "--no-pybdsf",
        "--max-fields",
        "1",
        "--threshold",
        "0.02",
    ]
    _, code = harness(argv)
    assert code == 0
    stdout, stderr = capsys.readouterr()
    assert "placeholder" in stderr  # the usual untrained-model note
    assert "mean IoU Radio U-Net" in stdout and "wrote " in stdout
    r = no_nan((out / "report.json").read_text())
    assert r["n_fields"] == 1 and r["classification"]["threshold"] == 0.02
    assert r["methods"] == ["network", "sigma3"]
    assert r["command"].startswith("radiounet evaluate --model ")
    assert "--no-pybdsf --max-fields 1" in r["command"]
    assert (out / "report.md").is_file() and (out / "figures" / "examples.png").is_file()
    # A second run refuses to overwrite, unless asked.
    with pytest.raises(FileExistsError, match="use --overwrite"):
        harness(argv)
    assert harness([*argv, "--overwrite"])[1] == 0


def test_cli_errors(tmp_path: Path, tiny_model: ModelVersion) -> None:
    base = ["evaluate", "--model", str(tiny_model.path), "--out", str(tmp_path / "o")]
    with pytest.raises(FileNotFoundError, match=r"manifest.json not found"):
        harness([*base, "--data", str(tmp_path)])
    with pytest.raises(ValueError, match="--max-fields must be a positive integer, got 0"):
        harness([*base, "--data", str(tmp_path), "--max-fields", "0"])
    with pytest.raises(SystemExit):  # argparse: --data is required
        harness(base)


def test_targets_and_sanity_by_hand() -> None:
    from radiounet.evaluation.report import assess_targets, sanity_checks

    summary = {"mean": 0.7, "sem": 0.02, "n": 5}
    report = {
        "segmentation": {
            "network": {**summary, "fields_with_emission": {"mean": 0.6, "sem": 0.1, "n": 3}},
            "sigma3": {"mean": 0.6, "sem": 0.02, "n": 5},
            "network_minus_sigma3": {
                "mean": 0.1,
                "sem": 0.02,
                "n": 5,
                "network_mean": 0.7,
                "baseline_mean": 0.6,
            },
            "empty_mask": {
                "mean": 0.8,
                "sem": 0.1,
                "n": 5,
                "fields_with_emission": {"mean": 0.5, "sem": 0.0, "n": 3},
            },
        },
        "detection": {
            "network": {
                "precision": 0.9,
                "precision_interval95": [0.7, 0.97],
                "recall": math.nan,
                "recall_interval95": [None, None],
            }
        },
    }
    targets = {t["name"]: t for t in assess_targets(report)}
    assert targets["IoU network > 3-sigma mask"]["status"] == "PASS"
    assert "better by more than 2 s.e." in targets["IoU network > 3-sigma mask"]["detail"]
    assert targets["IoU network > PyBDSF islands"]["status"] == "N/A"
    assert targets["precision >= paper's 0.86"]["status"] == "PASS"
    assert targets["recall >= paper's 0.65"]["status"] == "FAIL"
    assert "undefined" in targets["recall >= paper's 0.65"]["detail"]
    sanity = [t["status"] for t in sanity_checks(report)]
    assert sanity == ["FAIL", "PASS"]  # empty fields flatter the empty mask


# --- fields that trained the model ----------------------------------------------------------


@pytest.fixture
def trained_on(tiny_model_repo: Path, tmp_path: Path) -> Callable[..., Path]:
    """A copy of the tiny model whose metadata says ``data`` trained it (``field_ids``:
    the fields, as recorded since; None: an export from before, naming none)."""

    def make(data: Path, field_ids: list[str] | None = None) -> Path:
        repo = tmp_path / "repo"
        shutil.copytree(tiny_model_repo, repo)
        path = repo / "radio_unet" / "1" / METADATA_FILE
        entry: dict[str, Any] = {"path": str(data.resolve()), "seed": 12345}
        entry |= {"setup": "paper-6arcsec", "fields": 1}
        if field_ids is not None:
            entry["field_ids"] = field_ids
        path.write_text(
            json.dumps({**json.loads(path.read_text()), "training": {"datasets": [entry]}})
        )
        return repo

    return make


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


EVALUATE_TAIL = (
    "scores on them are not held-out figures: use held-out fields (--split test) or another "
    "dataset, or --allow-training-fields for a diagnostic"
)


def test_training_fields_are_refused_unless_allowed_and_then_labelled(
    dataset: Path,
    trained_on: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo, out = trained_on(dataset), tmp_path / "ev"
    argv = ["evaluate", "--model", str(repo), "--data", str(dataset), "--out", str(out),
            "--split", "train", "--no-pybdsf"]  # fmt: skip
    why = (
        f"the 'train' fields of {dataset} trained radio_unet/1 (training dataset "
        f"{dataset.resolve()}, seed 12345, set-up 'paper-6arcsec': the same folder)"
    )
    code, stdout, err = run_main(argv, capsys)
    assert (code, stdout) == (2, "")
    assert [x for x in err.splitlines() if x.startswith("radiounet")] == [
        f"radiounet evaluate: error: {why}; {EVALUATE_TAIL}"
    ]
    assert not out.exists()

    code, stdout, err = run_main([*argv, "--allow-training-fields"], capsys)
    assert code == 0, err
    note = (
        "TRAINING DATA: fields that trained the model were evaluated; every figure is a "
        "diagnostic on training data, not a held-out figure"
    )
    assert f"WARNING: {note}:\n  {why}\n" in stdout
    r = no_nan((out / "report.json").read_text())
    assert r["training_data"] == {
        "note": note,
        "fields": [{"dataset": str(dataset), "fields": ["f0002"], "why": why}],
    }
    assert r["warnings"][0] == f"TRAINING DATA: {why}"
    assert r["command"].endswith(" --allow-training-fields")
    md = (out / "report.md").read_text().splitlines()
    at = md.index(f"> **{note}**:")
    assert md[at + 1 : at + 4] == [">", f"> - {why}", ""]
    assert (
        "- Evaluated: 1 fields of split `train` (**training data**: see the note above): f0002"
        in md
    )
    assert not any("held out from training" in line for line in md)


def test_recorded_field_ids_decide_whatever_the_split_is_now(
    dataset: Path, trained_on: Callable[..., Path]
) -> None:
    # As after a re-split dataset: f0000 (test now) trained the version, f0002 (train now) did not.
    model = resolve_model(trained_on(dataset, ["f0000"]))
    why = (
        f"field f0000 of {dataset} trained radio_unet/1 (training dataset {dataset.resolve()}, "
        "seed 12345, set-up 'paper-6arcsec': the same folder; its metadata lists these field ids)"
    )
    with pytest.raises(ValueError) as refused:
        evaluate(model, [dataset], split="test", use_pybdsf=False, n_examples=0)
    assert str(refused.value) == f"{why}; {EVALUATE_TAIL}"
    with pytest.raises(ValueError) as refused:  # the same check
        calibrate(model, [dataset], split="test")
    assert str(refused.value) == (
        f"{why}; a threshold calibrated on them would fit the training set: use held-out fields "
        "(--split test) or another dataset"
    )
    # Its train split is not refused: f0002 did not train it.
    report = evaluate(model, [dataset], split="train", use_pybdsf=False, n_examples=0).report
    assert report["training_data"] is None and report["fields_evaluated"] == ["f0002"]
    md = render_markdown(report, FIGURES)
    assert "- Evaluated: 1 fields of split `train` (none of them trained the model, by its " in md


def test_a_sweep_figure_without_clusters_draws_no_empty_legend(tmp_path: Path) -> None:
    # One field whose clusters all miss the image: nothing to label. matplotlib warns
    # ("No artists with labels found") on an empty legend, an error under this suite.
    from radiounet.evaluation.report import plot_sweep

    report = {
        "model": {"name": "radio_unet", "version": 1},
        "n_fields": 1,
        "classification": {"clusters": [{"ratio": None, "positive": True}], "sweep": []},
    }
    plot_sweep(report, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
