"""Training: data pipeline, the two recipes, resumable fit, and the trained artifact.

A run writes everything into one output folder:
  checkpoints/      per-epoch backup (model, optimizer, epoch); a rerun resumes from it
  history.csv       one row per epoch, including the wall time each epoch took
  model.keras       the serving model: raw uint8 pixels in, class probabilities out
  training.json     the configuration, class names, split and hyperparameters of the run
"""

import contextlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from mltrain import architectures
from mltrain.datasets import Dataset

ARCHITECTURES = ("whitened_convnet", "thesis_cnn")
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
LOADER_THREADS = 4  # batches are augmented ahead of the step that needs them
TRANSLATE_FRACTION = 1 / 16  # random crop: shift by up to this much of the side (2 px at 32)


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
    translate_tta: bool = (
        False  # 6 views (mirror x 1-pixel shifts) instead of 2: +0.02 points here, 3x the cost
    )
    translate_fraction: float = TRANSLATE_FRACTION
    cutout_fraction: float = 0.0  # blank a random square of this much of the side (0: none)
    teachers: list = field(
        default_factory=list
    )  # trained model.keras files to distil from (whitened_convnet only)
    distillation_weight: float = 0.9  # with teachers: their share of the loss, the labels' the rest
    hyperparameters: dict = field(default_factory=dict)

    def batches(self, dataset: "Dataset") -> "Batches":
        """The training batches of this recipe."""
        return training_pipeline(
            dataset, self.batch_size, self.seed, self.translate_fraction, self.cutout_fraction
        )


def cpu_has_bfloat16() -> bool:
    """AVX-512 BF16 or AMX: without them TensorFlow emulates bfloat16, several times slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def accelerators() -> list[str]:
    """Names of the GPUs the Keras backend computes on (TensorFlow, or JAX where a GPU machine
    has no TensorFlow)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [
            tf.config.experimental.get_device_details(gpu).get("device_name", "GPU")
            for gpu in tf.config.list_physical_devices("GPU")
        ]
    if backend == "jax":
        import jax

        return [device.device_kind for device in jax.devices() if device.platform == "gpu"]
    return []


def hardware() -> str:
    """The machine a run trains on, for its model card."""
    gpus = accelerators()
    if gpus:
        return f"{', '.join(gpus)} ({keras.backend.backend()})"
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{cpu}, {os.cpu_count()} cores (CPU only)"


def configure_devices(mixed_precision: bool | None) -> str:
    """Use every GPU when there are any; bfloat16 compute where the hardware has it."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    gpus = accelerators()
    if mixed_precision is None:
        mixed_precision = bool(gpus) or cpu_has_bfloat16()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed_precision else "float32")
    return f"{len(gpus)} GPU(s)" if gpus else "CPU"


def distribution_strategy(name: str = "auto"):
    """The tf.distribute strategy for `name`, or None for one device:
    auto          MirroredStrategy when this machine has several GPUs, else one device
    default       one device
    mirrored      MirroredStrategy over this machine's GPUs (synchronous data parallelism)
    multi-worker  MultiWorkerMirroredStrategy across machines: every machine runs the same
                  command with its own TF_CONFIG ({"cluster": ..., "task": {"type", "index"}})
    Other backends than TensorFlow train on one device."""
    if keras.backend.backend() != "tensorflow":
        if name in ("mirrored", "multi-worker"):
            raise ValueError(
                f"the {name} strategy needs the TensorFlow backend (KERAS_BACKEND=tensorflow)"
            )
        return None
    import tensorflow as tf

    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored" or (name == "auto" and len(tf.config.list_physical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return None


def strategy_scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def worker_output(output: Path) -> Path:
    """Where this process writes its run. In a multi-worker cluster (TF_CONFIG) only the chief
    writes the run folder; the other workers keep their checkpoints apart, under worker-<index>."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task", {})
    role, index = task.get("type", "chief"), task.get("index", 0)
    chief = role == "chief" or (
        role == "worker" and index == 0 and "chief" not in tf_config.get("cluster", {})
    )
    return Path(output) if chief else Path(output) / f"worker-{index}"


def augmentation_pixels(
    side: int, translate_fraction: float, cutout_fraction: float
) -> tuple[int, int]:
    """The largest shift and the cutout side, in pixels, for images of `side` pixels."""
    translate = max(1, round(side * translate_fraction)) if translate_fraction else 0
    return translate, round(side * cutout_fraction)


