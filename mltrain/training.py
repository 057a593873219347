"""Training: data pipeline, the two recipes, resumable fit, and the trained artifact.

A run writes everything into one output folder:
  checkpoints/      per-epoch backup (model, optimizer, epoch); a rerun resumes from it
  history.csv       one row per epoch, including the wall time each epoch took
  model.keras       the serving model: raw uint8 pixels in, class probabilities out
  training.json     the configuration, class names, split and hyperparameters of the run
"""

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from mltrain import architectures
from mltrain.datasets import Dataset

ARCHITECTURES = ("whitened_convnet", "thesis_cnn")
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
TRANSLATE_FRACTION = 1 / 16  # random-crop augmentation: shift by up to this much of the side (2 px at 32)


@dataclass
class TrainingConfig:
    architecture: str = "whitened_convnet"
    epochs: int = 30
    batch_size: int = 1024
    validation_fraction: float = 0.1
    seed: int = 42
    mixed_precision: bool | None = None  # None: bfloat16 only where the hardware computes it
    strategy: str = "auto"  # one of STRATEGIES (see distribution_strategy)
    # whitened_convnet recipe (airbench94's, restated for a mean loss): Nesterov SGD on a
    # triangular schedule from 0.2x the peak, peaking at 23% of the steps, down to 0.07x.
    peak_learning_rate: float = 1.5
    warmup_fraction: float = 0.23
    start_fraction: float = 0.2
    end_fraction: float = 0.07
    momentum: float = 0.85
    weight_decay: float = 6.6e-4  # L2 penalty on the kernels (gradient 2 * 6.6e-4 * w)
    bias_learning_rate_scale: float = 64.0  # batch-norm offsets learn this much faster
    lookahead_from_epoch: int = 3  # then every 5 steps pull the weights towards their average
    label_smoothing: float = 0.2
    translate_tta: bool = False  # 6 views (mirror x 1-pixel shifts) instead of 2: +0.02 points here, 3x the cost
    hyperparameters: dict = field(default_factory=dict)


def cpu_has_bfloat16() -> bool:
    """AVX-512 BF16 or AMX: without them TensorFlow emulates bfloat16, several times slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def configure_devices(mixed_precision: bool | None) -> str:
    """Use every GPU when there are any; bfloat16 compute where the hardware has it."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if mixed_precision is None:
        mixed_precision = bool(gpus) or cpu_has_bfloat16()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed_precision else "float32")
    return f"{len(gpus)} GPU(s)" if gpus else "CPU"


def distribution_strategy(name: str = "auto"):
    """The tf.distribute strategy for `name`:
    auto          MirroredStrategy when this machine has several GPUs, else the default
    default       one device
    mirrored      MirroredStrategy over this machine's GPUs (synchronous data parallelism)
    multi-worker  MultiWorkerMirroredStrategy across machines: every machine runs the same
                  command with its own TF_CONFIG ({"cluster": ..., "task": {"type", "index"}})
    """
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored" or (name == "auto" and len(tf.config.list_physical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def worker_output(output: Path) -> Path:
    """Where this process writes its run. In a multi-worker cluster (TF_CONFIG) only the chief
    writes the run folder; the other workers keep their checkpoints apart, under worker-<index>."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task", {})
    role, index = task.get("type", "chief"), task.get("index", 0)
    chief = role == "chief" or (role == "worker" and index == 0 and "chief" not in tf_config.get("cluster", {}))
    return Path(output) if chief else Path(output) / f"worker-{index}"


def augment(images, labels):
    """Random translation by reflect-padding and cropping, and random horizontal flip."""
    size = tf.shape(images)[1:3]
    shift = max(1, round(images.shape[1] * TRANSLATE_FRACTION))
    padded = tf.pad(images, [[0, 0], [shift] * 2, [shift] * 2, [0, 0]], mode="REFLECT")
    batch = tf.shape(images)[0]
    offsets = tf.random.uniform([batch, 2], 0, 2 * shift + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(size[0])[None, :]
    cols = offsets[:, 1:] + tf.range(size[1])[None, :]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)
    flip = tf.random.uniform([batch, 1, 1, 1]) < 0.5
    return tf.where(flip, tf.reverse(cropped, axis=[2]), cropped), labels


def training_pipeline(dataset: Dataset, batch_size: int, seed: int):
    return (
        tf.data.Dataset.from_tensor_slices((dataset.images, dataset.labels))
        .shuffle(len(dataset), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_pipeline(dataset: Dataset, batch_size: int):
    return (
        tf.data.Dataset.from_tensor_slices((dataset.images, dataset.labels))
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear rise from `start` x peak to the peak, then linear decay to `end` x peak (keyed on
    the optimizer's step, so a resumed run continues the same schedule)."""

    def __init__(self, peak, total_steps, warmup_steps, start=0.0, end=0.0):
        self.peak, self.total_steps, self.warmup_steps = peak, total_steps, warmup_steps
        self.start, self.end = start, end

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rise = self.start + (1 - self.start) * step / max(self.warmup_steps, 1)
        progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
        fall = 1 - (1 - self.end) * progress
        return self.peak * keras.ops.maximum(keras.ops.minimum(rise, fall), 0.0)

    def get_config(self):
        return {
            "peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
            "start": self.start, "end": self.end,
        }  # fmt: skip


