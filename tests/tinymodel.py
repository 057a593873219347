"""A tiny untrained model saved as a training run folder, for registry and worker tests."""

import json
from pathlib import Path

from mltrain.keras import architectures

CLASSES = ["blue", "green", "red"]


def make_run_dir(path: Path, class_names=CLASSES, width=8) -> Path:
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hp.Fixed("width", width)
    logits = architectures.build_whitened_convnet(hp, num_classes=len(class_names))
    path.mkdir(parents=True, exist_ok=True)
    architectures.with_test_time_augmentation(logits).save(path / "model.keras")
    (path / "training.json").write_text(
        json.dumps(
            {
                "config": {
                    "architecture": "whitened_convnet",
                    "batch_size": 8,
                    "validation_fraction": 0.25,
                    "seed": 0,
                },
                "recipe": "Untrained: random weights.",
                "class_names": list(class_names),
                "input_shape": [32, 32, 3],
                "train_size": 0,
                "validation_size": 0,
                "device": "CPU",
                "parameters": 0,
            }
        )
    )
    (path / "metrics.json").write_text(json.dumps({"validation": {"accuracy": 0.5}, "epochs": 1}))
    return path