def augment(
    images: np.ndarray, rng: np.random.Generator, translate: int, cutout: int, fill
) -> np.ndarray:
    """A new array of `images`, each randomly shifted by up to `translate` pixels (a crop of the
    reflect-padded image), mirrored with probability 1/2, and with a random `cutout`-pixel
    square set to `fill` (the mean pixel, which the model normalises to zero)."""
    count, height, width = images.shape[:3]
    if translate:
        pad = ((0, 0), (translate, translate), (translate, translate), (0, 0))
        padded = np.pad(images, pad, mode="reflect")
        down, right = rng.integers(0, 2 * translate + 1, size=(2, count))
        rows = down[:, None, None] + np.arange(height)[None, :, None]
        cols = right[:, None, None] + np.arange(width)[None, None, :]
        images = padded[np.arange(count)[:, None, None], rows, cols]
    else:
        images = images.copy()
    mirrored = rng.random(count) < 0.5
    images[mirrored] = images[mirrored, :, ::-1]
    if cutout:
        top = rng.integers(0, height - cutout + 1, count)[:, None]
        left = rng.integers(0, width - cutout + 1, count)[:, None]
        in_rows = (np.arange(height) >= top) & (np.arange(height) < top + cutout)
        in_cols = (np.arange(width) >= left) & (np.arange(width) < left + cutout)
        images[in_rows[:, :, None] & in_cols[:, None, :]] = fill
    return images


class Batches(keras.utils.PyDataset):
    """A dataset in batches for `fit`. For training (`training=True`): shuffled anew every epoch,
    the last partial batch dropped, every image augmented (`augment`). Otherwise: in order, as
    is. Plain NumPy, so every Keras backend trains from the same pipeline."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int = 0,
        training: bool = False,
        translate_fraction: float = TRANSLATE_FRACTION,
        cutout_fraction: float = 0.0,
    ):
        super().__init__(workers=LOADER_THREADS if training else 1)
        self.images, self.labels = dataset.images, dataset.labels
        self.batch_size, self.seed, self.training = batch_size, seed, training
        self.translate, self.cutout = augmentation_pixels(
            min(self.images.shape[1:3]), translate_fraction, cutout_fraction
        )
        self.fill = (
            self.images.reshape(-1, self.images.shape[-1]).mean(axis=0).round().astype(np.uint8)
            if self.cutout
            else 0
        )
        self.epoch = 0
        self.order = self.shuffled()

    def shuffled(self) -> np.ndarray:
        if not self.training:
            return np.arange(len(self.images))
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.images))

    def __len__(self):
        if self.training:
            return max(1, len(self.images) // self.batch_size)
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images, labels = self.images[chosen], self.labels[chosen]
        if self.training:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            images = augment(images, rng, self.translate, self.cutout, self.fill)
        return images, labels

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self.shuffled()


def training_pipeline(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    translate_fraction: float = TRANSLATE_FRACTION,
    cutout_fraction: float = 0.0,
) -> Batches:
    return Batches(
        dataset,
        batch_size,
        seed,
        training=True,
        translate_fraction=translate_fraction,
        cutout_fraction=cutout_fraction,
    )


def evaluation_pipeline(dataset: Dataset, batch_size: int) -> Batches:
    return Batches(dataset, batch_size)


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
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "start": self.start,
            "end": self.end,
        }


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

    def on_epoch_begin(self, epoch, logs=None):
        # Counted here rather than read from the optimizer every step: reading the model
        # would make the JAX backend hand its state back after every step.
        self.step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step < self.start_step or self.step % self.every:
            return
        current = [v.numpy() for v in student(self.model).weights]
        if self.average is None:  # also after a resume: the average restarts from here
            self.average = current
            return
        rho = self.decay * min(self.step / self.total_steps, 1.0) ** self.power
        self.average = [rho * a + (1 - rho) * c for a, c in zip(self.average, current)]
        self.restore()

    def on_epoch_end(self, epoch, logs=None):
        if self.average is not None:
            self.restore()

    def restore(self):
        for variable, value in zip(student(self.model).weights, self.average):
            variable.assign(value)


class Distiller(keras.Model):
    """The student trained towards a frozen teacher's probabilities on the very same augmented
    images as well as towards the labels (keras-io's knowledge distillation, at temperature 1:
    the teacher's served probabilities are the soft targets; an ensemble's mean, for several
    teachers). Only the student is served."""

    def __init__(self, student: keras.Model, teacher: keras.Model, weight: float, **kwargs):
        super().__init__(**kwargs)
        self.student, self.teacher, self.weight = student, teacher, weight
        self.teacher.trainable = False

    def call(self, images, training=False):
        return self.student(images, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # Cross-entropy is linear in its targets, so the compiled loss (label smoothing and the
        # student's weight decay included) on the mixed targets is the weighted sum of both.
        soft = keras.ops.cast(keras.ops.stop_gradient(self.teacher(x, training=False)), y.dtype)
        targets = (1 - self.weight) * y + self.weight * soft
        return super().compute_loss(x, targets, y_pred, sample_weight, training=training)


def load_teacher(path: Path, train: Dataset) -> keras.Model:
    """A trained serving model for the same classes, in the same order, as `train`'s."""
    run_file = path.parent / "training.json"
    if not path.is_file() or not run_file.is_file():
        raise ValueError(f"no trained model with its training.json at {path}")
    if json.loads(run_file.read_text())["class_names"] != train.class_names:
        raise ValueError(f"the teacher {path} was trained on other classes (or in another order)")
    return keras.saving.load_model(path, compile=False)


