"""usc_had, real source: the USC Human Activity Dataset (Zhang & Sawchuk, UbiComp 2012 SAGAware workshop).

`USC-HAD.zip` from sipi.usc.edu unpacks to `USC-HAD/` holding `Readme.txt`, two MATLAB plotting scripts and
`Subject1/` … `Subject14/`, each with 60 files `a<m>t<n>.mat` (activity m = 1..12, trial n = 1..5): 840
compressed MATLAB v5 files, 44,829,957 bytes in all. Each file holds 13 top-level variables: title, version,
date, subject, age, height, weight, activity, activity_number, trial, sensor_location, sensor_orientation and
`sensor_readings`, an N×6 double array sampled at 100 Hz by a MotionNode worn at the front right hip:
acc x/y/z in g, then gyro x/y/z in dps. Trials differ in length.

Quirks, handled here: the metadata are strings (`'170cm'`, `'65kg'`; units stripped, an unparsable value
becomes None and is never fatal); some files spell `activity_number` as `activity_numbr`; one loader reports
an `a11t4.mat` whose activity_number is 0. Labels therefore always come from the file name `a<m>t<n>.mat` and
the subject from its folder `Subject<k>`; where a file's own fields disagree, meta.json lists it.

Pins: no source publishes the zip's size or sha256, so the archive is verified by its contents: every one of
the 840 .mat files must match the sha256 list in `usc_had_sha256.txt` (package data), taken from the git-LFS
pointers of the ader003/PRCIS repository, which commits the unpacked release (an LFS oid is the sha256 of the
file's bytes). That check runs inside `fetch` (`ARCHIVE.check`), so a source answering with anything else (an
error page, a truncated or different zip) counts as that source failing and the next URL is tried. The zip's
own sha256 is recorded in `raw_dir/usc-had.json` so it can be pinned later. The host was not reachable from
here, so the URLs and the list are untested against the live server.

`mirror` may hold `USC-HAD.zip` (a directory, file:// or http(s):// URL) or, for a local directory, the
unpacked tree (`USC-HAD/Subject*/` or `Subject*/` directly). Only the 840 verified .mat files are kept, in
`raw_dir/USC-HAD/Subject<k>/a<m>t<n>.mat`, placed as one directory swap; the archive is deleted after
unpacking, and an archive that fails verification is deleted too, so it is fetched again next time (a
`USC-HAD.zip` copied into `raw_dir` by hand is used as is, verified the same way). Archive members with
absolute or `..` paths are rejected before anything is written.

Processed layout and windowing: see replab.data.recordings (users in `train_users` ∪ `unseen_users` only). A
recording shorter than one window gives no window; prepare names such recordings on stderr and in meta.json
(`short_recordings`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import struct
import sys
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from replab.data.recordings import (
    CHANNELS,
    N_USERS,
    WindowingConfig,
    short_recordings,
    split_windows,
    write_windows,
)
from replab.download import RemoteFile, check_mirror, fetch, local_root, offline_hint
from replab.io import UNREADABLE_ZIP, DataError, atomic_dir, read_json, sha256_file, write_json
from replab.params import param

ARCHIVE = RemoteFile(
    "USC-HAD.zip",
    ("https://sipi.usc.edu/had/USC-HAD.zip", "http://sipi.usc.edu/HAD/USC-HAD.zip"),
    None,  # unknown: the archive is verified member by member against MAT_SHA256 (see module docstring)
    check=lambda path: check_archive(path),  # a source whose zip fails this is skipped for the next one
)
ROOT = "USC-HAD"
RECORD = "usc-had.json"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
SHA_TABLE = "usc_had_sha256.txt"
SAMPLING_RATE_HZ = 100
N_ACTIVITIES, N_TRIALS = 12, 5

# Expected sha256 of every .mat file, keyed "Subject<k>/a<m>t<n>.mat" (relative to USC-HAD/). None: the pinned
# 840-file table shipped with the package, loaded on first use. Tests replace it with the table of a generated
# tree; the set of keys is also the set of recordings a complete copy must have.
MAT_SHA256: dict[str, str] | None = None

_FILE_RE = re.compile(r"a(\d+)t(\d+)\.mat")
_SUBJECT_RE = re.compile(r"Subject(\d+)")
_MEMBER_RE = re.compile(r"(?:.*/)?(Subject\d+/a\d+t\d+\.mat)")
_QUANTITY_RE = re.compile(r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z]*)\s*")


@dataclass(frozen=True)
class UscHadConfig(WindowingConfig):
    mirror: str | None = param(None, nonempty=True, doc="directory, file:// or http(s):// URL holding USC-HAD.zip, "
                               "or a directory holding the unpacked USC-HAD/ tree (replaces the pinned URLs)")


# ---------------------------------------------------------------------------------------------------------
# The pinned per-file table


@functools.lru_cache(maxsize=1)
def _load_pinned_table() -> dict[str, str]:
    from importlib.resources import files

    source = files("replab.data").joinpath(SHA_TABLE)
    table: dict[str, str] = {}
    for number, line in enumerate(source.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        key = parts[2].removeprefix(f"{ROOT}/") if len(parts) == 3 else ""
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]) or _parse_key(key) is None:
            raise DataError(f"{source}: line {number} is not `<sha256>  <size>  {ROOT}/Subject<k>/a<m>t<n>.mat`")
        table[key] = parts[0]
    return table


def expected_sha256() -> dict[str, str]:
    """The table every copy is checked against: MAT_SHA256 if set, else the packaged 840-file list."""
    return MAT_SHA256 if MAT_SHA256 is not None else _load_pinned_table()


def _table_name() -> str:
    return f"replab/data/{SHA_TABLE} (PRCIS git-LFS pointers)" if MAT_SHA256 is None else "injected table"


def _parse_key(key: str) -> tuple[int, int, int] | None:
    """(subject, activity, trial) of "Subject<k>/a<m>t<n>.mat" with numbers in range, else None."""
    parts = key.split("/")
    if len(parts) != 2:
        return None
    s, f = _SUBJECT_RE.fullmatch(parts[0]), _FILE_RE.fullmatch(parts[1])
    if s is None or f is None:
        return None
    subject, activity, trial = int(s[1]), int(f[1]), int(f[2])
    ok = 1 <= subject <= N_USERS and 1 <= activity <= N_ACTIVITIES and 1 <= trial <= N_TRIALS
    return (subject, activity, trial) if ok else None


def _ordered(table: dict[str, str]) -> list[str]:
    return sorted(table, key=lambda k: _parse_key(k) or (0, 0, 0))


def _mismatch(label: str, actual: str, key: str, table: dict[str, str]) -> DataError:
    return DataError(f"{label}: sha256 {actual} differs from the pinned {len(table)}-file list "
                     f"(expected {table[key]}); not the USC-HAD release, or damaged")


# ---------------------------------------------------------------------------------------------------------
# DVC stages


DOWNLOAD_PARAMS = ("mirror",)  # what download() reads of the config (registry.download_params)


def download(name: str, cfg: UscHadConfig, raw_dir: Path, progress: bool = True) -> Path:
    """Leave the verified tree in `raw_dir/USC-HAD`; fetch (and unpack) only if it is not complete yet."""
    raw_dir = Path(raw_dir)
    tree = raw_dir / ROOT
    table = expected_sha256()
    if tree.is_dir():
        try:
            verify_tree(tree, table)
            return tree  # unpacked earlier and unchanged since
        except DataError:
            pass  # incomplete or changed: obtain it again (replaced as a whole below)
    key = f"data.{name}.mirror"
    check_mirror(cfg.mirror, key, (ARCHIVE.name, f"{ROOT}/"))
    local = local_root(cfg.mirror) if cfg.mirror else None
    if local is not None:
        unpacked = _unpacked_root(local)
        if unpacked is not None:
            copy_tree(unpacked, tree, table)
            _write_record(raw_dir, origin=str(unpacked), archive_sha256=None, table=table)
            return tree
        if not (local / ARCHIVE.name).is_file():
            raise DataError(f"{ARCHIVE.name}: mirror {cfg.mirror} holds neither {ARCHIVE.name} nor an unpacked "
                            f"{ROOT}/Subject*/ tree; {offline_hint(key)}")
    archive = fetch(ARCHIVE, raw_dir, cfg.mirror, progress=progress, key=key)
    try:
        archive_sha256 = sha256_file(archive)
        extract_tree(archive, tree, table)
    except BaseException:
        archive.unlink(missing_ok=True)  # unpinned: a bad archive must not be reused by the next fetch
        raise
    _write_record(raw_dir, origin=f"{cfg.mirror or 'pinned URLs'}: {ARCHIVE.name}", archive_sha256=archive_sha256,
                  table=table)
    archive.unlink()
    return tree


def prepare(name: str, cfg: UscHadConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """Check the tree against the table, read the recordings of the configured users, window and split."""
    raw_dir = Path(raw_dir)
    tree = raw_dir / ROOT
    if not tree.is_dir():
        raise DataError(f"{tree}: missing (run the download stage first)")
    table = expected_sha256()
    verify_tree(tree, table)
    users = set(cfg.train_users) | set(cfg.unseen_users)
    keys = [k for k in _ordered(table) if _parse_key(k)[0] in users]
    absent = sorted(users - {_parse_key(k)[0] for k in keys})
    if absent:
        raise DataError(f"{tree}: no recordings of subject {absent[0]} in the pinned {len(table)}-file list "
                        "(check data.usc_had.train_users / unseen_users)")
    signals, activity, user, trial, metas = [], [], [], [], []
    for key in keys:
        signal, meta = read_recording(tree / key)
        signals.append(signal)
        activity.append(meta["activity"])
        user.append(meta["subject"])
        trial.append(meta["trial"])
        metas.append((key, meta))
    splits = split_windows(cfg, signals, np.array(activity), np.array(user), np.array(trial), split_seed)
    record = read_json(raw_dir / RECORD, expect=dict, stage=f"download@{name}") if (raw_dir / RECORD).is_file() else {}
    lengths = np.array([len(s) for s in signals])
    short = short_recordings(keys, lengths, cfg.window)
    if short["count"]:  # they contribute nothing to any split: say so rather than drop them silently
        print(f"{name}: {short['count']} of {len(keys)} recordings are shorter than one window ({cfg.window} "
              f"samples) and give no window: {', '.join(short['names'])}", file=sys.stderr)
    meta = {
        "dataset": name, "source": "real", "sampling_rate_hz": SAMPLING_RATE_HZ,
        "windowing": {"window": cfg.window, "stride": cfg.stride, "seen_fraction": cfg.seen_fraction,
                      "train_users": list(cfg.train_users), "unseen_users": list(cfg.unseen_users),
                      "split_seed": split_seed},
        "recordings": len(keys), "samples": int(lengths.sum()),
        "recording_length": {"min": int(lengths.min()), "max": int(lengths.max()),
                             "mean": round(float(lengths.mean()), 1)},
        "short_recordings": short,
        "sha256": {"files_checked": len(table), "all_match": True, "table": _table_name(),
                   "archive": record.get("archive_sha256"), "origin": record.get("origin")},
        "labels": "activity from the file name a<m>t<n>.mat, subject from the folder Subject<k>",
        "field_disagreements": _disagreements(metas),
        "activity_numbr_typo": [k for k, m in metas if m["typo_activity_numbr"]],
        "subjects": _subject_summary(metas),
    }
    return write_windows(out_dir, splits, meta)


# ---------------------------------------------------------------------------------------------------------
# Parsing


def read_recording(path: str | Path) -> tuple[np.ndarray, dict]:
    """(sensor_readings float64 (T, 6), meta) of one `Subject<k>/a<m>t<n>.mat`.

    meta: subject / activity / trial from the path (the labels), the file's own subject / activity_number /
    trial fields as parsed (None when absent or unparsable), age, height_cm, weight_kg, the text fields, and
    whether `activity_numbr` was used. One-line DataError naming the file when the name or folder is not
    USC-HAD's, the file is not a readable MATLAB v5 file, or sensor_readings is not a non-empty N×6 array."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    path = Path(path)
    f, s = _FILE_RE.fullmatch(path.name), _SUBJECT_RE.fullmatch(path.parent.name)
    if f is None or not (1 <= int(f[1]) <= N_ACTIVITIES and 1 <= int(f[2]) <= N_TRIALS):
        raise DataError(f"{path}: file name is not a<activity 1..{N_ACTIVITIES}>t<trial 1..{N_TRIALS}>.mat")
    if s is None or not 1 <= int(s[1]) <= N_USERS:
        raise DataError(f"{path}: not inside a folder Subject<1..{N_USERS}> (the subject comes from the folder)")
    try:
        mat = scipy.io.loadmat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: missing (run the download stage first)") from None
    except NotImplementedError:  # scipy's answer to MATLAB 7.3 (HDF5) files
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) file; expected the v5 .mat of the USC-HAD release") from None
    except (MatReadError, ValueError, TypeError, IndexError, KeyError, AttributeError, OSError, EOFError,
            struct.error, zlib.error, UnicodeDecodeError, OverflowError, MemoryError) as err:
        raise DataError(f"{path}: truncated or not a MATLAB v5 .mat file ({_one_line(err)})") from None
    if "sensor_readings" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no variable `sensor_readings` (found: {', '.join(found) or 'none'})")
    readings = mat["sensor_readings"]
    if (not isinstance(readings, np.ndarray) or readings.ndim != 2 or readings.shape[1] != len(CHANNELS)
            or readings.shape[0] < 1 or readings.dtype.kind not in "iuf"):
        shape = getattr(readings, "shape", "?")
        dtype = getattr(readings, "dtype", type(readings).__name__)
        raise DataError(f"{path}: `sensor_readings` must be a numeric N×6 array with N >= 1 "
                        f"(acc xyz, gyro xyz), got {dtype} {shape}")
    signal = readings.astype(np.float64)
    if not np.isfinite(signal).all():
        row = int(np.argwhere(~np.isfinite(signal))[0, 0])
        raise DataError(f"{path}: `sensor_readings` holds NaN or infinite values (first at row {row + 1})")
    if (peak := float(np.abs(signal).max())) > _FLOAT32_MAX:  # would be ±inf in the float32 windows (and
        row = int(np.argwhere(np.abs(signal) > _FLOAT32_MAX)[0, 0])  # overflows standardise's variance to NaN)
        raise DataError(f"{path}: `sensor_readings` holds {peak:g} at row {row + 1} (allowed: finite values within "
                        f"float32's ±{_FLOAT32_MAX:.3g}, the windows' dtype)")
    typo = "activity_number" not in mat and "activity_numbr" in mat
    height, weight = _quantity(mat.get("height"), "cm"), _quantity(mat.get("weight"), "kg")
    meta = {
        "subject": int(s[1]), "activity": int(f[1]), "trial": int(f[2]), "samples": len(signal),
        "field_subject": _integer(mat.get("subject")),
        "field_activity_number": _integer(mat.get("activity_numbr" if typo else "activity_number")),
        "field_trial": _integer(mat.get("trial")),
        "typo_activity_numbr": typo,
        "age": _quantity(mat.get("age"), "y", "yr", "yrs", "years"), "height_cm": height, "weight_kg": weight,
        "activity_name": _text(mat.get("activity")),
        **{k: _text(mat.get(k)) for k in ("title", "version", "date", "sensor_location", "sensor_orientation")},
    }
    return signal, meta


