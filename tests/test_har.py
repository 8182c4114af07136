"""har (embedded USC-HAD stand-in): determinism, the windowed layout and its counts, per-recording
standardisation, parameter checks, and that activity and user are both learnable from windows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from replab.data import har
from replab.data import recordings as rec
from replab.io import DataError, write_manifest
from replab.params import ParamError, parse

WHERE = "params.yaml: data.har"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The default set, generated and prepared once: (raw arrays, splits, meta)."""
    root = tmp_path_factory.mktemp("har")
    cfg = har.HarConfig()
    har.download("har", cfg, root / "raw")
    meta = har.prepare("har", cfg, root / "raw", root / "processed", split_seed=0)
    write_manifest(root / "processed")  # as `replab prepare` records it (data.registry.prepare)
    splits, on_disk = rec.load_windows(root / "processed")
    assert on_disk == json.loads(json.dumps(on_disk)) and on_disk["counts"] == meta["counts"]
    return har.load_raw(root / "raw"), splits, on_disk


def recordings_of(raw: dict) -> list[np.ndarray]:
    return np.split(raw["signal"], np.cumsum(raw["lengths"])[:-1])


def test_layout_counts_and_splits(prepared):
    raw, splits, meta = prepared
    cfg = har.HarConfig()
    n_rec = rec.N_USERS * len(rec.ACTIVITIES) * cfg.trials
    assert raw["signal"].dtype == np.float32 and raw["signal"].shape == (raw["lengths"].sum(), 6)
    assert len(raw["lengths"]) == len(raw["activity"]) == len(raw["user"]) == len(raw["trial"]) == n_rec
    nominal = cfg.seconds * har.FS
    assert raw["lengths"].min() >= np.floor(0.9 * nominal) and raw["lengths"].max() <= 1.1 * nominal
    assert len(np.unique(raw["lengths"])) > 50  # lengths jitter per recording
    grid = np.zeros((rec.N_USERS, len(rec.ACTIVITIES), cfg.trials), dtype=int)
    np.add.at(grid, (raw["user"] - 1, raw["activity"] - 1, raw["trial"] - 1), 1)
    assert (grid == 1).all()  # every user × activity × trial exactly once

    per_rec = rec.window_counts(raw["lengths"], cfg.window, cfg.stride)
    assert np.array_equal(per_rec, (raw["lengths"] - 30) // 15 + 1)
    in_train = np.isin(raw["user"], cfg.train_users)
    assert meta["counts"]["train"] + meta["counts"]["seen"] == per_rec[in_train].sum()
    assert meta["counts"]["unseen"] == per_rec[~in_train].sum()
    assert meta["counts"]["seen"] == pytest.approx(0.1 * per_rec[in_train].sum(), rel=0.05)
    for name, s in splits.items():
        n = len(s["x"])
        assert s["x"].shape == (n, 6, 30) and s["x"].dtype == np.float32
        assert all(s[k].dtype == np.int64 and s[k].shape == (n,) for k in ("activity", "user", "trial"))
        users = range(10) if name != "unseen" else range(10, 14)
        pairs = set(zip(s["user"].tolist(), s["activity"].tolist()))
        assert pairs == {(u, a) for u in users for a in range(12)}  # every user does every activity here
    assert meta["users"] == {"train": list(range(1, 11)), "seen": list(range(1, 11)), "unseen": [11, 12, 13, 14]}
    assert meta["source"] == "embedded" and meta["dataset"] == "har" and meta["activities"] == list(rec.ACTIVITIES)
    assert meta["windowing"]["window"] == 30 and meta["generator"]["seed"] == 0


def test_windows_are_cut_from_standardised_recordings(prepared):
    raw, splits, _ = prepared
    recs = recordings_of(raw)
    acc_mean = np.array([r[:, 0].mean() for r in recs])
    assert np.abs(acc_mean).mean() > 0.5  # raw: gravity and bias are still there
    z = [rec.standardise(r) for r in recs]
    for r in z[::97]:
        assert np.allclose(r.mean(0), 0, atol=1e-4) and np.allclose(r.std(0), 1, atol=1e-3)
    # unseen keeps recording order: its windows are exactly those of the standardised unseen recordings
    unseen = np.flatnonzero(raw["user"] >= 11)
    x, owner = rec.cut_windows([z[i] for i in unseen], 30, 15)
    assert np.array_equal(splits["unseen"]["x"], x)
    assert np.array_equal(splits["unseen"]["trial"], raw["trial"][unseen][owner])


def test_deterministic_and_user_draws_stable():
    small = har.HarConfig(trials=2, seconds=1.0)
    a, b = har.generate(small), har.generate(small)
    for key in ("signal", "lengths", "activity", "user", "trial"):
        assert np.array_equal(a[key], b[key])
    c = har.generate(dataclasses.replace(small, seed=1))
    assert not np.array_equal(a["lengths"], c["lengths"])
    assert not np.allclose(a["signal"][:100], c["signal"][:100])
    d = har.generate(dataclasses.replace(small, trials=3, seconds=2.0))
    assert all(np.array_equal(a["users"][k], d["users"][k]) for k in a["users"])  # users drawn independently


def test_config_checks():
    assert parse(har.HarConfig, {}, WHERE) == har.HarConfig()
    loud = har.generate(har.HarConfig(trials=1, seconds=1.0, noise=100.0, static=100.0, elevator=100.0))
    assert np.isfinite(loud["signal"]).all()  # the largest amplitudes allowed stay finite
    with pytest.raises(ParamError) as err:
        parse(har.HarConfig, {"seconds": 0.3}, WHERE)
    message = str(err.value)
    assert message.startswith(f"{WHERE}.seconds = 0.3: the shortest recording (27 samples") and "\n" not in message
    parse(har.HarConfig, {"seconds": 0.34, "length_jitter": 0.0}, WHERE)  # 34 samples hold one window
    for bad, match in (({"train_users": [1, 2], "unseen_users": [2, 3]}, "unseen_users: subject 2"),
                       ({"tempo": 0.6}, "tempo = 0.6: must be < 0.5"),
                       ({"noise_level": 1}, "noise_level: unknown key"),
                       # 1e300 g of noise made every generated value infinite in float32 (har.npz written so)
                       ({"noise": 1e300}, r"noise = 1e\+300: must be <= 100"),
                       ({"static": 101.0}, "static = 101.0: must be <= 100"),
                       ({"elevator": 1e30}, r"elevator = 1e\+30: must be <= 100")):
        with pytest.raises(ParamError, match=match):
            parse(har.HarConfig, bad, WHERE)


def test_prepare_names_missing_or_stale_raw_data(tmp_path):
    cfg = har.HarConfig(trials=1, seconds=1.0)
    with pytest.raises(DataError, match=f"{tmp_path / 'raw' / har.RAW_FILE}: missing"):
        har.prepare("har", cfg, tmp_path / "raw", tmp_path / "out", 0)
    har.download("har", cfg, tmp_path / "raw")
    with pytest.raises(DataError, match="generated with other data.har params"):
        har.prepare("har", dataclasses.replace(cfg, seed=3), tmp_path / "raw", tmp_path / "out", 0)
    # windowing params do not need new raw data
    meta = har.prepare("har", dataclasses.replace(cfg, stride=30), tmp_path / "raw", Path(tmp_path / "out"), 0)
    assert meta["windowing"]["stride"] == 30
    # a damaged raw file names the download stage that rewrites it
    raw = tmp_path / "raw" / har.RAW_FILE
    raw.write_bytes(raw.read_bytes()[:100])
    with pytest.raises(DataError, match=rf"^{raw}: .*; run `dvc repro -s -f download@raw`$"):
        har.prepare("har", cfg, tmp_path / "raw", tmp_path / "out", 0)


def window_features(x: np.ndarray) -> np.ndarray:
    """Per-window level, spread, roughness (first / second differences) and cross-channel correlations."""
    x = x.astype(np.float64)
    sd = x.std(2)
    d1 = np.diff(x, axis=2).std(2)
    d2 = np.diff(x, n=2, axis=2).std(2)
    xc = x - x.mean(2, keepdims=True)
    i, j = np.triu_indices(6, 1)
    corr = (xc[:, i] * xc[:, j]).mean(2) / (sd[:, i] * sd[:, j] + 1e-6)
    return np.c_[x.mean(2), sd, d1, d2, np.log((d1 + 1e-3) / (sd + 1e-3)), corr]


def nearest_centroid(f_train, y_train, f_test) -> np.ndarray:
    mu, scale = f_train.mean(0), f_train.std(0) + 1e-9
    f_train, f_test = (f_train - mu) / scale, (f_test - mu) / scale
    classes = np.unique(y_train)
    centres = np.stack([f_train[y_train == c].mean(0) for c in classes])
    return classes[((f_test[:, None] - centres[None]) ** 2).sum(-1).argmin(1)]


def test_activity_and_user_are_learnable():
    """On a small set, windows of trials 1–2 → trial 3, nearest centroid in a 47-number feature space: the
    activity (chance 1/12) and the user (chance 1/14; centroids per user × activity) come out far above
    chance. With every per-user parameter off, users are indistinguishable while activities stay learnable."""
    cfg = har.HarConfig(trials=3, seconds=3.0)

    def scores(cfg):
        data = har.generate(cfg)
        recs = [rec.standardise(r) for r in np.split(data["signal"], np.cumsum(data["lengths"])[:-1])]
        x, owner = rec.cut_windows(recs, cfg.window, cfg.stride)
        f = window_features(x)
        act, usr, tri = data["activity"][owner], data["user"][owner], data["trial"][owner]
        train, test = tri <= 2, tri == 3
        activity = (nearest_centroid(f[train], act[train], f[test]) == act[test]).mean()
        group = usr * 100 + act
        user = (nearest_centroid(f[train], group[train], f[test]) // 100 == usr[test]).mean()
        return activity, user

    activity, user = scores(cfg)
    assert activity > 0.5 and user > 0.3  # ≈ 0.66 and 0.45
    activity_off, user_off = scores(dataclasses.replace(cfg, tempo=0.0, harmonics=0.0, orientation=0.0,
                                                        user_noise=0.0))
    assert activity_off > 0.5 and user_off < 0.15  # ≈ 0.72 and 0.08


def _raw_cases():
    def edit(**changes):
        return lambda a: {**a, **{k: v(a) for k, v in changes.items()}}

    return {
        "activity one short": (edit(activity=lambda a: a["activity"][:-1]), "activity has"),
        "float lengths": (edit(lengths=lambda a: a["lengths"].astype(np.float64)), "lengths is float64"),
        "0-d signal": (edit(signal=lambda a: np.float32(1.0)), "signal has shape ()"),
        "complex signal": (edit(signal=lambda a: a["signal"].astype(np.complex64)), "signal is complex64"),
        "user 0": (edit(user=lambda a: np.where(np.arange(len(a["user"])) == 3, 0, a["user"])),
                   "user holds 0 at row 3 (allowed: 1 … 14"),
        "user 15": (edit(user=lambda a: np.where(np.arange(len(a["user"])) == 2, 15, a["user"])),
                    "user holds 15 at row 2"),
        "negative length": (edit(lengths=lambda a: np.r_[-a["lengths"][:1], a["lengths"][1:]]),
                            "lengths holds"),
        "1e300 in float64": (edit(signal=lambda a: np.where(np.arange(len(a["signal"]))[:, None] == 5, 1e300,
                                                             a["signal"].astype(np.float64))),
                             "signal (as float32): 6 of"),
    }


@pytest.mark.parametrize("case", list(_raw_cases()) + ["meta []"])
def test_prepare_refuses_bad_raw_arrays_in_one_line(tmp_path, case):
    """Bad raw har arrays gave tracebacks, dropped recordings, or inf windows (censor then blamed the lr)."""
    cfg = har.HarConfig(trials=1, seconds=1.0)
    raw, out = tmp_path / "raw", tmp_path / "out"
    har.download("har", cfg, raw)
    path = raw / har.RAW_FILE
    if case == "meta []":
        (raw / "meta.json").write_text("[]")
        path, expected = raw / "meta.json", "top level is an array, expected an object"
    else:
        mutate, expected = _raw_cases()[case]
        with np.load(path) as npz:
            arrays = mutate({k: npz[k] for k in npz.files})
        np.savez_compressed(path, **arrays)
    with pytest.raises(DataError) as err:
        har.prepare("har", cfg, raw, out, 0)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and expected in msg and "\n" not in msg
    assert not out.exists()
