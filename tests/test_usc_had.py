"""usc_had: the USC-HAD .mat parser, download → prepare on generated trees, and the windowing arithmetic.

The generated files have the real format: MATLAB v5 (compressed) with the 13 top-level variables of the Readme,
metadata as strings ('170cm', '65kg'), `sensor_readings` N×6 doubles, in `USC-HAD/Subject<k>/a<m>t<n>.mat`,
zipped with the `USC-HAD/` prefix beside a Readme and a plotting script. Their sha256 differ from the pinned
840-file list, so every test injects the generated tree's table as `usc_had.MAT_SHA256`; the pinned archive's
URLs are replaced by a closed loopback port, so no test can reach the real host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from conftest import closed_port_url, load, one_line_naming, zip_claiming
from replab.data import recordings
from replab.data import usc_had as uh
from replab.io import DataError
from replab.params import ParamError, parse

REAL_ARCHIVE = uh.ARCHIVE
TINY_SUBJECTS, TINY_ACTIVITIES, TINY_TRIALS = (1, 2, 13), (1, 11), (1, 4)
SHORT = "Subject1/a1t4.mat"  # 29 rows: shorter than a window, gives none
QUIRK = "Subject2/a11t4.mat"  # activity_number '0', as one loader reports for a11t4
TYPO_SUBJECT = 13  # its files spell the field `activity_numbr`


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fields(subject: int, activity: int, trial: int, readings: np.ndarray, /, *, typo: bool = False,
           activity_number: str | None = None, **overrides) -> dict:
    """The 13 variables of a USC-HAD file, as strings like the release's."""
    variables = {
        "title": "USC Human Motion Database", "version": "1.0", "date": "2009-11-12",
        "subject": str(subject), "age": str(20 + subject), "height": f"{160 + subject}cm",
        "weight": f"{50 + subject}kg", "activity": recordings.ACTIVITIES[activity - 1],
        "activity_numbr" if typo else "activity_number": activity_number or str(activity),
        "trial": str(trial), "sensor_location": "Front Right Hip",
        "sensor_orientation": "http://sipi.usc.edu/HAD/orientation.jpg", "sensor_readings": readings,
    }
    return {**variables, **overrides}


def signal(rng: np.random.Generator, rows: int) -> np.ndarray:
    """acc in g around (0, 0, 1), gyro in dps: channels with different offsets and scales."""
    return rng.normal(size=(rows, 6)) * np.array([0.3, 0.2, 0.4, 30, 50, 20]) + np.array([0, 0, 1, 5, -3, 0])


def write_mat(path: Path, variables: dict, compress: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, variables, do_compression=compress)
    return path


