"""Knowledge distillation: a student trained towards a frozen teacher (one trained model or an
ensemble of several) as well as towards the labels."""

import json
from pathlib import Path

import keras

from mltrain.keras.datasets import Dataset


class Distiller(keras.Model):
    """The student trained towards a frozen teacher's probabilities on the very same augmented
    images as well as towards the labels (keras-io's knowledge distillation, at temperature 1:
    the teacher's served probabilities are the soft targets; an ensemble's mean, for several
    teachers). Only the student is served."""

    def __init__(self, student: keras.Model, teacher: keras.Model, weight: float, **kwargs):
        super().__init__(**kwargs)
        self.student, self.teacher, self.weight = student, teacher, weight
        self.teacher.trainable = False

    def call(self, images, training=False):
        return self.student(images, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # Cross-entropy is linear in its targets, so the compiled loss (label smoothing and the
        # student's weight decay included) on the mixed targets is the weighted sum of both.
        soft = keras.ops.cast(keras.ops.stop_gradient(self.teacher(x, training=False)), y.dtype)
        targets = (1 - self.weight) * y + self.weight * soft
        return super().compute_loss(x, targets, y_pred, sample_weight, training=training)


def load_teacher(path: Path, train: Dataset) -> keras.Model:
    """A trained serving model for the same classes, in the same order, as `train`'s."""
    run_file = path.parent / "training.json"
    if not path.is_file() or not run_file.is_file():
        raise ValueError(f"no trained model with its training.json at {path}")
    if json.loads(run_file.read_text())["class_names"] != train.class_names:
        raise ValueError(f"the teacher {path} was trained on other classes (or in another order)")
    return keras.saving.load_model(path, compile=False)


def load_teachers(paths: list, train: Dataset) -> keras.Model:
    """The teacher of `paths`: one trained model, or the ensemble of several."""
    teachers = [load_teacher(Path(path), train) for path in paths]
    return teachers[0] if len(teachers) == 1 else Ensemble(teachers)


class Ensemble(keras.Model):
    """The mean of its members' probabilities: a teacher made of independently trained networks,
    which usually beats each of them, where in the shipped model's family a wider network did
    not (its card: width 88 no better than 80)."""

    def __init__(self, members: list, **kwargs):
        super().__init__(**kwargs)
        self.members = members
        self.built = True  # it holds no weights of its own, and its members are trained models

    def call(self, images, training=False):
        return keras.ops.mean(
            keras.ops.stack([member(images, training=training) for member in self.members]), axis=0
        )


def student(model: keras.Model) -> keras.Model:
    """The model being trained: the student of a Distiller, else the model itself."""
    return model.student if isinstance(model, Distiller) else model
