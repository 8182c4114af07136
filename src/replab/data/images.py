"""What every image data set shares once parsed: stratified hold-out splits and the processed layout.

Processed layout (read by every image paper): `train.npz`, `val.npz`, `test.npz` with `x` uint8 (N, 28, 28)
and `y` int64 (N,), plus `meta.json`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replab.io import DataError, atomic_dir, read_json, read_npz, write_json, write_npz

SPLITS = ("train", "val", "test")


def shuffled_class_rank(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For every example, its rank among the examples of its class in a random order (vectorised)."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    perm = rng.permutation(len(y))
    order = perm[np.argsort(inverse[perm], kind="stable")]  # grouped by class, shuffled within each class
    rank = np.empty(len(y), dtype=np.int64)
    rank[order] = np.arange(len(y)) - np.repeat(np.cumsum(counts) - counts, counts)
    return rank


def stratified_holdout(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask choosing `per_class` random examples of every class."""
    return shuffled_class_rank(y, rng) < per_class


def stratified_split(y: np.ndarray, n_val: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), both sorted; each class gives val its share of `n_val` (largest remainder)."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    exact = counts * n_val / len(y)
    quota = np.floor(exact).astype(np.int64)
    quota[np.argsort(quota - exact, kind="stable")[: n_val - quota.sum()]] += 1
    take = shuffled_class_rank(y, rng) < quota[inverse]
    return np.flatnonzero(~take), np.flatnonzero(take)


def write_image_splits(out_dir: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], meta: dict) -> dict:
    """Write the processed layout atomically: either the whole directory appears, or nothing changes."""
    with atomic_dir(out_dir) as tmp:
        for name, (x, y) in splits.items():
            write_npz(tmp / f"{name}.npz", x=x.astype(np.uint8), y=y.astype(np.int64))
        meta = {**meta, "counts": {name: int(len(y)) for name, (_, y) in splits.items()}}
        write_json(tmp / "meta.json", meta)
    return meta


def load_image_splits(data_dir: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """Read a processed image data set: ({split: (x, y)}, meta)."""
    meta = read_json(data_dir / "meta.json")
    splits = {}
    for name in SPLITS:
        arrays = read_npz(data_dir / f"{name}.npz")
        if "x" not in arrays or "y" not in arrays or len(arrays["x"]) != len(arrays["y"]):
            raise DataError(f"{data_dir / name}.npz: expected arrays x and y of equal length")
        splits[name] = (arrays["x"], arrays["y"])
    return splits, meta
