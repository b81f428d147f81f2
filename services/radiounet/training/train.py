"""Train, fine-tune, resume and export Radio U-Net (Stuardi et al. 2024, Secs. 5 and 6.3).

A run lives in its own folder (outside the source tree, e.g. ``out/runs/NAME``)::

    config.json               what the run does (TrainingConfig, datasets, mode)
    history.csv               one row per epoch, from 1 (Keras CSVLogger; appended on resume)
    tensorboard/{train,validation}/   per-epoch scalars for TensorBoard
    checkpoints/last.keras    the full model with optimizer state, after every epoch
    checkpoints/best.weights.h5   weights of the epoch with the lowest validation loss
    checkpoints/state.json    epochs done, best epoch, wall time, data and devices

Every checkpoint file is written under a temporary name and renamed, and
``state.json`` is written last, so an interrupted run always resumes from a
consistent epoch; history rows after that epoch are dropped on resume.
Nothing here depends on the device: the same code trains on a CPU or a GPU
(Keras turns XLA on by itself where a GPU is present).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..model.export import export_saved_model
from ..model.loading import load_keras_model
from ..model.repository import (
    DEFAULT_MODEL_NAME,
    SIGNATURE,
    ModelMetadata,
    ModelVersion,
    resolve_model,
)
from ..model.unet import build_radio_unet
from ..tf_runtime import keras, tf
from .config import FINETUNE_TRAINABLE_TOP, LOSS, TrainingConfig
from .data import (
    TileSet,
    balance_tiles,
    evaluation_batches,
    load_tiles,
    split_validation,
    training_batches,
)

__all__ = [
    "RUN_FORMAT",
    "RunPaths",
    "RunRecord",
    "TrainingResult",
    "export_trained",
    "finetune",
    "freeze_all_but_top",
    "model_card_section",
    "read_run",
    "recalibrate_batch_norm",
    "run_metadata",
    "train",
]

RUN_FORMAT = "radiounet-run/1"


@dataclass(frozen=True)
class RunPaths:
    """The files of a run folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.keras"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.weights.h5"

    @property
    def state(self) -> Path:
        return self.checkpoints / "state.json"


@dataclass(frozen=True)
class TrainingResult:
    """What a call to :func:`train` or :func:`finetune` left in its run folder.

    Attributes
    ----------
    run_dir : Path
        The run folder.
    epochs : int
        Epochs completed by the run, over all sessions.
    initial_epoch : int
        Epochs already completed when this call started (0 unless resumed).
    history : dict
        ``history.csv`` as columns: metric name -> one value per epoch.
    monitor : str
        ``"val_loss"``, or ``"loss"`` without a validation split.
    best_epoch : int or None
        1-based epoch with the lowest ``monitor`` (its weights are ``best.weights.h5``).
    best_value : float or None
        That value.
    n_train_tiles, n_val_tiles, n_fields : int
        Size of the training data.
    seconds : float
        Wall time of this call's training.
    model : keras.Model
        The model after the last epoch.
    """

    run_dir: Path
    epochs: int
    initial_epoch: int
    history: dict[str, list[float]]
    monitor: str
    best_epoch: int | None
    best_value: float | None
    n_train_tiles: int
    n_val_tiles: int
    n_fields: int
    seconds: float
    model: keras.Model = field(repr=False, compare=False)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, newline="")  # line endings as given, whatever the platform
    os.replace(tmp, path)


def _dataset_list(dataset_dirs: str | Path | Iterable[str | Path]) -> list[str]:
    dirs = [dataset_dirs] if isinstance(dataset_dirs, str | Path) else list(dataset_dirs)
    if not dirs:
        raise ValueError(f"dataset_dirs must name at least one dataset folder, got {dirs!r}")
    return [str(Path(d).resolve()) for d in dirs]


def _devices() -> list[str]:
    """The physical devices TensorFlow sees, GPUs with their model names."""
    names = []
    for device in tf.config.list_physical_devices():
        label = device.name.removeprefix("/physical_device:")
        if device.device_type == "GPU":
            details = tf.config.experimental.get_device_details(device)
            label += f" ({details.get('device_name', 'unknown GPU')})"
        names.append(label)
    return names


