"""Wearable-sensor recordings → standardised sliding windows split by user (shared by usc_had and har).

censor (source 002) protocol: every recording (one subject, one activity, one trial; (T, 6) samples at 100 Hz,
acc xyz in g then gyro xyz in dps) is standardised per channel over the whole recording, then cut into
windows of `window` samples every `stride` samples (30 / 15 in the seed): a recording of T samples gives
floor((T − window) / stride) + 1 windows, none when T < window. Users in `train_users` are split 90 / 10
into `train` and `seen` (seen-user test) by window, stratified by user × activity and seeded by
`data.split_seed`; users in `unseen_users` form the `unseen` split. Windows of one recording overlap by half,
so a random window split lets neighbouring windows land on both sides (as in the author's setup; the seen
split measures seen users, the unseen split generalisation).

Processed layout: `train.npz`, `seen.npz`, `unseen.npz`, each with `x` float32 (N, channels, window),
`activity` int64 0..11, `user` int64 (subject number − 1), `trial` int64 (1-based); `meta.json` with counts,
activity names, users and the windowing (and, for a real source, the recordings too short for one window).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.io import DataError, atomic_dir, check_manifest, npz_array, read_json, read_npz, write_json, write_npz
from replab.params import MAX_SIZE, fail, param

ACTIVITIES = ("Walking Forward", "Walking Left", "Walking Right", "Walking Upstairs", "Walking Downstairs",
              "Running Forward", "Jumping Up", "Sitting", "Standing", "Sleeping", "Elevator Up", "Elevator Down")
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
SPLITS = ("train", "seen", "unseen")
N_USERS = 14


@dataclass(frozen=True)
class WindowingConfig:
    """How recordings become windows and which users go where (shared by every HAR source)."""

    window: int = param(30, ge=2, le=MAX_SIZE, doc="samples per window (0.3 s at 100 Hz)")
    stride: int = param(15, ge=1, le=MAX_SIZE, doc="samples between window starts")
    train_users: list[int] = param(list(range(1, 11)), ge=1, le=N_USERS, nonempty=True,
                                   doc="subjects split into train / seen-user test")
    unseen_users: list[int] = param([11, 12, 13, 14], ge=1, le=N_USERS, nonempty=True,
                                    doc="subjects only in the unseen-user test")
    seen_fraction: float = param(0.1, gt=0.0, lt=1.0, doc="share of each train user's windows in `seen`")

    def check(self, where: str) -> None:
        both = sorted(set(self.train_users) & set(self.unseen_users))
        if both:
            fail(where, f"unseen_users: subject {both[0]} is also in train_users (the sets must be disjoint)")


def standardise(signal: np.ndarray) -> np.ndarray:
    """Per-channel z-score over one recording (T, C); a constant channel becomes 0."""
    signal = np.asarray(signal, dtype=np.float64)
    std = signal.std(axis=0)
    return ((signal - signal.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)).astype(np.float32)


def window_counts(lengths: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Windows per recording: floor((T − window) / stride) + 1, or 0 when T < window."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.where(lengths >= window, (lengths - window) // stride + 1, 0)


def short_recordings(names: list[str], lengths: np.ndarray, window: int) -> dict:
    """The recordings shorter than one window, which give no window at all: {"count", "window", "names"}
    (names in the given order), for meta.json and the prepare stage's log."""
    short = np.flatnonzero(np.asarray(lengths, dtype=np.int64) < window)
    return {"count": int(len(short)), "window": int(window), "names": [names[i] for i in short]}


