"""The runtimes a worker can call a model through.

The Keras artifact in the registry is the source of truth. For speed the worker converts it
once to LiteRT (TensorFlow Lite with the XNNPACK CPU kernels) and caches the converted file
beside the verified local copy, keyed by the artifact's sha256: it is derived, never edited.
Keras' `model(...)` stays available (INFERENCE_RUNTIME=keras), as the reference path and for
anything LiteRT cannot convert.

INFERENCE_RUNTIME=litert-int8 converts with int8 weights (dynamic-range quantization: XNNPACK
then runs the convolutions in int8), about 3x faster, but only for a model whose training
report checked that very int8 copy on its validation images (`int8_verdict`, recorded in the
version's metrics): top-1 agreement with Keras at least QUANTIZED_MIN_AGREEMENT and accuracy at
most QUANTIZED_MAX_ACCURACY_DROP lower. The conversion is deterministic on one machine but not
across CPUs (the converter folds constants with the host's float kernels: the shipped model's
report, written on one host, recorded a copy that another host's conversion does not match
byte for byte, and the workers there served fp32, 7x slower at batch 1), so the worker serves
its copy when it is byte for byte the one the report measured or, failing that, when it
answers the report's probe images as that copy did, up to rounding. Otherwise it serves fp32.

TensorFlow, Keras and LiteRT are imported inside the functions that use them: a Celery worker
imports this module in its parent process, and TensorFlow must load only in the processes
forked from it (its state does not survive a fork).
"""

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
MAX_BATCH = 64  # larger inputs run in chunks of this size
QUANTIZED_MIN_AGREEMENT = 0.995
QUANTIZED_MAX_ACCURACY_DROP = 0.003
PROBE_IMAGES = 128
PROBE_SEED = 0
# Mean absolute difference of probabilities on the probe images between two int8 copies that
# differ only by rounding: measured 0.0003 on the shipped model (an int8 copy against Keras
# itself: 0.0026), so a copy within 0.001 is the checked quantization.
PROBE_TOLERANCE = 0.001


class QuantizationRefused(Exception):
    """The int8 conversion does not answer as the Keras model does (the reason says how)."""


def bucket_size(size: int) -> int:
    """The interpreter size for a batch of `size`: the next power of two, so a handful of
    interpreters cover every batch (resizing one costs tens of milliseconds)."""
    return 1 << max(size - 1, 0).bit_length()


def in_chunks(predict, images: np.ndarray) -> np.ndarray:
    """float64 probabilities of `images`, predicted MAX_BATCH at a time."""
    outputs = [
        np.asarray(predict(images[i : i + MAX_BATCH]), dtype=np.float64)
        for i in range(0, len(images), MAX_BATCH)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, 0))


class KerasRunner:
    """Class probabilities through the Keras model itself."""

    def __init__(self, model):
        self.model = model

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return in_chunks(lambda chunk: self.model(chunk, training=False), images)


class LiteRTRunner:
    """Class probabilities through a LiteRT flatbuffer, one interpreter per batch bucket."""

    def __init__(self, path: Path, threads: int | None = None):
        self.path, self.threads = Path(path), threads or min(os.cpu_count() or 1, 4)
        self.interpreters: dict[int, tuple] = {}
        self.lock = threading.Lock()  # an interpreter runs one call at a time
        interpreter, _, _ = self.bucket(
            1
        )  # fail here, at load time, if the file is not a usable model
        self.input_shape = tuple(interpreter.get_input_details()[0]["shape"][1:])  # one image's

    def bucket(self, size: int):
        from ai_edge_litert.interpreter import Interpreter

        if size not in self.interpreters:
            interpreter = Interpreter(str(self.path), num_threads=self.threads)
            source = interpreter.get_input_details()[0]
            interpreter.resize_tensor_input(source["index"], [size, *source["shape"][1:]])
            interpreter.allocate_tensors()
            target = interpreter.get_output_details()[0]["index"]
            self.interpreters[size] = (interpreter, source["index"], target)
        return self.interpreters[size]

    def predict(self, chunk: np.ndarray) -> np.ndarray:
        """Probabilities for at most MAX_BATCH images, zero-padded up to the interpreter's size."""
        size = bucket_size(len(chunk))
        interpreter, source, target = self.bucket(size)
        padding = np.zeros((size - len(chunk), *chunk.shape[1:]), np.uint8)
        interpreter.set_tensor(
            source, np.ascontiguousarray(np.concatenate([chunk, padding]), dtype=np.uint8)
        )
        interpreter.invoke()
        return interpreter.get_tensor(target)[: len(chunk)].copy()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        with self.lock:
            return in_chunks(self.predict, images)


def convert_to_litert(model, destination: Path, quantize: bool = False) -> Path:
    """Write `model` (a loaded Keras model) as a LiteRT flatbuffer at `destination`, atomically,
    so concurrent workers never read half a file. The input keeps a dynamic batch size. With
    `quantize`, the weights are stored as int8 (dynamic-range quantization)."""
    import tensorflow as tf

    destination = Path(destination)
    model(
        np.zeros((1, *model.input_shape[1:]), dtype=model.inputs[0].dtype)
    )  # the exporter needs a built call
    partial = destination.with_name(f"{destination.stem}.{os.getpid()}.part.tflite")
    options = {"optimizations": [tf.lite.Optimize.DEFAULT]} if quantize else {}
    model.export(str(partial), format="litert", verbose=False, **options)
    partial.replace(destination)
    return destination