class BiasScaledSGD(keras.optimizers.SGD):
    """SGD whose learning rate is `bias_scale` times larger for batch-norm offsets (`beta`):
    airbench found this speeds training of batch-normed networks markedly."""

    def __init__(self, *args, bias_scale=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.bias_scale = bias_scale

    def build(self, variables):
        super().build(variables)
        # The update step sees the backend's variables, not the layer's: key them the same way.
        self.bias_keys = {self._var_key(v) for v in variables if v.name == "beta"}

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self.bias_keys:
            learning_rate = learning_rate * self.bias_scale
        super().update_step(gradient, variable, learning_rate)


class Lookahead(keras.callbacks.Callback):
    """Every `every` steps from `start_step` on, move a running average of the weights towards
    the current weights and put the average back into the model (airbench's lookahead). The
    average's decay grows towards the end, so the final weights are a strong average."""

    def __init__(self, start_step, total_steps, every=5, decay=0.95**5, power=3.0):
        super().__init__()
        self.start_step, self.total_steps, self.every = start_step, total_steps, every
        self.decay, self.power = decay, power
        self.average = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step < self.start_step or step % self.every:
            return
        current = [v.numpy() for v in self.model.weights]
        if self.average is None:  # also after a resume: the average restarts from here
            self.average = current
            return
        rho = self.decay * min(step / self.total_steps, 1.0) ** self.power
        self.average = [rho * a + (1 - rho) * c for a, c in zip(self.average, current)]
        self.restore()

    def on_epoch_end(self, epoch, logs=None):
        if self.average is not None:
            self.restore()

    def restore(self):
        for variable, value in zip(self.model.weights, self.average):
            variable.assign(value)


class EpochWallTime(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the logs, so history.csv records the wall time per epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.perf_counter() - self.started


def total_steps(config: TrainingConfig, train: Dataset) -> int:
    return config.epochs * max(1, len(train) // config.batch_size)


def build(config: TrainingConfig, train: Dataset, hp=None):
    """The model to train, compiled with its recipe; for whitened_convnet it outputs logits."""
    input_shape = train.images.shape[1:]
    num_classes = len(train.class_names)
    hp = architectures.defaults(hp)
    if config.architecture == "thesis_cnn":
        return architectures.build_thesis_cnn(hp, input_shape, num_classes)
    mean, std = architectures.pixel_statistics(train.images)
    model = architectures.build_whitened_convnet(
        hp,
        input_shape,
        num_classes,
        whitening_kernel=architectures.patch_whitening_kernel(train.images, mean, std, seed=config.seed),
        mean=mean,
        std=std,
        l2=config.weight_decay,
    )
    peak = hp.Float("peak_learning_rate", 0.1, 3.0, sampling="log", default=config.peak_learning_rate)
    steps = total_steps(config, train)
    schedule = OneCycle(
        peak, steps, int(steps * config.warmup_fraction), config.start_fraction, config.end_fraction
    )
    model.compile(
        optimizer=BiasScaledSGD(
            schedule, momentum=config.momentum, nesterov=True, bias_scale=config.bias_learning_rate_scale
        ),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.label_smoothing
        ),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return model


def serving_model(config: TrainingConfig, trained: keras.Model, train: Dataset, hp=None):
    """The artifact we ship: float32 weights (portable to any CPU), probabilities out, and for
    whitened_convnet the flip-averaged prediction."""
    keras.mixed_precision.set_global_policy("float32")
    input_shape, num_classes = train.images.shape[1:], len(train.class_names)
    if config.architecture == "thesis_cnn":
        model = architectures.build_thesis_cnn(hp, input_shape, num_classes)
        model.set_weights(trained.get_weights())
        return model
    # The normalisation constants are not weights: set_weights would not carry them.
    mean, std = architectures.pixel_statistics(train.images)
    model = architectures.build_whitened_convnet(hp, input_shape, num_classes, mean=mean, std=std)
    model.set_weights(trained.get_weights())
    return architectures.with_test_time_augmentation(model, translate=config.translate_tta)


def one_hot(dataset: Dataset):
    labels = keras.ops.one_hot(dataset.labels, len(dataset.class_names)).numpy()
    return Dataset(dataset.images, labels, dataset.class_names)


def write_run_file(output: Path, config: dict, train: Dataset, validation: Dataset, model, device: str, **extra):
    """training.json: what `publish`, the report and a resumed run read back."""
    (output / "training.json").write_text(json.dumps({
        "config": config,
        "class_names": train.class_names,
        "input_shape": list(train.images.shape[1:]),
        "train_size": len(train),
        "validation_size": len(validation),
        "device": device,
        "parameters": model.count_params(),
        **extra,
    }, indent=2))  # fmt: skip


def train(config: TrainingConfig, train: Dataset, validation: Dataset, output: Path, hp=None, callbacks=()):
    """Train (resuming from `output/checkpoints` if a previous run stopped) and save the
    serving model. `callbacks` run after the checkpointing ones (progress reporting).
    Returns the serving model."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    device = configure_devices(config.mixed_precision)
    hp = architectures.defaults(hp)
    with distribution_strategy(config.strategy).scope():
        model = build(config, train, hp)
    recipe_callbacks = []
    if config.architecture != "thesis_cnn":
        # Label smoothing needs one-hot targets.
        train, validation = one_hot(train), one_hot(validation)
        steps_per_epoch = total_steps(config, train) // config.epochs
        recipe_callbacks.append(
            Lookahead(config.lookahead_from_epoch * steps_per_epoch, total_steps(config, train))
        )
    write_run_file(output, asdict(config), train, validation, model, device, hyperparameters=hp.values)
    model.fit(
        training_pipeline(train, config.batch_size, config.seed),
        validation_data=evaluation_pipeline(validation, config.batch_size),
        epochs=config.epochs,
        verbose=2,
        shuffle=False,  # the pipeline shuffles
        callbacks=[
            EpochWallTime(),
            *recipe_callbacks,
            keras.callbacks.CSVLogger(output / "history.csv", append=True),
            keras.callbacks.BackupAndRestore(output / "checkpoints"),
            *callbacks,
        ],
    )
    result = serving_model(config, model, train, hp)
    result.save(output / "model.keras")
    return result
