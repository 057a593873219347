"""Portable copies of a model version: TFLite (LiteRT) and ONNX, built from the Keras artifact
(the source of truth) and checked against it before they are offered for download.

Keras, tf2onnx and onnxruntime are imported inside the functions: the training worker imports
this module for every export task, and those load in its forked processes only, when an
export is made."""

import functools
import hashlib
import tempfile
from pathlib import Path

import numpy as np
from django.core.files import File
from PIL import Image

from classifier.models import models_storage
from classifier.serving.inference import local_artifact
from classifier.serving.runtime import LiteRTRunner, convert_to_litert

FORMATS = {"tflite": "model.tflite", "onnx": "model.onnx"}
MAX_PROBABILITY_DIFFERENCE = 1e-3  # beyond this an export does not compute the same function
SAMPLE_IMAGES = 32


@functools.cache  # a converter is registered once per process
def register_gelu():
    """tf2onnx has no converter for LiteRT's GELU, which Keras' exact GELU becomes: write it as
    x (1 + erf(x / sqrt 2)) / 2 (ONNX has Erf since opset 9)."""
    from tf2onnx import utils
    from tf2onnx.handler import tfl_op

    @tfl_op(["TFL_GELU"])
    class Gelu:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            utils.make_sure(
                not node.get_attr_value("approximate", 0), "tanh-approximated GELU in %s", node.name
            )
            x, outputs = node.input[0], node.output
            dtype, shape = ctx.get_dtype(outputs[0]), ctx.get_shape(outputs[0])
            numpy_dtype = utils.map_onnx_to_numpy_type(dtype)

            def constant(value):
                return ctx.make_const(utils.make_name("gelu"), np.array(value, numpy_dtype)).output[
                    0
                ]

            ctx.remove_node(node.name)
            half_x = ctx.make_node("Mul", [x, constant(0.5)]).output[0]
            erf = ctx.make_node(
                "Erf", [ctx.make_node("Mul", [x, constant(1 / np.sqrt(2))]).output[0]]
            ).output[0]
            one_plus_erf = ctx.make_node("Add", [erf, constant(1.0)]).output[0]
            ctx.make_node(
                "Mul", [half_x, one_plus_erf], outputs=outputs, shapes=[shape], dtypes=[dtype]
            )


def export_onnx(model, destination: Path) -> Path:
    """ONNX through the LiteRT conversion, which folds the model's constants (tf2onnx's own
    Keras path turns the normalisation constants into extra graph inputs)."""
    import tf2onnx

    register_gelu()
    litert = convert_to_litert(model, destination.with_suffix(".tflite"))
    tf2onnx.convert.from_tflite(str(litert), output_path=str(destination))
    litert.unlink()
    return destination


def onnx_predict(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def litert_predict(path: Path, images: np.ndarray) -> np.ndarray:
    return LiteRTRunner(path)(images)


def sample_images(input_shape, seed: int = 0) -> np.ndarray:
    """Smooth random images (noise upsampled) with a dark and a bright one: inputs that drive
    the network the way photos do, unlike white noise."""
    rng = np.random.default_rng(seed)
    height, width = input_shape[:2]
    images = [
        np.asarray(
            Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize(
                (width, height), Image.Resampling.BICUBIC
            )
        )
        for _ in range(SAMPLE_IMAGES - 2)
    ]
    images += [np.zeros((height, width, 3), np.uint8), np.full((height, width, 3), 255, np.uint8)]
    return np.stack(images)


def build(keras_path: Path, fmt: str, destination: Path) -> dict:
    """Convert the artifact into `destination` and compare it with Keras on sample images.
    Returns {sha256, agreement, max_difference}; raises ValueError when they disagree."""
    import keras

    model = keras.saving.load_model(keras_path, compile=False)
    if fmt == "tflite":
        convert_to_litert(model, destination)
        predict = litert_predict
    elif fmt == "onnx":
        export_onnx(model, destination)
        predict = onnx_predict
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    images = sample_images(model.input_shape[1:])
    expected = np.asarray(model(images, training=False), dtype=np.float64)
    actual = np.asarray(predict(destination, images), dtype=np.float64)
    difference = float(np.abs(expected - actual).max())
    agreement = float((expected.argmax(axis=1) == actual.argmax(axis=1)).mean())
    if difference > MAX_PROBABILITY_DIFFERENCE:
        raise ValueError(
            f"the {fmt} export differs from the Keras model by up to {difference:.2g} in probability"
        )
    return {
        "sha256": hashlib.sha256(destination.read_bytes()).hexdigest(),
        "agreement": agreement,
        "max_difference": difference,
        "sample_images": len(images),
    }


def export_version(version, fmt: str) -> dict:
    """Build the version's `fmt` export and store it beside the artifact; returns its record."""
    with tempfile.TemporaryDirectory() as scratch:
        destination = Path(scratch) / FORMATS[fmt]
        record = build(local_artifact(version), fmt, destination)
        prefix = version.artifact_key.rsplit("/", 1)[0]
        with destination.open("rb") as f:
            record["key"] = models_storage().save(f"{prefix}/exports/{FORMATS[fmt]}", File(f))
    return record
