"""Backbones that learn from scratch in minutes on a CPU (no pretrained weights).

* ``plain_cnn``: the hand-written reference CNN of issue 12 (``benchmarks/bench_reference_cnn.py``):
  four blocks of two 3x3 convolutions + BatchNorm + ReLU and a 2x2 max-pool (24 / 48 / 96 / 160
  channels), then a 3x3 convolution of 256. ~0.9 M parameters; 96 px by default.
* ``resnet_small``: a ResNet-10 (one basic block per stage) at half of ResNet-18's width
  (32 / 64 / 128 / 256), with a 3x3 stride-2 stem and no max-pool, so small objects survive the
  first layers. ~1.2 M parameters; 96 px by default, about as fast as ``plain_cnn``.

BatchNorm momentum is 0.9, as in ``small_cnn``: the moving statistics keep up within the few
hundred steps of a short run (at Keras' 0.99 they lag and validation collapses).
"""

from __future__ import annotations

import keras

BN_MOMENTUM = 0.9


def _conv_bn_relu(x, filters: int, name: str, strides: int = 1):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def plain_cnn(input_shape, weights, name: str) -> keras.Model:
    """The reference CNN's convolutions: [2 x (conv3x3-BN-ReLU), max-pool 2] x 4, conv3x3 256."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((24, 48, 96, 160)):
        x = _conv_bn_relu(x, filters, f"block{i}a")
        x = _conv_bn_relu(x, filters, f"block{i}b")
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = _conv_bn_relu(x, 256, "top")
    return keras.Model(inputs, x, name=name)


def _basic_block(x, filters: int, strides: int, name: str):
    shortcut = x
    y = _conv_bn_relu(x, filters, f"{name}_1", strides=strides)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_2_bn")(y)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False,
                                       name=f"{name}_proj_conv")(shortcut)
        shortcut = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def resnet_small(input_shape, weights, name: str) -> keras.Model:
    """A half-width ResNet-10: 3x3 stride-2 stem, one basic block per stage."""
    inputs = keras.Input(input_shape)
    x = _conv_bn_relu(inputs, 32, "stem", strides=2)
    for s, (filters, strides) in enumerate(((32, 1), (64, 2), (128, 2), (256, 2))):
        x = _basic_block(x, filters, strides, f"stage{s}")
    return keras.Model(inputs, x, name=name)
