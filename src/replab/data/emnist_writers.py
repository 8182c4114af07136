"""emnist_writers, real source: EMNIST digits with writer ids, from NIST's EMNIST "matlab" release.

`matlab.zip` holds one MATLAB v5 file per EMNIST split; we use `matlab/emnist-digits.mat` (240,000 train /
40,000 test). Its single variable `dataset` is a struct with fields `train`, `test` (each a struct of `images`
N×784 uint8, `labels` N×1, `writers` N×1) and `mapping`. Each image row is stored column-major (transposed
relative to MNIST): `row.reshape(28, 28).T` is the upright digit. This is the file the article's notebook reads
(`dataset[0][0][0]` = train; shared/reference/peers.md §2).

Pins: shared/reference/datasets.md §B does not list matlab.zip. Its sha256 below is the one JuliaML/MLDatasets.jl
registers as the DataDep checksum (`src/datasets/vision/emnist.jl`, SHA-256 by DataDeps' convention, unchanged
across that file's versions); no second independent pin was found and the archive size is unknown.
The same `cs_links/EMNIST/matlab.zip` path is served from biometrics.nist.gov (the URL public loaders such as
stable_datasets use now) and www.itl.nist.gov (the original); the FSDL S3 copy is described by its owners as
"the same file". None of the three was reachable from here, so the pin is untested against the real bytes.

`mirror` may hold either `matlab.zip` or, unpacked, `emnist-digits.mat` (also as `matlab/emnist-digits.mat`
for a local directory). Only the digits file is kept: it is extracted atomically into `raw_dir` and the
archive (all six EMNIST splits, several hundred MB) is deleted; `emnist-digits.json` records both checksums
and where the file came from. An unpacked .mat cannot be checked against a pin (none is published): it is
parsed whole (`read_emnist_mat`) before it is moved into place, then its sha256 is recorded and reported in
meta.json. A digits file in `raw_dir` without a matching record, or one that no longer parses, is replaced on
download.

Processed layout: see replab.data.writers. Writers are re-indexed 0..W-1 on the train split (sorted ids); test
images of writers absent from train are dropped and counted in meta["dropped_test"], as the notebook's NaN
mapping implies. There is no validation split (the paper trains on all training images).
"""

from __future__ import annotations

import shutil
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from replab.data.images import check_every_class
from replab.data.writers import CLASS_NAMES, WRITER_SPLITS, write_writer_splits
from replab.download import FetchError, RemoteFile, check_mirror, fetch, local_root, offline_hint
from replab.io import UNREADABLE_ZIP, DataError, atomic_path, read_json, rerun_hint, sha256_file, write_json
from replab.params import param

ARCHIVE = RemoteFile(
    "matlab.zip",
    ("https://biometrics.nist.gov/cs_links/EMNIST/matlab.zip",
     "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/matlab.zip",
     "https://s3-us-west-2.amazonaws.com/fsdl-public-assets/matlab.zip"),
    # JuliaML/MLDatasets.jl DataDep checksum; not confirmed by a second source (see module docstring)
    "e1fa805cdeae699a52da0b77c2db17f6feb77eed125f9b45c022e7990444df95",
)
MAT_FILE = "emnist-digits.mat"
MEMBER = f"matlab/{MAT_FILE}"
RECORD = "emnist-digits.json"
# an unpacked release has no published checksum: accepted once it parses whole (a transfer cut short without a
# Content-Length still has the `MATLAB` header), its sha256 recorded
UNPACKED = RemoteFile(MAT_FILE, (), None, check=lambda path: read_emnist_mat(path))


@dataclass(frozen=True)
class EmnistWritersConfig:
    mirror: str | None = param(None, nonempty=True, doc="directory, file:// or http(s):// URL holding matlab.zip or "
                                         "emnist-digits.mat (replaces the pinned URLs)")


# ---------------------------------------------------------------------------------------------------------
# DVC stages


DOWNLOAD_PARAMS = ("mirror",)  # what download() reads of the config (registry.download_params)


