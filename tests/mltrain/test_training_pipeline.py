"""The training batches (NumPy, the same for every Keras backend) and their augmentation."""

import keras
import numpy as np
import pytest

from classifier.serving.runtime import int8_verdict
from mltrain.keras import architectures, hardware, pipeline, report
from mltrain.keras.datasets import Dataset


def pixels(count, side=8, seed=0):
    """Images with no zero pixel, so a zero-filled cutout is the only zeros in them."""
    return np.random.default_rng(seed).integers(1, 256, (count, side, side, 3), dtype=np.uint8)


def views(image, translate):
    """(mirrored, down, right) for every crop of the reflect-padded image and of its mirror
    image that `augment` may give, with the crop."""
    side = image.shape[0]
    for mirrored, source in ((False, image), (True, image[:, ::-1])):
        padded = np.pad(
            source, ((translate, translate), (translate, translate), (0, 0)), mode="reflect"
        )
        for down in range(2 * translate + 1):
            for right in range(2 * translate + 1):
                yield (
                    (mirrored, down - translate, right - translate),
                    padded[down : down + side, right : right + side],
                )


def test_augment_shifts_by_at_most_translate_and_mirrors():
    images = pixels(32)
    augmented = pipeline.augment(images, np.random.default_rng(1), translate=2, cutout=0, fill=0)
    assert augmented.shape == images.shape and augmented.dtype == np.uint8
    chosen = []
    for original, result in zip(images, augmented):
        (view,) = [view for view, crop in views(original, 2) if np.array_equal(result, crop)]
        chosen.append(view)
    assert {mirrored for mirrored, _, _ in chosen} == {False, True}
    assert {down for _, down, _ in chosen} == {right for _, _, right in chosen} == {-2, -1, 0, 1, 2}


def test_augment_blanks_one_square_of_the_cutout_size():
    images = pixels(32)
    augmented = pipeline.augment(images, np.random.default_rng(2), translate=0, cutout=3, fill=0)
    for result in augmented:
        rows, cols = np.nonzero((result == 0).all(axis=-1))
        assert len(rows) == 9
        assert rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2
    assert (images != 0).all()  # the input is untouched


def test_augment_is_deterministic_for_a_seed():
    images = pixels(8)
    first = pipeline.augment(images, np.random.default_rng(3), translate=2, cutout=3, fill=0)
    again = pipeline.augment(images, np.random.default_rng(3), translate=2, cutout=3, fill=0)
    other = pipeline.augment(images, np.random.default_rng(4), translate=2, cutout=3, fill=0)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def dataset(count=10):
    return Dataset(pixels(count), np.arange(count) % 2, ["odd", "even"])


def test_training_batches_are_full_shuffled_anew_each_epoch_and_seeded():
    batches = pipeline.training_pipeline(dataset(), batch_size=4, seed=7)
    assert len(batches) == 2  # the last partial batch is dropped
    epoch0 = [batches[i][1] for i in range(len(batches))]
    assert all(len(labels) == 4 for labels in epoch0)
    order0 = batches.order.copy()
    assert sorted(order0) == list(range(10))
    batches.on_epoch_end()
    assert not np.array_equal(batches.order, order0)
    same = pipeline.training_pipeline(dataset(), batch_size=4, seed=7)
    np.testing.assert_array_equal(
        same[0][0], pipeline.training_pipeline(dataset(), batch_size=4, seed=7)[0][0]
    )
    assert not np.array_equal(
        same[0][0], pipeline.training_pipeline(dataset(), batch_size=4, seed=8)[0][0]
    )


def test_evaluation_batches_cover_every_image_in_order_unchanged():
    data = dataset()
    batches = pipeline.evaluation_pipeline(data, batch_size=4)
    assert len(batches) == 3
    images = np.concatenate([batches[i][0] for i in range(len(batches))])
    np.testing.assert_array_equal(images, data.images)


def test_cutout_fills_with_the_mean_pixel():
    data = dataset()
    batches = pipeline.training_pipeline(
        data, batch_size=4, seed=0, translate_fraction=0, cutout_fraction=0.25
    )
    assert batches.cutout == 2 and batches.translate == 0
    np.testing.assert_array_equal(batches.fill, data.images.reshape(-1, 3).mean(axis=0).round())


def test_deeper_groups_have_a_residual_connection():
    hp = architectures.defaults(None)
    hp.Fixed("convs_per_group", 3)
    deep = architectures.build_whitened_convnet(hp)
    assert [layer.name for layer in deep.layers if isinstance(layer, keras.layers.Add)] == [
        "group1_residual",
        "group2_residual",
        "group3_residual",
    ]
    shallow = architectures.build_whitened_convnet()
    assert not any(isinstance(layer, keras.layers.Add) for layer in shallow.layers)


def test_other_backends_train_on_one_device(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert hardware.distribution_strategy("auto") is None
    with pytest.raises(ValueError, match="TensorFlow backend"):
        hardware.distribution_strategy("mirrored")


def test_the_int8_verdict_says_it_was_not_checked_without_tensorflow(monkeypatch):
    """A GPU machine may train with JAX: its report cannot convert to LiteRT, and says so
    rather than failing the run; `manage.py report` rechecks where TensorFlow is."""
    model = architectures.build_whitened_convnet()
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    verdict = int8_verdict(model, pixels(2, side=32), np.zeros(2, dtype=int))
    assert verdict["passed"] is False and verdict["reason"].startswith("not checked")


@pytest.mark.parametrize(
    "fractions, text",
    [
        (
            {},
            "random-crop (2 px) and flip augmentation",
        ),  # a run from before the settings were recorded
        (
            {"translate_fraction": 0.125, "cutout_fraction": 0.375},
            "random-crop (4 px), flip and cutout (12 px) augmentation",
        ),
        ({"translate_fraction": 0.0}, "flip augmentation"),
    ],
)
def test_the_model_card_names_the_augmentation_the_batches_used(fractions, text):
    assert report.augmentation(fractions, 32) == text
    side32 = Dataset(pixels(4, side=32), np.zeros(4, dtype=int), ["one"])
    batches = pipeline.training_pipeline(side32, 4, 0, **fractions)
    translate, cutout = batches.translate, batches.cutout
    assert (f"random-crop ({translate} px)" in text) == bool(translate) and (
        f"cutout ({cutout} px)" in text
    ) == bool(cutout)


def test_hardware_names_the_machine():
    assert hardware.hardware().endswith("(CPU only)")