def _verbosity(progress: bool) -> int:
    # Keras' bar redraws in place on a terminal; in a log file one line per epoch reads better.
    if not progress:
        return 0
    return 1 if sys.stdout.isatty() else 2


@contextlib.contextmanager
def _precision(mixed: bool) -> Iterator[None]:
    """Keras' global dtype policy for the block (float16 compute if ``mixed``)."""
    if not mixed:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _compile(model: keras.Model, config: TrainingConfig) -> None:
    optimizer: keras.optimizers.Optimizer
    if config.optimizer == "rmsprop":
        optimizer = keras.optimizers.RMSprop(learning_rate=config.learning_rate)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(),
        # argmax of two softmax channels is p(diffuse) > 0.5; the mean over both
        # classes' IoU is the paper's eq. 5 (accumulated over all validation pixels).
        metrics=[keras.metrics.OneHotMeanIoU(num_classes=2, name="mean_iou")],
        steps_per_execution=config.steps_per_execution,
    )


def _read_history(path: Path) -> dict[str, list[float]]:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            columns.setdefault(key, []).append(
                float(value) if value not in ("", None) else math.nan
            )
    return columns


def _trim_history(path: Path, epochs_done: int) -> None:
    """Keep the rows of the checkpointed epochs (later ones were written before a crash).

    Rows are one per epoch in order, so the first ``epochs_done`` are kept and
    numbered 1.., which also renumbers a history written from 0 before epochs
    were counted from 1 (see :class:`_History`).
    """
    if not path.is_file():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        names = reader.fieldnames
        rows = [{**r, "epoch": str(i)} for i, r in enumerate(reader, start=1) if i <= epochs_done]
    if names is None:
        return
    out = io.StringIO()
    # Keras' CSVLogger appends in csv's "excel" dialect, whose rows end in CRLF:
    # the same here, or a resumed history mixes line endings.
    writer = csv.DictWriter(out, fieldnames=names, dialect="excel")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write_text(path, out.getvalue())


# ---------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------


class _History(keras.callbacks.CSVLogger):
    """Keras' CSVLogger (same columns and dialect) with epochs numbered from 1.

    Keras passes 0-based epochs to callbacks, but its progress lines ("Epoch
    1/8"), ``state.json``, the console's "best ... at epoch N" and the exported
    metadata count from 1: so does ``history.csv``, so row N is epoch N everywhere.
    """

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch + 1, logs)


