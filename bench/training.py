"""Training speed: images/s of one training epoch for the thesis CNN (its recipe: Adam, batch
32) and for the shipped model's recipe (read from its training.json: network, batch,
augmentation), on the same images, under the precision `train` would pick on this machine
(bfloat16 where the CPU computes it).

    .venv/bin/python bench/training.py [--images 10240]
"""

import argparse
import json
import os
import platform
import time

import app  # noqa: F401  (puts the project on sys.path)
import numpy as np
from tables import markdown_table, publish


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=10240, help="images in the timed epoch")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageclass.settings")
    import django

    django.setup()
    import keras
    from django.conf import settings

    from mltrain.data_sources import load_dataset
    from mltrain.keras.architectures import fixed
    from mltrain.keras.datasets import stratified_sample
    from mltrain.keras.hardware import configure_devices
    from mltrain.keras.training import TrainingConfig, build, one_hot, total_steps

    dataset = load_dataset("shared-cifar10", (32, 32))
    chosen = stratified_sample(np.arange(len(dataset)), dataset.labels, args.images, seed=0)
    images = dataset.subset(chosen)
    shipped = json.loads((settings.SHIPPED_MODEL_DIR / "training.json").read_text())
    recipes = (
        ("thesis", TrainingConfig(architecture="thesis_cnn", batch_size=32, epochs=2), {}),
        (
            "shipped model",
            TrainingConfig(**{**shipped["config"], "epochs": 2}),
            shipped["config"]["hyperparameters"],
        ),
    )
    rows = []
    for recipe, config, hyperparameters in recipes:
        device = configure_devices(
            None
        )  # again for each model: clear_session resets the precision policy
        batch_size = config.batch_size
        data = images if config.architecture == "thesis_cnn" else one_hot(images)
        model = build(config, data, fixed(hyperparameters))
        pipeline = config.batches(data)
        model.fit(
            pipeline, epochs=1, steps_per_epoch=3, verbose=0
        )  # warm-up: tracing and allocation
        started = time.perf_counter()
        model.fit(pipeline, epochs=1, verbose=0)
        seconds = time.perf_counter() - started
        trained = total_steps(config, data) // config.epochs * batch_size
        rows.append(
            {
                "recipe": recipe,
                "network": config.architecture,
                "hyperparameters": json.dumps(hyperparameters) if hyperparameters else "defaults",
                "batch": batch_size,
                "precision": keras.mixed_precision.global_policy().name,
                "parameters": f"{model.count_params():,}",
                "images/s": round(trained / seconds, 1),
                "45k-image epoch s": round(45000 * seconds / trained, 1),
            }
        )
        keras.backend.clear_session()
    rows[1]["vs thesis"] = f"{rows[1]['images/s'] / rows[0]['images/s']:.2f}x"
    rows[0]["vs thesis"] = "1.00x"
    report = "\n\n".join(
        [
            "# Training speed",
            f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} CPUs, {device}; "
            f"one epoch of {len(images)} CIFAR-10 images, the precision `train` picks on this machine.",
            markdown_table(rows),
        ]
    )
    publish("training", report)


if __name__ == "__main__":
    main()
