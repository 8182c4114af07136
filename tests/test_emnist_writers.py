"""emnist_writers: the EMNIST matlab release parser and download → prepare, on a tiny generated release.

The generated `emnist-digits.mat` has the real structure (`dataset` struct → `train`/`test` structs of `images`
N×784 stored column-major, `labels` N×1, `writers` N×1, plus `mapping`), zipped as `matlab/emnist-digits.mat`.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from conftest import closed_port_url, load, one_line_naming, zip_claiming
from replab.data import emnist_writers as ew
from replab.download import RemoteFile
from replab.io import DataError
from replab.params import ParamError, parse

TRAIN_WRITERS = np.array([107, 3, 3, 55, 107, 55, 3, 900, 107, 55, 3, 900])  # 4 writers, NIST-like ids
TEST_WRITERS = np.array([55, 12, 3, 107, 12, 900])  # writer 12 never appears in train


def upright_images(n: int, offset: int) -> np.ndarray:
    """Upright digits-to-be with an asymmetric mark: a bar along the top row's left half, a dot in the
    bottom-left corner, and a unique id in the top-left pixel (to trace rows through prepare)."""
    x = np.zeros((n, 28, 28), dtype=np.uint8)
    x[:, 1, 2:14] = 200
    x[:, 26, 1] = 77
    x[:, 0, 0] = np.arange(offset, offset + n)
    return x


def stored(upright: np.ndarray) -> np.ndarray:
    """As the release stores images: each row is the 28×28 image flattened column-major (transposed)."""
    return upright.transpose(0, 2, 1).reshape(len(upright), 784)


def split_struct(upright: np.ndarray, writers: np.ndarray, writers_dtype=np.float64) -> dict:
    n = len(upright)
    return {"images": stored(upright), "labels": (np.arange(n) % 10).astype(np.uint8).reshape(n, 1),
            "writers": writers.astype(writers_dtype).reshape(n, 1)}


def release_mat(path: Path, **overrides) -> Path:
    train = split_struct(upright_images(len(TRAIN_WRITERS), 0), TRAIN_WRITERS)
    test = split_struct(upright_images(len(TEST_WRITERS), 100), TEST_WRITERS, np.uint16)
    dataset = {"train": train, "test": test,
               "mapping": np.c_[np.arange(10), 48 + np.arange(10)].astype(np.float64)}
    variables = {"dataset": dataset, **overrides}
    scipy.io.savemat(path, variables, do_compression=True)
    return path


def release_zip(path: Path, mat: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("matlab/emnist-letters.mat", b"other split, must not be extracted")
        zf.write(mat, ew.MEMBER)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def release(tmp_path):
    """(mat path, zip path) of a tiny release, built outside any served directory."""
    src = tmp_path / "release"
    src.mkdir()
    mat = release_mat(src / ew.MAT_FILE)
    return mat, release_zip(src / "matlab.zip", mat)


@pytest.fixture
def pinned(release, monkeypatch):
    """Pin ARCHIVE to the tiny zip's checksum (URLs set per test)."""
    def pin(*urls: str, sha256: str | None = None) -> RemoteFile:
        f = RemoteFile("matlab.zip", tuple(urls), sha256 or sha(release[1]))
        monkeypatch.setattr(ew, "ARCHIVE", f)
        return f
    return pin


# ---------------------------------------------------------------------------------------------------------
# Parser


def test_fixture_has_the_notebooks_structure(release):
    """dataset[0][0][0] = train (images, labels, writers), [1] = test: what the article's notebook indexes."""
    d = scipy.io.loadmat(release[0])["dataset"]
    train, test = d[0][0][0], d[0][0][1]
    assert d.dtype.names == ("train", "test", "mapping")
    assert train[0][0][0].shape == (len(TRAIN_WRITERS), 784) and train.dtype.names[2] == "writers"
    assert np.array_equal(test[0][0][2].ravel(), TEST_WRITERS)