class _ScalarLog(keras.callbacks.Callback):
    """Per-epoch scalars in TensorBoard's layout (``train/``, ``validation/``).

    Keras' own TensorBoard callback needs the ``tensorboard`` package to write
    scalars; ``tf.summary.write`` with the scalars plugin's metadata writes the
    same events with TensorFlow alone.
    """

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.log_dir = log_dir
        self._writers: dict[str, Any] = {}
        from tensorflow.core.framework import summary_pb2

        self._metadata = summary_pb2.SummaryMetadata()
        self._metadata.plugin_data.plugin_name = "scalars"

    def _writer(self, name: str) -> Any:
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(str(self.log_dir / name))
        return self._writers[name]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            split, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            writer = self._writer(split)
            with writer.as_default():
                tf.summary.write(
                    f"epoch_{tag}",
                    tf.constant(float(value), tf.float32),
                    step=epoch + 1,  # epochs count from 1, as in history.csv (see _History)
                    metadata=self._metadata,
                )
            writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class _EpochSeeds(keras.callbacks.Callback):
    """Reseed each dropout layer's generator from ``(seed, epoch, layer)`` as an epoch begins.

    A ``.keras`` checkpoint does not restore the generators' states, so
    without this a resumed run would draw other dropout masks than an
    uninterrupted one; with it (and the data pipeline seeded per epoch) the
    two compute the same thing.
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        generators = [
            g for layer in self.model.layers if (g := getattr(layer, "seed_generator", None))
        ]
        for i, generator in enumerate(generators):
            value = int(np.random.SeedSequence([self.seed, epoch, i]).generate_state(1)[0])
            generator.state.assign(np.array([value, 0], dtype=generator.state.dtype))


class _Checkpointer(keras.callbacks.Callback):
    """After each epoch: best weights (if improved), the full model, then ``state.json``."""

    def __init__(self, paths: RunPaths, *, monitor: str, state: dict[str, Any]) -> None:
        super().__init__()
        self.paths = paths
        self.monitor = monitor
        self.state = state
        self._start = time.perf_counter()
        self._seconds_before = float(state.get("seconds", 0.0))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        if not math.isfinite(float(logs.get("loss", math.nan))):
            return  # never checkpoint a diverged model; TerminateOnNaN stops the run
        value = logs.get(self.monitor)
        best = self.state.get("best_value")
        if value is not None and math.isfinite(value) and (best is None or value < best):
            tmp = self.paths.checkpoints / "best.partial.weights.h5"
            self.model.save_weights(tmp)
            os.replace(tmp, self.paths.best)
            self.state.update(
                best_value=float(value),
                best_epoch=epoch + 1,
                best_logs={k: float(v) for k, v in logs.items()},
            )
        tmp = self.paths.checkpoints / "last.partial.keras"
        self.model.save(tmp)
        os.replace(tmp, self.paths.last)
        self.state.update(
            epoch=epoch + 1,
            seconds=self._seconds_before + time.perf_counter() - self._start,
            last_logs={k: float(v) for k, v in logs.items()},
        )
        _atomic_write_text(self.paths.state, json.dumps(self.state, indent=2) + "\n")


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """A run folder's ``config.json`` and checkpoint ``state.json``."""

    mode: str
    config: TrainingConfig
    dataset_dirs: list[str]
    finetune: dict[str, Any] | None
    state: dict[str, Any]


