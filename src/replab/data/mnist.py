"""MNIST and Fashion-MNIST, real source: the four IDX files of each, pinned and parsed with numpy.

Sources, mirrors and hashes: shared/reference/datasets.md §A and §H. The decompressed-content pins let a
recompressed copy (Debian's `dataset-fashion-mnist` in /usr/share/datasets/fashion-mnist) serve as the
mirror directory.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.data.images import check_every_class, stratified_split, write_image_splits
from replab.download import RemoteFile, check_mirror, fetch, verify
from replab.io import DataError
from replab.params import MAX_COUNT, ParamError, param

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _pins(bases, sizes, sha256s, content_sha256s) -> dict[str, RemoteFile]:
    return {role: RemoteFile(name, tuple(base + name for base in bases), sha, size, content)
            for role, name, size, sha, content in zip(ROLES, _NAMES, sizes, sha256s, content_sha256s)}


SOURCES: dict[str, dict[str, RemoteFile]] = {
    "mnist": _pins(
        # ossci is the torchvision mirror and the only one known live; LeCun's site now answers 403/404
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/",
         "http://yann.lecun.com/exdb/mnist/"),
        (9912422, 28881, 1648877, 4542),
        ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
         "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
         "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
         "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        # decompressed IDX sha256s: not in datasets.md; the same four values are pinned independently by
        # many public repos (one of which also pins our Debian-verified Fashion-MNIST content hashes)
        ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
         "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
         "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
         "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ),
    "fashion_mnist": _pins(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"),
        (26421880, 29515, 4422102, 5148),
        ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
         "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
         "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
         "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
        ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
         "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
         "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
         "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
}

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"],
}


@dataclass(frozen=True)
class ImageSourceConfig:
    mirror: str | None = param(None, nonempty=True, doc="directory, file:// or http(s):// URL holding the dataset's "
                               "files (replaces the pinned URLs; for machines without internet)")
    val_size: int = param(10000, ge=1, le=MAX_COUNT,
                          doc="training images held out, stratified by class, for validation")


# IDX type codes (third magic byte) → big-endian numpy dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (gzipped or raw) into a native-endian array; DataError naming it if malformed."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: missing (run the download stage first)") from None
    except OSError as err:  # a directory, no permission: not the gzip's fault
        raise DataError(f"{path}: unreadable ({err.strerror})") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt gzip ({err})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataError(f"{path}: not an IDX file (magic {raw[:4].hex() or 'missing'})")
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: np.prod wraps at 2^63
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes, expected {expected} for an IDX array of shape {dims}")
    arr = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # a writable native-endian copy


DOWNLOAD_PARAMS = ("mirror",)  # what download() reads of the config (registry.download_params)


def download(name: str, cfg: ImageSourceConfig, raw_dir: Path, progress: bool = True) -> list[Path]:
    key = f"data.{name}.mirror"
    check_mirror(cfg.mirror, key, _NAMES)
    return [fetch(f, raw_dir, cfg.mirror, progress=progress, key=key)
            for f in _sources(name).values()]


def prepare(name: str, cfg: ImageSourceConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """Parse the downloaded IDX files and write train/val/test.npz + meta.json into `out_dir` atomically."""
    files = _sources(name)
    paths = {role: Path(raw_dir) / f.name for role, f in files.items()}
    for path in paths.values():
        if not path.is_file():
            raise DataError(f"{path}: missing (run the download stage first)")
    sha = {f.name: verify(f, paths[role]) for role, f in files.items()}  # pins hold for what we parse
    x_train, y_train = _images_labels(paths["train_images"], paths["train_labels"], len(CLASS_NAMES[name]))
    x_test, y_test = _images_labels(paths["test_images"], paths["test_labels"], len(CLASS_NAMES[name]))
    n_classes = len(CLASS_NAMES[name])
    for role, y in (("train_labels", y_train), ("test_labels", y_test)):
        check_every_class(str(paths[role]), y, n_classes)
    if cfg.val_size >= len(y_train):
        raise ParamError(f"data.{name}.val_size = {cfg.val_size}: must be < {len(y_train)} "
                         "(the number of training images)")
    train_idx, val_idx = stratified_split(y_train, cfg.val_size, np.random.default_rng(split_seed))
    splits = {"train": (x_train[train_idx], y_train[train_idx]), "val": (x_train[val_idx], y_train[val_idx]),
              "test": (x_test, y_test)}
    meta = {"dataset": name, "source": "real", "class_names": CLASS_NAMES[name], "split_seed": split_seed,
            "sha256": sha}
    return write_image_splits(out_dir, splits, meta)


def _sources(name: str) -> dict[str, RemoteFile]:
    if name not in SOURCES:
        raise ValueError(f"unknown image dataset {name!r} (known: {', '.join(SOURCES)})")
    return SOURCES[name]


def _images_labels(images_path: Path, labels_path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images_path), read_idx(labels_path)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: expected uint8 images of shape (N, 28, 28), got {x.dtype} {x.shape}")
    if y.dtype != np.uint8 or y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{labels_path}: expected {len(x)} uint8 labels, got {y.dtype} {y.shape}")
    if y.size and y.max() >= n_classes:
        raise DataError(f"{labels_path}: label {int(y.max())} out of range 0..{n_classes - 1}")
    return x, y.astype(np.int64)
