"""What every image data set shares once parsed: stratified hold-out splits and the processed layout, written
(`write_image_splits`) and read (`load_image_splits`) here alone (`replab.loaders.images` moves it to the device).

Processed layout (read by every image paper): `train.npz`, `val.npz`, `test.npz` with `x` uint8 (N, 28, 28)
and `y` int64 (N,), plus `meta.json`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replab.io import (
    DataError,
    atomic_dir,
    check_manifest,
    npz_array,
    read_json,
    read_npz,
    rerun_hint,
    write_json,
    write_npz,
)

SPLITS = ("train", "val", "test")
N_CLASSES = 10  # every image set here (mnist5k, mnist, fashion_mnist) has ten classes


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


def check_image_split(path: Path, arrays: dict[str, np.ndarray], n_classes: int = N_CLASSES,
                      nonempty: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one split of the processed layout if x is uint8 (N, 28, 28), N ≥ 1 if `nonempty`, and y int (N,)
    in 0 … n_classes - 1; else a one-line DataError naming `path`, the array and what is allowed. y is returned
    as int64 whatever its integer dtype in the file (torch's cross-entropy wants Long targets)."""
    x = npz_array(path, arrays, "x", dtype="uint8", shape=("N", 28, 28), noun="pixels", row="image",
                  values=(0, 255), nonempty=nonempty)
    y = npz_array(path, arrays, "y", dtype="integer", shape=("N",), noun="class labels", row="image",
                  values=(0, n_classes - 1), like="x")
    return x, y.astype(np.int64, copy=False)  # in range, so the conversion is exact


def check_every_class(where: str, y: np.ndarray, n_classes: int) -> None:
    """A one-line DataError naming `where` (a labels file or array) unless `y` holds every class 0 … n_classes - 1:
    a split lacking a class would be written and trained on (a classifier of fewer classes), not refused."""
    if not len(y):
        raise DataError(f"{where}: 0 labels (expected images of every class 0..{n_classes - 1})")
    if missing := sorted(set(range(n_classes)) - set(np.unique(y).tolist())):
        raise DataError(f"{where}: no image of class {', '.join(map(str, missing))} "
                        f"(expected every class 0..{n_classes - 1})")


def meta_classes(meta: dict) -> int:
    """Classes of a processed image set: the length of meta.json's class_names (ten if it has none)."""
    names = meta.get("class_names")
    return len(names) if isinstance(names, list) and names else N_CLASSES


def check_image_meta(meta: dict, path: Path, stage: str, dataset: str | None = None) -> dict:
    """`meta` (read from `path`, a processed set's meta.json) if its `dataset` is `dataset` (when given: the set the
    caller loads) and its `class_names` (where given) list two or more names; else DataError naming `path`: a
    meta.json copied from another set, or one class too few, would otherwise be blamed on the arrays (`y holds 5 …
    (allowed: 0 … 0)`)."""
    if dataset is not None and meta.get("dataset", dataset) != dataset:
        raise DataError(f"{path}: dataset = {meta['dataset']!r}, but the folder is {dataset}'s (a meta.json of "
                        f"another set); {rerun_hint(stage)}")
    names = meta.get("class_names")
    if names is not None and not (isinstance(names, list) and len(names) >= 2
                                  and all(isinstance(n, str) for n in names)):
        raise DataError(f"{path}: class_names = {names!r}: expected a list of two or more names; {rerun_hint(stage)}")
    return meta


def write_image_splits(out_dir: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], meta: dict) -> dict:
    """Write the processed layout atomically: either the whole directory appears, or nothing changes. Every split
    is checked as `load_image_splits` will check it, so a bad one stops the prepare stage instead (an empty split
    is written; training refuses it)."""
    with atomic_dir(out_dir) as tmp:
        for name, (x, y) in splits.items():
            arrays = {"x": x.astype(np.uint8), "y": y.astype(np.int64)}
            check_image_split(Path(out_dir) / f"{name}.npz", arrays, meta_classes(meta), nonempty=False)
            write_npz(tmp / f"{name}.npz", **arrays)
        meta = {**meta, "counts": {name: int(len(y)) for name, (_, y) in splits.items()}}
        write_json(tmp / "meta.json", meta)
    return meta


Splits = dict[str, tuple[np.ndarray, np.ndarray]]


def load_image_splits(data_dir: Path, dataset: str | None = None) -> tuple[Splits, dict]:
    """Read a processed image data set: ({split: (x, y)}, meta), every split checked (`check_image_split`) and
    meta.json by `check_image_meta` (its `dataset` against `dataset`, the set the caller loads, when given)."""
    data_dir = Path(data_dir)
    stage = f"prepare@{data_dir.name}"
    check_manifest(data_dir, stage)
    meta = check_image_meta(read_json(data_dir / "meta.json", expect=dict, stage=stage), data_dir / "meta.json",
                            stage, dataset)
    splits = {name: check_image_split(data_dir / f"{name}.npz", read_npz(data_dir / f"{name}.npz", stage=stage),
                                      meta_classes(meta))
              for name in SPLITS}
    return splits, meta
