"""writers (embedded): mnist5k digits rendered through per-writer styles. Layout, determinism, balance, and
that style is a per-writer property measurable from pixels while digit labels stay those of the source."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from replab.data import writers as wr
from replab.data.embedded import MNIST5K_FILE
from replab.io import DataError, write_manifest
from replab.params import ParamError, parse

ROWS = np.arange(28, dtype=np.float64)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    wr.download("writers", wr.WritersConfig(), raw)
    return raw


@pytest.fixture(scope="module")
def source(raw) -> tuple[np.ndarray, np.ndarray]:
    return wr.load_mnist5k(raw / MNIST5K_FILE)


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    """The default set, prepared once: (splits, meta, out_dir)."""
    out = tmp_path_factory.mktemp("processed") / "writers"
    meta = wr.prepare("writers", wr.WritersConfig(), raw, out, split_seed=0)
    write_manifest(out)  # as `replab prepare` records it (data.registry.prepare)
    splits, on_disk = wr.load_writer_splits(out)
    assert on_disk == json.loads(json.dumps(on_disk)) and on_disk["counts"] == meta["counts"]
    return splits, on_disk, out


def per_writer_mean(values: np.ndarray, writer: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(writer, weights=values, minlength=n) / np.bincount(writer, minlength=n)


def centroids(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ink centre of mass (row, column) of each image."""
    x = x.astype(np.float64)
    mass = x.sum(axis=(1, 2))
    return x.sum(axis=2) @ ROWS / mass, x.sum(axis=1) @ ROWS / mass