def _text(value) -> str | None:
    """A MATLAB string (char array, 1×1 cell of one, or a number) as str; None when absent or empty."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return _text(value.reshape(-1)[0]) if value.size == 1 else None
        if value.dtype.kind in "US":
            text = " ".join(str(v).strip() for v in value.reshape(-1)).strip()
            return text or None
        if value.dtype.kind in "iuf" and value.size == 1:
            number = value.reshape(-1)[0].item()
            return str(int(number)) if float(number).is_integer() else str(number)
        return None
    if isinstance(value, str | int | float):
        return str(value).strip() or None
    return None


def _quantity(value, *units: str) -> float | None:
    """A number with an optional unit (`'170cm'`, `'65 kg'`, `23`), None if absent, unparsable or another unit."""
    text = _text(value)
    match = _QUANTITY_RE.fullmatch(text) if text is not None else None
    if match is None or (match[2] and match[2].lower() not in units):
        return None
    number = float(match[1])
    return int(number) if number.is_integer() else number


def _integer(value) -> int | None:
    number = _quantity(value)
    return number if isinstance(number, int) else None


def _disagreements(metas: list[tuple[str, dict]]) -> dict[str, dict]:
    """Files whose own subject / activity_number / trial fields differ from their path (path wins)."""
    out = {}
    for key, m in metas:
        diff = {field: m[f"field_{field}"] for field, label in
                (("subject", m["subject"]), ("activity_number", m["activity"]), ("trial", m["trial"]))
                if m[f"field_{field}"] != label}
        if diff:
            out[key] = diff
    return out


def _subject_summary(metas: list[tuple[str, dict]]) -> dict[str, dict]:
    """Per subject: the most common parsed age / height_cm / weight_kg over its files, and its file count."""
    by_subject: dict[int, list[dict]] = {}
    for _, m in metas:
        by_subject.setdefault(m["subject"], []).append(m)
    summary = {}
    for subject in sorted(by_subject):
        ms = by_subject[subject]
        entry: dict = {"recordings": len(ms)}
        for field in ("age", "height_cm", "weight_kg"):
            values = Counter(m[field] for m in ms if m[field] is not None)
            entry[field] = values.most_common(1)[0][0] if values else None
        summary[str(subject)] = entry
    return summary


# ---------------------------------------------------------------------------------------------------------
# Unpacking, copying and verifying


def verify_tree(tree: Path, expected: dict[str, str] | None = None) -> None:
    """Every file of the table present under `tree` with its pinned sha256; DataError naming the first bad one."""
    table = expected_sha256() if expected is None else expected
    for key in _ordered(table):
        path = tree / key
        if not path.is_file():
            raise DataError(f"{path}: missing (the pinned list has {len(table)} files; run the download stage)")
        actual = sha256_file(path)
        if actual != table[key]:
            raise _mismatch(str(path), actual, key, table)


def check_archive(archive: Path, expected: dict[str, str] | None = None, label: str = ARCHIVE.name) -> None:
    """Verify a USC-HAD zip without unpacking it: a readable zip with no unsafe member path, holding every .mat
    file of the table with its pinned sha256. DataError (one line, prefixed `label`) naming the first failure.
    This is `ARCHIVE.check`, run by `fetch` on every downloaded copy."""
    table = expected_sha256() if expected is None else expected
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _table_members(zf, label, table)
            for key in _ordered(table):
                with zf.open(members[key]) as src:
                    actual = _copy_hashed(src)
                if actual != table[key]:
                    raise _mismatch(f"{label}: member {members[key]}", actual, key, table)
    except UNREADABLE_ZIP as err:
        raise DataError(f"{label}: truncated or corrupt zip ({_one_line(err)})") from None


def extract_tree(archive: Path, tree: Path, expected: dict[str, str] | None = None) -> Path:
    """Unpack the table's .mat files from `archive` into `tree` (one directory swap), each sha256-checked.

    Members with an absolute or `..` path reject the whole archive; other members (Readme, scripts, macOS
    metadata) are skipped."""
    table = expected_sha256() if expected is None else expected
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _table_members(zf, str(archive), table)
            with atomic_dir(tree) as tmp:
                for key in _ordered(table):
                    target = tmp / key
                    target.parent.mkdir(exist_ok=True)
                    with zf.open(members[key]) as src:
                        actual = _copy_hashed(src, target)
                    if actual != table[key]:
                        raise _mismatch(f"{archive}: member {members[key]}", actual, key, table)
    except UNREADABLE_ZIP as err:
        raise DataError(f"{archive}: truncated or corrupt zip ({_one_line(err)})") from None
    return tree


def copy_tree(source: Path, tree: Path, expected: dict[str, str] | None = None) -> Path:
    """Copy the table's .mat files from an unpacked `source` (holding Subject*/) into `tree`, sha256-checked."""
    table = expected_sha256() if expected is None else expected
    for key in _ordered(table):
        if not (source / key).is_file():
            raise DataError(f"{source / key}: missing from the mirror (the pinned list has {len(table)} files)")
    with atomic_dir(tree) as tmp:
        for key in _ordered(table):
            target = tmp / key
            target.parent.mkdir(exist_ok=True)
            with open(source / key, "rb") as src:
                actual = _copy_hashed(src, target)
            if actual != table[key]:
                raise _mismatch(str(source / key), actual, key, table)
    return tree