def read_run(run_dir: str | Path) -> RunRecord:
    """The configuration and checkpoint state of a run folder.

    Raises
    ------
    ValueError
        If the folder holds no run (no ``config.json``) or it is unreadable.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise ValueError(f"{paths.root} holds no training run (no config.json)")
    try:
        raw = json.loads(paths.config.read_text())
        state = json.loads(paths.state.read_text()) if paths.state.is_file() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{paths.root}: unreadable run files ({exc})") from exc
    if raw.get("format") != RUN_FORMAT:
        raise ValueError(f"{paths.config}: not a {RUN_FORMAT!r} run, got {raw.get('format')!r}")
    return RunRecord(
        mode=raw["mode"],
        config=TrainingConfig.from_dict(raw["config"]),
        dataset_dirs=list(raw["dataset_dirs"]),
        finetune=raw.get("finetune"),
        state=state,
    )


def _check_resumable(stored: RunRecord, record: dict[str, Any], root: Path) -> None:
    """A resumed run must be the same run; only its epoch count may grow."""
    problems = []
    if stored.mode != record["mode"]:
        problems.append(f"mode (run {stored.mode!r}, got {record['mode']!r})")
    diff = stored.config.differences(record["config"])
    diff.pop("epochs", None)
    problems += [f"{k} (run {a!r}, got {b!r})" for k, (a, b) in diff.items()]
    if stored.dataset_dirs != record["dataset_dirs"]:
        problems.append(f"datasets (run {stored.dataset_dirs}, got {record['dataset_dirs']})")
    if (stored.finetune or None) != (record["finetune"] or None):
        problems.append(f"fine-tuning (run {stored.finetune}, got {record['finetune']})")
    if problems:
        raise ValueError(f"cannot resume {root}: it differs in " + "; ".join(problems))


def _data_summary(tiles: TileSet, n_train: int, n_val: int) -> dict[str, Any]:
    p = tiles.profile
    return {
        "tiles": {"train": n_train, "validation": n_val},
        "fields": tiles.n_fields,
        "datasets": [s.to_dict() for s in tiles.sources],
        "profile": {"name": p.name, "vmin": p.vmin, "vmax": p.vmax, "unit": p.unit},
    }


def _run(
    config: TrainingConfig,
    *,
    mode: str,
    dataset_dirs: str | Path | Iterable[str | Path],
    run_dir: str | Path,
    resume: bool,
    progress: bool,
    build: Callable[[], keras.Model],
    finetune_info: dict[str, Any] | None,
) -> TrainingResult:
    paths = RunPaths(Path(run_dir))
    record: dict[str, Any] = {
        "format": RUN_FORMAT,
        "mode": mode,
        "config": config,
        "dataset_dirs": _dataset_list(dataset_dirs),
        "finetune": finetune_info,
    }
    state: dict[str, Any] = {}
    if resume:
        stored = read_run(paths.root)
        _check_resumable(stored, record, paths.root)
        if not (paths.last.is_file() and stored.state.get("epoch")):
            raise ValueError(f"cannot resume {paths.root}: no checkpoint (no epoch finished yet)")
        state = stored.state
    elif paths.last.exists() or paths.state.exists():
        raise ValueError(
            f"{paths.root} already holds a training run: resume it (--resume) or use a new folder"
        )

    tiles = load_tiles(
        record["dataset_dirs"],
        split="train",
        profile=config.profile,
        tile=config.tile,
        stride=config.stride,
        max_fields=config.max_fields,
        progress=progress,
    )
    train_idx, val_idx = split_validation(len(tiles), config.val_fraction, config.seed)
    if config.positive_fraction is not None:
        train_idx = balance_tiles(
            tiles.masks, train_idx, positive_fraction=config.positive_fraction, seed=config.seed
        )
    if not resume:
        # Leftovers of a start that never finished an epoch: nothing to resume, start afresh.
        paths.history.unlink(missing_ok=True)
        shutil.rmtree(paths.tensorboard, ignore_errors=True)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(
        paths.config, json.dumps({**record, "config": config.to_dict()}, indent=2) + "\n"
    )
    initial_epoch = int(state.get("epoch", 0))
    state.update(
        data=_data_summary(tiles, len(train_idx), len(val_idx)),
        devices=sorted(set(state.get("devices", [])) | set(_devices())),
        tensorflow=tf.__version__,
        keras=keras.__version__,
        software=f"radiounet {__version__}",
    )
    state.setdefault("sessions", []).append(
        {"started": datetime.now(UTC).isoformat(timespec="seconds"), "from_epoch": initial_epoch}
    )
    monitor = "val_loss" if len(val_idx) else "loss"
    state["monitor"] = monitor

    with _precision(config.mixed_precision):
        keras.utils.set_random_seed(config.seed)
        if resume:
            model = keras.models.load_model(paths.last)
            _trim_history(paths.history, initial_epoch)
        else:
            model = build()
            _compile(model, config)
        steps = math.ceil(len(train_idx) / config.batch_size)
        start = time.perf_counter()
        if initial_epoch < config.epochs:
            model.fit(
                training_batches(
                    tiles,
                    train_idx,
                    batch_size=config.batch_size,
                    seed=config.seed,
                    epochs=config.epochs,
                    initial_epoch=initial_epoch,
                    augment=config.augment,
                ),
                validation_data=(
                    evaluation_batches(tiles, val_idx, batch_size=config.batch_size)
                    if len(val_idx)
                    else None
                ),
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps,
                shuffle=False,  # the pipeline shuffles, seeded per epoch
                callbacks=[
                    # CSV first: a crash before the checkpoint leaves an extra
                    # row, which resuming drops, rather than a missing one.
                    _History(str(paths.history), append=True),
                    _ScalarLog(paths.tensorboard),
                    keras.callbacks.TerminateOnNaN(),
                    _EpochSeeds(config.seed),
                    _Checkpointer(paths, monitor=monitor, state=state),
                ],
                verbose=_verbosity(progress),
            )
        seconds = time.perf_counter() - start
    state["sessions"][-1]["seconds"] = seconds
    if paths.state.is_file() or state.get("epoch"):
        _atomic_write_text(paths.state, json.dumps(state, indent=2) + "\n")
    return TrainingResult(
        run_dir=paths.root,
        epochs=int(state.get("epoch", 0)),
        initial_epoch=initial_epoch,
        history=_read_history(paths.history),
        monitor=monitor,
        best_epoch=state.get("best_epoch"),
        best_value=state.get("best_value"),
        n_train_tiles=len(train_idx),
        n_val_tiles=len(val_idx),
        n_fields=tiles.n_fields,
        seconds=seconds,
        model=model,
    )


def train(
    config: TrainingConfig,
    *,
    dataset_dirs: str | Path | Iterable[str | Path],
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> TrainingResult:
    """Train Radio U-Net from scratch on the training split of simulated datasets.

    Parameters
    ----------
    config : TrainingConfig
        Hyperparameters (the paper's by default: RMSprop, lr 1e-4, batch 50,
        categorical cross-entropy, 200 epochs, 5% of the tiles for validation).
    dataset_dirs : path or iterable of paths, keyword-only
        ``radiounet-sim/1`` dataset folders; their test fields are never read.
    run_dir : path, keyword-only
        Run folder (see the module docstring); must not hold a run unless resuming.
    resume : bool, keyword-only
        Continue the run in ``run_dir`` from its last checkpoint up to
        ``config.epochs`` epochs in all; every other setting must equal the
        run's ``config.json``.
    progress : bool, keyword-only
        Show progress (Keras' bar on a terminal, a line per epoch otherwise).

    Returns
    -------
    TrainingResult

    Raises
    ------
    ValueError
        Bad datasets, a run folder already in use, or a resume that does not match.
    """

    def build() -> keras.Model:
        return build_radio_unet(
            base_filters=config.base_filters,
            depth=config.depth,
            dropout=config.dropout,
            tile=config.tile,
        )

    return _run(
        config,
        mode="train",
        dataset_dirs=dataset_dirs,
        run_dir=run_dir,
        resume=resume,
        progress=progress,
        build=build,
        finetune_info=None,
    )


def freeze_all_but_top(model: keras.Model, trainable_top: int) -> list[str]:
    """Freeze every layer of ``model`` except the last ``trainable_top``; return their names.

    Layers are counted as ``model.layers`` lists them, from the output end,
    including those without weights (input, ReLU, pooling, dropout, addition):
    that is how the paper counts the network's 76 layers (Sec. 6.3), so its
    "uppermost 10 layers" are ``trainable_top=10`` (the output convolution and
    the top level of the expanding path back to its transposed convolution).
    Frozen batch normalisation layers run in inference mode.
    """
    n_layers = len(model.layers)
    if (
        isinstance(trainable_top, bool)
        or not isinstance(trainable_top, int)
        or not 1 <= trainable_top <= n_layers
    ):
        raise ValueError(
            f"trainable_top must be an integer in 1..{n_layers} (the model's layers), "
            f"got {trainable_top!r}"
        )
    for i, layer in enumerate(model.layers):
        layer.trainable = i >= n_layers - trainable_top
    return [layer.name for layer in model.layers[n_layers - trainable_top :]]


def finetune(
    config: TrainingConfig,
    *,
    model_version: ModelVersion | str | Path,
    dataset_dirs: str | Path | Iterable[str | Path],
    run_dir: str | Path,
    trainable_top: int = FINETUNE_TRAINABLE_TOP,
    augment: bool = True,
    resume: bool = False,
    progress: bool = True,
) -> TrainingResult:
    """Fine-tune an exported model on new data with all but its top layers frozen (Sec. 6.3).

    Parameters
    ----------
    config : TrainingConfig
        Hyperparameters; :meth:`TrainingConfig.finetuning` gives the paper's
        (100 epochs, lr 1e-4, 10% validation). The architecture fields
        (``base_filters``, ``depth``, ``tile``) are taken from the model's metadata.
    model_version : ModelVersion or path, keyword-only
        The model to start from (anything :func:`~radiounet.model.repository.resolve_model` takes).
    dataset_dirs, run_dir, resume, progress
        As for :func:`train`.
    trainable_top : int, keyword-only
        Layers left trainable, counted from the output end over all of
        ``model.layers`` (see :func:`freeze_all_but_top`); 10 in the paper.
    augment : bool, keyword-only
        Random 90-degree rotations and flips of each tile.
    """
    version = (
        model_version if isinstance(model_version, ModelVersion) else resolve_model(model_version)
    )
    meta = version.metadata
    config = replace(
        config, base_filters=meta.base_filters, depth=meta.depth, tile=meta.tile, augment=augment
    )
    info = {
        "base_model": str(version.path.resolve()),
        "base_name": version.name,
        "base_version": version.version,
        "base_profile": meta.profile,
        "trainable_top": trainable_top,
    }

    def build() -> keras.Model:
        model = load_keras_model(version, dropout=config.dropout)
        freeze_all_but_top(model, trainable_top)
        return model

    return _run(
        config,
        mode="finetune",
        dataset_dirs=dataset_dirs,
        run_dir=run_dir,
        resume=resume,
        progress=progress,
        build=build,
        finetune_info=info,
    )


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def _history_row(history: dict[str, list[float]], epoch: int | None) -> dict[str, float]:
    if epoch is None or not history or epoch > len(history.get("epoch", [])):
        return {}
    return {k: v[epoch - 1] for k, v in history.items() if k != "epoch"}


def run_metadata(
    run_dir: str | Path, *, description: str = "", weights: str = "best"
) -> ModelMetadata:
    """The model metadata of a run's ``weights`` (``"best"`` or ``"last"``) for export."""
    if weights not in ("best", "last"):
        raise ValueError(f"weights must be 'best' or 'last', got {weights!r}")
    run = read_run(run_dir)
    state = run.state
    if not state.get("epoch"):
        raise ValueError(f"{run_dir}: no epoch finished yet, nothing to export")
    c = run.config
    history = _read_history(RunPaths(Path(run_dir)).history)
    epoch = state.get("best_epoch") if weights == "best" else state["epoch"]
    data = state.get("data", {})
    training: dict[str, Any] = {
        "mode": run.mode,
        "epochs": state["epoch"],
        "weights": weights,
        "weights_epoch": epoch,
        "loss": LOSS,
        "optimizer": c.optimizer,
        "learning_rate": c.learning_rate,
        "batch_size": c.batch_size,
        "seed": c.seed,
        "dropout": c.dropout,
        "tile": c.tile,
        "stride": c.stride,
        "val_fraction": c.val_fraction,
        "augment": c.augment,
        "positive_fraction": c.positive_fraction,
        "mixed_precision": c.mixed_precision,
        "tiles": data.get("tiles"),
        "fields": data.get("fields"),
        "datasets": data.get("datasets"),
        "setups": sorted({d["setup"] for d in data.get("datasets", [])}),
        "normalisation": data.get("profile"),
        "monitor": state.get("monitor"),
        "metrics": _history_row(history, epoch),
        "wall_seconds": round(float(state.get("seconds", 0.0)), 1),
        "devices": state.get("devices"),
        "tensorflow": state.get("tensorflow"),
        "keras": state.get("keras"),
        "software": state.get("software"),
    }
    if run.finetune:
        training["finetune"] = run.finetune
    profile = (data.get("profile") or {}).get("name") or c.profile or "synthetic"
    if not description:
        what = "fine-tuned" if run.mode == "finetune" else "trained"
        description = (
            f"Radio U-Net {what} on {data.get('fields')} simulated fields "
            f"({', '.join(training['setups'])}), {state['epoch']} epochs, {weights} weights"
        )
    return ModelMetadata(
        base_filters=c.base_filters,
        depth=c.depth,
        tile=c.tile,
        profile=profile,
        trained=True,
        description=description,
        training=training,
    )


def export_trained(
    source: str | Path | keras.Model,
    *,
    repo: str | Path,
    metadata: ModelMetadata | None = None,
    description: str = "",
    weights: str = "best",
    name: str = DEFAULT_MODEL_NAME,
    version: int | None = None,
    recalibrate_batches: int = 0,
) -> Path:
    """Export a run's weights (or a Keras model) as the next version of ``repo/name/``.

    Parameters
    ----------
    source : path or keras.Model
        A run folder: its ``best`` (lowest validation loss) or ``last`` weights
        are loaded into a freshly built float32 model (whatever precision or
        frozen layers the run used), with :func:`run_metadata` as metadata
        unless ``metadata`` is given. Or a Keras model, exported as it is with
        ``metadata`` (required).
    repo : path, keyword-only
        Model repository (``model_repo/``).
    recalibrate_batches : int, keyword-only
        With a run folder: re-estimate the batch-norm statistics over this many
        of the run's training batches before exporting (see
        :func:`recalibrate_batch_norm`); 0 exports them as trained.

    Returns
    -------
    Path
        The new version folder (one copy of the weights, TF Serving layout).
    """
    if weights not in ("best", "last"):
        raise ValueError(f"weights must be 'best' or 'last', got {weights!r}")
    if isinstance(source, keras.Model):
        if metadata is None:
            raise ValueError("metadata is required to export a keras.Model, got None")
        return export_saved_model(source, repo, metadata, name=name, version=version)
    run = read_run(source)
    meta = metadata or run_metadata(source, description=description, weights=weights)
    c = run.config
    if c.tile != SIGNATURE.tile:
        raise ValueError(
            f"the serving signature takes {SIGNATURE.tile}-pixel tiles; this run used "
            f"tile={c.tile!r}"
        )
    paths = RunPaths(Path(source))
    weights_file = paths.best if weights == "best" else paths.last
    if not weights_file.is_file():
        raise ValueError(f"{source}: no {weights_file.name} (no finished epoch with a finite loss)")
    model = build_radio_unet(
        base_filters=c.base_filters, depth=c.depth, dropout=c.dropout, tile=c.tile
    )
    # Weights are stored per layer, so they load into this fresh float32 model
    # whatever dtype policy or frozen layers the run had.
    model.load_weights(weights_file)
    if recalibrate_batches:
        tiles = load_tiles(
            run.dataset_dirs,
            split="train",
            profile=c.profile,
            tile=c.tile,
            stride=c.stride,
            max_fields=c.max_fields,
        )
        train_idx, _ = split_validation(len(tiles), c.val_fraction, c.seed)
        if c.positive_fraction is not None:
            train_idx = balance_tiles(
                tiles.masks, train_idx, positive_fraction=c.positive_fraction, seed=c.seed
            )
        batches = training_batches(
            tiles,
            train_idx,
            batch_size=c.batch_size,
            seed=c.seed,
            epochs=1,
            initial_epoch=0,
            augment=c.augment,
        )
        used = recalibrate_batch_norm(model, batches, n_batches=recalibrate_batches)
        meta = dataclasses.replace(
            meta, training={**meta.training, "batch_norm_recalibrated_batches": used}
        )
    return export_saved_model(model, repo, meta, name=name, version=version)


def recalibrate_batch_norm(model: keras.Model, batches: Iterable[Any], *, n_batches: int) -> int:
    """Reset every batch-norm layer's moving statistics to their exact mean over ``n_batches``.

    Keras keeps exponential moving averages (momentum 0.99): after the few
    hundred steps a CPU run affords they still carry much of their
    initialisation, and the network in inference mode disagrees with itself
    in training mode (on the low-resolution set-up after 3 epochs: 77% of
    pixels above 0.5 instead of 4%). Re-estimating them as a cumulative
    average over training batches, as SWA does, fixes that without touching
    the learned weights. Runs eagerly so the per-batch momentum applies, and
    with dropout switched off: inference has none, and statistics gathered
    with it active are those of noisier activations (with it on, the model of
    the low-resolution run still flagged 82% of the pixels).

    Returns
    -------
    int
        Batches used (fewer than ``n_batches`` if ``batches`` runs out).
    """
    if n_batches < 1:
        raise ValueError(f"n_batches must be at least 1, got {n_batches!r}")
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    rates = [layer.rate for layer in dropouts]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, dtype="float32"))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, dtype="float32"))
    used = 0
    try:
        for dropout in dropouts:
            dropout.rate = 0.0
        for used, batch in enumerate(batches, start=1):
            images = batch[0] if isinstance(batch, tuple | list) else batch
            for layer in layers:
                layer.momentum = (used - 1) / used  # moving = mean of the batches so far
            model(images, training=True)
            if used >= n_batches:
                break
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
        for dropout, rate in zip(dropouts, rates, strict=True):
            dropout.rate = rate
    return used


