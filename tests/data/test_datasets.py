"""The loader, the batch iterator and the monitor set; real-data checks from ../shared/datasets."""

import os
import shutil

import numpy as np
import pytest

from numpyvae.data import (
    ChecksumError,
    DataNotFoundError,
    IDXError,
    batches,
    catalog,
    epoch_order,
    load,
    monitor_indices,
    num_batches,
    write_idx,
)
from numpyvae.data.catalog import FILES, SPLIT_FILES, file_md5


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("NUMPYVAE_DATA", raising=False)


@pytest.fixture(autouse=True)
def tiny_checksums(monkeypatch):
    """The loader checks each file's MD5 against catalog.MD5: the tests' tiny files get
    theirs registered by write_tiny (and by accept), in a copy of the real table."""
    table = {dataset: dict(files) for dataset, files in catalog.MD5.items()}
    monkeypatch.setattr(catalog, "MD5", table)
    return table


def accept(path):
    """Register a file's current MD5 as the published one, so that the parser's own
    checks (not the checksum) are what a test meets."""
    catalog.MD5[path.parent.name][path.name] = file_md5(path)


def write_tiny(root, dataset="mnist", n_train=7, n_test=3, seed=0):
    """A tiny data set in the real layout; returns {split: (images uint8, labels uint8)}."""
    rng = np.random.default_rng(seed)
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / SPLIT_FILES[split][0], images)
        write_idx(folder / SPLIT_FILES[split][1], labels)
        accept(folder / SPLIT_FILES[split][0])
        accept(folder / SPLIT_FILES[split][1])
        arrays[split] = (images, labels)
    return arrays


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*"))


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_shapes_dtypes_and_scaling(tmp_path, split):
    images, labels = write_tiny(tmp_path)[split]
    x, y = load("mnist", split, tmp_path)
    assert x.shape == (len(images), 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (len(images),) and y.dtype == np.int64
    assert x.flags.c_contiguous and x.flags.writeable
    np.testing.assert_array_equal(x[:, 0], images.astype(np.float32) / np.float32(255))
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(y, labels)


def test_load_finds_env_var_then_cwd_data(tmp_path, monkeypatch):
    write_tiny(tmp_path / "data", n_train=4)
    write_tiny(tmp_path / "env", n_train=5)
    write_tiny(tmp_path / "arg", n_train=6)
    monkeypatch.chdir(tmp_path)

    def accept_train(where):  # the three sets differ, and one table holds one MD5 a name
        for name in SPLIT_FILES["train"]:
            accept(tmp_path / where / "mnist" / name)

    accept_train("data")
    assert len(load("mnist", "train")[0]) == 4
    monkeypatch.setenv("NUMPYVAE_DATA", str(tmp_path / "env"))
    accept_train("env")
    assert len(load("mnist", "train")[0]) == 5
    accept_train("arg")
    assert len(load("mnist", "train", tmp_path / "arg")[0]) == 6  # an explicit folder wins


def test_loader_never_writes(tmp_path):
    write_tiny(tmp_path, "fashion-mnist")
    before = snapshot(tmp_path)
    for split in ("train", "test"):
        load("fashion-mnist", split, tmp_path)
    assert snapshot(tmp_path) == before


def test_missing_data_set_says_how_to_fetch(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load("fashion-mnist", "train", tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert str(tmp_path / "fashion-mnist") in message and "does not exist" in message
    assert f"data_fetch.py fashion-mnist --dir {tmp_path}" in message
    assert f"data_fetch.py fashion-mnist --dir {tmp_path} --mirror" in message


def test_missing_default_folder_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError) as info:
        load("mnist", "test")
    message = str(info.value)
    assert str(tmp_path / "data" / "mnist") in message
    assert "NUMPYVAE_DATA" in message
    assert "data_fetch.py mnist\n" in message  # the default folder needs no --dir


def test_missing_file_is_named(tmp_path):
    write_tiny(tmp_path)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    load("mnist", "train", tmp_path)  # the train split is complete
    with pytest.raises(DataNotFoundError, match="lacks t10k-labels-idx1-ubyte.gz"):
        load("mnist", "test", tmp_path)


def test_a_folder_in_place_of_a_file_is_named_as_such(tmp_path):
    """It said the folder "lacks" the file, which is there: as a folder."""
    write_tiny(tmp_path)
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.unlink()
    path.mkdir()
    with pytest.raises(DataNotFoundError, match="lacks t10k-labels-idx1-ubyte.gz \\(a folder "
                       "of that name is in its place: move it away\\)"):
        load("mnist", "test", tmp_path)


def test_truncated_file_names_file_and_fix(tmp_path):
    write_tiny(tmp_path)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    accept(path)
    with pytest.raises(IDXError) as info:
        load("mnist", "train", tmp_path)
    assert str(path) in str(info.value) and "truncated" in str(info.value)
    assert "data_fetch.py mnist" in str(info.value)


def test_wrong_kind_of_file(tmp_path):
    write_tiny(tmp_path)
    folder = tmp_path / "mnist"
    shutil.copy(folder / "train-labels-idx1-ubyte.gz", folder / "train-images-idx3-ubyte.gz")
    accept(folder / "train-images-idx3-ubyte.gz")
    with pytest.raises(IDXError, match="1 dimension"):
        load("mnist", "train", tmp_path)


def test_image_and_label_counts_must_match(tmp_path):
    write_tiny(tmp_path)
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(2, dtype=np.uint8))
    accept(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz")
    with pytest.raises(IDXError, match="7 images but 2 labels"):
        load("mnist", "train", tmp_path)


def test_labels_must_be_digits(tmp_path):
    write_tiny(tmp_path)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 10], np.uint8))
    accept(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(IDXError, match="label 10 outside 0..9"):
        load("mnist", "test", tmp_path)


def test_images_must_be_28x28(tmp_path):
    write_tiny(tmp_path)
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", np.zeros((3, 32, 32), np.uint8))
    accept(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(IDXError, match="32x32, expected 28x28"):
        load("mnist", "test", tmp_path)


def test_a_file_that_is_not_the_published_one_is_refused_before_parsing(tmp_path):
    """A well-formed file with another MD5 (a damaged copy, another data set) is named,
    with what was expected and the command that replaces it."""
    write_tiny(tmp_path)
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    expected = catalog.MD5["mnist"][path.name]
    write_idx(path, np.zeros((3, 28, 28), np.uint8))  # well-formed, but not the original
    with pytest.raises(ChecksumError) as info:
        load("mnist", "test", tmp_path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(path) in message and f"expected {expected}" in message
    assert f"MD5 is {file_md5(path)}" in message
    assert f"data_fetch.py mnist --dir {tmp_path}" in message
    load("mnist", "train", tmp_path)  # the other split is untouched


def test_a_link_to_the_other_data_set_is_refused(tmp_path):
    """data/mnist a link to Fashion-MNIST: every file is well-formed, none is MNIST."""
    write_tiny(tmp_path / "real", "fashion-mnist", seed=1)
    write_tiny(tmp_path / "other", "mnist", seed=2)  # registers MNIST's checksums
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").symlink_to(tmp_path / "real" / "fashion-mnist")
    load("fashion-mnist", "train", tmp_path / "real")
    with pytest.raises(ChecksumError, match="not the published mnist file"):
        load("mnist", "train", tmp_path / "data")


def test_a_file_changed_in_place_is_checked_again(tmp_path):
    """The loader may remember a verified file, but not past a change to it."""
    write_tiny(tmp_path)
    load("mnist", "test", tmp_path)
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    write_idx(path, np.array([1, 2, 3], np.uint8))
    with pytest.raises(ChecksumError, match="t10k-labels"):
        load("mnist", "test", tmp_path)


@pytest.mark.parametrize("dataset, split, text", [
    ("cifar10", "train", "unknown data set 'cifar10'"),
    ("mnist", "valid", "unknown split 'valid'"),
])
def test_bad_names(tmp_path, dataset, split, text):
    with pytest.raises(ValueError, match=text):
        load(dataset, split, tmp_path)


# ---------------------------------------------------------------- batches


def test_batches_cover_the_epoch_order_with_last_partial_batch():
    got = list(batches(1000, 256, seed=3, epoch=2))
    assert [len(b) for b in got] == [256, 256, 256, 232]
    assert len(got) == num_batches(1000, 256)
    expected = np.random.default_rng([3, 2]).permutation(1000)
    np.testing.assert_array_equal(np.concatenate(got), expected)
    assert all(b.dtype.kind == "i" for b in got)


def test_batches_reshuffle_each_epoch_reproducibly():
    e0, e0_again, e1 = (np.concatenate(list(batches(500, 64, seed=1, epoch=e)))
                        for e in (0, 0, 1))
    np.testing.assert_array_equal(e0, e0_again)
    assert not np.array_equal(e0, e1)
    np.testing.assert_array_equal(np.sort(e1), np.arange(500))
    other_seed = np.concatenate(list(batches(500, 64, seed=2, epoch=0)))
    assert not np.array_equal(e0, other_seed)


def test_batches_default_size_is_256_and_exact_multiples_have_no_empty_batch():
    assert [len(b) for b in batches(512)] == [256, 256]
    assert list(batches(0)) == []
    assert num_batches(60_000) == 235
    assert [len(b) for b in batches(5, 10)] == [5]


@pytest.mark.parametrize("kwargs, text", [
    ({"n": 10, "batch_size": 0}, "batch_size must be >= 1"),
    ({"n": -1}, "n must be >= 0"),
    ({"n": 10, "seed": -1}, "seed and epoch must be >= 0"),
])
def test_batches_bad_arguments(kwargs, text):
    with pytest.raises(ValueError, match=text):
        list(batches(**kwargs))


def test_epoch_order_is_the_documented_rule():
    np.testing.assert_array_equal(epoch_order(60, seed=7, epoch=4),
                                  np.random.default_rng([7, 4]).permutation(60))


# ---------------------------------------------------------------- the monitor set


def test_monitor_indices_are_fixed_and_independent_of_training_seed():
    np.random.seed(123)  # global state must not matter
    first = monitor_indices()
    list(batches(10_000, seed=99))
    second = monitor_indices()
    np.testing.assert_array_equal(first, second)
    assert first.shape == (100,) and len(np.unique(first)) == 100
    assert first.min() >= 0 and first.max() < 10_000 and np.all(np.diff(first) > 0)
    expected = np.sort(np.random.default_rng(0).choice(10_000, size=100, replace=False))
    np.testing.assert_array_equal(first, expected)


def test_monitor_indices_bad_size():
    with pytest.raises(ValueError, match="size must be in 0..50"):
        monitor_indices(50, 100)


# ---------------------------------------------------------------- the real data

REAL = {
    ("mnist", "train"): [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ("mnist", "test"): [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ("fashion-mnist", "train"): [6000] * 10,
    ("fashion-mnist", "test"): [1000] * 10,
}
FIRST_LABELS = {("mnist", "train"): [5, 0, 4, 1, 9, 2, 1, 3],
                ("fashion-mnist", "train"): [9, 0, 0, 3]}  # ankle boot, T-shirt, T-shirt, dress


@pytest.mark.parametrize("dataset, split", list(REAL))
def test_real_data(shared_datasets, dataset, split):
    x, y = load(dataset, split, shared_datasets)
    n = 60_000 if split == "train" else 10_000
    assert x.shape == (n, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert 0.1 < x.mean() < 0.4  # mostly dark background, not noise or all-white
    assert np.bincount(y, minlength=10).tolist() == REAL[dataset, split]
    if (dataset, split) in FIRST_LABELS:
        first = FIRST_LABELS[dataset, split]
        assert y[: len(first)].tolist() == first


def test_real_data_through_the_env_var(shared_datasets, monkeypatch):
    monkeypatch.setenv("NUMPYVAE_DATA", os.fspath(shared_datasets))
    x, y = load("mnist", "test")
    assert x.shape == (10_000, 1, 28, 28)
    assert x[monitor_indices()].shape == (100, 1, 28, 28)
    assert sorted(FILES) == sorted(p.name for p in (shared_datasets / "mnist").iterdir())
