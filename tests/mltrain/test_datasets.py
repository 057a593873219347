import numpy as np
import pytest

from classifier.preprocessing import load_image_array
from mltrain.keras.datasets import (
    image_folder_files,
    load_image_folder,
    stratified_sample,
    stratified_split,
    unpack_shared_cifar10,
)
from tests.imagefolder import make_image_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"), per_class=10)


def test_image_folder_classes_are_sorted_folder_names(folder):
    dataset = load_image_folder(folder, (32, 32))
    assert dataset.class_names == ["blue", "green", "red"]
    assert dataset.images.shape == (30, 32, 32, 3) and dataset.images.dtype == np.uint8
    assert np.bincount(dataset.labels).tolist() == [10, 10, 10]


def test_training_decodes_exactly_as_serving_does(folder):
    """The loader's pixels are, byte for byte, what the serving preprocessing makes of each file."""
    files, _, _ = image_folder_files(folder)
    dataset = load_image_folder(folder, (24, 20))
    for index, path in enumerate(files):
        np.testing.assert_array_equal(dataset.images[index], load_image_array(path, (24, 20)))


def test_split_is_stratified_and_deterministic():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    train, validation = stratified_split(labels, 0.1, seed=7)
    again_train, again_validation = stratified_split(labels, 0.1, seed=7)
    np.testing.assert_array_equal(validation, again_validation)
    np.testing.assert_array_equal(train, again_train)
    assert np.bincount(labels[validation]).tolist() == [10, 5, 3, 2]
    assert not set(train) & set(validation) and len(train) + len(validation) == len(labels)
    _, other_validation = stratified_split(labels, 0.1, seed=8)
    assert set(other_validation) != set(validation)


def test_a_limited_training_set_keeps_every_class_in_proportion():
    labels = np.repeat(np.arange(5), 200)  # listed class by class, as image folders are
    train, _ = stratified_split(labels, 0.1, seed=7)
    sample = stratified_sample(train, labels, 100, seed=7)
    assert len(sample) == 100
    assert np.bincount(labels[sample]).tolist() == [20] * 5
    assert set(sample) <= set(train)
    assert stratified_sample(train, labels, 100, seed=7).tolist() == sample.tolist()
    assert stratified_sample(train, labels, 10_000, seed=7) is train


def test_bad_folders_are_refused(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(ValueError, match="at least two class folders"):
        image_folder_files(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        image_folder_files(tmp_path)


def test_the_shared_archive_is_found_and_checked_before_unpacking(tmp_path):
    with pytest.raises(FileNotFoundError, match="set SHARED_CIFAR10_ARCHIVE"):
        unpack_shared_cifar10(tmp_path / "missing.tar.gz", tmp_path / "out")
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not the archive")
    with pytest.raises(ValueError, match="expected 78475cac"):
        unpack_shared_cifar10(other, tmp_path / "out")
    assert not (tmp_path / "out").exists()
