"""Inference speed of a model file (default: the shipped model) at batch 1, 8, 32 and 256:
Keras `model.predict` (the thesis app's path, the baseline), a direct Keras call (the workers'
first path), LiteRT fp32 converted from the same file (INFERENCE_RUNTIME=litert) and LiteRT
with int8 weights (the workers' default path, INFERENCE_RUNTIME=litert-int8, served only when
the model's report recorded that this int8 copy passes the agreement and accuracy limits), with each path's top-1
agreement with the baseline and accuracy on validation images. Prints a table and writes
bench/results/inference.md.

    .venv/bin/python bench/inference.py [--model PATH] [--seconds 3]
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tables import markdown_table, publish

ROOT = Path(__file__).resolve().parent.parent
BATCHES = (1, 8, 32, 256)
AGREEMENT_IMAGES = 1000
THESIS_FLOPS = 0.3076e9  # the thesis CNN, counted the same way


def timed_calls(call, seconds: float, minimum: int = 10) -> list[float]:
    for _ in range(3):
        call()  # warm-up: tracing, allocation
    times, started = [], time.perf_counter()
    while len(times) < minimum or time.perf_counter() - started < seconds:
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return times


def flops_per_image(model) -> float:
    """Multiply-adds x 2 of the convolutions and dense layers, counting a nested model once per
    call (the test-time-augmented model calls its network once per view)."""
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += len(layer._inbound_nodes) * flops_per_image(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, channels_out = layer.output.shape
            total += (
                2
                * height
                * width
                * channels_out
                * np.prod(layer.kernel_size)
                * layer.input.shape[-1]
            )
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * np.prod(layer.kernel.shape)
    return float(total)


def validation_images(run: dict, count: int):
    from mltrain.data_sources import load_dataset
    from mltrain.datasets import stratified_split

    dataset = load_dataset("shared-cifar10", tuple(run["input_shape"][:2]))
    _, validation = stratified_split(
        dataset.labels, run["config"]["validation_fraction"], run["config"]["seed"]
    )
    chosen = np.random.default_rng(0).choice(validation, min(count, len(validation)), replace=False)
    return dataset.images[chosen], dataset.labels[chosen]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=ROOT / "mltrain" / "shipped" / "cifar10" / "model.keras"
    )
    parser.add_argument("--seconds", type=float, default=3, help="timing budget per (path, batch)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageclass.settings")
    import django

    django.setup()
    import keras

    from classifier.runtime import KerasRunner, litert_runner, runner_for
    from mltrain import architectures

    run = json.loads((args.model.parent / "training.json").read_text())
    model = keras.saving.load_model(args.model, compile=False)
    images, labels = validation_images(run, AGREEMENT_IMAGES)
    flops = flops_per_image(model)
    scratch = Path(tempfile.mkdtemp()) / "model.keras"  # the conversion is cached beside its input
    shutil.copy(args.model, scratch)
    paths = {
        "Keras model.predict (baseline)": lambda x: model.predict(x, batch_size=len(x), verbose=0),
        "Keras call": KerasRunner(model),
        "LiteRT fp32": litert_runner(scratch),
    }
    metrics = json.loads((args.model.parent / "metrics.json").read_text())
    int8 = runner_for(scratch, "litert-int8", metrics.get("int8"))
    if getattr(int8, "path", None) == scratch.with_suffix(".int8.tflite"):
        paths["LiteRT int8 weights (worker path)"] = int8
    else:
        print("int8 was refused for this model (the log says why): workers serve it in fp32")
    # The performance issue's figures come from another CPU: the thesis-size network through
    # the same runtime puts them on this machine's scale.
    thesis = scratch.with_name("thesis.keras")
    architectures.build_thesis_cnn().save(thesis)
    reference = {"thesis CNN, random weights, LiteRT (machine reference)": litert_runner(thesis)}
    rows = []
    for batch in BATCHES:
        x = np.resize(images, (batch, *images.shape[1:]))
        baseline_median = None
        for name, path in {**paths, **reference}.items():
            times = timed_calls(lambda: path(x), args.seconds)
            median = float(np.median(times))
            baseline_median = baseline_median or median
            rows.append(
                {
                    "batch": batch,
                    "path": name,
                    "images/s": round(batch / median, 1),
                    "median ms": round(median * 1000, 2),
                    "p99 ms": round(float(np.percentile(times, 99)) * 1000, 2),
                    "speed-up": "-" if name in reference else f"{baseline_median / median:.2f}x",
                }
            )
    top1 = {name: np.argmax(path(images), axis=1) for name, path in paths.items()}
    baseline = top1.pop("Keras model.predict (baseline)")
    report = "\n".join(
        [
            f"# Inference: {args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} CPUs, "
            f"Keras {keras.__version__}; medians over >= {args.seconds:g} s per row",
            "",
            f"{flops / 1e9:.3f} GFLOP per image ({flops / THESIS_FLOPS:.2f}x the thesis network's 0.31), so the "
            f"performance issue's targets scale to: batch 1 <= {flops / THESIS_FLOPS:.2f} ms, batch 256 >= "
            f"{1300 * THESIS_FLOPS / flops:.0f} images/s in fp32 ({4000 * THESIS_FLOPS / flops:.0f} with int8/bf16). "
            "Those targets were set on a CPU where the thesis-size network ran at 1,350 images/s through "
            "LiteRT; the machine-reference rows give this CPU's figure.",
            "",
            markdown_table(rows),
            "",
            f"Top-1 on {len(images)} validation images: model.predict accuracy {np.mean(baseline == labels):.2%}; "
            + "; ".join(
                f"{name} agrees {np.mean(found == baseline):.2%}, accuracy {np.mean(found == labels):.2%}"
                for name, found in top1.items()
            )
            + ".",
        ]
    )
    publish("inference", report)


if __name__ == "__main__":
    main()
