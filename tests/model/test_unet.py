"""Tests for radiounet.model.unet: the Radio U-Net architecture (Stuardi et al. 2024, Sec. 2)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from radiounet.model.unet import build_radio_unet
from radiounet.tf_runtime import keras


def layer_types(model: keras.Model) -> Counter[str]:
    return Counter(type(layer).__name__ for layer in model.layers)


def inbound(layer: keras.layers.Layer) -> list[str]:
    tensors = layer.input if isinstance(layer.input, list) else [layer.input]
    return [t._keras_history.operation.name for t in tensors]


def expected_params(base: int, depth: int) -> int:
    """Parameter count from the paper's description (conv 3x3 + BN per block, 1x1 softmax)."""

    def block(c_in: int, c_out: int) -> int:  # two (3x3 conv + batch norm)
        return (9 * c_in * c_out + c_out + 4 * c_out) + (9 * c_out * c_out + c_out + 4 * c_out)

    total, c_in = 0, 1
    for level in range(depth):
        total += block(c_in, base * 2**level)
        c_in = base * 2**level
    total += block(c_in, base * 2**depth)
    c_in = base * 2**depth
    for level in reversed(range(depth)):
        c = base * 2**level
        total += 9 * c_in * c + c  # 3x3 transposed convolution
        total += block(c, c)
        c_in = c
    return total + c_in * 2 + 2


def test_paper_model_has_76_layers_and_7858370_parameters() -> None:
    model = build_radio_unet()  # base_filters=32, depth=4, any tile size
    assert len(model.layers) == 76
    assert model.count_params() == 7_858_370 == expected_params(32, 4)
    assert model.get_layer("bottom_conv1").filters == 512
    assert tuple(model.inputs[0].shape) == (None, None, None, 1)
    assert tuple(model.outputs[0].shape) == (None, None, None, 2)


@pytest.mark.parametrize(("base", "depth"), [(2, 4), (4, 2), (2, 1)])
def test_layer_structure(base: int, depth: int) -> None:
    model = build_radio_unet(base_filters=base, depth=depth)
    types = layer_types(model)
    assert types["Add"] == depth
    assert types["Concatenate"] == 0
    assert types["MaxPooling2D"] == depth
    assert types["Dropout"] == depth
    assert types["Conv2DTranspose"] == depth
    assert types["BatchNormalization"] == 2 * (2 * depth + 1)
    assert types["Conv2D"] == 2 * (2 * depth + 1) + 1
    assert model.count_params() == expected_params(base, depth)

    for level in range(depth):
        width = base * 2**level
        # Contracting path: conv blocks doubling the width, 2x2 pooling, then dropout 0.5.
        assert model.get_layer(f"down{level}_conv1").filters == width
        assert model.get_layer(f"down{level}_conv1").kernel_size == (3, 3)
        pool = model.get_layer(f"down{level}_pool")
        assert (pool.pool_size, pool.strides) == ((2, 2), (2, 2))
        dropout = model.get_layer(f"down{level}_dropout")
        assert dropout.rate == 0.5
        assert inbound(dropout) == [f"down{level}_pool"]
        # Expanding path: 3x3 transposed conv, stride 2, ReLU; skip connection summed.
        up = model.get_layer(f"up{level}_transpose")
        assert (up.filters, up.kernel_size, up.strides, up.padding) == (
            width,
            (3, 3),
            (2, 2),
            "same",
        )
        assert inbound(model.get_layer(f"up{level}_transpose_relu")) == [f"up{level}_transpose"]
        assert sorted(inbound(model.get_layer(f"up{level}_skip"))) == sorted(
            [f"up{level}_transpose_relu", f"down{level}_relu2"]
        )
        assert model.get_layer(f"up{level}_conv1").filters == width
    assert model.get_layer("bottom_conv1").filters == base * 2**depth
    # No dropout in the expanding path.
    dropout_names = {layer.name for layer in model.layers if type(layer).__name__ == "Dropout"}
    assert dropout_names == {f"down{level}_dropout" for level in range(depth)}

    final = model.layers[-1]
    assert type(final).__name__ == "Conv2D"
    assert (final.filters, final.kernel_size) == (2, (1, 1))
    assert final.activation.__name__ == "softmax"
    assert inbound(final) == ["up0_relu2"]


def test_dropout_rate_is_configurable() -> None:
    model = build_radio_unet(base_filters=2, depth=2, dropout=0.0)
    rates = [layer.rate for layer in model.layers if type(layer).__name__ == "Dropout"]
    assert rates == [0.0, 0.0]


def test_output_is_a_two_class_softmax() -> None:
    keras.utils.set_random_seed(0)
    model = build_radio_unet(base_filters=2, depth=4)
    x = np.random.default_rng(0).random((2, 32, 48, 1), dtype=np.float32)
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, 32, 48, 2)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-6)
    assert y.min() >= 0.0
    assert y.max() <= 1.0
    assert y[..., 1].std() > 0  # the output depends on the input pixels


def test_fixed_tile() -> None:
    model = build_radio_unet(base_filters=2, tile=192, name="fixed")
    assert model.name == "fixed"
    assert tuple(model.inputs[0].shape) == (None, 192, 192, 1)
    assert tuple(model.outputs[0].shape) == (None, 192, 192, 2)
    assert model.inputs[0].name == "image"


@pytest.mark.parametrize("base", [0, -32])
def test_base_filters_must_be_positive(base: int) -> None:
    with pytest.raises(ValueError, match="base_filters must be positive"):
        build_radio_unet(base_filters=base)


@pytest.mark.parametrize("depth", [0, -1])
def test_depth_must_be_positive(depth: int) -> None:
    with pytest.raises(ValueError, match="depth must be positive"):
        build_radio_unet(base_filters=2, depth=depth)


@pytest.mark.parametrize("dropout", [1.0, -0.1, 1.5])
def test_dropout_must_be_in_0_1(dropout: float) -> None:
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        build_radio_unet(base_filters=2, dropout=dropout)


@pytest.mark.parametrize(("tile", "depth"), [(100, 4), (200, 4), (6, 2)])
def test_tile_must_be_divisible_by_2_to_the_depth(tile: int, depth: int) -> None:
    with pytest.raises(ValueError, match=rf"tile must be divisible by 2\*\*depth = {2**depth}"):
        build_radio_unet(base_filters=2, depth=depth, tile=tile)
