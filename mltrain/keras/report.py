"""Evaluation report written next to every trained model.

metrics.json (accuracy, loss, per-class precision/recall/F1, confusion matrix, the temperature
and uncertainty threshold fitted on validation with their ECE and NLL), curves.png (accuracy and
loss, train vs validation), confusion_matrix.png, reliability.png, misclassified.npz (examples of
each confusion-matrix cell, for the model's quality page) and MODEL_CARD.md. metrics.json also
holds the int8 verdict: how the workers' int8 copy compares with the model on the validation
images, which decides whether workers may serve it.
"""

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from classifier.preprocessing import prepare_image  # noqa: E402
from classifier.probabilities import describe_ood  # noqa: E402
from classifier.serving.runtime import int8_verdict  # noqa: E402
from mltrain.keras import calibration, hardware, ood, package_photos, pipeline  # noqa: E402

EVALUATION_BATCH = 256
EXAMPLES_PER_CELL = 24  # misclassified validation images kept per (true, predicted) pair
EXAMPLE_SIDE = 96  # larger images are kept as thumbnails of this side


def predict_probabilities(model, images: np.ndarray) -> np.ndarray:
    batches = [
        model(images[i : i + EVALUATION_BATCH], training=False)
        for i in range(0, len(images), EVALUATION_BATCH)
    ]
    return np.concatenate([np.asarray(b, dtype=np.float64) for b in batches])


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray, class_names) -> dict:
    n = len(class_names)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    true_positive = np.diag(confusion).astype(float)
    precision = np.divide(
        true_positive, confusion.sum(axis=0), out=np.zeros(n), where=confusion.sum(axis=0) > 0
    )
    recall = np.divide(
        true_positive, confusion.sum(axis=1), out=np.zeros(n), where=confusion.sum(axis=1) > 0
    )
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0
    )
    return {
        "images": int(len(labels)),
        "accuracy": float((predicted == labels).mean()),
        "loss": calibration.negative_log_likelihood(probabilities, labels),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, confusion.sum(axis=1))
        },
        "confusion_matrix": confusion.tolist(),
        "class_names": list(class_names),
    }


