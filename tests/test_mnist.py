"""MNIST / Fashion-MNIST: IDX parsing and download → prepare on tiny generated files served over loopback."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import closed_port_url
from replab.data import mnist
from replab.download import RemoteFile
from replab.io import DataError
from replab.params import ParamError, parse

N_TRAIN, N_TEST = 60, 20  # 6 and 2 images per class
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    header = struct.pack(">HBB", 0, type_code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def tiny_split(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose first pixel is a unique id, so splits can be traced back to source rows."""
    rng = np.random.default_rng(n)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    x[:, 0, 0] = np.arange(offset, offset + n)
    return x, rng.permutation(np.arange(n) % 10).astype(np.uint8)


@pytest.fixture
def served(server, monkeypatch):
    """Serve the four real-format .gz files from loopback and pin both datasets to them."""
    root, base = server
    (x_tr, y_tr), (x_te, y_te) = tiny_split(N_TRAIN, 0), tiny_split(N_TEST, 100)
    arrays = dict(zip(mnist.ROLES, (x_tr, y_tr, x_te, y_te)))
    for name in mnist.SOURCES:
        pins = {}
        for role, real in mnist.SOURCES[name].items():
            data = gzip.compress(idx_bytes(arrays[role]), mtime=0)
            (root / real.name).write_bytes(data)
            pins[role] = RemoteFile(real.name, (base + real.name,), hashlib.sha256(data).hexdigest())
        monkeypatch.setitem(mnist.SOURCES, name, pins)
    return root, arrays


def load(out: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(out / f"{split}.npz") as npz:
        return npz["x"], npz["y"]


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_download_and_prepare(served, tmp_path, name):
    _, arrays = served
    cfg = mnist.ImageSourceConfig(val_size=20)
    raw, out = tmp_path / "raw", tmp_path / "out"
    paths = mnist.download(name, cfg, raw, progress=False)
    assert sorted(p.name for p in paths) == sorted(p.name for p in raw.iterdir())
    meta = mnist.prepare(name, cfg, raw, out, split_seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "test.npz", "train.npz", "val.npz"]
    assert json.loads((out / "meta.json").read_text()) == meta
    assert meta["source"] == "real" and meta["dataset"] == name
    assert meta["counts"] == {"train": 40, "val": 20, "test": 20}
    assert meta["class_names"] == mnist.CLASS_NAMES[name] and len(meta["class_names"]) == 10
    assert set(meta["sha256"]) == {f.name for f in mnist.SOURCES[name].values()}
    splits = {s: load(out, s) for s in ("train", "val", "test")}
    for x, y in splits.values():
        assert x.dtype == np.uint8 and x.shape[1:] == (28, 28)
        assert y.dtype == np.int64 and y.shape == x.shape[:1]
    ids = {s: x[:, 0, 0].astype(int) for s, (x, _) in splits.items()}
    assert set(ids["train"]).isdisjoint(ids["val"])
    assert sorted([*ids["train"], *ids["val"]]) == list(range(N_TRAIN))
    np.testing.assert_array_equal(np.bincount(splits["val"][1], minlength=10), np.full(10, 2))  # stratified
    for s in ("train", "val"):  # each image keeps its own label
        x, y = splits[s]
        np.testing.assert_array_equal(arrays["train_images"][ids[s]], x)
        np.testing.assert_array_equal(arrays["train_labels"][ids[s]], y)
    np.testing.assert_array_equal(splits["test"][0], arrays["test_images"])


def test_split_is_seeded(served, tmp_path):
    cfg = mnist.ImageSourceConfig(val_size=20)
    raw = tmp_path / "raw"
    mnist.download("mnist", cfg, raw, progress=False)
    val_ids = []
    for i, seed in enumerate((7, 7, 8)):
        mnist.prepare("mnist", cfg, raw, tmp_path / f"out{i}", split_seed=seed)
        val_ids.append(load(tmp_path / f"out{i}", "val")[0][:, 0, 0].tolist())
    assert val_ids[0] == val_ids[1] and val_ids[0] != val_ids[2]


def test_stratified_split_uneven_classes():
    y = np.repeat(np.arange(3), [50, 30, 20])
    train, val = mnist.stratified_split(y, 10, np.random.default_rng(0))
    assert len(val) == 10 and len(train) == 90 and not set(train) & set(val)
    np.testing.assert_array_equal(np.bincount(y[val]), [5, 3, 2])


def test_mirror_directory_and_offline_hint(served, tmp_path, network_attempts):
    root, _ = served
    for name, pins in list(mnist.SOURCES.items()):  # pinned URLs now unreachable: only the mirror can work
        mnist.SOURCES[name] = {r: RemoteFile(f.name, (closed_port_url() + f.name,), f.sha256)
                               for r, f in pins.items()}
    assert len(mnist.download("mnist", mnist.ImageSourceConfig(mirror=str(root)), tmp_path / "a",
                              progress=False)) == 4
    assert len(mnist.download("mnist", mnist.ImageSourceConfig(mirror=root.as_uri()), tmp_path / "b",
                              progress=False)) == 4
    assert network_attempts.urls == []  # both mirrors served every file: no pinned host was tried
    with pytest.raises(DataError, match=r"data\.fashion_mnist\.mirror") as err:
        mnist.download("fashion_mnist", mnist.ImageSourceConfig(), tmp_path / "c", progress=False)
    assert "train-images-idx3-ubyte.gz" in str(err.value)
    # the first file's one pinned (unreachable) URL was tried once, without back-off, and nothing after it
    assert network_attempts.urls == list(mnist.SOURCES["fashion_mnist"]["train_images"].urls)
    assert network_attempts.sleeps == []


def test_read_idx_raw_and_gzip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(arr))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(arr)))
    for p in ("a", "a.gz"):
        out = mnist.read_idx(tmp_path / p)
        np.testing.assert_array_equal(out, arr)
        assert out.flags.writeable
    big_endian = np.arange(6, dtype=">i4").reshape(2, 3)
    (tmp_path / "b").write_bytes(idx_bytes(big_endian, 0x0C))
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "b"), big_endian)


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x00\x00\x07\x03" + b[4:], "not an IDX file"),  # unknown type code (magic 2051 → 1795)
    (lambda b: b[:-1], "bytes, expected"),
    (lambda b: b + b"\0", "bytes, expected"),
    (lambda b: b[:10], "truncated IDX header|bytes, expected"),
    (lambda b: gzip.compress(b)[:-20], "truncated or corrupt gzip"),
])
def test_read_idx_rejects_malformed(tmp_path, mutate, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mutate(idx_bytes(np.zeros((3, 28, 28), np.uint8))))
    with pytest.raises(DataError, match=message) as err:
        mnist.read_idx(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_read_idx_of_a_directory_is_unreadable_not_a_corrupt_gzip(tmp_path):
    with pytest.raises(DataError) as err:
        mnist.read_idx(tmp_path)
    assert str(err.value) == f"{tmp_path}: unreadable (Is a directory)"


def test_prepare_rejects_swapped_files(served, tmp_path):
    """Labels where images belong: parsed fine as IDX, but caught by the shape check, naming the file."""
    root, arrays = served
    raw = tmp_path / "raw"
    raw.mkdir()
    pins = {}
    for role, f in mnist.SOURCES["mnist"].items():
        src = root / mnist.SOURCES["mnist"]["train_labels" if role == "train_images" else role].name
        (raw / f.name).write_bytes(src.read_bytes())
        pins[role] = RemoteFile(f.name, f.urls, None)
    mnist.SOURCES["mnist"] = pins
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: expected uint8 images"):
        mnist.prepare("mnist", mnist.ImageSourceConfig(val_size=20), raw, tmp_path / "out", 0)
    assert not (tmp_path / "out").exists()


def test_val_size_validation(served, tmp_path):
    with pytest.raises(ParamError, match=r"data\.mnist\.val_size = 0: must be >= 1"):
        parse(mnist.ImageSourceConfig, {"val_size": 0}, "data.mnist")
    raw = tmp_path / "raw"
    mnist.download("mnist", mnist.ImageSourceConfig(), raw, progress=False)
    with pytest.raises(ParamError, match=r"data\.mnist\.val_size = 60: must be < 60"):
        mnist.prepare("mnist", mnist.ImageSourceConfig(val_size=60), raw, tmp_path / "out", 0)


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_pins_accept_debian_fashion_mnist(tmp_path):
    """The real pins verify Debian's recompressed files (content hash) and give the standard 60k/10k split."""
    cfg = mnist.ImageSourceConfig(mirror=str(DEBIAN_DIR))
    raw = tmp_path / "raw"
    mnist.download("fashion_mnist", cfg, raw, progress=False)
    meta = mnist.prepare("fashion_mnist", cfg, raw, tmp_path / "out", split_seed=0)
    assert meta["counts"] == {"train": 50000, "val": 10000, "test": 10000}
    x, y = load(tmp_path / "out", "val")
    assert x.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 1000))


