"""The machine a run trains on: its GPUs, bfloat16 support, the distribution strategy, and
which process of a multi-worker cluster writes the run.

TensorFlow and JAX are imported inside the functions, under their own Keras backend only: a
machine may have either."""

import contextlib
import json
import os
import platform
from pathlib import Path

import keras


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
