"""Training hyperparameters, with the defaults of Stuardi et al. (2024, Secs. 2, 5 and 6.3).

Importing this module does not import TensorFlow, so command lines and
services can build and check a configuration cheaply.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..core.normalisation import get_profile

__all__ = [
    "FINETUNE_TRAINABLE_TOP",
    "LOSS",
    "OPTIMIZERS",
    "TrainingConfig",
]

#: The loss of the paper (Sec. 2, eq. 4); not configurable.
LOSS = "categorical_crossentropy"

#: Optimizer names accepted by :class:`TrainingConfig` (the paper used RMSprop).
OPTIMIZERS = ("adam", "rmsprop")

#: Layers left trainable when fine-tuning: the paper's best result (Sec. 6.3).
FINETUNE_TRAINABLE_TOP = 10


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class TrainingConfig:
    """What a training run does; the defaults are the paper's (Sec. 5).

    Attributes
    ----------
    base_filters, depth, dropout : int, int, float
        Architecture (:func:`radiounet.model.unet.build_radio_unet`): 32 filters,
        four poolings and dropout 0.5 in the paper.
    tile : int
        Tile side (192 pixels).
    stride : int
        Step between training tiles: 192 cuts non-overlapping tiles with the
        remainder of each image dropped, as in the paper (100 tiles from a
        2000-pixel image); 96 gives half-overlapping tiles.
    epochs : int
        Total epochs of the run (200); a resumed run stops at this count.
    batch_size : int
        Tiles per step (50).
    learning_rate : float
        Optimizer step size (1e-4).
    optimizer : str
        ``"rmsprop"`` (the paper's) or ``"adam"``.
    val_fraction : float
        Fraction of the training tiles held out for validation (5%); 0 trains
        on every tile and selects the best epoch by training loss instead.
    seed : int
        Seeds weight initialisation, the validation split, the per-epoch shuffle
        and the augmentation.
    profile : str or None
        Normalisation profile (name or ``VMIN:VMAX:UNIT``); ``None`` takes it
        from the dataset's set-up (see :func:`radiounet.training.data.load_tiles`).
    max_fields : int or None
        Use at most this many training fields (all datasets together).
    augment : bool
        Random 90-degree rotations and flips of each tile (Sec. 6.3).
    positive_fraction : float or None
        Keep every training tile that holds diffuse emission and draw tiles
        without it so that this share of the training tiles holds emission;
        ``None`` (the paper) uses every tile. Survey-like fields are mostly
        empty sky (about 6% of low-resolution tiles hold any emission), and an
        unweighted cross-entropy then favours predicting background; the
        paper's cosmological fields were rich in emission, and its fine-tuning
        balanced empty and non-empty tiles. Validation tiles stay unbalanced.
    mixed_precision : bool
        Compute in float16 with float32 variables (for GPUs); off by default so
        that CPU and GPU runs compute the same thing.
    steps_per_execution : int
        Training steps per compiled call (larger amortises call overhead on GPUs).
    """

    base_filters: int = 32
    depth: int = 4
    dropout: float = 0.5
    tile: int = 192
    stride: int = 192
    epochs: int = 200
    batch_size: int = 50
    learning_rate: float = 1e-4
    optimizer: str = "rmsprop"
    val_fraction: float = 0.05
    seed: int = 0
    profile: str | None = None
    max_fields: int | None = None
    augment: bool = False
    positive_fraction: float | None = None
    mixed_precision: bool = False
    steps_per_execution: int = 1

    def __post_init__(self) -> None:
        for name in ("base_filters", "depth", "tile", "stride", "epochs", "batch_size"):
            _positive_int(name, getattr(self, name))
        _positive_int("steps_per_execution", self.steps_per_execution)
        if self.max_fields is not None:
            _positive_int("max_fields", self.max_fields)
        if self.positive_fraction is not None and not 0.0 < self.positive_fraction < 1.0:
            raise ValueError(
                f"positive_fraction must be in (0, 1) or None, got {self.positive_fraction!r}"
            )
        if self.tile % 2**self.depth:
            raise ValueError(
                f"tile must be divisible by 2**depth = {2**self.depth}, got {self.tile!r}"
            )
        if self.stride > self.tile:
            raise ValueError(f"stride must be at most tile ({self.tile}), got {self.stride!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.profile is not None:
            get_profile(self.profile)  # raises with the list of valid profiles

    @classmethod
    def finetuning(cls, **overrides: Any) -> TrainingConfig:
        """The paper's fine-tuning set-up (Sec. 6.3), with ``overrides`` applied.

        100 epochs at learning rate 1e-4, a 90%/10% training/validation split,
        and rotation/flip augmentation.

        Examples
        --------
        >>> c = TrainingConfig.finetuning(batch_size=8)
        >>> c.epochs, c.learning_rate, c.val_fraction, c.augment, c.batch_size
        (100, 0.0001, 0.1, True, 8)
        """
        base = cls(epochs=100, learning_rate=1e-4, val_fraction=0.1, augment=True)
        return replace(base, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error.

        Examples
        --------
        >>> TrainingConfig.from_dict(TrainingConfig(epochs=3).to_dict()).epochs
        3
        """
        if not isinstance(data, dict):
            raise ValueError(f"training config must be a JSON object, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown} (known: {sorted(known)})")
        return cls(**data)

    def differences(self, other: TrainingConfig) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: name -> (self's value, other's value)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}
