"""Hyperparameter search with Keras Tuner. The search spaces are the `hp.*` calls in the
builders (mltrain.keras.architectures) and the recipe (mltrain.keras.training.build)."""

import json
from pathlib import Path

import keras
import keras_tuner

from mltrain.keras import hardware, pipeline, training
from mltrain.keras.datasets import Dataset

TUNERS = ("hyperband", "bayesian", "random")


class ImageClassifierHyperModel(keras_tuner.HyperModel):
    def __init__(self, config: training.TrainingConfig, train: Dataset):
        super().__init__(name=config.architecture)
        self.config, self.train = config, train

    def build(self, hp):
        return training.build(self.config, self.train, hp)


def make_tuner(
    kind: str, hypermodel, directory: Path, max_epochs: int, trials: int, seed: int, strategy=None
):
    """Distributed tuning is Keras Tuner's own: with KERASTUNER_TUNER_ID ("chief" or
    "tuner0", "tuner1", ...), KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set, the chief
    runs the oracle and every tuner process asks it for trials; `directory` must be shared."""
    common = {
        "objective": "val_accuracy",
        "directory": str(directory),
        "project_name": hypermodel.name,
        "seed": seed,
        "distribution_strategy": strategy,
    }
    if kind == "hyperband":
        return keras_tuner.Hyperband(hypermodel, max_epochs=max_epochs, factor=3, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=trials, **common)
    return keras_tuner.RandomSearch(hypermodel, max_trials=trials, **common)


def tune(
    kind,
    config: training.TrainingConfig,
    train: Dataset,
    validation: Dataset,
    directory: Path,
    max_epochs: int,
    trials: int,
) -> dict:
    """Run the search (resuming a previous one in `directory`) and write the best
    hyperparameters to `directory/best_hyperparameters.json`; returns them."""
    hardware.configure_devices(config.mixed_precision)
    if config.architecture != "thesis_cnn":
        train, validation = training.one_hot(train), training.one_hot(validation)
    config.epochs = max_epochs  # the one-cycle schedule spans the longest trial
    strategy = hardware.distribution_strategy(config.strategy)
    tuner = make_tuner(
        kind,
        ImageClassifierHyperModel(config, train),
        directory,
        max_epochs,
        trials,
        config.seed,
        strategy,
    )
    tuner.search(
        config.batches(train),
        validation_data=pipeline.evaluation_pipeline(validation, config.batch_size),
        epochs=max_epochs,
        verbose=2,
        callbacks=[keras.callbacks.EarlyStopping("val_accuracy", patience=3)],
    )
    best = tuner.get_best_hyperparameters(1)[0].values
    Path(directory).mkdir(parents=True, exist_ok=True)
    (Path(directory) / "best_hyperparameters.json").write_text(json.dumps(best, indent=2))
    return best