def misclassified_examples(probabilities: np.ndarray, dataset) -> dict:
    """Up to EXAMPLES_PER_CELL misclassified validation images per (true, predicted) pair, the
    most confident mistakes first: they say most about what the model gets wrong."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    chosen = []
    for true, guess in sorted(
        {(int(t), int(p)) for t, p in zip(dataset.labels, predicted) if t != p}
    ):
        cell = np.flatnonzero((dataset.labels == true) & (predicted == guess))
        chosen += list(cell[np.argsort(-confidence[cell], kind="stable")][:EXAMPLES_PER_CELL])
    side = min(EXAMPLE_SIDE, dataset.images.shape[1])
    images = np.zeros((len(chosen), side, side, 3), np.uint8)
    for row, index in enumerate(chosen):
        image = Image.fromarray(dataset.images[index])
        images[row] = np.asarray(
            image.resize((side, side), Image.Resampling.LANCZOS) if image.width != side else image
        )
    chosen = np.asarray(chosen, dtype=np.int64)
    return {
        "images": images,
        "true": dataset.labels[chosen].astype(np.int32),
        "predicted": predicted[chosen].astype(np.int32),
        "probability": confidence[chosen].astype(np.float32),
    }


def evaluate(model, dataset) -> dict:
    return classification_metrics(
        predict_probabilities(model, dataset.images), dataset.labels, dataset.class_names
    )


def read_history(path: Path) -> list[dict]:
    """Rows of history.csv, the last row per epoch (a resumed run may repeat an epoch)."""
    if not path.exists():
        return []
    rows = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = {k: float(v) for k, v in row.items() if v not in ("", None)}
    return [rows[e] for e in sorted(rows)]


def plot_curves(history: list[dict], path: Path):
    epochs = [int(r["epoch"]) + 1 for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(epochs, [r.get(metric) for r in history], label="train")
        ax.plot(epochs, [r.get(f"val_{metric}") for r in history], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(metrics: dict, path: Path):
    confusion = np.asarray(metrics["confusion_matrix"])
    names = metrics["class_names"]
    size = max(5, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = confusion.max() / 2
    if len(names) <= 20:
        for (i, j), count in np.ndenumerate(confusion):
            ax.text(
                j,
                i,
                count,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if count > threshold else "black",
            )
    ax.set_title(f"validation accuracy {metrics['accuracy']:.2%}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(probabilities: np.ndarray, labels: np.ndarray, figures: dict, path: Path):
    """Accuracy against confidence in equal bins, before and after temperature scaling: a
    calibrated model's bars follow the diagonal."""
    calibrated = calibration.apply_temperature(probabilities, figures["temperature"])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
    for shown, label, ece in (
        (probabilities, "model", figures["ece_before"]),
        (calibrated, f"T = {figures['temperature']:.2f}", figures["ece_after"]),
    ):
        confidence, accuracy, _ = zip(*calibration.binned(shown, labels, figures["bins"]))
        ax.plot(confidence, accuracy, marker="o", label=f"{label} (ECE {ece:.3f})")
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability on validation")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def augmentation(config: dict, side: int) -> str:
    """ "random-crop (4 px), flip and cutout (12 px) augmentation", as the run had it (runs from
    before these settings were recorded had the defaults)."""
    translate, cutout = pipeline.augmentation_pixels(
        side,
        config.get("translate_fraction", pipeline.TRANSLATE_FRACTION),
        config.get("cutout_fraction", 0.0),
    )
    kinds = (
        [f"random-crop ({translate} px)"] * bool(translate)
        + ["flip"]
        + [f"cutout ({cutout} px)"] * bool(cutout)
    )
    return (
        " and ".join([", ".join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds)
        + " augmentation"
    )


def teacher_probabilities(paths: list) -> str:
    """ "the probabilities of var/runs/big/model.keras", or of several: "the mean probabilities
    of a, b and c"."""
    if len(paths) == 1:
        return f"the probabilities of {paths[0]}"
    return f"the mean probabilities of {', '.join(paths[:-1])} and {paths[-1]}"


def cifar_recipe(run: dict) -> str:
    """The recipe of a `train` run (`train_transfer` runs describe theirs in training.json)."""
    config, side = run["config"], min(run["input_shape"][:2])
    if config["architecture"] != "whitened_convnet":
        return f"Adam, {augmentation(config, side)} (the thesis recipe)."
    return (
        f"SGD Nesterov momentum {config['momentum']}, triangular learning rate peaking at "
        f"{config['peak_learning_rate']} ({config.get('bias_learning_rate_scale', 1)}x for "
        f"batch-norm offsets), L2 {config['weight_decay']} on the kernels, lookahead from epoch "
        f"{config.get('lookahead_from_epoch', '-')}, label smoothing {config['label_smoothing']}, "
        f"{augmentation(config, side)}; the prediction averages "
        + (
            "6 views (mirror x 1-pixel shifts)."
            if config.get("translate_tta")
            else "the image and its mirror image."
        )
        + (
            f" Targets {config['distillation_weight']:g} distilled from {teacher_probabilities(config['teachers'])} "
            "on the same augmented images, the rest the labels."
            if config.get("teachers")
            else ""
        )
    )


def model_card(
    run: dict,
    history: list[dict],
    metrics: dict,
    comparisons: dict,
    int8: dict,
    calibrated: dict,
    outside: dict,
) -> str:
    config = run["config"]
    seconds = sum(r.get("epoch_seconds", 0) for r in history)
    lines = [
        f"# Model card: {config['architecture']}",
        "",
        "## Data",
        f"- {run['train_size']} training and {run['validation_size']} validation images "
        f"(stratified split, fraction {config['validation_fraction']}, seed {config['seed']}), "
        f"{len(run['class_names'])} classes: {', '.join(run['class_names'])}.",
        f"- Input: raw uint8 RGB {run['input_shape'][0]}x{run['input_shape'][1]} pixels, decoded "
        "and resized by `classifier.preprocessing` (the function serving uses); scaling and "
        "normalisation are layers of the model.",
        "",
        "## Recipe",
        f"- Architecture `{config['architecture']}`, {run['parameters']:,} parameters.",
        *(
            [f"- {run['recipe']}"]
            if run.get("members")
            else [
                f"- {len(history)} epochs, batch {config['batch_size']}. {run.get('recipe') or cifar_recipe(run)}",
                f"- Hyperparameters: `{json.dumps(run.get('hyperparameters') or config.get('hyperparameters') or {})}`.",
                f"- Wall time {seconds / 60:.1f} min on {run.get('hardware', run['device'])}.",
            ]
        ),
        "",
        "## Validation",
        f"- Accuracy **{metrics['accuracy']:.2%}**, loss {metrics['loss']:.4f} "
        f"on {metrics['images']} held-out images.",
        f"- int8 copy (what workers serve when allowed): {int8['reason']}: "
        + ("served." if int8["passed"] else "refused, workers serve fp32."),
        f"- Calibration: temperature {calibrated['temperature']:.3f}, fitted on these images and applied to every "
        f"answer served; expected calibration error ({calibrated['bins']} bins) {calibrated['ece_before']:.3f} -> "
        f"{calibrated['ece_after']:.3f}, NLL {calibrated['nll_before']:.4f} -> {calibrated['nll_after']:.4f}. "
        f"Answers below {calibrated['uncertain_below']:.2%} are flagged uncertain (those at or above it are right "
        "at least 95% of the time). `reliability.png`.",
        f"- None of the known classes: {describe_ood(outside)}",
        "",
        "| class | precision | recall | F1 |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |"
        for name, m in metrics["per_class"].items()
    ]
    if comparisons:
        lines += [
            "",
            "## Compared on the same split",
            "",
            "| model | epochs | validation accuracy |",
            "|---|---|---|",
        ]
        lines += [
            f"| {name} | {c['epochs']} | {c['accuracy']:.2%} |" for name, c in comparisons.items()
        ]
    lines += [
        "",
        "Curves: `curves.png`. Confusion matrix: `confusion_matrix.png`. Figures: `metrics.json`.",
        "",
    ]
    return "\n".join(lines)


def out_of_distribution(model, probabilities, validation) -> dict:
    """The "none of these classes" threshold (`ood.fit`), measured on package photos of other
    things, reduced to the model's input as uploads are."""
    size = validation.images.shape[1:3]
    images = [
        prepare_image(package_photos.load(photo.name), size)
        for photo in ood.outside_photos(validation.class_names)
    ]
    outside = predict_probabilities(model, np.stack(images)) if images else np.zeros((0, 1))
    return ood.fit(probabilities, validation.labels, outside)


def write_report(output: Path, model, validation, comparisons: dict | None = None) -> dict:
    output = Path(output)
    run = json.loads((output / "training.json").read_text())
    run.setdefault("hardware", hardware.hardware())  # runs from before training.json recorded it
    history = read_history(output / "history.csv")
    probabilities = predict_probabilities(model, validation.images)
    metrics = classification_metrics(probabilities, validation.labels, validation.class_names)
    np.savez_compressed(
        output / "misclassified.npz", **misclassified_examples(probabilities, validation)
    )
    report = {
        "validation": metrics,
        "int8": int8_verdict(model, validation.images, validation.labels, probabilities),
        "calibration": calibration.calibration_report(probabilities, validation.labels),
        "ood": out_of_distribution(model, probabilities, validation),
        "epochs": len(history),
        "history": history,
    }
    (output / "metrics.json").write_text(json.dumps(report, indent=2))
    plot_curves(history, output / "curves.png")
    plot_confusion(metrics, output / "confusion_matrix.png")
    plot_reliability(
        probabilities, validation.labels, report["calibration"], output / "reliability.png"
    )
    card = model_card(
        run,
        history,
        metrics,
        comparisons or {},
        report["int8"],
        report["calibration"],
        report["ood"],
    )
    (output / "MODEL_CARD.md").write_text(card)
    return report