def download(name: str, cfg: EmnistWritersConfig, raw_dir: Path, progress: bool = True) -> Path:
    """Leave `raw_dir/emnist-digits.mat` and its record; fetch (and unpack) only if it is not there yet."""
    raw_dir = Path(raw_dir)
    target = raw_dir / MAT_FILE
    if target.is_file():
        recorded = _recorded_sha256(raw_dir)
        if recorded is not None and recorded == sha256_file(target):
            try:  # the record says where it came from, not that it is whole (an older download may not have checked)
                read_emnist_mat(target)
                return target  # extracted earlier, unchanged since and whole
            except DataError as err:
                print(f"{MAT_FILE}: existing copy {target} removed: {err}", file=sys.stderr)
        target.unlink()  # unknown provenance (no or stale record) or damaged: obtain it again
        (raw_dir / RECORD).unlink(missing_ok=True)
    key = f"data.{name}.mirror"
    hint = offline_hint(key)
    check_mirror(cfg.mirror, key, (ARCHIVE.name, MAT_FILE))
    local = _local_mirror(cfg.mirror)
    if local is not None and local.name == MAT_FILE:  # a local mirror of the unpacked release: checked, copied
        fetch(UNPACKED, raw_dir, str(local.parent), progress=progress, key=key)
        _write_record(raw_dir, origin=str(local), archive_sha256=None)
        return target
    if local is None and cfg.mirror and urlparse(cfg.mirror).scheme in ("", "file"):
        raise DataError(f"{MAT_FILE}: mirror {cfg.mirror} holds neither {ARCHIVE.name} nor {MAT_FILE} "
                        f"(nor {MEMBER}); {hint}")
    try:
        archive = fetch(ARCHIVE, raw_dir, cfg.mirror, progress=progress, key=key)
    except DataError as err:
        # an http(s) mirror may serve the unpacked file instead; a checksum mismatch is never skipped over
        if not cfg.mirror or not (isinstance(err, FetchError) and err.unreachable):
            raise
        try:
            fetch(UNPACKED, raw_dir, cfg.mirror, progress=progress, key=key)
        except DataError as unpacked:
            if isinstance(unpacked, FetchError) and not unpacked.unreachable:
                raise  # it served a .mat that fails its check: say why, not "serves neither"
            raise DataError(f"{MAT_FILE}: mirror {cfg.mirror} serves neither {ARCHIVE.name} nor {MAT_FILE} "
                            f"(or is unreachable); {hint}") from None
        _write_record(raw_dir, origin=f"{cfg.mirror.rstrip('/')}/{MAT_FILE}", archive_sha256=None)
        return target
    extract_digits(archive, target)
    _write_record(raw_dir, origin=f"{cfg.mirror or 'pinned URLs'}: {ARCHIVE.name} member {MEMBER}",
                  archive_sha256=ARCHIVE.sha256)
    archive.unlink()
    return target