def load_teachers(paths: list, train: Dataset) -> keras.Model:
    """The teacher of `paths`: one trained model, or the ensemble of several."""
    teachers = [load_teacher(Path(path), train) for path in paths]
    return teachers[0] if len(teachers) == 1 else Ensemble(teachers)


class Ensemble(keras.Model):
    """The mean of its members' probabilities: a teacher made of independently trained networks,
    which usually beats each of them, where in the shipped model's family a wider network did
    not (its card: width 88 no better than 80)."""

    def __init__(self, members: list, **kwargs):
        super().__init__(**kwargs)
        self.members = members
        self.built = True  # it holds no weights of its own, and its members are trained models

    def call(self, images, training=False):
        return keras.ops.mean(
            keras.ops.stack([member(images, training=training) for member in self.members]), axis=0
        )


def student(model: keras.Model) -> keras.Model:
    """The model being trained: the student of a Distiller, else the model itself."""
    return model.student if isinstance(model, Distiller) else model


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
        if config.teachers:
            raise ValueError("distillation (a teacher) is for the whitened_convnet recipe")
        return architectures.build_thesis_cnn(hp, input_shape, num_classes)
    mean, std = architectures.pixel_statistics(train.images)
    model = architectures.build_whitened_convnet(
        hp,
        input_shape,
        num_classes,
        whitening_kernel=architectures.patch_whitening_kernel(
            train.images, mean, std, seed=config.seed
        ),
        mean=mean,
        std=std,
        l2=config.weight_decay,
    )
    if config.teachers:
        model = Distiller(model, load_teachers(config.teachers, train), config.distillation_weight)
        model(train.images[:1])  # built before fit, as checkpoints need
    peak = hp.Float(
        "peak_learning_rate", 0.1, 3.0, sampling="log", default=config.peak_learning_rate
    )
    steps = total_steps(config, train)
    schedule = OneCycle(
        peak, steps, int(steps * config.warmup_fraction), config.start_fraction, config.end_fraction
    )
    model.compile(
        optimizer=BiasScaledSGD(
            schedule,
            momentum=config.momentum,
            nesterov=True,
            bias_scale=config.bias_learning_rate_scale,
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
    labels = np.eye(len(dataset.class_names), dtype=np.float32)[dataset.labels]
    return Dataset(dataset.images, labels, dataset.class_names)


def write_run_file(
    output: Path, config: dict, train: Dataset, validation: Dataset, model, device: str, **extra
):
    """training.json: what `publish`, the report and a resumed run read back."""
    (output / "training.json").write_text(
        json.dumps(
            {
                "config": config,
                "class_names": train.class_names,
                "input_shape": list(train.images.shape[1:]),
                "train_size": len(train),
                "validation_size": len(validation),
                "device": device,
                "hardware": hardware(),
                "parameters": model.count_params(),
                **extra,
            },
            indent=2,
        )
    )


def train(
    config: TrainingConfig, train: Dataset, validation: Dataset, output: Path, hp=None, callbacks=()
):
    """Train (resuming from `output/checkpoints` if a previous run stopped) and save the
    serving model. `callbacks` run after the checkpointing ones (progress reporting).
    Returns the serving model."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    device = configure_devices(config.mixed_precision)
    try:
        hp = architectures.defaults(hp)
        with strategy_scope(distribution_strategy(config.strategy)):
            model = build(config, train, hp)
        recipe_callbacks = []
        if config.architecture != "thesis_cnn":
            # Label smoothing needs one-hot targets.
            train, validation = one_hot(train), one_hot(validation)
            steps_per_epoch = total_steps(config, train) // config.epochs
            recipe_callbacks.append(
                Lookahead(config.lookahead_from_epoch * steps_per_epoch, total_steps(config, train))
            )
        write_run_file(
            output,
            asdict(config),
            train,
            validation,
            student(model),
            device,
            hyperparameters=hp.values,
        )
        model.fit(
            config.batches(train),
            validation_data=evaluation_pipeline(validation, config.batch_size),
            epochs=config.epochs,
            verbose=2,
            callbacks=[
                EpochWallTime(),
                *recipe_callbacks,
                keras.callbacks.CSVLogger(output / "history.csv", append=True),
                keras.callbacks.BackupAndRestore(output / "checkpoints"),
                *callbacks,
            ],
        )
    finally:
        # Whatever stopped the run, this process goes on in float32 (the serving model, a next run).
        keras.mixed_precision.set_global_policy("float32")
    result = serving_model(config, student(model), train, hp)
    result.save(output / "model.keras")
    return result
