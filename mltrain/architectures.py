"""Model builders. Every model takes raw uint8 pixels: scaling and normalisation are layers.

- `build_thesis_cnn(hp)`: the thesis network, reproduced exactly, for comparison and tuning.
- `build_whitened_convnet(hp, ...)`: our network. Its first layer is a frozen 2x2 convolution
  that whitens image patches (computed once from the training data), followed by three
  conv-pool-batchnorm groups and a max-pooled linear head. The design follows Keller Jordan's
  CIFAR-10 speedrun networks ("airbench"): whitened input and a shallow, wide body reach high
  accuracy in few epochs, which is what a 2-core CPU can afford.
"""

import keras
import keras_tuner
import numpy as np
from keras import layers

THESIS_DROPOUT = (0.2, 0.3, 0.4, 0.5)
WHITENING_PATCH = 2
WHITENING_EPSILON = 5e-4


def defaults(hp):
    """HyperParameters with every value at its default (a builder called outside a tuner)."""
    return hp if hp is not None else keras_tuner.HyperParameters()


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
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_regularizer=l2)(x)
            x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(hp.Float(f"dropout_{filters}", 0.1, 0.5, step=0.1, default=rate))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu", kernel_regularizer=l2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(hp.Float("dropout_dense", 0.2, 0.6, step=0.1, default=THESIS_DROPOUT[-1]))(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
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


def conv_group(x, filters, convs, name):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    x = layers.MaxPooling2D(name=f"{name}_pool")(x)
    x = layers.BatchNormalization(scale=False, momentum=0.8, name=f"{name}_bn1")(x)
    x = layers.Activation("gelu", name=f"{name}_act1")(x)
    for i in range(2, convs + 1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(scale=False, momentum=0.8, name=f"{name}_bn{i}")(x)
        x = layers.Activation("gelu", name=f"{name}_act{i}")(x)
    return x


def build_whitened_convnet(
    hp=None, input_shape=(32, 32, 3), num_classes=10, whitening_kernel=None, mean=None, std=None
):
    """Our network; returns logits (the training recipe adds label smoothing and softmax).

    `whitening_kernel`, `mean` and `std` come from the training images
    (`patch_whitening_kernel`, `pixel_statistics`); omitted, the layers start as identity-ish
    defaults, which is only useful for tests and for loading weights into the same shape.
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
    for index, filters in enumerate(widths, start=1):
        x = conv_group(x, filters, convs, name=f"group{index}")
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(num_classes, use_bias=False, name="logits_unscaled")(x)
    # A small fixed scale on the logits keeps early training stable (airbench uses 1/9).
    outputs = layers.Rescaling(1 / 9, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name="whitened_convnet")


def with_flip_averaging(logits_model: keras.Model) -> keras.Model:
    """The serving model: softmax of the logits averaged over the image and its mirror image
    (test-time augmentation), taking the same raw uint8 input."""
    inputs = keras.Input(shape=logits_model.input_shape[1:], dtype="uint8", name="pixels")
    mirrored = keras.ops.flip(inputs, axis=2)
    probabilities = layers.Average(name="flip_average")(
        [
            layers.Softmax(dtype="float32", name="softmax")(logits_model(inputs)),
            layers.Softmax(dtype="float32", name="softmax_mirrored")(logits_model(mirrored)),
        ]
    )
    return keras.Model(inputs, probabilities, name=f"{logits_model.name}_tta")
