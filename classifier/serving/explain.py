"""Grad-CAM explanations: where in the image the model saw the class it chose.

Worker-side only. Keras, TensorFlow and matplotlib are imported inside the functions, as in
`runtime`: TensorFlow loads only in the worker's forked processes. Grad-CAM (Selvaraju et al., 2017) weighs the channels of a
convolutional feature map by the gradient of the class score with respect to them, keeps the
positive evidence and upsamples it onto the image. It needs the Keras model itself (the
LiteRT runtime has no gradients), loaded once per process beside the serving runner.
"""

import threading

import numpy as np
from PIL import Image

from classifier.serving.inference import local_artifact

OVERLAY_SIDE = 512  # the overlay's longer side
OVERLAY_OPACITY = 0.45
MIN_MAP_SIDE = 6  # coarser maps than this say little about where: use an earlier one
_models: dict = {}  # artifact sha256 -> (gradient model, conv layer name); one entry
_lock = threading.Lock()


def network_of(model):
    """The network to explain: the model itself, or the one inside a test-time-augmentation
    wrapper (which calls it on the image and its mirror image)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if nested else model


def feature_layer(network):
    """The last spatial feature map at least MIN_MAP_SIDE wide, else the last one."""
    spatial = [layer for layer in network.layers[1:] if len(layer.output.shape) == 4]
    if not spatial:
        raise ValueError(f"{network.name} has no spatial feature map to explain")
    wide = [layer for layer in spatial if min(layer.output.shape[1:3]) >= MIN_MAP_SIDE]
    return (wide or spatial)[-1]


def forget():
    """Drop the gradient model, as a new worker process starts."""
    with _lock:
        _models.clear()


def gradient_model(version):
    """(model returning [feature map, class scores], layer name), cached for the version."""
    import keras

    with _lock:
        key = version.artifact_sha256
        if key not in _models:
            network = network_of(keras.saving.load_model(local_artifact(version), compile=False))
            layer = feature_layer(network)
            _models.clear()
            _models[key] = (
                keras.Model(network.inputs[0], [layer.output, network.output]),
                layer.name,
            )
        return _models[key]


def class_activation_map(model, pixels: np.ndarray, class_index: int) -> np.ndarray:
    """Grad-CAM of `class_index` for one (height, width, 3) uint8 image, in [0, 1] at the
    feature map's resolution."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        features, scores = model(pixels[None], training=False)
        score = scores[:, class_index]
    gradients = tape.gradient(score, features)[0]
    weights = tf.reduce_mean(gradients, axis=(0, 1))
    cam = tf.nn.relu(tf.reduce_sum(features[0] * weights, axis=-1)).numpy()
    peak = cam.max()
    return cam / peak if peak > 0 else cam


def heat_colours(cam: np.ndarray) -> np.ndarray:
    """RGB uint8 colours for values in [0, 1]: dark blue through red to yellow."""
    from matplotlib import colormaps

    return (colormaps["inferno"](cam)[..., :3] * 255).astype(np.uint8)


def overlay(image: Image.Image, cam: np.ndarray) -> Image.Image:
    """The map, smoothly upsampled to the image (as the model saw it: the whole image,
    resized), blended over a copy of the image at most OVERLAY_SIDE on its longer side."""
    base = image.convert("RGB")
    base.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE), Image.Resampling.LANCZOS)
    heat = Image.fromarray((cam * 255).astype(np.uint8)).resize(base.size, Image.Resampling.BICUBIC)
    coloured = Image.fromarray(heat_colours(np.asarray(heat) / 255.0))
    return Image.blend(base, coloured, OVERLAY_OPACITY)


def explain(version, image: Image.Image, pixels: np.ndarray, label: str) -> Image.Image:
    """The Grad-CAM overlay of `label` (one of the version's classes) on `image`."""
    model, _ = gradient_model(version)
    cam = class_activation_map(model, pixels, list(version.class_names).index(label))
    return overlay(image, cam)