def make_tree(tree: Path, subjects, activities, trials, rng: np.random.Generator, rows=(40, 160),
              compress: bool = True, special: bool = True) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Write `tree/Subject<k>/a<m>t<n>.mat`; return (sha table, signals) keyed "Subject<k>/a<m>t<n>.mat"."""
    table, signals = {}, {}
    for s in subjects:
        for a in activities:
            for t in trials:
                key = f"Subject{s}/a{a}t{t}.mat"
                x = signal(rng, 29 if special and key == SHORT else int(rng.integers(*rows, endpoint=True)))
                extra = {}
                if special and key == QUIRK:
                    extra["activity_number"] = "0"
                path = write_mat(tree / key, fields(s, a, t, x, typo=special and s == TYPO_SUBJECT, **extra),
                                 compress)
                table[key], signals[key] = sha(path), x
    return table, signals


def release_zip(path: Path, tree: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{uh.ROOT}/Readme.txt", "USC-HAD\nMotionNode, 100 Hz\n")
        zf.writestr(f"{uh.ROOT}/displayData_acc.m", "Fs = 100;\n")
        zf.writestr("__MACOSX/USC-HAD/Subject1/._a1t1.mat", b"\x00\x05\x16\x07 AppleDouble")
        for p in sorted(tree.rglob("*.mat")):
            zf.write(p, f"{uh.ROOT}/{p.relative_to(tree).as_posix()}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


class Release:
    def __init__(self, root: Path, rng: np.random.Generator):
        self.dir = root
        self.tree = root / uh.ROOT
        self.table, self.signals = make_tree(self.tree, TINY_SUBJECTS, TINY_ACTIVITIES, TINY_TRIALS, rng)
        self.zip = release_zip(root / uh.ARCHIVE.name, self.tree)


@pytest.fixture(autouse=True)
def no_real_host(monkeypatch):
    """The pinned URLs point at a closed port: nothing here may reach sipi.usc.edu."""
    monkeypatch.setattr(uh, "ARCHIVE", dataclasses.replace(uh.ARCHIVE, urls=(closed_port_url() + uh.ARCHIVE.name,)))


@pytest.fixture
def release(tmp_path, monkeypatch) -> Release:
    """A tiny release (3 subjects × 2 activities × 2 trials) outside any served directory, its table pinned."""
    rel = Release(tmp_path / "release", np.random.default_rng(7))
    monkeypatch.setattr(uh, "MAT_SHA256", rel.table)
    return rel


TINY_CFG = uh.UscHadConfig(train_users=[1, 2], unseen_users=[13])


def expected_windows(x: np.ndarray, window: int = 30, stride: int = 15) -> np.ndarray:
    """Hand-computed: per-channel z-score over the recording, then every window as (channels, window)."""
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    starts = range(0, len(x) - window + 1, stride)
    return np.array([z[s:s + window].T for s in starts], dtype=np.float32).reshape(-1, 6, window)


def formula(rows: int, window: int = 30, stride: int = 15) -> int:
    return (rows - window) // stride + 1 if rows >= window else 0


def empty(path: Path) -> bool:
    return not path.exists() or not any(path.iterdir())


# ---------------------------------------------------------------------------------------------------------
# Windowing arithmetic (replab.data.recordings) against a naive loop


def naive_windows(recs: list[np.ndarray], window: int, stride: int) -> tuple[list[np.ndarray], list[int]]:
    xs, owner = [], []
    for i, r in enumerate(recs):
        start = 0
        while start + window <= len(r):
            xs.append(r[start:start + window].T)
            owner.append(i)
            start += stride
    return xs, owner


@pytest.mark.parametrize("window,stride", [(30, 15), (5, 1), (4, 4), (7, 3), (2, 9)])
def test_window_counts_and_cut_windows_match_a_naive_loop(window, stride):
    rng = np.random.default_rng(window * 100 + stride)
    lengths = [0, 1, window - 1, window, window + 1, window + stride - 1, window + stride, 3 * window + 2,
               int(rng.integers(50, 120))]
    recs = [rng.normal(size=(n, 6)).astype(np.float32) for n in lengths]
    xs, owner = naive_windows(recs, window, stride)
    counts = recordings.window_counts(np.array(lengths), window, stride)
    assert counts.tolist() == [owner.count(i) for i in range(len(recs))]
    assert counts.tolist() == [formula(n, window, stride) for n in lengths]
    assert counts[:3].tolist() == [0, 0, 0] and counts[3] == 1  # T < window gives none, T = window one
    x, got_owner = recordings.cut_windows(recs, window, stride)
    assert x.dtype == np.float32 and x.shape == (len(xs), 6, window) and x.flags.c_contiguous
    assert np.array_equal(x, np.array(xs).reshape(-1, 6, window)) and got_owner.tolist() == owner


def test_short_recordings_are_counted_and_named():
    names = ["r0", "r1", "r2", "r3", "r4"]
    assert recordings.short_recordings(names, np.array([29, 30, 0, 100, 5]), 30) == \
        {"count": 3, "window": 30, "names": ["r0", "r2", "r4"]}
    assert recordings.short_recordings(names[:2], np.array([30, 31]), 30) == {"count": 0, "window": 30, "names": []}


def test_prepare_says_which_recordings_give_no_window(release, tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "out"
    uh.download("usc_had", uh.UscHadConfig(mirror=str(release.dir)), raw, progress=False)
    capsys.readouterr()
    meta = uh.prepare("usc_had", TINY_CFG, raw, out, split_seed=0)
    assert meta["short_recordings"] == {"count": 1, "window": 30, "names": [SHORT]}
    assert ("usc_had: 1 of 12 recordings are shorter than one window (30 samples) and give no window: "
            f"{SHORT}") in capsys.readouterr().err
    # a larger window: every recording shorter than it is named, in subject / activity / trial order
    wide = uh.UscHadConfig(train_users=[1, 2], unseen_users=[13], window=100, stride=50)
    meta = uh.prepare("usc_had", wide, raw, tmp_path / "wide", split_seed=0)
    lengths = {k: len(x) for k, x in release.signals.items()}
    expected = [k for k in sorted(release.table, key=uh._parse_key) if lengths[k] < 100]
    assert meta["short_recordings"] == {"count": len(expected), "window": 100, "names": expected}
    assert meta["windows_total"] == sum(formula(n, 100, 50) for n in lengths.values())
    assert f"give no window: {', '.join(expected)}" in capsys.readouterr().err
    # nothing short: nothing said
    meta = uh.prepare("usc_had", uh.UscHadConfig(train_users=[1, 2], unseen_users=[13], window=20, stride=10),
                      raw, tmp_path / "narrow", split_seed=0)
    assert meta["short_recordings"]["count"] == 0 and "no window" not in capsys.readouterr().err


def test_cut_windows_of_nothing():
    x, owner = recordings.cut_windows([], 30, 15)
    assert x.shape == (0, 6, 30) and owner.shape == (0,)
    x, owner = recordings.cut_windows([np.zeros((10, 6)), np.zeros((29, 6))], 30, 15)
    assert x.shape == (0, 6, 30) and owner.shape == (0,)


def test_standardise_matches_a_hand_computed_z_score():
    x = signal(np.random.default_rng(0), 200)
    x[:, 4] = 7.0  # a constant channel becomes 0
    z = recordings.standardise(x)
    hand = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1)
    assert z.dtype == np.float32 and np.allclose(z, hand, atol=1e-5) and not z[:, 4].any()


# ---------------------------------------------------------------------------------------------------------
# Parser


def test_labels_come_from_the_file_name_and_metadata_strings_are_parsed(release):
    x, meta = uh.read_recording(release.tree / QUIRK)
    assert x.dtype == np.float64 and x.shape == release.signals[QUIRK].shape
    assert np.array_equal(x, release.signals[QUIRK])
    assert (meta["subject"], meta["activity"], meta["trial"]) == (2, 11, 4)  # the field says activity 0
    assert meta["field_activity_number"] == 0 and meta["field_subject"] == 2 and meta["field_trial"] == 4
    assert (meta["age"], meta["height_cm"], meta["weight_kg"]) == (22, 162, 52)  # '22', '162cm', '52kg'
    assert meta["activity_name"] == "Elevator Up" and meta["title"] == "USC Human Motion Database"
    assert meta["version"] == "1.0" and meta["typo_activity_numbr"] is False and meta["samples"] == len(x)


def test_the_activity_numbr_typo_is_tolerated(release):
    x, meta = uh.read_recording(release.tree / "Subject13/a11t1.mat")
    assert "activity_numbr" in scipy.io.loadmat(release.tree / "Subject13/a11t1.mat")
    assert meta["typo_activity_numbr"] is True and meta["field_activity_number"] == 11
    assert meta["activity"] == 11 and meta["subject"] == 13 and meta["height_cm"] == 173


@pytest.mark.parametrize("value,units,expected", [
    ("170cm", ("cm",), 170), ("170 cm", ("cm",), 170), (" 65kg ", ("kg",), 65), ("65.5kg", ("kg",), 65.5),
    ("65", ("kg",), 65), (np.array(["180cm"]), ("cm",), 180), (np.array([[23.0]]), (), 23),
    ("5ft7", ("cm",), None), ("150lbs", ("kg",), None), ("tall", ("cm",), None), ("", ("cm",), None),
    (None, ("cm",), None), (np.array([], dtype="<U1"), ("cm",), None), (np.zeros((2, 2)), (), None),
])
def test_quantities_strip_units_and_never_crash(value, units, expected):
    assert uh._quantity(value, *units) == expected


def test_unparsable_metadata_is_none_not_fatal(tmp_path):
    x = signal(np.random.default_rng(1), 50)
    path = write_mat(tmp_path / "Subject4/a3t2.mat", fields(4, 3, 2, x, height="tall", weight="?", age="",
                                                             trial="second", subject=np.array([[4.0]])))
    got, meta = uh.read_recording(path)
    assert np.array_equal(got, x)
    assert meta["height_cm"] is None and meta["weight_kg"] is None and meta["age"] is None
    assert meta["field_trial"] is None and meta["field_subject"] == 4 and meta["trial"] == 2


def broken_files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(2)
    good = write_mat(tmp_path / "good/Subject1/a1t1.mat", fields(1, 1, 1, signal(rng, 80)))
    raw = good.read_bytes()
    cases = {}

    def case(name: str, data: bytes | dict, file: str = "a1t1.mat", folder: str = "Subject1") -> None:
        path = tmp_path / name / folder / file
        if isinstance(data, dict):
            write_mat(path, data)
        else:
            path.parent.mkdir(parents=True)
            path.write_bytes(data)
        cases[name] = path

    case("garbage", bytes(np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8)))
    case("empty", b"")
    case("truncated", raw[: len(raw) // 2])
    case("header_only", raw[:128])
    case("five_columns", fields(1, 1, 1, signal(rng, 80)[:, :5]))
    case("seven_columns", fields(1, 1, 1, rng.normal(size=(80, 7))))
    case("no_rows", fields(1, 1, 1, np.zeros((0, 6))))
    case("one_dimensional", fields(1, 1, 1, np.arange(6.0)[None, :].repeat(3, 0).ravel()))
    case("text_readings", fields(1, 1, 1, "not numbers"))
    case("nan_readings", fields(1, 1, 1, np.full((40, 6), np.nan)))
    case("no_readings", {k: v for k, v in fields(1, 1, 1, signal(rng, 40)).items() if k != "sensor_readings"})
    for name, file, folder in (("activity_13", "a13t1.mat", "Subject1"), ("trial_6", "a1t6.mat", "Subject1"),
                               ("activity_0", "a0t1.mat", "Subject1"), ("not_a_t", "b1t1.mat", "Subject1"),
                               ("suffix", "a1t1.txt", "Subject1"), ("subject_15", "a1t1.mat", "Subject15"),
                               ("subject_0", "a1t1.mat", "Subject0"), ("no_subject", "a1t1.mat", "data")):
        case(name, raw, file, folder)
    return cases


def test_broken_files_fail_with_one_line_naming_the_file(tmp_path):
    for name, path in broken_files(tmp_path).items():
        with pytest.raises(DataError) as err:
            uh.read_recording(path)
        msg = one_line_naming(err, str(path))
        if name in ("five_columns", "seven_columns", "no_rows", "one_dimensional", "text_readings"):
            assert "N×6" in msg, msg
        if name == "five_columns":
            assert "(80, 5)" in msg
        if name == "no_readings":
            assert "no variable `sensor_readings` (found: activity, activity_number, age" in msg
        if name in ("garbage", "empty", "truncated"):
            assert "MATLAB v5" in msg
        if name == "header_only":  # a valid header and no variables
            assert "no variable `sensor_readings` (found: none)" in msg
    with pytest.raises(DataError) as err:
        uh.read_recording(tmp_path / "Subject1/a1t1.mat")
    one_line_naming(err, "Subject1/a1t1.mat")


# ---------------------------------------------------------------------------------------------------------
# Download → prepare


def check_tiny(release: Release, raw: Path, out: Path, meta: dict) -> None:
    assert sorted(p.name for p in raw.iterdir()) == [uh.ROOT, uh.RECORD]  # no archive, nothing partial
    files = sorted(p.relative_to(raw / uh.ROOT).as_posix() for p in (raw / uh.ROOT).rglob("*") if p.is_file())
    assert files == sorted(release.table)  # only the verified .mat files, no Readme / scripts / macOS junk
    assert all(sha(raw / uh.ROOT / k) == v for k, v in release.table.items())
    per_key = {k: formula(len(x)) for k, x in release.signals.items()}
    assert per_key[SHORT] == 0
    train_keys = [k for k in per_key if uh._parse_key(k)[0] in (1, 2)]
    assert meta["windows_total"] == sum(per_key.values())
    assert meta["counts"]["train"] + meta["counts"]["seen"] == sum(per_key[k] for k in train_keys)
    assert meta["counts"]["unseen"] == sum(per_key[k] for k in per_key if k.startswith("Subject13/"))
    assert meta["users"] == {"train": [1, 2], "seen": [1, 2], "unseen": [13]}
    assert meta["source"] == "real" and meta["dataset"] == "usc_had" and meta["sampling_rate_hz"] == 100
    assert meta["recordings"] == 12 and meta["sha256"]["files_checked"] == 12 and meta["sha256"]["all_match"]
    assert meta["short_recordings"] == {"count": 1, "window": 30, "names": [SHORT]}  # 29 rows: no window
    assert meta["field_disagreements"] == {QUIRK: {"activity_number": 0}}
    assert meta["activity_numbr_typo"] == [f"Subject13/a{a}t{t}.mat" for a in (1, 11) for t in (1, 4)]
    assert meta["subjects"]["13"] == {"recordings": 4, "age": 33, "height_cm": 173, "weight_kg": 63}
    assert meta["windowing"] == {"window": 30, "stride": 15, "seen_fraction": 0.1, "train_users": [1, 2],
                                 "unseen_users": [13], "split_seed": 0}
    assert json.loads((out / "meta.json").read_text()) == meta
    unseen = load(out, "unseen")
    assert set(unseen) == {"x", "activity", "user", "trial"}
    assert unseen["x"].dtype == np.float32 and unseen["activity"].dtype == unseen["user"].dtype == np.int64
    assert set(unseen["user"].tolist()) == {12} and set(unseen["activity"].tolist()) == {0, 10}
    quirk = load(out, "train"), load(out, "seen")
    assert sum(int(((s["user"] == 1) & (s["activity"] == 10) & (s["trial"] == 4)).sum()) for s in quirk) \
        == per_key[QUIRK]  # labelled Elevator Up (10 = 11 − 1) from the file name, although its field says 0
    keys13 = [k for k in sorted(release.table, key=uh._parse_key) if k.startswith("Subject13/")]
    assert np.allclose(unseen["x"], np.concatenate([expected_windows(release.signals[k]) for k in keys13]),
                       atol=1e-5)


def test_download_over_http_then_prepare(release, server, tmp_path, monkeypatch):
    root, base = server
    (root / uh.ARCHIVE.name).write_bytes(release.zip.read_bytes())
    monkeypatch.setattr(uh, "ARCHIVE", dataclasses.replace(uh.ARCHIVE, urls=(
        closed_port_url() + uh.ARCHIVE.name, base + "missing/USC-HAD.zip", base + uh.ARCHIVE.name)))
    raw, out = tmp_path / "raw", tmp_path / "out"
    assert uh.download("usc_had", TINY_CFG, raw, progress=False) == raw / uh.ROOT
    record = json.loads((raw / uh.RECORD).read_text())
    assert record["archive_sha256"] == sha(release.zip) and record["files"] == 12
    meta = uh.prepare("usc_had", TINY_CFG, raw, out, split_seed=0)
    check_tiny(release, raw, out, meta)
    assert meta["sha256"]["archive"] == sha(release.zip)
    # a second download is a no-op: the host may be gone
    (root / uh.ARCHIVE.name).unlink()
    before = (raw / uh.ROOT / QUIRK).stat().st_mtime_ns
    uh.download("usc_had", TINY_CFG, raw, progress=False)
    assert (raw / uh.ROOT / QUIRK).stat().st_mtime_ns == before


@pytest.mark.parametrize("first", ["html", "truncated", "other_release", "missing_member"])
def test_a_source_answering_with_a_bad_archive_is_skipped_for_the_next(release, server, tmp_path, monkeypatch,
                                                                       capsys, first):
    """The zip has no pin of its own: a non-zip, broken or different answer still counts as that source failing."""
    root, base = server
    for m in ("m1", "m2"):
        (root / m).mkdir()
    good = release.zip.read_bytes()
    if first == "html":
        bad = b"<!DOCTYPE html><html><body>Service temporarily unavailable</body></html>"
    elif first == "truncated":
        bad = good[: len(good) // 2]
    elif first == "other_release":  # a zip of the same layout whose members differ from the table
        other = tmp_path / "other"
        make_tree(other / uh.ROOT, TINY_SUBJECTS, TINY_ACTIVITIES, TINY_TRIALS, np.random.default_rng(8))
        bad = release_zip(tmp_path / "other.zip", other / uh.ROOT).read_bytes()
    else:
        keep = [k for k in release.table if k != QUIRK]
        with zipfile.ZipFile(tmp_path / "partial.zip", "w") as zf:
            for k in keep:
                zf.write(release.tree / k, f"{uh.ROOT}/{k}")
        bad = (tmp_path / "partial.zip").read_bytes()
    (root / "m1" / uh.ARCHIVE.name).write_bytes(bad)
    (root / "m2" / uh.ARCHIVE.name).write_bytes(good)
    urls = (base + f"m1/{uh.ARCHIVE.name}", base + f"m2/{uh.ARCHIVE.name}")
    monkeypatch.setattr(uh, "ARCHIVE", dataclasses.replace(uh.ARCHIVE, urls=urls))
    raw, out = tmp_path / "raw", tmp_path / "out"
    uh.download("usc_had", TINY_CFG, raw, progress=False)
    check_tiny(release, raw, out, uh.prepare("usc_had", TINY_CFG, raw, out, split_seed=0))
    skipped = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    reason = {"html": "an HTML page", "truncated": "not a zip archive", "other_release": "differs from the pinned",
              "missing_member": f"member {uh.ROOT}/{QUIRK} missing"}[first]
    assert len(skipped) == 1 and urls[0] in skipped[0] and reason in skipped[0], skipped
    # both bad: one error listing each source and its reason, nothing left in raw_dir
    (root / "m2" / uh.ARCHIVE.name).write_bytes(b"<html>login required</html>")
    with pytest.raises(DataError) as err:
        uh.download("usc_had", TINY_CFG, tmp_path / "raw2", progress=False)
    msg = one_line_naming(err, uh.ARCHIVE.name)
    assert f"{urls[0]} (" in msg and reason in msg and f"{urls[1]} (an HTML page" in msg
    assert empty(tmp_path / "raw2")


@pytest.mark.parametrize("layout", ["zip_dir", "zip_file_url", "zip_http", "tree_dir", "tree_file_url",
                                    "subject_dirs"])
def test_mirrors_with_archive_or_unpacked_tree(release, server, tmp_path, layout):
    if layout == "zip_http":
        (server[0] / uh.ARCHIVE.name).write_bytes(release.zip.read_bytes())
        mirror = server[1]
    elif layout.startswith("zip"):
        (tmp_path / "mirror").mkdir()
        (tmp_path / "mirror" / uh.ARCHIVE.name).write_bytes(release.zip.read_bytes())
        mirror = (tmp_path / "mirror").as_uri() if layout == "zip_file_url" else str(tmp_path / "mirror")
    elif layout == "subject_dirs":
        mirror = str(release.tree)  # Subject*/ directly inside the mirror
    else:
        release.zip.unlink()  # only the unpacked tree USC-HAD/Subject*/ is there
        mirror = release.dir.as_uri() if layout == "tree_file_url" else str(release.dir)
    cfg = parse(uh.UscHadConfig, {"mirror": mirror, "train_users": [1, 2], "unseen_users": [13]},
                "params.yaml: data.usc_had")
    raw, out = tmp_path / "raw", tmp_path / "out"
    uh.download("usc_had", cfg, raw, progress=False)
    meta = uh.prepare("usc_had", cfg, raw, out, split_seed=0)
    check_tiny(release, raw, out, meta)
    assert meta["sha256"]["archive"] == (sha(release.zip) if layout.startswith("zip") else None)


def test_a_member_that_differs_from_the_table_names_it_and_leaves_nothing(release, server, tmp_path,
                                                                          monkeypatch):
    bad = "Subject2/a1t4.mat"
    monkeypatch.setitem(release.table, bad, "0" * 64)
    (server[0] / uh.ARCHIVE.name).write_bytes(release.zip.read_bytes())
    raw, out = tmp_path / "raw", tmp_path / "out"
    for mirror in (server[1], str(release.dir), str(release.tree)):
        if mirror == str(release.dir):
            release.zip.unlink()  # from here on the mirror holds the unpacked tree only
        with pytest.raises(DataError) as err:
            uh.download("usc_had", uh.UscHadConfig(mirror=mirror), raw, progress=False)
        msg = one_line_naming(err, bad)
        assert "differs from the pinned 12-file list" in msg and "0" * 64 in msg
        if mirror == server[1]:
            assert f"member {uh.ROOT}/{bad}" in msg and uh.ARCHIVE.name in msg
        assert empty(raw), list(raw.rglob("*"))  # no tree, no record, no archive left for a later fetch
        with pytest.raises(DataError) as err:
            uh.prepare("usc_had", TINY_CFG, raw, out, 0)
        assert "download stage" in one_line_naming(err, str(raw / uh.ROOT))
        assert not out.exists()


def test_a_tampered_member_is_caught_in_the_archive(release, tmp_path):
    tampered = tmp_path / "tampered"
    make_tree(tampered / uh.ROOT, TINY_SUBJECTS, TINY_ACTIVITIES, TINY_TRIALS, np.random.default_rng(8))
    (tmp_path / "mirror").mkdir()
    archive = release_zip(tmp_path / "mirror" / uh.ARCHIVE.name, tampered / uh.ROOT)
    with pytest.raises(DataError) as err:
        uh.extract_tree(archive, tmp_path / "raw" / uh.ROOT)
    assert "differs from the pinned 12-file list" in one_line_naming(err, f"{uh.ROOT}/Subject1/a1t1.mat")
    assert empty(tmp_path / "raw")


def test_missing_member_or_file_is_named(release, tmp_path):
    gone = "Subject13/a11t4.mat"
    partial = tmp_path / "partial"
    with zipfile.ZipFile(release.zip) as zf, zipfile.ZipFile(partial.with_suffix(".zip"), "w") as out:
        for info in zf.infolist():
            if not info.filename.endswith(gone):
                out.writestr(info, zf.read(info))
    with pytest.raises(DataError) as err:
        uh.extract_tree(partial.with_suffix(".zip"), tmp_path / "raw" / uh.ROOT)
    assert "missing" in one_line_naming(err, f"{uh.ROOT}/{gone}")
    (release.tree / gone).unlink()
    release.zip.unlink()
    with pytest.raises(DataError) as err:
        uh.download("usc_had", uh.UscHadConfig(mirror=str(release.dir)), tmp_path / "raw", progress=False)
    assert "missing" in one_line_naming(err, str(release.tree / gone))
    assert empty(tmp_path / "raw")


@pytest.mark.parametrize("evil", ["../evil.mat", "USC-HAD/../../evil.mat", "/tmp/evil.mat",
                                  "USC-HAD\\..\\..\\evil.mat", "C:/evil.mat"])
def test_zip_slip_members_are_rejected(release, tmp_path, evil):
    (tmp_path / "mirror").mkdir()
    archive = release_zip(tmp_path / "mirror" / uh.ARCHIVE.name, release.tree, {evil: b"payload"})
    raw = tmp_path / "deep" / "raw"
    with pytest.raises(DataError) as err:
        uh.download("usc_had", uh.UscHadConfig(mirror=str(tmp_path / "mirror")), raw, progress=False)
    assert "zip-slip" in one_line_naming(err, repr(evil))
    assert empty(raw) and not list(tmp_path.rglob("evil.mat"))
    assert archive.is_file()  # the mirror's own copy is untouched


@pytest.mark.parametrize("claim, why", [({"flag": 1}, "is encrypted"), ({"method": 99}, "compression method"),
                                        ({"version": 99}, "zip file version")])
def test_a_zip_that_zipfile_cannot_decode_is_one_line_and_leaves_nothing(release, tmp_path, claim, why):
    """An encrypted member (RuntimeError), an unimplemented compression method or zip version (NotImplementedError)
    escaped check_archive as tracebacks, past fetch's next URL, leaving an empty data/raw/usc_had/."""
    (tmp_path / "mirror").mkdir()
    zip_claiming(release_zip(tmp_path / "mirror" / uh.ARCHIVE.name, release.tree), **claim)
    raw = tmp_path / "raw"
    with pytest.raises(DataError) as err:
        uh.download("usc_had", uh.UscHadConfig(mirror=str(tmp_path / "mirror")), raw, progress=False)
    assert why in one_line_naming(err, uh.ARCHIVE.name)
    assert empty(raw)