def prepare(name: str, cfg: EmnistWritersConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """Parse emnist-digits.mat, re-index writers on train, write the processed layout atomically.

    The train/test split is NIST's, so `split_seed` is unused."""
    raw_dir = Path(raw_dir)
    path = raw_dir / MAT_FILE
    if not path.is_file():
        raise DataError(f"{path}: missing (run `dvc repro download@{name}` first)")
    actual = sha256_file(path)
    recorded = _recorded_sha256(raw_dir)
    if recorded is not None and recorded != actual:
        raise DataError(f"{path}: sha256 {actual} differs from {recorded} recorded at download "
                        f"({raw_dir / RECORD}); {rerun_hint(f'download@{name}')}")
    try:
        data = read_emnist_mat(path)
        check_every_class(f"{path}: `dataset.train.labels`", data["train"][1], len(CLASS_NAMES))
    except DataError as err:  # the file is at fault: only a new download mends it (a plain repro would not rerun it)
        raise DataError(f"{err}; {rerun_hint(f'download@{name}')}") from None
    (x_tr, y_tr, w_tr), (x_te, y_te, w_te) = data["train"], data["test"]
    w_tr, w_te, keep = reindex_writers(w_tr, w_te)
    if not keep.any():  # an empty test split would be written and only refused at training
        raise DataError(f"{path}: no image of `dataset.test` ({len(y_te)}) is by a writer of `dataset.train` "
                        f"({len(y_tr)} images); the test split would be empty")
    splits = {"train": (x_tr, y_tr, w_tr), "test": (x_te[keep], y_te[keep], w_te)}
    sha = {MAT_FILE: actual}
    if recorded is not None and (archive := read_json(raw_dir / RECORD).get("archive_sha256")):
        sha[ARCHIVE.name] = archive
    meta = {"dataset": name, "source": "real", "class_names": CLASS_NAMES, "sha256": sha,
            "writer_ids": "re-indexed 0..n_writers-1 in sorted order of the train split's NIST writer ids",
            "dropped_test": {"writers": int(len(np.unique(data["test"][2][~keep]))), "images": int((~keep).sum())}}
    return write_writer_splits(out_dir, splits, meta)


# ---------------------------------------------------------------------------------------------------------
# Parsing


def read_emnist_mat(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{"train"|"test": (x uint8 (N, 28, 28) upright, y int64 (N,), writer int64 (N,) NIST ids)}.

    Raises a one-line DataError naming the file if it is truncated, not MATLAB v5, or not structured as
    EMNIST's `dataset` struct."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    path = Path(path)
    try:
        mat = scipy.io.loadmat(path, variable_names=["dataset"])
    except FileNotFoundError:
        raise DataError(f"{path}: missing (run the download stage first)") from None
    except NotImplementedError:  # scipy's answer to MATLAB 7.3 (HDF5) files
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) file; expected the v5 .mat of the EMNIST release") from None
    except (MatReadError, ValueError, TypeError, IndexError, KeyError, OSError, EOFError, struct.error,
            zlib.error, UnicodeDecodeError) as err:
        raise DataError(f"{path}: truncated or not a MATLAB v5 .mat file ({_one_line(err)})") from None
    dataset = mat.get("dataset")
    if dataset is None:
        try:  # loaded only `dataset`: list what the file holds instead (headers only)
            found = sorted(name for name, _, _ in scipy.io.whosmat(path))
        except (MatReadError, ValueError, TypeError, IndexError, OSError, EOFError, struct.error, zlib.error):
            found = []
        raise DataError(f"{path}: no variable `dataset` (found: {', '.join(found) or 'none'}); "
                        "expected EMNIST's emnist-digits.mat")
    top = _struct(dataset, ("train", "test"), path, "dataset")
    return {split: _split(top[split], path, f"dataset.{split}") for split in WRITER_SPLITS}


def _struct(value, fields: tuple[str, ...], path: Path, where: str):
    """The single record of a 1×1 MATLAB struct, checking it has `fields`."""
    names = getattr(getattr(value, "dtype", None), "names", None)
    if names is None or value.size != 1:
        shape = getattr(value, "shape", "?")
        raise DataError(f"{path}: `{where}` is not a 1×1 struct (got {type(value).__name__} of shape {shape})")
    missing = [f for f in fields if f not in names]
    if missing:
        raise DataError(f"{path}: `{where}` has no field {', '.join(f'`{m}`' for m in missing)} "
                        f"(fields: {', '.join(names)})")
    return value.reshape(-1)[0]


def _split(value, path: Path, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rec = _struct(value, ("images", "labels", "writers"), path, where)
    images, labels, writers = (np.asarray(rec[f]) for f in ("images", "labels", "writers"))
    if images.ndim != 2 or images.shape[1] != 784 or not np.issubdtype(images.dtype, np.integer):
        raise DataError(f"{path}: `{where}.images` must be N×784 integers, got {images.dtype} {images.shape}")
    n = len(images)
    labels, writers = _column(labels, n, path, f"{where}.labels"), _column(writers, n, path, f"{where}.writers")
    if n and (images.min() < 0 or images.max() > 255):
        raise DataError(f"{path}: `{where}.images` values outside 0..255")
    if n and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: `{where}.labels` outside 0..9 (min {labels.min()}, max {labels.max()}); "
                        "not the digits split?")
    if n and writers.min() < 0:  # NIST writer ids are >= 0; a negative one is a corrupt or foreign file
        first = int(np.argmax(writers < 0))
        raise DataError(f"{path}: `{where}.writers` holds {writers[first]} at row {first} (NIST writer ids are >= 0)")
    # rows are column-major 28×28 images: reshape row-major, then swap axes to get them upright
    x = np.ascontiguousarray(images.astype(np.uint8).reshape(n, 28, 28).transpose(0, 2, 1))
    return x, labels, writers


def _column(values: np.ndarray, n: int, path: Path, where: str) -> np.ndarray:
    if values.size != n or (values.ndim == 2 and 1 not in values.shape) or values.ndim > 2:
        raise DataError(f"{path}: `{where}` has shape {values.shape}, expected {n}×1 (one per image)")
    flat = values.reshape(-1)
    if not np.issubdtype(flat.dtype, np.number) or np.iscomplexobj(flat):
        raise DataError(f"{path}: `{where}` must hold integers, got {flat.dtype}")
    if flat.dtype.kind == "f":  # ±inf == round(±inf), and both cast to INT64_MIN: refuse them before the int test
        bad = ~np.isfinite(flat)
        if bad.any():
            first = int(np.argmax(bad))
            raise DataError(f"{path}: `{where}` holds {flat[first]} at row {first} ({int(bad.sum())} of {flat.size} "
                            "values NaN or infinite; expected integers)")
        if flat.size and (not np.all(flat == np.round(flat)) or np.abs(flat).max() >= 2.0 ** 63):
            raise DataError(f"{path}: `{where}` must hold integers (within ±2^63), got {flat.dtype}")
    elif flat.dtype == np.uint64 and flat.size and flat.max() > np.iinfo(np.int64).max:
        raise DataError(f"{path}: `{where}` holds {flat.max()} (beyond the int64 range)")
    return flat.astype(np.int64)


def reindex_writers(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train index, test index of kept images, test keep mask): ids → 0..W-1 in sorted order of the train
    ids; test images whose writer never appears in train are dropped."""
    ids = np.unique(train)
    train_idx = np.searchsorted(ids, train)
    pos = np.clip(np.searchsorted(ids, test), 0, max(len(ids) - 1, 0))
    keep = ids[pos] == test if len(ids) else np.zeros(len(test), dtype=bool)
    return train_idx.astype(np.int64), pos[keep].astype(np.int64), keep


# ---------------------------------------------------------------------------------------------------------
# Unpacking and provenance


def extract_digits(archive: Path, target: Path) -> Path:
    """Extract only the digits file from the release archive into `target`, atomically, CRC-checked."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            member = MEMBER if MEMBER in names else next(
                (m for m in names if m.rsplit("/", 1)[-1] == MAT_FILE), None)
            if member is None:
                raise DataError(f"{archive}: no {MEMBER} in the archive ({len(names)} members)")
            with zf.open(member) as src, atomic_path(target, suffix=".part") as tmp:
                with open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except UNREADABLE_ZIP as err:
        raise DataError(f"{archive}: truncated or corrupt zip ({_one_line(err)})") from None
    return target


def _local_mirror(mirror: str | None) -> Path | None:
    """In a local mirror (directory or file://): its matlab.zip, else its unpacked digits file, else None."""
    root = local_root(mirror) if mirror else None
    if root is None:
        return None
    return next((p for p in (root / ARCHIVE.name, root / MAT_FILE, root / MEMBER) if p.is_file()), None)


def _write_record(raw_dir: Path, origin: str, archive_sha256: str | None) -> None:
    write_json(raw_dir / RECORD, {"file": MAT_FILE, "sha256": sha256_file(raw_dir / MAT_FILE),
                                  "archive": ARCHIVE.name if archive_sha256 else None,
                                  "archive_sha256": archive_sha256, "origin": origin})


def _recorded_sha256(raw_dir: Path) -> str | None:
    record = raw_dir / RECORD
    if not record.is_file():
        return None
    try:
        value = read_json(record).get("sha256")
    except (DataError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