_OPTIMIZER_NAMES = {"adam": "Adam", "rmsprop": "RMSprop"}


def _duration(seconds: float) -> str:
    """Examples: ``_duration(42)`` -> '42 s', ``_duration(5400)`` -> '1.5 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def model_card_section(version: ModelVersion | str | Path) -> str:
    """A Markdown section for ``model_repo/radio_unet/README.md`` describing a trained version."""
    v = version if isinstance(version, ModelVersion) else resolve_model(version)
    m = v.metadata
    t = m.training
    lines = [f"### Version {v.version} — {'trained' if m.trained else 'PLACEHOLDER, NOT TRAINED'}"]
    lines.append("")
    lines.append(f"- {m.description}" if m.description else "- (no description)")
    if not t:
        return "\n".join(lines) + "\n"
    tiles = t.get("tiles") or {}
    datasets = t.get("datasets") or []
    lines.append(
        f"- Data: {t.get('fields')} training fields, {tiles.get('train')} tiles for training "
        f"and {tiles.get('validation')} for validation ({t.get('tile')}-pixel tiles, stride "
        f"{t.get('stride')}; test fields held out), from "
        + "; ".join(f"`{d['path']}` (set-up {d['setup']}, seed {d['seed']})" for d in datasets)
        + "."
    )
    norm = t.get("normalisation") or {}
    if norm:
        lines.append(
            f"- Normalisation profile `{m.profile}`: log scaling of {norm.get('vmin')}.."
            f"{norm.get('vmax')} {norm.get('unit')}."
        )
    lines.append(
        f"- Architecture: base width {m.base_filters}, depth {m.depth}, dropout {t.get('dropout')}."
    )
    optimizer = _OPTIMIZER_NAMES.get(str(t.get("optimizer")), t.get("optimizer"))
    lines.append(
        f"- Training: {optimizer} at learning rate {t.get('learning_rate')}, batch "
        f"{t.get('batch_size')}, {t.get('loss')}, {t.get('epochs')} epochs, seed "
        f"{t.get('seed')}, augmentation {'on' if t.get('augment') else 'off'}"
        + (
            f", training tiles balanced to {t['positive_fraction']:.0%} holding emission."
            if t.get("positive_fraction")
            else ", every tile used."
        )
    )
    ft = t.get("finetune")
    if ft:
        lines.append(
            f"- Fine-tuned from `{ft.get('base_name')}` version {ft.get('base_version')} with "
            f"the top {ft.get('trainable_top')} layers trainable."
        )
    metrics = t.get("metrics") or {}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
    lines.append(
        f"- Exported weights: {t.get('weights')} epoch {t.get('weights_epoch')}"
        + (f" ({shown})." if shown else ".")
    )
    lines.append(
        f"- Wall time {_duration(float(t.get('wall_seconds') or 0.0))} on "
        f"{', '.join(t.get('devices') or ['?'])}; TensorFlow "
        f"{t.get('tensorflow')}, Keras {t.get('keras')}, {t.get('software')}."
    )
    if t.get("batch_norm_recalibrated_batches"):
        lines.append(
            f"- Batch-norm statistics re-estimated over {t['batch_norm_recalibrated_batches']} "
            "training batches before export."
        )
    lines.append(f"- Metadata: `trained: {str(m.trained).lower()}`, profile `{m.profile}`.")
    return "\n".join(lines) + "\n"