def _table_members(zf: zipfile.ZipFile, label: str, table: dict[str, str]) -> dict[str, str]:
    """The member of every table key (after the zip-slip check); DataError naming the first one missing."""
    members = _member_map(label, zf.namelist())
    for key in _ordered(table):
        if key not in members:
            raise DataError(f"{label}: member {ROOT}/{key} missing (the pinned list has {len(table)} files); "
                            "not the complete USC-HAD release")
    return members


def _member_map(archive: Path | str, names: list[str]) -> dict[str, str]:
    """{"Subject<k>/a<m>t<n>.mat": member name}, after rejecting unsafe (zip-slip) member paths."""
    members: dict[str, str] = {}
    for name in names:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or re.match(r"[A-Za-z]:", name):
            raise DataError(f"{archive}: member {name!r} points outside the extraction directory (zip-slip); "
                            "refusing to unpack")
        match = _MEMBER_RE.fullmatch(name)
        if match is None or name.startswith("__MACOSX/"):
            continue
        if match[1] in members:
            raise DataError(f"{archive}: members {members[match[1]]!r} and {name!r} are both {match[1]}")
        members[match[1]] = name
    return members


def _copy_hashed(src, target: Path | None = None) -> str:
    """sha256 of the stream `src`, copied to `target` on the way (only hashed when `target` is None)."""
    digest = hashlib.sha256()
    with open(target, "wb") if target is not None else contextlib.nullcontext() as dst:
        while block := src.read(1 << 20):
            digest.update(block)
            if dst is not None:
                dst.write(block)
    return digest.hexdigest()



def _unpacked_root(local: Path) -> Path | None:
    """`local/USC-HAD` or `local` itself, whichever holds Subject<k>/ folders."""
    for root in (local / ROOT, local):
        if root.is_dir() and any(p.is_dir() and _SUBJECT_RE.fullmatch(p.name) for p in root.iterdir()):
            return root
    return None


def _write_record(raw_dir: Path, origin: str, archive_sha256: str | None, table: dict[str, str]) -> None:
    write_json(raw_dir / RECORD, {"tree": ROOT, "files": len(table), "verified_against": _table_name(),
                                  "archive": ARCHIVE.name if archive_sha256 else None,
                                  "archive_sha256": archive_sha256, "origin": origin})


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__