def test_layout_counts_and_balance(prepared):
    splits, meta, out = prepared
    cfg = wr.WritersConfig()
    n_test = wr.n_test_per_writer(cfg)
    assert n_test == 8 and sorted(p.name for p in out.iterdir()) == ["manifest.json", "meta.json", "style.npz",
                                                                       "test.npz", "train.npz"]
    for split, per in (("train", cfg.images_per_writer - n_test), ("test", n_test)):
        x, y, w = splits[split]
        n = cfg.n_writers * per
        assert x.shape == (n, 28, 28) and x.dtype == np.uint8 and y.dtype == w.dtype == np.int64
        assert np.array_equal(np.bincount(w, minlength=cfg.n_writers), np.full(cfg.n_writers, per))
        assert x.max() == 255 and np.median(x) == 0  # 0 = background, ink up to 255
        assert meta["counts"][split] == n
    y_all = np.concatenate([splits["train"][1], splits["test"][1]])
    w_all = np.concatenate([splits["train"][2], splits["test"][2]])
    per_writer_class = np.zeros((cfg.n_writers, 10), dtype=int)
    np.add.at(per_writer_class, (w_all, y_all), 1)
    assert (per_writer_class == cfg.images_per_writer // 10).all()  # every writer writes every digit 8×
    _, y_te, w_te = splits["test"]
    for w in range(cfg.n_writers):  # a writer's test digits are distinct classes
        assert len(np.unique(y_te[w_te == w])) == n_test
    assert meta["n_writers"] == cfg.n_writers and meta["source"] == "embedded" and meta["dataset"] == "writers"
    assert meta["class_names"] == [str(d) for d in range(10)] and "generator" in meta
    style = meta["style"]
    assert style["params"] == list(wr.STYLE_PARAMS)
    assert all(len(style["writers"][p]) == cfg.n_writers for p in wr.STYLE_PARAMS)
    assert style["per_writer"]["shear"] == {"distribution": "uniform", "low": -0.4, "high": 0.4}
    with np.load(out / "style.npz") as npz:
        assert npz["train"].shape == (len(splits["train"][1]), 6) and npz["test_source"].shape == (400,)


def test_labels_are_the_source_digits_and_sources_are_not_reused(prepared, source):
    splits, _, out = prepared
    x_src, y_src = source
    with np.load(out / "style.npz") as npz:
        src = {s: npz[f"{s}_source"] for s in ("train", "test")}
    for split in ("train", "test"):
        assert np.array_equal(splits[split][1], y_src[src[split]])
    used = np.concatenate(list(src.values()))
    assert len(np.unique(used)) == len(used) == 4000  # 4,000 ≤ 5,000: no mnist5k digit drawn twice


def test_style_off_reproduces_the_source_digits_exactly(source):
    x_src, y_src = source
    off = wr.WritersConfig(n_writers=40, images_per_writer=20, shear=0.0, rotation=0.0, scale_min=1.0,
                           scale_max=1.0, stroke_min=0.0, stroke_max=0.0, offset=0.0, jitter=0.5)
    data = wr.generate(off, x_src, y_src)
    for split in ("train", "test"):
        assert np.array_equal(data[f"{split}_x"], x_src[data[f"{split}_source"]])
        assert np.array_equal(data[f"{split}_y"], y_src[data[f"{split}_source"]])
        assert not data[f"{split}_style"][:, [0, 1, 3, 4, 5]].any()


def test_deterministic_and_writer_styles_stable_across_sizes(source):
    x_src, y_src = source
    small = wr.WritersConfig(n_writers=40, images_per_writer=20)
    a, b = wr.generate(small, x_src, y_src), wr.generate(small, x_src, y_src)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = wr.generate(dataclasses.replace(small, seed=1), x_src, y_src)
    assert not np.array_equal(a["writer_style"], c["writer_style"])
    assert not np.array_equal(a["train_x"], c["train_x"])
    more = wr.generate(dataclasses.replace(small, n_writers=45, images_per_writer=30), x_src, y_src)
    assert np.array_equal(more["writer_style"][:40], a["writer_style"])


def test_shear_direction_and_moment_slant():
    """A positive shear leans the top right and adds its value to the moment slant."""
    x = np.zeros((1, 28, 28), dtype=np.uint8)
    x[0, 6:22, 13:15] = 255  # an upright bar
    style = np.array([[0.3, 0, 1, 0, 0, 0]])
    y = wr.render(x, style)
    rows, cols = centroids(y)
    top, bottom = y[0, 6:12].astype(float), y[0, 16:22].astype(float)
    assert (top.sum(0) @ ROWS) / top.sum() > (bottom.sum(0) @ ROWS) / bottom.sum() + 2
    assert abs(wr.moment_slant(x)[0]) < 1e-9
    assert wr.moment_slant(y)[0] == pytest.approx(0.3, abs=0.02)
    shifted = wr.render(x, np.array([[0, 0, 1, 0, 2, -1]]))  # dx = 2 right, dy = -1 up
    assert np.array_equal(shifted[0, 5:21, 15:17], x[0, 6:22, 13:15])
    thick = wr.render(x, np.array([[0, 0, 1, 1, 0, 0]]))
    thin = wr.render(x, np.array([[0, 0, 1, -1, 0, 0]]))
    assert thin.sum() < x.sum() < thick.sum()


def test_style_is_a_per_writer_property_measurable_from_pixels(prepared):
    """Writer means of pixel statistics track the writer's parameters, and writers are identifiable."""
    splits, meta, _ = prepared
    x, _, w = splits["train"]
    n = meta["n_writers"]
    params = {p: np.asarray(v) for p, v in meta["style"]["writers"].items()}
    slant = wr.moment_slant(x)
    mean_slant = per_writer_mean(slant, w, n)
    assert np.corrcoef(mean_slant, params["shear"])[0, 1] > 0.9
    within = per_writer_mean((slant - mean_slant[w]) ** 2, w, n).mean()
    f_stat = mean_slant.var() / (within / np.bincount(w).mean())
    assert f_stat > 20  # writer means of slant differ far more than sampling noise within a writer allows
    ink = x.reshape(len(x), -1).sum(1) / 255.0
    fit = np.c_[params["stroke"], params["scale"], np.ones(n)]
    mean_ink = per_writer_mean(ink, w, n)
    resid = mean_ink - fit @ np.linalg.lstsq(fit, mean_ink, rcond=None)[0]
    assert 1 - resid.var() / mean_ink.var() > 0.9  # ink ≈ linear in stroke width and size
    rows, cols = centroids(x)
    assert np.corrcoef(per_writer_mean(cols, w, n), params["dx"])[0, 1] > 0.9
    assert np.corrcoef(per_writer_mean(rows, w, n), params["dy"])[0, 1] > 0.9

    # nearest writer centroid in a 4-number style space, train → test: far above chance (1/50)
    def features(x):
        rows, cols = centroids(x)
        return np.c_[wr.moment_slant(x), x.reshape(len(x), -1).sum(1) / 255.0, rows, cols]

    f_train, (x_te, _, w_te) = features(x), splits["test"]
    centres = np.stack([f_train[w == i].mean(0) for i in range(n)])
    scale = f_train.std(0)
    pred = (((features(x_te)[:, None] - centres[None]) / scale) ** 2).sum(-1).argmin(1)
    assert (pred == w_te).mean() > 0.2


def test_digits_stay_recognisable(prepared, source):
    """Class-mean templates of the untouched mnist5k digits still classify the restyled test digits."""
    splits, _, _ = prepared
    x_src, y_src = source
    flat = x_src.reshape(len(x_src), -1).astype(np.float32)
    templates = np.stack([flat[y_src == c].mean(0) for c in range(10)])
    x, y, _ = splits["test"]
    d = ((x.reshape(len(x), 1, -1).astype(np.float32) - templates[None]) ** 2).sum(-1)
    assert (d.argmin(1) == y).mean() > 0.45  # ≈ 0.6 (0.81 on the source digits; chance 0.1)


def test_config_limits():
    where = "params.yaml: data.writers"
    cfg = parse(wr.WritersConfig, {}, where)
    assert cfg == wr.WritersConfig() and cfg.n_writers >= 40
    for bad, match in (({"n_writers": 39}, "n_writers = 39: must be >= 40"),
                       ({"scale_min": 1.2, "scale_max": 1.0}, "scale_min = 1.2: must be <= scale_max"),
                       ({"stroke_min": 0.5, "stroke_max": 0.0}, "stroke_min = 0.5"),
                       ({"test_fraction": 0.005}, "test_fraction = 0.005: gives 0 test images"),
                       ({"slant": 0.1}, "slant: unknown key")):
        with pytest.raises(ParamError, match=match):
            parse(wr.WritersConfig, bad, where)


def test_prepare_names_a_missing_or_altered_source(raw, tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / MNIST5K_FILE}: missing"):
        wr.prepare("writers", wr.WritersConfig(), tmp_path, tmp_path / "out", 0)
    (tmp_path / MNIST5K_FILE).write_bytes((raw / MNIST5K_FILE).read_bytes()[:1000])
    with pytest.raises(DataError) as err:
        wr.prepare("writers", wr.WritersConfig(), tmp_path, tmp_path / "out", 0)
    assert str(tmp_path / MNIST5K_FILE) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def _mnist5k_with(raw: Path, tmp_path: Path, edit) -> Path:
    """A copy of the pinned CSV with `edit(table)` applied (written gzipped, so not the pin any more)."""
    import gzip

    table = np.loadtxt(raw / MNIST5K_FILE, delimiter=",", dtype=np.int64)
    edit(table)
    path = tmp_path / MNIST5K_FILE
    with gzip.open(path, "wt") as fh:
        np.savetxt(fh, table, fmt="%d", delimiter=",")
    return path


def test_mnist5k_prepare_checks_the_pin_and_the_raw_values(raw, tmp_path):
    """prepare@mnist5k never checked the pin; 300 became 44, -1 became 255, a label 11 blamed test.npz."""
    from replab.data import embedded

    cfg = embedded.Mnist5kConfig()
    edits = {"pixel 300 at line 4, column 101": lambda t: t.__setitem__((3, 100), 300),
             "pixel -1 at line 1, column 1": lambda t: t.__setitem__((0, 0), -1),
             "label 11 at line 8, column 785": lambda t: t.__setitem__((7, 784), 11),
             "no image of class 3": lambda t: t.__setitem__((t[:, 784] == 3, 784), 4)}
    for expected, edit in edits.items():
        path = _mnist5k_with(raw, tmp_path, edit)
        with pytest.raises(DataError, match="^" + str(path) + ": .*" + expected) as err:
            embedded.read_mnist5k(path)
        assert "\n" not in str(err.value)
        out = tmp_path / "out"
        with pytest.raises(DataError, match=r"sha256 .*expected the pinned") as err:
            embedded.prepare("mnist5k", cfg, tmp_path, out, 0)
        assert str(path) in str(err.value) and not out.exists()
