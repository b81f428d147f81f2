"""Radio U-Net (Stuardi et al. 2024, Sec. 2) as a pure Keras model builder.

Contracting path: per level two (3x3 conv -> batch norm -> ReLU), then 2x2 max
pooling and dropout 0.5, four times; a bottom level at 16x the base width.
Expanding path: 3x3 transposed convolution (stride 2) with ReLU, the skip
connection *summed* (not concatenated), two conv blocks, no dropout. A final
1x1 convolution with a two-class softmax gives p(background), p(diffuse).

With ``base_filters=32`` (32..512 filters) the model has 76 layers and
7,858,370 parameters, the paper's model.
"""

from __future__ import annotations

from ..tf_runtime import keras

__all__ = ["build_radio_unet"]


def _conv_block(x, filters: int, *, name: str):
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def build_radio_unet(
    *,
    base_filters: int = 32,
    depth: int = 4,
    dropout: float = 0.5,
    tile: int | None = None,
    name: str = "radio_unet",
) -> keras.Model:
    """Build Radio U-Net.

    Parameters
    ----------
    base_filters : int, keyword-only
        Filters of the first level; each level doubles them (32 in the paper).
    depth : int, keyword-only
        Number of poolings (4 in the paper).
    dropout : float, keyword-only
        Dropout rate after each pooling (0.5 in the paper).
    tile : int or None, keyword-only
        Fixed input side; ``None`` keeps the network fully convolutional
        (any side divisible by ``2**depth``).

    Returns
    -------
    keras.Model
        Input ``(N, tile, tile, 1)`` in [0, 1]; output ``(N, tile, tile, 2)``
        softmax probabilities, channel 1 being diffuse emission.
    """
    if base_filters < 1:
        raise ValueError(f"base_filters must be positive, got {base_filters!r}")
    if depth < 1:
        raise ValueError(f"depth must be positive, got {depth!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if tile is not None and tile % 2**depth:
        raise ValueError(f"tile must be divisible by 2**depth = {2**depth}, got {tile!r}")

    inputs = keras.Input(shape=(tile, tile, 1), name="image")
    x = inputs
    skips = []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, name=f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
        x = keras.layers.Dropout(dropout, name=f"down{level}_dropout")(x)
    x = _conv_block(x, base_filters * 2**depth, name="bottom")
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = keras.layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", name=f"up{level}_transpose"
        )(x)
        x = keras.layers.ReLU(name=f"up{level}_transpose_relu")(x)
        x = keras.layers.Add(name=f"up{level}_skip")([x, skips[level]])
        x = _conv_block(x, filters, name=f"up{level}")
    outputs = keras.layers.Conv2D(2, 1, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