def test_offline_fails_fast_naming_the_mirror_param(release, tmp_path, monkeypatch, network_attempts):
    monkeypatch.setattr(uh, "ARCHIVE", dataclasses.replace(uh.ARCHIVE, urls=(
        closed_port_url() + uh.ARCHIVE.name, closed_port_url() + uh.ARCHIVE.name)))
    raw = tmp_path / "raw"
    with pytest.raises(DataError) as err:
        uh.download("usc_had", uh.UscHadConfig(), raw, progress=False)
    assert network_attempts.urls == list(uh.ARCHIVE.urls) and network_attempts.sleeps == []  # one try per host
    assert "data.usc_had.mirror" in one_line_naming(err, uh.ARCHIVE.name)
    with pytest.raises(DataError) as err:  # an unreachable http mirror
        uh.download("usc_had", uh.UscHadConfig(mirror=closed_port_url()), raw, progress=False)
    assert "data.usc_had.mirror" in one_line_naming(err, uh.ARCHIVE.name)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError) as err:  # a mirror directory with neither the zip nor the tree
        uh.download("usc_had", uh.UscHadConfig(mirror=str(tmp_path / "nothing")), raw, progress=False)
    assert "neither" in one_line_naming(err, str(tmp_path / "nothing"))
    assert empty(raw)