def quantization_verdict(expected: np.ndarray, actual: np.ndarray, labels: np.ndarray) -> dict:
    """How the quantized probabilities `actual` compare with the model's `expected` on labelled
    images, and whether that is within the limits."""
    agreement = float((expected.argmax(axis=1) == actual.argmax(axis=1)).mean())
    drop = float(
        (expected.argmax(axis=1) == labels).mean() - (actual.argmax(axis=1) == labels).mean()
    )
    return {
        "images": len(labels),
        "agreement": agreement,
        "accuracy_drop": drop,
        "passed": agreement >= QUANTIZED_MIN_AGREEMENT and drop <= QUANTIZED_MAX_ACCURACY_DROP,
        "reason": f"int8 agrees on {agreement:.2%} of {len(labels)} validation images and loses "
        f"{drop * 100:.2f} accuracy points (limits {QUANTIZED_MIN_AGREEMENT:.1%}, {QUANTIZED_MAX_ACCURACY_DROP * 100:.1f})",
    }


def probe_images(input_shape) -> np.ndarray:
    """Fixed noise images, the same on every machine: how an int8 copy answers them tells
    whether it is, up to rounding, the copy a report checked."""
    return np.random.default_rng(PROBE_SEED).integers(
        0, 256, (PROBE_IMAGES, *input_shape), dtype=np.uint8
    )


def probe_mismatch(runner: LiteRTRunner, probe: list | None) -> str:
    """Why `runner` does not answer the probe images as the recorded `probe` probabilities
    say; "" when it does. (Not top-1 agreement: on noise many answers are near ties, which
    rounding alone can flip.)"""
    if not probe:
        return "this int8 conversion is not the one its report checked, and the report has no probe answers to compare with"
    expected = np.asarray(probe)
    difference = float(np.abs(expected - runner(probe_images(runner.input_shape))).mean())
    if difference <= PROBE_TOLERANCE:
        return ""
    return (
        f"this int8 conversion is not the one its report checked: on {len(expected)} probe images its "
        f"probabilities are {difference:.4f} apart from that copy's (limit {PROBE_TOLERANCE})"
    )


def int8_verdict(model, images: np.ndarray, labels: np.ndarray, reference=None) -> dict:
    """Convert `model` (a loaded Keras model) with int8 weights and measure the copy against it
    on labelled images: the verdict a training report records, with the copy's sha256 and its
    answers on the probe images. `reference`: the Keras model's probabilities on `images`,
    where the caller has them already (they cost as much as the rest)."""
    import keras

    if keras.backend.backend() != "tensorflow":  # a GPU machine training with JAX, say
        return {
            "passed": False,
            "reason": "not checked: the LiteRT conversion needs the TensorFlow backend "
            "(`manage.py report RUN` where TensorFlow is installed writes the verdict)",
        }
    with tempfile.TemporaryDirectory() as scratch:
        quantized = convert_to_litert(model, Path(scratch) / "int8.tflite", quantize=True)
        runner = LiteRTRunner(quantized)
        if reference is None:
            reference = KerasRunner(model)(images)
        verdict = quantization_verdict(reference, runner(images), labels)
        probe = np.round(runner(probe_images(runner.input_shape)), 5).tolist()
        return {
            **verdict,
            "sha256": hashlib.sha256(quantized.read_bytes()).hexdigest(),
            "probe": probe,
        }


def quantized_runner(keras_path: Path, verdict: dict | None) -> LiteRTRunner:
    """The int8 LiteRT runner for the artifact, if its verdict passed; converted on first use."""
    import keras

    if not verdict:
        raise QuantizationRefused("its report has no int8 verdict")
    if not verdict["passed"]:
        raise QuantizationRefused(verdict["reason"])
    quantized = keras_path.with_suffix(".int8.tflite")
    if not quantized.exists():
        convert_to_litert(
            keras.saving.load_model(keras_path, compile=False), quantized, quantize=True
        )
    runner = LiteRTRunner(quantized)
    if hashlib.sha256(quantized.read_bytes()).hexdigest() != verdict["sha256"]:
        mismatch = probe_mismatch(runner, verdict.get("probe"))
        if mismatch:
            quantized.unlink()
            raise QuantizationRefused(mismatch)
        log.info(
            "int8 copy of %s: not byte for byte the one its report checked, answers its probe images alike",
            keras_path.name,
        )
    return runner


def litert_runner(keras_path: Path) -> LiteRTRunner:
    """The LiteRT runner for the artifact, converting it on first use; a cached conversion
    that does not load (a crash mid-write on another filesystem, a LiteRT upgrade) is rebuilt."""
    import keras

    litert_path = keras_path.with_suffix(".tflite")
    if litert_path.exists():
        try:
            return LiteRTRunner(litert_path)
        except Exception as exc:
            log.warning("rebuilding the cached LiteRT model %s: %s", litert_path.name, exc)
    convert_to_litert(keras.saving.load_model(keras_path, compile=False), litert_path)
    return LiteRTRunner(litert_path)


def runner_for(keras_path: Path, runtime: str, verdict: dict | None = None):
    """A runner (uint8 images in, float64 probabilities out) for the Keras artifact at
    `keras_path`. int8 (given the report's `int8_verdict`) falls back to fp32 LiteRT when
    refused, LiteRT to Keras (logged) when the model cannot be converted."""
    import keras

    keras_path = Path(keras_path)
    if runtime in ("litert", "litert-int8"):
        try:
            if runtime == "litert-int8":
                try:
                    return quantized_runner(keras_path, verdict)
                except QuantizationRefused as exc:
                    log.warning("serving %s in fp32: %s", keras_path.name, exc)
            return litert_runner(keras_path)
        except Exception as exc:  # an operation LiteRT lacks, the package missing: still serve
            log.warning(
                "LiteRT unavailable for %s, serving through Keras: %s", keras_path.name, exc
            )
    return KerasRunner(keras.saving.load_model(keras_path, compile=False))
