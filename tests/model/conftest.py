"""Fixtures for the model tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from radiounet.model.unet import build_radio_unet
from radiounet.tf_runtime import keras


def _perturbed_model(seed: int) -> keras.Model:
    """A small Radio U-Net whose every weight (batch-norm statistics included) is non-trivial."""
    keras.utils.set_random_seed(seed)
    model = build_radio_unet(base_filters=2, tile=192)
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        v = np.asarray(w.numpy())
        if w.name == "moving_variance":
            values.append(v * rng.uniform(0.5, 2.0, v.shape))
        else:
            values.append(v + rng.normal(0.0, 0.05, v.shape))
    model.set_weights([v.astype(np.float32) for v in values])
    return model


@pytest.fixture(scope="session")
def perturbed_model() -> Callable[[int], keras.Model]:
    """Build a small model with seeded, non-trivial weights: ``perturbed_model(seed)``."""
    return _perturbed_model