def test_an_archive_placed_in_raw_dir_by_hand_is_used_and_verified(release, tmp_path, monkeypatch):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    (raw / uh.ARCHIVE.name).write_bytes(release.zip.read_bytes())
    uh.download("usc_had", TINY_CFG, raw, progress=False)  # the pinned host is unreachable: not needed
    check_tiny(release, raw, out, uh.prepare("usc_had", TINY_CFG, raw, out, split_seed=0))
    # a hand-placed archive that fails verification is removed, so the next attempt fetches a fresh one
    monkeypatch.setitem(release.table, "Subject1/a1t1.mat", "1" * 64)
    (raw / uh.ARCHIVE.name).write_bytes(release.zip.read_bytes())
    with pytest.raises(DataError) as err:
        uh.download("usc_had", TINY_CFG, raw, progress=False)
    one_line_naming(err, f"member {uh.ROOT}/Subject1/a1t1.mat")
    assert not (raw / uh.ARCHIVE.name).exists()


def test_prepare_rejects_a_changed_or_missing_file(release, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    uh.download("usc_had", uh.UscHadConfig(mirror=str(release.dir)), raw, progress=False)
    changed = raw / uh.ROOT / "Subject2/a1t1.mat"
    write_mat(changed, fields(2, 1, 1, signal(np.random.default_rng(9), 70)))
    with pytest.raises(DataError) as err:
        uh.prepare("usc_had", TINY_CFG, raw, out, 0)
    assert "differs from the pinned 12-file list" in one_line_naming(err, str(changed))
    assert not out.exists()
    changed.unlink()
    with pytest.raises(DataError) as err:
        uh.prepare("usc_had", TINY_CFG, raw, out, 0)
    assert "missing" in one_line_naming(err, str(changed))
    assert not out.exists()
    # download repairs it from the mirror (the whole tree is replaced)
    uh.download("usc_had", uh.UscHadConfig(mirror=str(release.dir)), raw, progress=False)
    assert sha(changed) == release.table["Subject2/a1t1.mat"]
    with pytest.raises(DataError) as err:  # a configured subject the tree does not have
        uh.prepare("usc_had", uh.UscHadConfig(train_users=[1, 5], unseen_users=[13]), raw, out, 0)
    assert "subject 5" in one_line_naming(err, str(raw / uh.ROOT))


def test_prepare_names_a_malformed_file_even_when_its_hash_is_pinned(release, tmp_path, monkeypatch):
    raw, out = tmp_path / "raw", tmp_path / "out"
    bad = release.tree / "Subject13/a1t4.mat"
    write_mat(bad, fields(13, 1, 4, signal(np.random.default_rng(5), 90)[:, :5], typo=True))
    garbage = release.tree / "Subject2/a11t1.mat"
    garbage.write_bytes(b"MATLAB 5.0 MAT-file, garbage follows" + bytes(300))
    for path in (bad, garbage):
        monkeypatch.setitem(release.table, path.relative_to(release.tree).as_posix(), sha(path))
    uh.download("usc_had", uh.UscHadConfig(mirror=str(release.tree)), raw, progress=False)
    with pytest.raises(DataError) as err:
        uh.prepare("usc_had", TINY_CFG, raw, out, 0)
    one_line_naming(err, str(raw / uh.ROOT / "Subject2/a11t1.mat"))  # read in subject order: this one first
    (raw / uh.ROOT / "Subject2/a11t1.mat").write_bytes(b"")  # an empty file
    monkeypatch.setitem(release.table, "Subject2/a11t1.mat", sha(raw / uh.ROOT / "Subject2/a11t1.mat"))
    with pytest.raises(DataError) as err:
        uh.prepare("usc_had", TINY_CFG, raw, out, 0)
    one_line_naming(err, str(raw / uh.ROOT / "Subject2/a11t1.mat"))
    write_mat(raw / uh.ROOT / "Subject2/a11t1.mat", fields(2, 11, 1, signal(np.random.default_rng(6), 60)))
    monkeypatch.setitem(release.table, "Subject2/a11t1.mat", sha(raw / uh.ROOT / "Subject2/a11t1.mat"))
    with pytest.raises(DataError) as err:
        uh.prepare("usc_had", TINY_CFG, raw, out, 0)
    assert "(90, 5)" in one_line_naming(err, str(raw / uh.ROOT / "Subject13/a1t4.mat"))
    assert not out.exists()


def test_prepare_uses_only_the_configured_users(release, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    uh.download("usc_had", uh.UscHadConfig(mirror=str(release.tree)), raw, progress=False)
    meta = uh.prepare("usc_had", uh.UscHadConfig(train_users=[2], unseen_users=[13]), raw, out, 3)
    assert meta["users"] == {"train": [2], "seen": [2], "unseen": [13]} and meta["recordings"] == 8
    assert sorted(meta["subjects"]) == ["13", "2"]


def test_config_params():
    cfg = parse(uh.UscHadConfig, {}, "p: data.usc_had")
    assert cfg.mirror is None and (cfg.window, cfg.stride, cfg.seen_fraction) == (30, 15, 0.1)
    assert cfg.train_users == list(range(1, 11)) and cfg.unseen_users == [11, 12, 13, 14]
    assert parse(uh.UscHadConfig, {"mirror": "/data/usc", "window": 64}, "p: data.usc_had").window == 64
    with pytest.raises(ParamError, match="data.usc_had.unseen_users: subject 10"):
        parse(uh.UscHadConfig, {"unseen_users": [10, 11]}, "p: data.usc_had")
    with pytest.raises(ParamError, match="data.usc_had.mirrors: unknown key"):
        parse(uh.UscHadConfig, {"mirrors": "/x"}, "p: data.usc_had")


# ---------------------------------------------------------------------------------------------------------
# The pinned release


def test_the_embedded_table_lists_all_840_files():
    assert uh.MAT_SHA256 is None  # the real pipeline checks against the packaged list
    table = uh.expected_sha256()
    assert len(table) == 840
    expected = {f"Subject{s}/a{a}t{t}.mat" for s in range(1, 15) for a in range(1, 13) for t in range(1, 6)}
    assert set(table) == expected
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in table.values()) and len(set(table.values())) == 840
    assert table["Subject1/a1t1.mat"] == "abd52a56868359df32d734c804010ea83d452cf3a248e4d45ea7fc7e2c7379cb"
    sizes = [int(line.split()[1]) for line in (Path(uh.__file__).parent / uh.SHA_TABLE).read_text().splitlines()
             if not line.startswith("#")]
    assert sum(sizes) == 44_829_957 and (min(sizes), max(sizes)) == (7_257, 233_275)  # datasets.md §C


def test_pinned_archive():
    real = REAL_ARCHIVE  # the module's own pin, not the autouse stand-in
    assert real.name == "USC-HAD.zip" and real.sha256 is None  # verified by its 840 members instead
    assert real.urls == ("https://sipi.usc.edu/had/USC-HAD.zip", "http://sipi.usc.edu/HAD/USC-HAD.zip")


# ---------------------------------------------------------------------------------------------------------
# Full size


def test_windowing_gives_the_count_its_formula_predicts_on_a_full_size_tree(tmp_path, monkeypatch):
    """840 files of 1,000–7,000 rows (14 subjects × 12 activities × 5 trials), written where download leaves
    them: download is a no-op (the tree verifies), prepare windows and splits them by the default params."""
    rng = np.random.default_rng(2024)
    raw, out = tmp_path / "raw", tmp_path / "out"
    table, signals = make_tree(raw / uh.ROOT, range(1, 15), range(1, 13), range(1, 6), rng, rows=(1000, 7000),
                               compress=False, special=False)
    monkeypatch.setattr(uh, "MAT_SHA256", table)
    cfg = uh.UscHadConfig()
    assert uh.download("usc_had", cfg, raw, progress=False) == raw / uh.ROOT  # no network needed
    meta = uh.prepare("usc_had", cfg, raw, out, split_seed=0)

    keys = sorted(table, key=uh._parse_key)
    per_key = {k: (len(signals[k]) - 30) // 15 + 1 for k in keys}
    assert meta["recordings"] == 840 and meta["samples"] == sum(len(x) for x in signals.values())
    assert meta["windows_total"] == sum(per_key.values())
    seen_users = {k: v for k, v in per_key.items() if uh._parse_key(k)[0] <= 10}
    assert meta["counts"]["train"] + meta["counts"]["seen"] == sum(seen_users.values())
    assert meta["counts"]["unseen"] == meta["windows_total"] - sum(seen_users.values())
    assert meta["users"] == {"train": list(range(1, 11)), "seen": list(range(1, 11)), "unseen": [11, 12, 13, 14]}
    splits = {name: load(out, name) for name in recordings.SPLITS}
    assert {name: len(s["x"]) for name, s in splits.items()} == meta["counts"]

    # per recording: its windows are all there, across train + seen (or in unseen); per user × activity
    # group, seen holds round(10 %) of them
    def codes(s):
        return (s["user"] + 1) * 10_000 + (s["activity"] + 1) * 10 + s["trial"]
    code_of = {k: (lambda s, a, t: s * 10_000 + a * 10 + t)(*uh._parse_key(k)) for k in keys}
    train_seen = np.concatenate([codes(splits["train"]), codes(splits["seen"])])
    got = dict(zip(*np.unique(np.concatenate([train_seen, codes(splits["unseen"])]), return_counts=True)))
    assert {k: int(got[code_of[k]]) for k in keys} == per_key
    assert not np.isin(codes(splits["unseen"]), train_seen).any()
    for user in range(1, 11):
        for activity in range(1, 13):
            n = sum(per_key[f"Subject{user}/a{activity}t{t}.mat"] for t in range(1, 6))
            seen = int(((splits["seen"]["user"] == user - 1) & (splits["seen"]["activity"] == activity - 1)).sum())
            assert seen == round(0.1 * n) and abs(seen / n - 0.1) < 0.01

    # every unseen window is the standardised slice it should be, in recording order
    unseen_keys = [k for k in keys if uh._parse_key(k)[0] > 10]
    start = 0
    for k in unseen_keys:
        hand = expected_windows(signals[k])
        assert np.allclose(splits["unseen"]["x"][start:start + len(hand)], hand, atol=1e-5), k
        start += len(hand)
    # spot checks in train / seen: each window matches the hand-computed slice of its recording, in order,
    # and the two splits share none
    for k in [keys[0], keys[137], keys[311], keys[599]]:
        hand = expected_windows(signals[k])
        flat = hand.reshape(len(hand), -1)
        matched = []
        for name in ("train", "seen"):
            xs = splits[name]["x"][codes(splits[name]) == code_of[k]].reshape(-1, flat.shape[1])
            index = [int(np.argmin(np.abs(flat - w).max(axis=1))) for w in xs]
            assert np.allclose(flat[index], xs, atol=1e-5) and index == sorted(index), (k, name)
            matched += index
        assert sorted(matched) == list(range(len(hand))), k


def test_prepare_refuses_huge_readings_at_the_raw_file_and_a_record_that_is_not_an_object(release, tmp_path,
                                                                                          monkeypatch, recwarn):
    """Finite 1e306 readings became NaN in standardise and were blamed on the processed file after warnings;
    usc-had.json holding [] gave an AttributeError."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    uh.download("usc_had", uh.UscHadConfig(mirror=str(release.tree)), raw, progress=False)
    (raw / uh.RECORD).write_text("[]")
    with pytest.raises(DataError) as err:
        uh.prepare("usc_had", TINY_CFG, raw, out, 0)
    assert "top level is an array, expected an object" in one_line_naming(err, str(raw / uh.RECORD))
    huge = signal(np.random.default_rng(8), 60)
    huge[4, 2] = 1e306
    path = write_mat(raw / uh.ROOT / "Subject1/a1t1.mat", fields(1, 1, 1, huge))
    monkeypatch.setitem(release.table, "Subject1/a1t1.mat", sha(path))
    with pytest.raises(DataError) as err:
        uh.prepare("usc_had", TINY_CFG, raw, out, 0)
    assert "holds 1e+306 at row 5" in one_line_naming(err, str(path))
    assert not out.exists() and not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
