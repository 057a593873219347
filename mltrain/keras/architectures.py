"""Model builders. Every model takes raw uint8 pixels: scaling and normalisation are layers.

- `build_thesis_cnn(hp)`: the thesis network, reproduced exactly, for comparison and tuning.
- `build_whitened_convnet(hp, ...)`: our network. Its first layer is a frozen 2x2 convolution
  that whitens image patches (computed once from the training data), followed by three
  conv-pool-batchnorm groups and a max-pooled linear head. The design follows Keller Jordan's
  CIFAR-10 speedrun networks ("airbench94"): whitened input, identity-initialised convolutions
  and a shallow, wide body reach high accuracy in few epochs, which is what a 2-core CPU can
  afford.
"""

import keras
import keras_tuner
import numpy as np
from keras import layers

THESIS_DROPOUT = (0.2, 0.3, 0.4, 0.5)
WHITENING_PATCH = 2
WHITENING_EPSILON = 5e-4
BATCHNORM_MOMENTUM = 0.6  # fast-moving statistics: the recipe trains for few, large steps


def defaults(hp):
    """HyperParameters with every value at its default (a builder called outside a tuner)."""
    return hp if hp is not None else keras_tuner.HyperParameters()


def fixed(values: dict):
    """HyperParameters fixed at `values` (a tuner's best, a run's training.json); the builders
    take the defaults for the others."""
    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def pixel_input(input_shape):
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="pixels")
    return inputs, layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def build_thesis_cnn(hp=None, input_shape=(32, 32, 3), num_classes=10):
    """The thesis CNN: 64-64-128-128-256-256 3x3 convs, batch-norm, max-pool, dropout
    0.2/0.3/0.4/0.5, L2 1e-4, dense 256, softmax, Adam (learning rate tuned, 1e-3 default)."""
    hp = defaults(hp)
    l2 = keras.regularizers.L2(1e-4)
    inputs, x = pixel_input(input_shape)
    for filters, rate in zip((64, 128, 256), THESIS_DROPOUT):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_regularizer=l2)(
                x
            )
            x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(hp.Float(f"dropout_{filters}", 0.1, 0.5, step=0.1, default=rate))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu", kernel_regularizer=l2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(hp.Float("dropout_dense", 0.2, 0.6, step=0.1, default=THESIS_DROPOUT[-1]))(x)
    outputs = layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)
    model = keras.Model(inputs, outputs, name="thesis_cnn")
    learning_rate = hp.Choice("learning_rate", [1e-2, 1e-3, 1e-4], default=1e-3)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def patch_whitening_kernel(images: np.ndarray, mean, std, samples: int = 5000, seed: int = 0):
    """A (2, 2, 3, 24) kernel whose filters are the +/- eigenvectors of the covariance of 2x2
    patches, scaled by 1/sqrt(eigenvalue): the convolution's output patches are decorrelated."""
    rng = np.random.default_rng(seed)
    chosen = images[rng.choice(len(images), min(samples, len(images)), replace=False)]
    x = (chosen.astype(np.float64) / 255 - mean) / std
    k = WHITENING_PATCH
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    patches = np.stack(
        [x[:, i : i + h, j : j + w, :] for i in range(k) for j in range(k)], axis=3
    ).reshape(-1, k * k * 3)  # feature order (row, col, channel) matches the Conv2D kernel
    patches -= patches.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(patches.T @ patches / len(patches))
    filters = eigenvectors.T / np.sqrt(eigenvalues + WHITENING_EPSILON)[:, None]
    filters = np.concatenate([filters, -filters])  # both signs survive the activation
    return filters.T.reshape(k, k, 3, -1).astype(np.float32)


def pixel_statistics(images: np.ndarray):
    """Per-channel mean and standard deviation of [0, 1]-scaled pixels."""
    scaled = images.reshape(-1, 3).astype(np.float64) / 255
    return scaled.mean(axis=0), scaled.std(axis=0)


