"""k-shot transfer learning: accuracy on held-out images after training on k images per class
(k = 5, 10, 20, 100), for three starting points side by side, with their wall times:

- EfficientNet-Lite0's ImageNet features: `train_transfer`'s first phase (the head on features
  computed once per image and its mirror), at --lite-size px;
- the shipped CIFAR-10 network as the backbone: the same phase, at its own 32 px;
- from scratch: the prototype's network (`thesis_cnn`) and recipe from random weights.

The images: no package ships enough labelled real photos, so these are CIFAR-10 training images
(../shared) that the shipped network never saw, its validation split: 200 per class held out,
the k per class drawn from the other 300. The shipped network learnt these ten classes from
other images, so its column is the best case for it, not what it gives on new classes.

    .venv/bin/python bench/transfer.py [--shots 5 10 20 100] [--draws 2]
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tables import markdown_table, publish

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "mltrain" / "shipped" / "cifar10"
HELD_OUT_PER_CLASS = 200
HEAD_EPOCHS = 40  # fixed: no early stopping on the held-out images
BATCH = 16
# From scratch: 10 epochs over the k-shot set repeated to at least this many images (with fresh
# augmentation each time): a few hundred steps leave batch-norm's running statistics near their
# initial values, and the network answers at chance. It costs minutes per run where the
# transfer rows cost seconds, so it runs on the first draw only.
SCRATCH_EPOCHS, SCRATCH_EPOCH_IMAGES = 10, 1000


def shipped_validation_split():
    """The shipped network's validation images (32 px), split into held-out and k-shot pool."""
    from mltrain.data_sources import load_dataset
    from mltrain.keras.datasets import stratified_split

    run = json.loads((SHIPPED / "training.json").read_text())
    dataset = load_dataset("shared-cifar10", (32, 32))
    _, unseen = stratified_split(
        dataset.labels, run["config"]["validation_fraction"], run["config"]["seed"]
    )
    unseen = dataset.subset(unseen)
    rng = np.random.default_rng(0)
    held_out, pool = [], []
    for label in range(len(unseen.class_names)):
        members = rng.permutation(np.flatnonzero(unseen.labels == label))
        held_out += list(members[:HELD_OUT_PER_CLASS])
        pool += list(members[HELD_OUT_PER_CLASS:])
    return unseen.subset(np.array(held_out)), unseen.subset(np.array(pool))


def draw(pool, k: int, seed: int):
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(pool.labels == label), k, replace=False)
        for label in range(len(pool.class_names))
    ]
    return pool.subset(np.concatenate(chosen))


def resized(dataset, side: int):
    """The images as serving and training see them at `side` px (the same resize)."""
    from PIL import Image

    from classifier.preprocessing import prepare_image
    from mltrain.keras.datasets import Dataset

    images = np.stack(
        [prepare_image(Image.fromarray(image), (side, side)) for image in dataset.images]
    )
    return Dataset(images, dataset.labels, dataset.class_names)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10, 20, 100])
    parser.add_argument(
        "--draws", type=int, default=2, help="k-shot sets drawn per k (mean reported)"
    )
    parser.add_argument("--lite-size", type=int, default=96)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageclass.settings")
    import django

    django.setup()
    import keras

    from mltrain.keras.hardware import hardware
    from mltrain.keras.report import evaluate
    from mltrain.keras.training import TrainingConfig, train
    from mltrain.keras.transfer import TransferConfig, train_transfer

    held_out, pool = shipped_validation_split()
    held_out_lite = resized(held_out, args.lite_size)
    head = {
        "head_epochs": HEAD_EPOCHS,
        "fine_tune_epochs": 0,
        "patience": HEAD_EPOCHS,
        "batch_size": BATCH,
    }
    transfers = {
        "Lite0 ImageNet features": TransferConfig(image_size=args.lite_size, **head),
        "shipped CIFAR-10 network": TransferConfig(
            backbone="imageclass", weights=str(SHIPPED / "model.keras"), **head
        ),
    }

    def trained_accuracy(name: str, shots, folder: Path) -> float:
        if name == "from scratch":
            # Validated on its own images: the held-out ones are seen once, at the end.
            copies = math.ceil(SCRATCH_EPOCH_IMAGES / len(shots))
            repeated = shots.subset(np.tile(np.arange(len(shots)), copies))
            config = TrainingConfig(
                architecture="thesis_cnn", epochs=SCRATCH_EPOCHS, batch_size=BATCH
            )
            return evaluate(train(config, repeated, shots, folder), held_out)["accuracy"]
        if name.startswith("Lite0"):
            return evaluate(
                train_transfer(
                    transfers[name], resized(shots, args.lite_size), held_out_lite, folder
                ),
                held_out_lite,
            )["accuracy"]
        return evaluate(train_transfer(transfers[name], shots, held_out, folder), held_out)[
            "accuracy"
        ]

    rows = []
    for k in args.shots:
        results = {name: [] for name in [*transfers, "from scratch"]}
        for seed in range(args.draws):
            shots = draw(pool, k, seed)
            for name in results if seed == 0 else transfers:
                with tempfile.TemporaryDirectory() as folder:
                    keras.utils.set_random_seed(seed)
                    started = time.perf_counter()
                    accuracy = trained_accuracy(name, shots, Path(folder))
                    results[name].append((accuracy, time.perf_counter() - started))
        row = {"k per class": k, "training images": k * len(pool.class_names)}
        for name, runs in results.items():
            accuracy, seconds = np.array(runs).T
            spread = f" ± {accuracy.std():.1%}" if len(runs) > 1 else ""
            row[name] = f"{accuracy.mean():.1%}{spread} ({np.median(seconds):.0f} s)"
        rows.append(row)
        print(row, flush=True)
    report = "\n".join(
        [
            "# k-shot transfer learning",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M')}, {hardware()}, Keras {keras.__version__}. "
            f"Held out: {len(held_out)} CIFAR-10 images the shipped network never saw (its validation split, "
            f"{HELD_OUT_PER_CLASS} per class); each k-shot set drawn from the other {len(pool)} ({args.draws} draws per k: "
            f"mean ± standard deviation of held-out accuracy, median wall time of one training and its evaluation "
            "in brackets; the transfer rows include the held-out images' features, computed once).",
            "",
            f"- Lite0 ImageNet features: `train_transfer` phase one at {args.lite_size} px (images upsampled from 32 px), "
            f"{HEAD_EPOCHS} head epochs on features of each image and its mirror.",
            f"- shipped CIFAR-10 network: the same at 32 px, {HEAD_EPOCHS} head epochs. It learnt these ten classes "
            "from the other 45,000 images: its column is its best case.",
            f"- from scratch: the prototype's network (`thesis_cnn`, Adam) from random weights, {SCRATCH_EPOCHS} epochs "
            f"of the k-shot set repeated to at least {SCRATCH_EPOCH_IMAGES} images, with random-crop and "
            "flip augmentation; the first draw only.",
            "",
            markdown_table(rows),
        ]
    )
    publish("transfer", report)


if __name__ == "__main__":
    main()
