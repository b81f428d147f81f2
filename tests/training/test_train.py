"""Tests for radiounet.training.train and the ``train``/``finetune`` subcommands.

Tiny models (base width 2-4) on a 12-tile toy dataset: each training run
takes seconds, and every check compares values (losses, weights,
predictions), never timings.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from radiounet.cli.train_cmd import register
from radiounet.model.loading import load_keras_model
from radiounet.model.predictor import SavedModelPredictor
from radiounet.model.repository import ModelMetadata, resolve_model
from radiounet.model.unet import build_radio_unet
from radiounet.tf_runtime import keras, tf
from radiounet.training.config import TrainingConfig
from radiounet.training.data import evaluation_batches, load_tiles, split_validation
from radiounet.training.train import (
    RunPaths,
    TrainingResult,
    export_trained,
    finetune,
    freeze_all_but_top,
    model_card_section,
    recalibrate_batch_norm,
    train,
)

CONFIG = TrainingConfig(
    base_filters=4, epochs=2, batch_size=4, learning_rate=1e-3, val_fraction=0.25, seed=1
)


@pytest.fixture(scope="module")
def trained_run(
    toy_dataset: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainingResult, Path]:
    run_dir = tmp_path_factory.mktemp("runs") / "toy"
    result = train(CONFIG, dataset_dirs=[toy_dataset.path], run_dir=run_dir, progress=False)
    return result, run_dir


@pytest.fixture(scope="module")
def base_repo(trained_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained run exported as version 1 of a repository."""
    repo = tmp_path_factory.mktemp("repo")
    export_trained(trained_run[1], repo=repo)
    return repo


def copy_run(run_dir: Path, target: Path) -> Path:
    shutil.copytree(run_dir, target)
    return target


def history_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "history.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def weights_of(model: keras.Model) -> list[np.ndarray]:
    return [np.array(w.numpy()) for w in model.weights]


def validation_loss(model: keras.Model, toy_dataset: Any) -> float:
    """The loss of ``model`` on the run's validation tiles, recomputed."""
    tiles = load_tiles(toy_dataset.path)
    _, val = split_validation(len(tiles), CONFIG.val_fraction, CONFIG.seed)
    model.compile(loss="categorical_crossentropy")
    logs = model.evaluate(evaluation_batches(tiles, val, batch_size=4), verbose=0, return_dict=True)
    return float(logs["loss"])


def event_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorflow.core.util import event_pb2

    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor)))
                )
    return found


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


def test_training_reduces_the_loss(trained_run) -> None:
    result, run_dir = trained_run
    assert (result.epochs, result.initial_epoch) == (2, 0)
    assert (result.n_train_tiles, result.n_val_tiles, result.n_fields) == (9, 3, 3)
    assert result.run_dir == run_dir
    loss = result.history["loss"]
    assert len(loss) == 2 and loss[1] < loss[0]
    assert result.monitor == "val_loss"
    val = result.history["val_loss"]
    assert result.best_epoch == int(np.argmin(val)) + 1
    assert result.best_value == pytest.approx(min(val), rel=1e-6)


def test_run_folder(trained_run, toy_dataset) -> None:
    result, run_dir = trained_run
    paths = RunPaths(run_dir)
    config = json.loads(paths.config.read_text())
    assert config["format"] == "radiounet-run/1" and config["mode"] == "train"
    assert config["config"] == CONFIG.to_dict()
    assert config["dataset_dirs"] == [str(toy_dataset.path.resolve())]
    rows = history_rows(run_dir)
    assert [r["epoch"] for r in rows] == ["1", "2"]  # from 1, as the console and state.json
    assert set(rows[0]) == {"epoch", "loss", "mean_iou", "val_loss", "val_mean_iou"}
    assert [float(r["loss"]) for r in rows] == result.history["loss"]
    state = json.loads(paths.state.read_text())
    assert state["epoch"] == 2 and state["best_epoch"] == result.best_epoch
    assert state["data"]["tiles"] == {"train": 9, "validation": 3}
    assert state["data"]["profile"]["name"] == "synthetic"
    assert any(d.startswith("CPU") for d in state["devices"])
    # TensorBoard scalars, per epoch, equal the CSV's.
    train_events = event_scalars(paths.tensorboard / "train")
    val_events = event_scalars(paths.tensorboard / "validation")
    assert [s for s, _ in train_events["epoch_loss"]] == [1, 2]
    np.testing.assert_allclose(
        [v for _, v in train_events["epoch_loss"]], result.history["loss"], rtol=1e-6
    )
    np.testing.assert_allclose(
        [v for _, v in val_events["epoch_mean_iou"]], result.history["val_mean_iou"], rtol=1e-6
    )
    assert not list(paths.checkpoints.glob("*partial*"))