def test_parser_returns_upright_images_labels_and_writers(release):
    data = ew.read_emnist_mat(release[0])
    x, y, w = data["train"]
    expected = upright_images(len(TRAIN_WRITERS), 0)
    assert x.dtype == np.uint8 and x.shape == (12, 28, 28) and x.flags.c_contiguous
    assert np.array_equal(x, expected)  # the bar is on top, the dot bottom-left: not transposed
    assert not np.array_equal(stored(expected).reshape(-1, 28, 28), expected)  # a plain reshape would be wrong
    assert y.dtype == np.int64 and np.array_equal(y, np.arange(12) % 10)
    assert w.dtype == np.int64 and np.array_equal(w, TRAIN_WRITERS)
    x_te, _, w_te = data["test"]
    assert np.array_equal(x_te, upright_images(len(TEST_WRITERS), 100)) and np.array_equal(w_te, TEST_WRITERS)


def broken_variants(tmp_path: Path) -> dict[str, Path]:
    good = release_mat(tmp_path / "good.mat")
    raw = good.read_bytes()
    n = len(TRAIN_WRITERS)
    train = split_struct(upright_images(n, 0), TRAIN_WRITERS)
    test = split_struct(upright_images(len(TEST_WRITERS), 100), TEST_WRITERS)
    cases = {}

    def mat(name: str, variables: dict) -> None:
        cases[name] = tmp_path / f"{name}.mat"
        scipy.io.savemat(cases[name], variables, do_compression=True)

    for name, cut in (("truncated_half", len(raw) // 2), ("truncated_tail", len(raw) - 7),
                      ("truncated_header", 60), ("header_only", 128)):
        cases[name] = tmp_path / f"{name}.mat"
        cases[name].write_bytes(raw[:cut])
    cases["empty"] = tmp_path / "empty.mat"
    cases["empty"].write_bytes(b"")
    cases["not_mat"] = tmp_path / "not_mat.mat"
    cases["not_mat"].write_bytes(b"PK\x03\x04 this is a zip, not a .mat" * 20)
    mat("wrong_variable", {"data": {"train": train, "test": test}})
    mat("dataset_not_struct", {"dataset": np.zeros((3, 3))})
    mat("missing_test", {"dataset": {"train": train}})
    mat("missing_writers", {"dataset": {"train": {k: v for k, v in train.items() if k != "writers"},
                                        "test": test}})
    mat("writers_length", {"dataset": {"train": {**train, "writers": TRAIN_WRITERS[:-1].reshape(-1, 1)},
                                       "test": test}})
    mat("labels_length", {"dataset": {"train": train, "test": {**test, "labels": np.zeros((2, 1))}}})
    mat("images_shape", {"dataset": {"train": {**train, "images": train["images"][:, :700]}, "test": test}})
    mat("labels_range", {"dataset": {"train": {**train, "labels": np.full((n, 1), 35)}, "test": test}})
    mat("writers_fractional", {"dataset": {"train": {**train, "writers": np.full((n, 1), 0.5)}, "test": test}})
    mat("split_not_struct", {"dataset": {"train": np.arange(5), "test": test}})
    return cases


def test_broken_files_fail_with_one_line_naming_the_file(tmp_path):
    cases = broken_variants(tmp_path)
    for name, path in cases.items():
        with pytest.raises(DataError) as err:
            ew.read_emnist_mat(path)
        msg = one_line_naming(err, str(path))
        if name == "missing_writers":
            assert "`writers`" in msg and "dataset.train" in msg
        if name == "wrong_variable":
            assert "no variable `dataset` (found: data)" in msg
        if name == "writers_length":
            assert "dataset.train.writers" in msg and "12×1" in msg
    with pytest.raises(DataError) as err:
        ew.read_emnist_mat(tmp_path / "absent.mat")
    one_line_naming(err, "absent.mat")


def test_reindex_writers_on_train_drops_test_only_writers():
    train_idx, test_idx, keep = ew.reindex_writers(TRAIN_WRITERS, TEST_WRITERS)
    # sorted train ids 3, 55, 107, 900 → 0..3
    assert train_idx.tolist() == [2, 0, 0, 1, 2, 1, 0, 3, 2, 1, 0, 3]
    assert keep.tolist() == [True, False, True, True, False, True]
    assert test_idx.tolist() == [1, 0, 2, 3]
    _, test_idx, keep = ew.reindex_writers(np.array([], dtype=np.int64), np.array([1, 2]))
    assert not keep.any() and test_idx.size == 0


# ---------------------------------------------------------------------------------------------------------
# Download → prepare


def check_prepared(out: Path, meta: dict) -> None:
    train, test = load(out, "train"), load(out, "test")
    assert set(train) == set(test) == {"x", "y", "writer"}
    assert train["x"].dtype == np.uint8 and train["y"].dtype == train["writer"].dtype == np.int64
    assert np.array_equal(train["x"], upright_images(12, 0))
    assert train["writer"].tolist() == [2, 0, 0, 1, 2, 1, 0, 3, 2, 1, 0, 3]
    kept = [0, 2, 3, 5]  # test rows whose writer is in train
    assert np.array_equal(test["x"], upright_images(6, 100)[kept])
    assert test["writer"].tolist() == [1, 0, 2, 3] and test["y"].tolist() == [0, 2, 3, 5]
    on_disk = json.loads((out / "meta.json").read_text())
    assert on_disk == meta
    assert meta["source"] == "real" and meta["dataset"] == "emnist_writers" and meta["n_writers"] == 4
    assert meta["counts"] == {"train": 12, "test": 4}
    assert meta["dropped_test"] == {"writers": 1, "images": 2}
    assert meta["class_names"] == [str(d) for d in range(10)]


def test_download_over_http_then_prepare(release, pinned, server, tmp_path):
    root, base = server
    (root / "matlab.zip").write_bytes(release[1].read_bytes())
    pinned(closed_port_url() + "matlab.zip", base + "missing/matlab.zip", base + "matlab.zip")
    raw, out = tmp_path / "raw", tmp_path / "out"
    cfg = ew.EmnistWritersConfig()
    assert ew.download("emnist_writers", cfg, raw, progress=False) == raw / ew.MAT_FILE
    assert sorted(p.name for p in raw.iterdir()) == [ew.RECORD, ew.MAT_FILE]  # archive gone, nothing partial
    assert (raw / ew.MAT_FILE).read_bytes() == release[0].read_bytes()
    record = json.loads((raw / ew.RECORD).read_text())
    assert record["sha256"] == sha(release[0]) and record["archive_sha256"] == sha(release[1])
    meta = ew.prepare("emnist_writers", cfg, raw, out, split_seed=0)
    check_prepared(out, meta)
    assert meta["sha256"] == {ew.MAT_FILE: sha(release[0]), "matlab.zip": sha(release[1])}
    # a second download is a no-op: the host may be gone
    (root / "matlab.zip").unlink()
    before = (raw / ew.MAT_FILE).stat().st_mtime_ns
    ew.download("emnist_writers", cfg, raw, progress=False)
    assert (raw / ew.MAT_FILE).stat().st_mtime_ns == before


@pytest.mark.parametrize("layout", ["zip_dir", "zip_file_url", "mat_dir", "mat_subdir", "mat_http"])
def test_mirrors_with_archive_or_unpacked_file(release, pinned, server, tmp_path, layout):
    pinned(closed_port_url() + "matlab.zip")  # the pinned host is unreachable: only the mirror can serve
    mirror_dir = tmp_path / "mirror"
    mirror_dir.mkdir()
    mat, archive = release
    if layout.startswith("zip"):
        (mirror_dir / "matlab.zip").write_bytes(archive.read_bytes())
        mirror = mirror_dir.as_uri() if layout == "zip_file_url" else str(mirror_dir)
    elif layout == "mat_dir":
        (mirror_dir / ew.MAT_FILE).write_bytes(mat.read_bytes())
        mirror = str(mirror_dir)
    elif layout == "mat_subdir":
        (mirror_dir / "matlab").mkdir()
        (mirror_dir / ew.MEMBER).write_bytes(mat.read_bytes())
        mirror = mirror_dir.as_uri()
    else:  # an http mirror of the unpacked release: matlab.zip answers 404, the .mat is there
        (server[0] / ew.MAT_FILE).write_bytes(mat.read_bytes())
        mirror = server[1]
    raw, out = tmp_path / "raw", tmp_path / "out"
    cfg = parse(ew.EmnistWritersConfig, {"mirror": mirror}, "params.yaml: data.emnist_writers")
    ew.download("emnist_writers", cfg, raw, progress=False)
    assert sorted(p.name for p in raw.iterdir()) == [ew.RECORD, ew.MAT_FILE]
    meta = ew.prepare("emnist_writers", cfg, raw, out, split_seed=0)
    check_prepared(out, meta)
    expected = {ew.MAT_FILE: sha(mat)} | ({"matlab.zip": sha(archive)} if layout.startswith("zip") else {})
    assert meta["sha256"] == expected


def test_wrong_checksum_names_the_archive_and_leaves_nothing(release, pinned, server, tmp_path):
    (server[0] / "matlab.zip").write_bytes(release[1].read_bytes())
    pinned(server[1] + "matlab.zip", sha256="0" * 64)
    raw = tmp_path / "raw"
    with pytest.raises(DataError) as err:
        ew.download("emnist_writers", ew.EmnistWritersConfig(), raw, progress=False)
    assert "checksum mismatch" in one_line_naming(err, "matlab.zip")
    assert not raw.exists() or not any(raw.iterdir())
    # through an http mirror the mismatch is reported too, not skipped in favour of an unpacked file
    (server[0] / ew.MAT_FILE).write_bytes(release[0].read_bytes())
    with pytest.raises(DataError) as err:
        ew.download("emnist_writers", ew.EmnistWritersConfig(mirror=server[1]), raw, progress=False)
    assert "checksum mismatch" in one_line_naming(err, "matlab.zip")


def test_offline_fails_fast_with_the_mirror_hint(pinned, tmp_path, network_attempts):
    urls = (closed_port_url() + "matlab.zip", closed_port_url() + "matlab.zip")
    pinned(*urls)
    with pytest.raises(DataError) as err:
        ew.download("emnist_writers", ew.EmnistWritersConfig(), tmp_path / "raw", progress=False)
    assert network_attempts.urls == list(urls) and network_attempts.sleeps == []  # one try per host, no back-off
    assert "data.emnist_writers.mirror" in one_line_naming(err, "matlab.zip")
    with pytest.raises(DataError) as err:  # an unreachable http mirror
        ew.download("emnist_writers", ew.EmnistWritersConfig(mirror=closed_port_url()), tmp_path / "raw",
                    progress=False)
    one_line_naming(err, ew.MAT_FILE)
    with pytest.raises(DataError) as err:  # an empty mirror directory
        ew.download("emnist_writers", ew.EmnistWritersConfig(mirror=str(tmp_path)), tmp_path / "raw",
                    progress=False)
    assert "neither" in one_line_naming(err, str(tmp_path))


def test_broken_archives_fail_naming_the_zip(release, tmp_path):
    raw = release[1].read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(raw[: len(raw) // 2])
    without = tmp_path / "without.zip"
    with zipfile.ZipFile(without, "w") as zf:
        zf.writestr("matlab/emnist-letters.mat", b"x")
    corrupt = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(corrupt, "w", zipfile.ZIP_STORED) as zf:
        zf.write(release[0], ew.MEMBER)
    buf = bytearray(corrupt.read_bytes())
    start = buf.index(b"MATLAB")  # zero bytes inside the stored member: its CRC fails on read
    buf[start + 200: start + 260] = bytes(60)
    corrupt.write_bytes(bytes(buf))
    encrypted, newer = tmp_path / "encrypted.zip", tmp_path / "newer.zip"  # a RuntimeError, a NotImplementedError:
    for path, claim in ((encrypted, {"flag": 1}), (newer, {"version": 99})):  # tracebacks, once
        path.write_bytes(raw)
        zip_claiming(path, **claim)
    for path in (truncated, without, corrupt, encrypted, newer):
        target = tmp_path / "out" / ew.MAT_FILE
        with pytest.raises(DataError) as err:
            ew.extract_digits(path, target)
        one_line_naming(err, str(path))
        assert not target.parent.exists() or not any(target.parent.iterdir())


def test_prepare_rejects_missing_or_changed_file(release, pinned, tmp_path):
    pinned()
    raw, out = tmp_path / "raw", tmp_path / "out"
    with pytest.raises(DataError) as err:
        ew.prepare("emnist_writers", ew.EmnistWritersConfig(), raw, out, 0)
    assert "run `dvc repro download@emnist_writers` first" in one_line_naming(err, ew.MAT_FILE)
    ew.download("emnist_writers", ew.EmnistWritersConfig(mirror=str(release[0].parent)), raw, progress=False)
    release_mat(raw / ew.MAT_FILE, extra=np.zeros(3))  # same structure, other bytes
    with pytest.raises(DataError) as err:
        ew.prepare("emnist_writers", ew.EmnistWritersConfig(), raw, out, 0)
    assert "recorded at download" in one_line_naming(err, ew.MAT_FILE)
    assert not out.exists()
    # a truncated file placed without a record is parsed and rejected, naming it
    (raw / ew.RECORD).unlink()
    (raw / ew.MAT_FILE).write_bytes(release[0].read_bytes()[:300])
    with pytest.raises(DataError) as err:
        ew.prepare("emnist_writers", ew.EmnistWritersConfig(), raw, out, 0)
    one_line_naming(err, str(raw / ew.MAT_FILE))
    assert not out.exists()


def test_config_params():
    assert parse(ew.EmnistWritersConfig, {}, "p: data.emnist_writers").mirror is None
    with pytest.raises(ParamError, match="data.emnist_writers.val_size: unknown key"):
        parse(ew.EmnistWritersConfig, {"val_size": 3}, "p: data.emnist_writers")


def test_pinned_archive():
    assert ew.ARCHIVE.name == "matlab.zip" and len(ew.ARCHIVE.sha256) == 64
    assert any("nist.gov" in url for url in ew.ARCHIVE.urls)
    assert all(url.endswith("/matlab.zip") for url in ew.ARCHIVE.urls)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_writers_are_refused_naming_the_field(tmp_path, bad):
    """±inf == round(±inf) passed the integer test; both became INT64_MIN and merged into one writer."""
    n = len(TRAIN_WRITERS)
    train = split_struct(upright_images(n, 0), TRAIN_WRITERS)
    test = split_struct(upright_images(len(TEST_WRITERS), 100), TEST_WRITERS)
    writers = TRAIN_WRITERS.astype(np.float64)
    writers[[2, 5]] = [bad, -bad]
    path = tmp_path / "inf.mat"
    scipy.io.savemat(path, {"dataset": {"train": {**train, "writers": writers.reshape(n, 1)}, "test": test}})
    with pytest.raises(DataError) as err:
        ew.read_emnist_mat(path)
    msg = one_line_naming(err, str(path))
    assert "`dataset.train.writers`" in msg and "at row 2" in msg and "-9223372036854775808" not in msg
    labels = np.full((n, 1), np.inf)
    scipy.io.savemat(path, {"dataset": {"train": {**train, "labels": labels}, "test": test}})
    with pytest.raises(DataError) as err:
        ew.read_emnist_mat(path)
    msg = one_line_naming(err, str(path))
    assert "`dataset.train.labels`" in msg and "-9223372036854775808" not in msg


def test_prepare_refuses_a_test_split_without_train_writers(tmp_path):
    """Test writers absent from train gave a 0-image test split (exit 0)."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    train = split_struct(upright_images(len(TRAIN_WRITERS), 0), TRAIN_WRITERS)
    test = split_struct(upright_images(3, 100), np.array([12, 13, 14]))
    scipy.io.savemat(raw / ew.MAT_FILE, {"dataset": {"train": train, "test": test}})
    with pytest.raises(DataError) as err:
        ew.prepare("emnist_writers", ew.EmnistWritersConfig(), raw, out, 0)
    assert "test split would be empty" in one_line_naming(err, str(raw / ew.MAT_FILE))
    assert not out.exists()


def test_an_unpacked_file_cut_short_is_never_placed_nor_trusted(release, pinned, cut_server, tmp_path, capsys):
    """An http mirror of the unpacked release (404 for matlab.zip) whose .mat transfer dropped halfway, with no
    Content-Length: it kept its `MATLAB` header, so it was recorded; prepare refused it without naming the fix, and
    a rerun of download, even from a good mirror, reused it since its sha256 matched the record."""
    pinned(closed_port_url() + "matlab.zip")
    mat = release[0].read_bytes()
    root, base, cut = cut_server
    for folder in ("cut", "good"):
        (root / folder).mkdir()
        (root / folder / ew.MAT_FILE).write_bytes(mat)
    cut[f"cut/{ew.MAT_FILE}"] = False
    raw = tmp_path / "raw"
    with pytest.raises(DataError) as err:
        ew.download("emnist_writers", ew.EmnistWritersConfig(mirror=base + "cut"), raw, progress=False)
    assert "truncated or not a MATLAB v5 .mat file" in one_line_naming(err, f"{base}cut/{ew.MAT_FILE}")
    assert not raw.exists() or not any(raw.iterdir())  # nothing placed, nothing recorded
    # a local mirror's copy is checked as well before it is placed
    local = tmp_path / "local"
    local.mkdir()
    (local / ew.MAT_FILE).write_bytes(mat[: len(mat) // 2])
    with pytest.raises(DataError) as err:
        ew.download("emnist_writers", ew.EmnistWritersConfig(mirror=str(local)), raw, progress=False)
    assert "truncated or not a MATLAB v5 .mat file" in one_line_naming(err, ew.MAT_FILE)
    assert ".tmp" not in str(err.value) and (not raw.exists() or not any(raw.iterdir()))
    # as an older download left it: the truncated file and a record of its sha256
    raw.mkdir(exist_ok=True)
    (raw / ew.MAT_FILE).write_bytes(mat[: len(mat) // 2])
    (raw / ew.RECORD).write_text(json.dumps({"file": ew.MAT_FILE, "sha256": sha(raw / ew.MAT_FILE)}))
    with pytest.raises(DataError) as err:
        ew.prepare("emnist_writers", ew.EmnistWritersConfig(), raw, tmp_path / "out", 0)
    assert one_line_naming(err, str(raw / ew.MAT_FILE)).endswith("run `dvc repro -s -f download@emnist_writers`")
    ew.download("emnist_writers", ew.EmnistWritersConfig(mirror=base + "good"), raw, progress=False)
    assert (raw / ew.MAT_FILE).read_bytes() == mat
    assert json.loads((raw / ew.RECORD).read_text())["sha256"] == sha(release[0])
    assert f"existing copy {raw / ew.MAT_FILE} removed" in capsys.readouterr().err
    check_prepared(tmp_path / "out", ew.prepare("emnist_writers", ew.EmnistWritersConfig(), raw, tmp_path / "out", 0))


def test_prepare_refuses_a_train_split_lacking_classes_as_mnist_does(tmp_path):
    """Train labels all 0 (test 0–9): prepared with exit 0, and split_vae trained a 10-class model on one class."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    train = split_struct(upright_images(len(TRAIN_WRITERS), 0), TRAIN_WRITERS)
    train["labels"] = np.zeros_like(train["labels"])
    test = split_struct(upright_images(len(TEST_WRITERS), 100), TEST_WRITERS)
    scipy.io.savemat(raw / ew.MAT_FILE, {"dataset": {"train": train, "test": test}})
    with pytest.raises(DataError) as err:
        ew.prepare("emnist_writers", ew.EmnistWritersConfig(), raw, out, 0)
    msg = one_line_naming(err, f"{raw / ew.MAT_FILE}: `dataset.train.labels`: no image of class 1, 2, 3, 4, 5, 6, 7, "
                               "8, 9 (expected every class 0..9)")
    assert msg.endswith("run `dvc repro -s -f download@emnist_writers`")
    assert not out.exists()


def test_negative_writer_ids_are_refused_naming_the_array(tmp_path):
    n = len(TRAIN_WRITERS)
    writers = TRAIN_WRITERS.copy()
    writers[4] = -107
    train = split_struct(upright_images(n, 0), writers)
    test = split_struct(upright_images(len(TEST_WRITERS), 100), TEST_WRITERS)
    path = tmp_path / "negative.mat"
    scipy.io.savemat(path, {"dataset": {"train": train, "test": test}})
    with pytest.raises(DataError) as err:
        ew.read_emnist_mat(path)
    assert "`dataset.train.writers` holds -107 at row 4 (NIST writer ids are >= 0)" in one_line_naming(err, str(path))