def cut_windows(recordings: list[np.ndarray], window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows of all recordings at once: (x float32 (N, C, window), recording index of each window).

    Vectorised: the recordings are concatenated and every window is one fancy-indexed slice of it."""
    if not recordings:
        return np.zeros((0, len(CHANNELS), window), np.float32), np.zeros(0, np.int64)
    lengths = np.array([len(r) for r in recordings], dtype=np.int64)
    counts = window_counts(lengths, window, stride)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    owner = np.repeat(np.arange(len(recordings)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(counts.sum()) - np.repeat(first, counts)  # window number inside its recording
    starts = offsets[owner] + rank * stride
    flat = np.concatenate(recordings, axis=0)
    x = flat[starts[:, None] + np.arange(window)[None, :]]  # (N, window, C)
    return np.ascontiguousarray(x.transpose(0, 2, 1), dtype=np.float32), owner


def split_windows(cfg: WindowingConfig, recordings: list[np.ndarray], activity: np.ndarray, user: np.ndarray,
                  trial: np.ndarray, split_seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Standardise, window and split. `activity` (1-based), `user` (1-based subject), `trial` per recording."""
    x, owner = cut_windows([standardise(r) for r in recordings], cfg.window, cfg.stride)
    act, usr, tri = (np.asarray(a, dtype=np.int64)[owner] for a in (activity, user, trial))
    rng = np.random.default_rng(split_seed)
    in_train_users = np.isin(usr, cfg.train_users)
    seen = np.zeros(len(x), dtype=bool)
    groups = usr * 100 + act  # stratify by user × activity
    order = rng.permutation(len(x))  # a random rank within each group
    for g in np.unique(groups[in_train_users]):  # ≤ 10 users × 12 activities: a loop over groups, not windows
        members = order[groups[order] == g]
        seen[members[:int(round(cfg.seen_fraction * len(members)))]] = True
    masks = {"train": in_train_users & ~seen, "seen": in_train_users & seen, "unseen": np.isin(usr, cfg.unseen_users)}
    return {name: {"x": x[m], "activity": act[m] - 1, "user": usr[m] - 1, "trial": tri[m]}
            for name, m in masks.items()}


def check_window_split(path: Path, arrays: dict[str, np.ndarray],
                       shape: tuple[int | str, int | str] = ("channels", "window"),
                       nonempty: bool = True) -> dict[str, np.ndarray]:
    """The arrays of one split if x is finite float (N, channels, window), N ≥ 1 if `nonempty` (`shape`: the
    train split's channels and window, which every split must share), activity int (N,) in 0 … 11, user int (N,)
    in 0 … 13 and trial, if present, int (N,) ≥ 1 (all three made int64 in `arrays`, as torch wants class targets);
    else a one-line DataError naming `path`, the array and what is allowed."""
    npz_array(path, arrays, "x", dtype="float", shape=("N", *shape), noun="sensor values", row="window",
              nonempty=nonempty)
    npz_array(path, arrays, "activity", dtype="integer", shape=("N",), noun="activity ids", row="window",
              values=(0, len(ACTIVITIES) - 1), like="x")
    npz_array(path, arrays, "user", dtype="integer", shape=("N",), noun="user ids", row="window",
              values=(0, N_USERS - 1), like="x", of="subject number - 1")
    if "trial" in arrays:
        npz_array(path, arrays, "trial", dtype="integer", shape=("N",), noun="trial numbers", row="window",
                  values=(1, None), like="x")
    for key in ("activity", "user", "trial"):  # in range, so exact: int64 whatever the file's integer dtype
        if key in arrays:
            arrays[key] = arrays[key].astype(np.int64, copy=False)
    return arrays


def check_windows(data_dir: Path, splits: dict[str, dict[str, np.ndarray]], nonempty: bool = True) -> None:
    """Every split checked (`check_window_split`), all with the train split's channels and window length."""
    shape = ("channels", "window")
    for name, arrays in splits.items():
        check_window_split(Path(data_dir) / f"{name}.npz", arrays, shape, nonempty)
        shape = arrays["x"].shape[1:]


def write_windows(out_dir: Path, splits: dict[str, dict[str, np.ndarray]], meta: dict) -> dict:
    """train/seen/unseen.npz + meta.json as one directory swap; returns the full meta. The splits are checked
    as `load_windows` will check them, so bad windows stop the prepare stage instead (a split without windows,
    which tiny test configs give, is written; training refuses it)."""
    check_windows(out_dir, splits, nonempty=False)
    counts = {name: int(len(s["x"])) for name, s in splits.items()}
    users = {name: sorted(int(u) + 1 for u in np.unique(s["user"])) for name, s in splits.items()}
    meta = {**meta, "counts": counts, "windows_total": sum(counts.values()), "users": users,
            "activities": list(ACTIVITIES), "channels": list(CHANNELS)}
    with atomic_dir(out_dir) as tmp:
        for name, arrays in splits.items():
            write_npz(tmp / f"{name}.npz", **arrays)
        write_json(tmp / "meta.json", meta)
    return meta


def load_windows(data_dir: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """The processed splits of a HAR source, checked (`check_windows`); DataError naming the file when something
    is missing or malformed."""
    data_dir = Path(data_dir)
    stage = f"prepare@{data_dir.name}"
    meta_path = data_dir / "meta.json"
    if not meta_path.exists():
        raise DataError(f"{meta_path}: missing (run `dvc repro` to prepare the data)")
    check_manifest(data_dir, stage)
    meta = read_json(meta_path, expect=dict, stage=stage)
    splits = {name: read_npz(data_dir / f"{name}.npz", stage=stage) for name in SPLITS}
    check_windows(data_dir, splits)
    return splits, meta