def conv_group(x, filters, convs, name, regularizer=None):
    def conv(x, index):
        return layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            kernel_regularizer=regularizer,
            name=f"{name}_conv{index}",
        )(x)

    def norm(x, index):
        x = layers.BatchNormalization(
            scale=False, momentum=BATCHNORM_MOMENTUM, epsilon=1e-5, name=f"{name}_bn{index}"
        )(x)
        return layers.Activation("gelu", name=f"{name}_act{index}")(x)

    x = norm(layers.MaxPooling2D(name=f"{name}_pool")(conv(x, 1)), 1)
    shortcut = x
    for index in range(2, convs + 1):
        x = norm(conv(x, index), index)
    if convs > 2:  # airbench96's deeper groups: a residual connection over the last convolutions
        x = layers.Add(name=f"{name}_residual")([shortcut, x])
    return x


def identity_initialize(model: keras.Model):
    """Make the first `channels_in` filters of every body convolution an exact identity (a
    "dirac" kernel), so each group starts as an implicit residual connection."""
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D) and layer.trainable and layer.kernel_size == (3, 3):
            kernel = layer.kernel.numpy()
            channels_in = min(kernel.shape[2], kernel.shape[3])
            kernel[:, :, :, :channels_in] = 0
            kernel[1, 1, np.arange(channels_in), np.arange(channels_in)] = 1
            layer.kernel.assign(kernel)


def build_whitened_convnet(
    hp=None,
    input_shape=(32, 32, 3),
    num_classes=10,
    whitening_kernel=None,
    mean=None,
    std=None,
    l2=None,
):
    """Our network; returns logits (the training recipe adds label smoothing and softmax).

    `whitening_kernel`, `mean` and `std` come from the training images
    (`patch_whitening_kernel`, `pixel_statistics`); omitted, the layers start as identity-ish
    defaults, which is only useful for tests and for loading weights into the same shape.
    `l2` is the recipe's weight decay, as an L2 penalty on the trainable kernels.
    """
    hp = defaults(hp)
    width = hp.Choice("width", [64, 96, 128], default=64)
    convs = hp.Int("convs_per_group", 2, 3, default=2)
    widths = (width, 4 * width, 4 * width)

    inputs, x = pixel_input(input_shape)
    mean = np.zeros(3) if mean is None else np.asarray(mean)
    std = np.ones(3) if std is None else np.asarray(std)
    x = layers.Normalization(mean=mean, variance=std**2, name="normalize")(x)
    whitening = layers.Conv2D(
        2 * WHITENING_PATCH**2 * 3, WHITENING_PATCH, use_bias=False, trainable=False, name="whiten"
    )
    x = layers.Activation("gelu", name="whiten_act")(whitening(x))
    if whitening_kernel is not None:
        whitening.set_weights([whitening_kernel])
    regularizer = keras.regularizers.L2(l2) if l2 else None
    for index, filters in enumerate(widths, start=1):
        x = conv_group(x, filters, convs, name=f"group{index}", regularizer=regularizer)
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(
        num_classes, use_bias=False, kernel_regularizer=regularizer, name="logits_unscaled"
    )(x)
    # A small fixed scale on the logits keeps early training stable (airbench uses 1/9).
    outputs = layers.Rescaling(1 / 9, dtype="float32", name="logits")(x)
    model = keras.Model(inputs, outputs, name="whitened_convnet")
    identity_initialize(model)
    return model


def with_test_time_augmentation(logits_model: keras.Model, translate: bool = False) -> keras.Model:
    """The serving model: raw uint8 pixels in, the softmax of logits averaged over augmented
    views out. The image and its mirror image weigh 1/2; with `translate`, the same pair
    shifted one pixel up-left and one pixel down-right (reflect-padded) weighs the other 1/2."""
    inputs = keras.Input(shape=logits_model.input_shape[1:], dtype="uint8", name="pixels")

    def mirrored_pair(images, name):
        mirrored = keras.ops.flip(images, axis=2)
        return layers.Average(name=f"{name}_pair")([logits_model(images), logits_model(mirrored)])

    logits = mirrored_pair(inputs, "centre")
    if translate:
        padded = keras.ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        shifted = [
            mirrored_pair(layers.Cropping2D(crop, name=f"shift_{name}")(padded), name)
            for name, crop in (("up_left", ((0, 2), (0, 2))), ("down_right", ((2, 0), (2, 0))))
        ]
        logits = layers.Average(name="views")([logits, layers.Average(name="shifted")(shifted)])
    probabilities = layers.Softmax(dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name=f"{logits_model.name}_tta")