def test_checkpoints_hold_the_last_and_the_best_epoch(trained_run, toy_dataset) -> None:
    result, run_dir = trained_run
    paths = RunPaths(run_dir)
    last = keras.models.load_model(paths.last)
    assert int(last.optimizer.iterations.numpy()) == 2 * 3  # 9 tiles at batch 4: 3 steps/epoch
    for a, b in zip(weights_of(last), weights_of(result.model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert validation_loss(last, toy_dataset) == pytest.approx(
        result.history["val_loss"][-1], rel=1e-4
    )
    best = build_radio_unet(base_filters=4, tile=192)
    best.load_weights(paths.best)
    assert validation_loss(best, toy_dataset) == pytest.approx(result.best_value, rel=1e-4)


def test_resume_continues_the_run(trained_run, toy_dataset, tmp_path: Path) -> None:
    result, run_dir = trained_run
    resumed_dir = copy_run(run_dir, tmp_path / "resumed")
    # As if the process died after logging an epoch but before its checkpoint.
    with (resumed_dir / "history.csv").open("a", newline="") as f:
        f.write("3,0.1,0.1,0.1,0.1\r\n")
    three = replace(CONFIG, epochs=3)
    resumed = train(
        three, dataset_dirs=[toy_dataset.path], run_dir=resumed_dir, resume=True, progress=False
    )
    assert (resumed.epochs, resumed.initial_epoch) == (3, 2)
    rows = history_rows(resumed_dir)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    # One line terminator throughout, Keras' CSVLogger's (CRLF), for the rows kept and appended.
    lines = (resumed_dir / "history.csv").read_bytes().splitlines(keepends=True)
    assert len(lines) == 4 and all(line.endswith(b"\r\n") for line in lines)
    assert resumed.history["loss"][:2] == result.history["loss"]
    last = keras.models.load_model(RunPaths(resumed_dir).last)
    assert int(last.optimizer.iterations.numpy()) == 3 * 3  # the optimizer state went on too
    # An uninterrupted three-epoch run computes the same thing: the weights continued.
    straight = train(
        three, dataset_dirs=[toy_dataset.path], run_dir=tmp_path / "straight", progress=False
    )
    np.testing.assert_allclose(resumed.history["loss"], straight.history["loss"], rtol=1e-5)
    for a, b in zip(weights_of(resumed.model), weights_of(straight.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert json.loads((resumed_dir / "config.json").read_text())["config"]["epochs"] == 3


def test_resume_of_a_finished_run_trains_nothing(trained_run, toy_dataset, tmp_path: Path) -> None:
    result, run_dir = trained_run
    again_dir = copy_run(run_dir, tmp_path / "again")
    again = train(
        CONFIG, dataset_dirs=[toy_dataset.path], run_dir=again_dir, resume=True, progress=False
    )
    assert (again.epochs, again.initial_epoch) == (2, 2)
    assert again.history == result.history
    for a, b in zip(weights_of(again.model), weights_of(result.model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_must_be_the_same_run(trained_run, toy_dataset, tmp_path: Path) -> None:
    _, run_dir = trained_run
    with pytest.raises(ValueError, match=r"differs in batch_size \(run 4, got 6\)"):
        train(
            replace(CONFIG, batch_size=6),
            dataset_dirs=[toy_dataset.path],
            run_dir=run_dir,
            resume=True,
        )
    with pytest.raises(ValueError, match="holds no training run"):
        train(CONFIG, dataset_dirs=[toy_dataset.path], run_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="already holds a training run"):
        train(CONFIG, dataset_dirs=[toy_dataset.path], run_dir=run_dir)


def test_bad_data_leaves_no_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no manifest\.json"):
        train(CONFIG, dataset_dirs=[tmp_path], run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def test_export_trained(trained_run, base_repo, toy_dataset) -> None:
    result, run_dir = trained_run
    version = resolve_model(base_repo, version=1)
    meta = version.metadata
    assert meta.trained is True
    assert (meta.base_filters, meta.depth, meta.tile, meta.profile) == (4, 4, 192, "synthetic")
    t = meta.training
    assert (t["mode"], t["epochs"], t["weights"], t["weights_epoch"]) == (
        "train",
        2,
        "best",
        result.best_epoch,
    )
    assert (t["optimizer"], t["learning_rate"], t["batch_size"], t["loss"]) == (
        "rmsprop",
        1e-3,
        4,
        "categorical_crossentropy",
    )
    assert t["tiles"] == {"train": 9, "validation": 3} and t["fields"] == 3
    assert t["datasets"] == [
        {
            "path": str(toy_dataset.path.resolve()),
            "seed": 0,
            "setup": "paper-6arcsec",
            "fields": 3,
            "field_ids": ["f0000", "f0001", "f0002"],  # what the leak checks compare
        }
    ]
    assert t["metrics"]["val_loss"] == pytest.approx(result.best_value, rel=1e-6)
    assert "val_mean_iou" in t["metrics"]
    assert t["tensorflow"] == tf.__version__ and any("CPU" in d for d in t["devices"])
    # The served model is the best epoch's weights.
    best = build_radio_unet(base_filters=4, tile=192)
    best.load_weights(RunPaths(run_dir).best)
    x = np.random.default_rng(2).random((2, 192, 192), dtype=np.float32)
    want = np.asarray(best(x[..., None], training=False))[..., 1]
    np.testing.assert_allclose(SavedModelPredictor(version)(x), want, rtol=0, atol=1e-6)
    for a, b in zip(weights_of(load_keras_model(version)), weights_of(best), strict=True):
        np.testing.assert_array_equal(a, b)
    card = model_card_section(version)
    assert card.startswith("### Version 1 — trained\n")
    assert "9 tiles for training and 3 for validation" in card
    assert "set-up paper-6arcsec, seed 0" in card and "RMSprop at learning rate 0.001" in card


def test_export_last_weights_and_models(trained_run, tmp_path: Path) -> None:
    result, run_dir = trained_run
    path = export_trained(run_dir, repo=tmp_path, weights="last", description="last epoch")
    meta = resolve_model(path).metadata
    assert (meta.training["weights"], meta.training["weights_epoch"]) == ("last", 2)
    assert meta.description == "last epoch"
    for a, b in zip(weights_of(load_keras_model(path)), weights_of(result.model), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"metadata is required to export a keras\.Model"):
        export_trained(result.model, repo=tmp_path)
    second = export_trained(result.model, repo=tmp_path, metadata=ModelMetadata(base_filters=4))
    assert second.name == "2"
    with pytest.raises(ValueError, match="weights must be 'best' or 'last', got 'first'"):
        export_trained(run_dir, repo=tmp_path, weights="first")


# ---------------------------------------------------------------------------
# Fine-tuning
# ---------------------------------------------------------------------------

TOP10 = [
    "up0_transpose",
    "up0_transpose_relu",
    "up0_skip",
    "up0_conv1",
    "up0_bn1",
    "up0_relu1",
    "up0_conv2",
    "up0_bn2",
    "up0_relu2",
    "probabilities",
]


def test_freeze_all_but_top_counts_every_layer() -> None:
    model = build_radio_unet(base_filters=2, tile=192)
    assert len(model.layers) == 76  # the paper's count, input layer included
    assert freeze_all_but_top(model, 10) == TOP10
    assert [layer.name for layer in model.layers if layer.trainable] == TOP10
    # Six of the ten have weights: 2 each (kernel and bias; gamma and beta).
    assert len(model.trainable_weights) == 12
    assert freeze_all_but_top(model, 76) == [layer.name for layer in model.layers]
    assert len(model.trainable_weights) == len(build_radio_unet(base_filters=2).trainable_weights)
    for bad in (0, 77, True, 2.0):
        with pytest.raises(ValueError, match=r"trainable_top must be an integer in 1\.\.76"):
            freeze_all_but_top(model, bad)


def test_finetune_changes_only_the_top_layers(base_repo, toy_dataset, tmp_path: Path) -> None:
    base = load_keras_model(resolve_model(base_repo, version=1))
    config = TrainingConfig.finetuning(
        epochs=1, batch_size=4, learning_rate=1e-2, val_fraction=0.25
    )
    result = finetune(
        config,
        model_version=resolve_model(base_repo, version=1),
        dataset_dirs=[toy_dataset.path],
        run_dir=tmp_path / "ft",
        trainable_top=10,
        progress=False,
    )
    model = result.model
    assert [layer.name for layer in model.layers if layer.trainable] == TOP10
    assert len(model.trainable_weights) == 12
    for layer, before in zip(model.layers, base.layers, strict=True):
        for w, w0 in zip(layer.weights, before.weights, strict=True):
            changed = not np.array_equal(np.asarray(w.numpy()), np.asarray(w0.numpy()))
            # Frozen layers (batch-norm statistics included) keep every value;
            # every weight of the trainable ones moved.
            assert changed == (layer.name in TOP10), (layer.name, w.name)
    stored = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert stored["mode"] == "finetune"
    assert stored["config"]["augment"] is True and stored["config"]["base_filters"] == 4
    assert stored["finetune"]["trainable_top"] == 10 and stored["finetune"]["base_version"] == 1
    # Exported, the fine-tuned weights load into an ordinary (unfrozen) model.
    path = export_trained(tmp_path / "ft", repo=tmp_path / "repo", weights="last")
    meta = resolve_model(path).metadata
    assert meta.training["mode"] == "finetune" and meta.training["finetune"]["trainable_top"] == 10
    for a, b in zip(weights_of(load_keras_model(path)), weights_of(model), strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    register(sub)
    args = parser.parse_args(argv)
    return int(args.run(args))


def test_cli_train_resume_export_and_finetune(toy_dataset, tmp_path: Path, capsys) -> None:
    run, repo = tmp_path / "run", tmp_path / "repo"
    # Leftovers of a start killed before its first epoch do not block a new start.
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "history.csv").write_text("epoch,loss\n")
    common = ["--batch-size", "6", "--val-fraction", "0.25", "--no-progress"]
    argv = ["train", "--data", str(toy_dataset.path), "--run-dir", str(run), "--epochs", "1"]
    assert cli([*argv, "--base-filters", "2", *common, "--export", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "1 epochs done in" in out and "(9 training and 3 validation tiles from 3 fields" in out
    assert f"exported {repo / 'radio_unet' / '1'}" in out
    assert f"model card section (for {repo / 'radio_unet' / 'README.md'}):\n" in out
    assert "### Version 1 — trained" in out
    assert resolve_model(repo).metadata.base_filters == 2
    stored = json.loads((run / "config.json").read_text())["config"]
    assert stored == {
        **TrainingConfig().to_dict(),
        "epochs": 1,
        "base_filters": 2,
        "batch_size": 6,
        "val_fraction": 0.25,
    }

    # Resuming needs only the run folder (here: already at its epoch count, so it just reports).
    assert cli(["train", "--run-dir", str(run), "--resume", "--no-progress"]) == 0
    assert "1 epochs done" in capsys.readouterr().out
    assert [r["epoch"] for r in history_rows(run)] == ["1"]

    ft = tmp_path / "ft"
    argv = ["finetune", "--model", str(repo), "--data", str(toy_dataset.path), "--run-dir", str(ft)]
    assert cli([*argv, "--epochs", "1", "--trainable-top", "3", "--no-augment", *common]) == 0
    stored = json.loads((ft / "config.json").read_text())
    assert stored["finetune"]["trainable_top"] == 3
    assert stored["config"]["augment"] is False and stored["config"]["learning_rate"] == 1e-4
    assert "1 epochs done" in capsys.readouterr().out


def test_cli_errors(tmp_path: Path, toy_dataset) -> None:
    with pytest.raises(ValueError, match=r"no manifest\.json in"):
        cli(["train", "--data", str(tmp_path), "--run-dir", str(tmp_path / "run")])
    with pytest.raises(ValueError, match="--data is required"):
        cli(["train", "--run-dir", str(tmp_path / "run")])
    with pytest.raises(ValueError, match="holds no training run"):
        cli(["train", "--run-dir", str(tmp_path / "run"), "--resume"])
    with pytest.raises(ValueError, match=r"learning_rate must be a positive number, got -1\.0"):
        cli(["train", "--data", str(toy_dataset.path), "--run-dir", str(tmp_path), "--lr", "-1"])
    with pytest.raises(ValueError, match="no 'train' fields"):
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "manifest.json").write_text(
            json.dumps(
                {"format": "radiounet-sim/1", "setup": {"name": "paper-6arcsec"}, "fields": []}
            )
        )
        cli(["train", "--data", str(empty), "--run-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_resume_renumbers_an_old_history_with_keras_line_endings(
    trained_run, toy_dataset, tmp_path: Path
) -> None:
    _, run_dir = trained_run
    old = copy_run(run_dir, tmp_path / "old")
    # As written before epochs counted from 1: from 0, LF rows, and a row of an
    # epoch that died before its checkpoint.
    rows = history_rows(old)
    text = "epoch,loss,mean_iou,val_loss,val_mean_iou\n" + "".join(
        f"{i},{r['loss']},{r['mean_iou']},{r['val_loss']},{r['val_mean_iou']}\n"
        for i, r in enumerate([*rows, rows[-1]])
    )
    (old / "history.csv").write_text(text)
    train(CONFIG, dataset_dirs=[toy_dataset.path], run_dir=old, resume=True, progress=False)
    assert (old / "history.csv").read_bytes() == (run_dir / "history.csv").read_bytes()


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from radiounet.cli.main import main

    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("resume", [True, False])
def test_sigint_says_what_is_saved_and_how_to_resume(
    trained_run, tmp_path: Path, resume: bool, monkeypatch, capsys
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("radiounet.training.train.train", interrupted)
    run = copy_run(trained_run[1], tmp_path / "run") if resume else tmp_path / "new"
    argv = ["train", "--run-dir", str(run), "--epochs", "5", "--no-progress"]
    argv += ["--resume"] if resume else ["--data", str(tmp_path)]
    code, out, err = run_main(argv, capsys)
    assert (code, out) == (130, "")
    what = (
        f"2 epochs saved in {run}: continue with `radiounet train --run-dir {run} --resume`"
        if resume
        else f"no epoch finished, nothing saved in {run} to resume"
    )
    assert err.splitlines() == [f"radiounet train: interrupted (SIGINT); {what}"]


def test_sigterm_stops_training_with_the_same_line(toy_dataset, tmp_path: Path) -> None:
    """A real process: SIGTERM used to end it silently with status 143."""
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "radiounet.cli.main", "train", "--data", str(toy_dataset.path),
            "--run-dir", str(run), "--base-filters", "2", "--epochs", "1000", "--batch-size", "6",
            "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        state = RunPaths(run).state
        deadline = time.monotonic() + 300
        while not state.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state.is_file(), "no epoch finished"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    saved = json.loads(state.read_text())["epoch"]
    assert proc.returncode == 143 and out == ""
    line = (
        f"radiounet train: interrupted (SIGTERM); {saved} epoch{'s' if saved > 1 else ''} saved "
        f"in {run}: continue with `radiounet train --run-dir {run} --resume`"
    )
    assert [x for x in err.splitlines() if x.startswith("radiounet")] == [line]
    assert "Traceback" not in err
    assert len(history_rows(run)) >= saved  # the resume trims any later row


def test_positive_fraction_balances_only_the_training_tiles(
    toy_dataset: Any, tmp_path: Path
) -> None:
    # The toy set is rich in emission: a high share is needed for empty tiles to be dropped.
    config = dataclasses.replace(CONFIG, epochs=1, positive_fraction=0.95)
    tiles = load_tiles(toy_dataset.path)
    train_idx, val_idx = split_validation(len(tiles), config.val_fraction, config.seed)
    holds = tiles.masks[train_idx].reshape(len(train_idx), -1).any(axis=1)
    n_pos, n_neg = int(holds.sum()), int((~holds).sum())
    assert n_pos > 0 and n_neg > 0  # the toy set has both kinds
    expected = n_pos + min(round(n_pos * 0.05 / 0.95), n_neg)
    result = train(
        config, dataset_dirs=[toy_dataset.path], run_dir=tmp_path / "run", progress=False
    )
    assert result.n_train_tiles == expected < len(train_idx)
    assert result.n_val_tiles == len(val_idx)  # validation keeps the natural mix


def test_recalibrate_batch_norm_sets_the_exact_mean_of_the_batches() -> None:
    inputs = keras.Input(shape=(3,))
    bn = keras.layers.BatchNormalization(momentum=0.99)
    dropout = keras.layers.Dropout(0.5)
    # Dropout before the batch norm: were it active, the variance would come out inflated.
    model = keras.Model(inputs, bn(dropout(inputs)))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=5.0, scale=2.0, size=(8, 3)).astype("float32") for _ in range(5)]
    used = recalibrate_batch_norm(model, iter(batches), n_batches=4)
    assert used == 4
    expected_mean = np.mean([b.mean(axis=0) for b in batches[:4]], axis=0)
    expected_var = np.mean([b.var(axis=0) for b in batches[:4]], axis=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), expected_var, rtol=1e-4)
    assert bn.momentum == 0.99 and dropout.rate == 0.5  # restored
    # Fewer batches than asked: all are used; (images, labels) pairs are accepted.
    assert recalibrate_batch_norm(model, [(b, b) for b in batches[:2]], n_batches=10) == 2
    with pytest.raises(ValueError, match="n_batches must be at least 1, got 0"):
        recalibrate_batch_norm(model, batches, n_batches=0)


def test_export_with_recalibration_records_it_and_matches_training_mode(
    trained_run, tmp_path: Path
) -> None:
    path = export_trained(trained_run[1], repo=tmp_path, recalibrate_batches=2)
    version = resolve_model(tmp_path)
    assert version.path == path
    assert version.metadata.training["batch_norm_recalibrated_batches"] == 2
    assert "re-estimated over 2 training batches" in model_card_section(path)
    plain = export_trained(trained_run[1], repo=tmp_path)
    assert "batch_norm_recalibrated_batches" not in resolve_model(plain).metadata.training
    # Different statistics, so different probabilities.
    x = np.random.default_rng(3).random((2, 192, 192)).astype("float32")
    p_recal = SavedModelPredictor(resolve_model(path))(x)
    p_plain = SavedModelPredictor(resolve_model(plain))(x)
    assert np.abs(p_recal - p_plain).max() > 1e-4