@pytest.mark.parametrize("dims", [(2**31, 2**31, 4), (2**32 - 1,) * 3])
def test_read_idx_huge_dims_give_one_line_with_the_exact_size(tmp_path, dims):
    """np.prod overflowed: (2^31, 2^31, 4) raised a ValueError traceback, (2^32-1)^3 stated a wrong size."""
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", *dims) + b"\0" * 10)
    with pytest.raises(DataError) as err:
        mnist.read_idx(path)
    expected = 16 + dims[0] * dims[1] * dims[2]
    assert str(err.value) == f"{path}: 26 bytes, expected {expected} for an IDX array of shape {dims}"


@pytest.mark.parametrize("case", ["no test images", "a class missing from train", "a class missing from test"])
def test_prepare_refuses_empty_test_split_or_missing_class(served, tmp_path, case):
    """0 test images or a class absent from a split were prepared without a word (exit 0)."""
    root, arrays = served
    (x_tr, y_tr), (x_te, y_te) = (arrays["train_images"], arrays["train_labels"]), (arrays["test_images"],
                                                                                  arrays["test_labels"])
    if case == "no test images":
        x_te, y_te = x_te[:0], y_te[:0]
    elif case == "a class missing from train":
        y_tr = np.where(y_tr == 7, 1, y_tr).astype(np.uint8)
    else:
        y_te = np.where(y_te == 7, 1, y_te).astype(np.uint8)
    raw = tmp_path / "raw"
    raw.mkdir()
    pins = {}
    for role, arr in zip(mnist.ROLES, (x_tr, y_tr, x_te, y_te)):
        f = mnist.SOURCES["mnist"][role]
        (raw / f.name).write_bytes(gzip.compress(idx_bytes(arr), mtime=0))
        pins[role] = RemoteFile(f.name, f.urls, None)
    mnist.SOURCES["mnist"] = pins
    role = "train_labels" if "train" in case else "test_labels"
    with pytest.raises(DataError) as err:
        mnist.prepare("mnist", mnist.ImageSourceConfig(val_size=20), raw, tmp_path / "out", 0)
    msg = str(err.value)
    assert msg.startswith(str(raw / pins[role].name)) and "\n" not in msg
    assert ("0 labels" if case == "no test images" else "no image of class 7") in msg
    assert not (tmp_path / "out").exists()
