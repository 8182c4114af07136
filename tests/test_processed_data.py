"""Bad processed data stop a stage with one line naming the file, the array and what is allowed (exit 2).

Every processed layout the papers read (images, writer-labelled digits, HAR windows, token sets) is written here
by its own writer function in a temporary directory, then one file is damaged the way a broken prepare stage, a
disk or a hand edit would damage it (np.savez_compressed, as write_npz does), and the loader must refuse it."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import yaml

from conftest import one_line_naming
from replab.data import images, recordings, text, writers
from replab.io import DataError, read_npy, read_npz, write_manifest
from replab.loaders.text import load_text
from replab.params import ParamError

# ---------------------------------------------------------------------------------------------------------
# helpers


def arrays_of(path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def recorded(folder) -> None:
    """Record the folder's files in its manifest.json as prepare does: these tests hold the loaders' checks of
    the bytes themselves (a prepare of another version, a bug), which stand behind the manifest's."""
    write_manifest(folder)


def save(path, arrays: dict[str, np.ndarray]) -> None:
    """Write path as prepare would have written these arrays (manifest included)."""
    np.savez_compressed(path, **arrays)
    recorded(path.parent)


def rewrite(path, content: str) -> None:
    """Write a JSON file of a processed folder as prepare would have written it (manifest included)."""
    path.write_text(content)
    recorded(path.parent)


def refuses(load, message: str) -> None:
    """`load()` raises a one-line DataError whose message is exactly `message`."""
    with pytest.raises(DataError, match="^" + re.escape(message) + "$") as err:
        load()
    one_line_naming(err, message.split(": ")[0])


def corrupt_then_load(folder, case, load) -> None:
    """A case (split, mutate its arrays, expected message for the file's path): rewrite folder/<split>.npz with
    the mutated arrays, then `load()` must refuse it in that one line."""
    split, mutate, message = case
    path = folder / f"{split}.npz"
    save(path, mutate(arrays_of(path)))
    refuses(load, message(path))


def non_finite(path, key: str, n_bad: int, total: int, first: int, noun: str) -> str:
    return (f"{path}: {key}: {n_bad} of {total} values are NaN or infinite (first at flat index {first}); "
            f"{noun} must be finite")


def truncate(path, keep: int | None = None) -> None:
    """Cut the file to its first `keep` bytes (default: half of it), as a prepare killed mid-write would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])
    recorded(path.parent)


# ---------------------------------------------------------------------------------------------------------
# images: mnist5k / mnist / fashion_mnist (replab.data.images)


@pytest.fixture
def image_dir(tmp_path):
    rng = np.random.default_rng(0)

    def split(n):
        return rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), np.arange(n) % 10

    out = tmp_path / "mnist5k"
    images.write_image_splits(out, {"train": split(30), "val": split(10), "test": split(20)},
                              {"dataset": "mnist5k", "source": "test", "class_names": [str(d) for d in range(10)]})
    recorded(out)
    return out


def _float_with(value, at):
    def mutate(a):
        x = a["x"].astype(np.float32)
        x[at] = value
        return {**a, "x": x}
    return mutate


IMAGE_CASES = {
    "inf pixel in test": ("test", _float_with(np.inf, (5, 3, 3)),
                          lambda p: non_finite(p, "x", 1, 20 * 784, 5 * 784 + 3 * 28 + 3, "pixels")),
    "nan pixel in train": ("train", _float_with(np.nan, (0, 0, 0)),
                           lambda p: non_finite(p, "x", 1, 30 * 784, 0, "pixels")),
    "float pixels 0-255": ("train", lambda a: {**a, "x": a["x"].astype(np.float32)},
                           lambda p: f"{p}: x is float32 (expected uint8 pixels 0 … 255)"),
    "flat images": ("train", lambda a: {**a, "x": a["x"].reshape(len(a["x"]), -1)},
                    lambda p: f"{p}: x has shape (30, 784) (expected (N, 28, 28))"),
    "20x20 images": ("val", lambda a: {**a, "x": a["x"][:, :20, :20]},
                     lambda p: f"{p}: x has shape (10, 20, 20) (expected (N, 28, 28))"),
    "y shorter than x": ("train", lambda a: {**a, "y": a["y"][:-5]},
                         lambda p: f"{p}: y has 25 rows, x has 30 (one per image)"),
    "label 11": ("train", lambda a: {**a, "y": np.where(np.arange(30) == 7, 11, a["y"])},
                 lambda p: f"{p}: y holds 11 at row 7 (allowed: 0 … 9)"),
    "label -1": ("test", lambda a: {**a, "y": np.where(np.arange(20) == 0, -1, a["y"])},
                 lambda p: f"{p}: y holds -1 at row 0 (allowed: 0 … 9)"),
    "float labels": ("train", lambda a: {**a, "y": a["y"].astype(np.float32)},
                     lambda p: f"{p}: y is float32 (expected integer class labels 0 … 9)"),
    "labels (N, 1)": ("train", lambda a: {**a, "y": a["y"][:, None]},
                      lambda p: f"{p}: y has shape (30, 1) (expected (N,))"),
    "zero rows": ("train", lambda a: {"x": a["x"][:0], "y": a["y"][:0]},
                  lambda p: f"{p}: x has 0 rows (expected at least one image)"),
    "no labels": ("train", lambda a: {"x": a["x"]}, lambda p: f"{p}: array `y` missing (has `x`)"),
}


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_bad_image_split_is_refused_on_load(image_dir, case):
    corrupt_then_load(image_dir, IMAGE_CASES[case], lambda: images.load_image_splits(image_dir))


def test_valid_image_splits_load_unchanged(image_dir):
    splits, meta = images.load_image_splits(image_dir)
    for name, (x, y) in splits.items():
        stored = arrays_of(image_dir / f"{name}.npz")
        assert x.dtype == np.uint8 and np.array_equal(x, stored["x"]) and np.array_equal(y, stored["y"])
    assert meta["counts"] == {"train": 30, "val": 10, "test": 20}


@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.uint16, np.uint64])
def test_labels_of_another_integer_dtype_load_as_int64(image_dir, writer_dir, har_dir, dtype):
    """Labels saved as another integer dtype passed the checks, then cross-entropy crashed (target not Long)."""
    for split in images.SPLITS:
        a = arrays_of(image_dir / f"{split}.npz")
        save(image_dir / f"{split}.npz", {**a, "y": a["y"].astype(dtype)})
    for split, (_, y) in images.load_image_splits(image_dir)[0].items():
        assert y.dtype == np.int64 and np.array_equal(y, arrays_of(image_dir / f"{split}.npz")["y"])
    for split in writers.WRITER_SPLITS:
        a = arrays_of(writer_dir / f"{split}.npz")
        save(writer_dir / f"{split}.npz", {**a, "y": a["y"].astype(dtype), "writer": a["writer"].astype(dtype)})
    for _, y, writer in writers.load_writer_splits(writer_dir)[0].values():
        assert y.dtype == np.int64 and writer.dtype == np.int64
    for split in recordings.SPLITS:
        a = arrays_of(har_dir / f"{split}.npz")
        save(har_dir / f"{split}.npz", {**a, **{k: a[k].astype(dtype) for k in ("activity", "user", "trial")}})
    for arrays in recordings.load_windows(har_dir)[0].values():
        assert all(arrays[k].dtype == np.int64 for k in ("activity", "user", "trial"))
        torch.nn.functional.cross_entropy(torch.zeros(len(arrays["x"]), 12), torch.from_numpy(arrays["activity"]))


def test_truncated_npz_and_non_object_meta_are_refused(image_dir):
    truncate(image_dir / "val.npz")
    refuses(lambda: images.load_image_splits(image_dir),
            f"{image_dir / 'val.npz'}: truncated or not an .npz archive (File is not a zip file); "
            "run `dvc repro -s -f prepare@mnist5k`")
    rewrite(image_dir / "meta.json", "[]")
    refuses(lambda: images.load_image_splits(image_dir),
            f"{image_dir / 'meta.json'}: top level is an array, expected an object; "
            "run `dvc repro -s -f prepare@mnist5k`")


def test_a_meta_json_of_another_set_or_with_one_class_is_named(image_dir):
    """A meta.json copied from another set passed; one listing a single class was blamed on train.npz's y."""
    meta = json.loads((image_dir / "meta.json").read_text())
    rewrite(image_dir / "meta.json", json.dumps({**meta, "dataset": "har"}))
    refuses(lambda: images.load_image_splits(image_dir, "mnist5k"),  # the loader names the set it loads
            f"{image_dir / 'meta.json'}: dataset = 'har', but the folder is mnist5k's (a meta.json of another set); "
            "run `dvc repro -s -f prepare@mnist5k`")
    rewrite(image_dir / "meta.json", json.dumps({**meta, "class_names": ["0"]}))
    refuses(lambda: images.load_image_splits(image_dir),
            f"{image_dir / 'meta.json'}: class_names = ['0']: expected a list of two or more names; "
            "run `dvc repro -s -f prepare@mnist5k`")
    rewrite(image_dir / "meta.json", json.dumps(meta))
    assert images.load_image_splits(image_dir)[1] == meta


def test_prepare_refuses_labels_out_of_range_and_writes_nothing(tmp_path):
    x = np.zeros((4, 28, 28), np.uint8)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'set' / 'train.npz'}: y holds 10 at row 3 "
                                                  "(allowed: 0 … 9)")):
        images.write_image_splits(tmp_path / "set", {"train": (x, np.array([0, 1, 2, 10]))}, {"dataset": "set"})
    assert not (tmp_path / "set").exists() and not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------
# writer-labelled digits: writers / emnist_writers (replab.data.writers, read by split_vae)


@pytest.fixture
def writer_dir(tmp_path):
    rng = np.random.default_rng(0)

    def split(n):
        return rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), np.arange(n) % 10, np.arange(n) % 4

    out = tmp_path / "writers"
    writers.write_writer_splits(out, {"train": split(16), "test": split(8)}, {"dataset": "writers", "source": "test"})
    recorded(out)
    return out


WRITER_CASES = {
    "nan pixel": ("test", _float_with(np.nan, (2, 0, 1)), lambda p: non_finite(p, "x", 1, 8 * 784, 2 * 784 + 1,
                                                                               "pixels")),
    "float pixels": ("train", lambda a: {**a, "x": a["x"].astype(np.float64)},
                     lambda p: f"{p}: x is float64 (expected uint8 pixels 0 … 255)"),
    "digit 10": ("train", lambda a: {**a, "y": np.where(np.arange(16) == 4, 10, a["y"])},
                 lambda p: f"{p}: y holds 10 at row 4 (allowed: 0 … 9)"),
    "writer beyond n_writers": ("test", lambda a: {**a, "writer": np.where(np.arange(8) == 6, 4, a["writer"])},
                                lambda p: f"{p}: writer holds 4 at row 6 (allowed: 0 … 3, meta.json n_writers)"),
    "writer list too long": ("train", lambda a: {**a, "writer": np.arange(17) % 4},
                             lambda p: f"{p}: writer has 17 rows, x has 16 (one per image)"),
    "float writer ids": ("train", lambda a: {**a, "writer": a["writer"].astype(np.float32)},
                         lambda p: f"{p}: writer is float32 (expected integer writer ids 0 … 3)"),
    "no writer": ("train", lambda a: {"x": a["x"], "y": a["y"]}, lambda p: f"{p}: array `writer` missing "
                                                                            "(has `x`, `y`)"),
}


@pytest.mark.parametrize("case", WRITER_CASES)
def test_bad_writer_split_is_refused_on_load(writer_dir, case):
    corrupt_then_load(writer_dir, WRITER_CASES[case], lambda: writers.load_writer_splits(writer_dir))


def test_writer_truncated_npz_and_bad_meta(writer_dir):
    meta = json.loads((writer_dir / "meta.json").read_text())
    for bad in ("four", None):  # null (or NaN, read as null) was let through and failed later in int()
        rewrite(writer_dir / "meta.json", json.dumps({**meta, "n_writers": bad}))
        refuses(lambda: writers.load_writer_splits(writer_dir),
                f"{writer_dir / 'meta.json'}: n_writers = {bad!r} (expected an integer ≥ 1); run `dvc repro -s -f "
                "prepare@writers`")
    rewrite(writer_dir / "meta.json", '"writers"')
    refuses(lambda: writers.load_writer_splits(writer_dir),
            f"{writer_dir / 'meta.json'}: top level is a string, expected an object; run `dvc repro -s -f "
            "prepare@writers`")
    rewrite(writer_dir / "meta.json", json.dumps(meta))
    truncate(writer_dir / "test.npz")
    refuses(lambda: writers.load_writer_splits(writer_dir),
            f"{writer_dir / 'test.npz'}: truncated or not an .npz archive (File is not a zip file); "
            "run `dvc repro -s -f prepare@writers`")


# ---------------------------------------------------------------------------------------------------------
# HAR windows: har / usc_had (replab.data.recordings, read by censor)


@pytest.fixture
def har_dir(tmp_path):
    rng = np.random.default_rng(0)

    def split(users):
        n = len(users)
        return {"x": rng.normal(size=(n, 6, 30)).astype(np.float32), "activity": np.arange(n) % 12,
                "user": np.array(users, dtype=np.int64), "trial": np.ones(n, dtype=np.int64)}

    out = tmp_path / "har"
    recordings.write_windows(out, {"train": split([0, 1, 2, 0, 1, 2]), "seen": split([0, 1, 2]),
                                   "unseen": split([12, 13])}, {"dataset": "har", "source": "test"})
    recorded(out)
    return out


def _x_with(value, at):
    def mutate(a):
        x = a["x"].copy()
        x[at] = value
        return {**a, "x": x}
    return mutate


HAR_CASES = {
    "nan in train": ("train", _x_with(np.nan, (3, 2, 5)), lambda p: non_finite(p, "x", 1, 6 * 180, 3 * 180 + 65,
                                                                               "sensor values")),
    "inf in seen": ("seen", _x_with(-np.inf, (0, 0, 0)), lambda p: non_finite(p, "x", 1, 3 * 180, 0,
                                                                              "sensor values")),
    "all nan unseen": ("unseen", _x_with(np.nan, ...), lambda p: non_finite(p, "x", 360, 360, 0, "sensor values")),
    "x 2-D": ("train", lambda a: {**a, "x": a["x"][:, 0, :]},
              lambda p: f"{p}: x has shape (6, 30) (expected (N, channels, window))"),
    "shorter window than train": ("seen", lambda a: {**a, "x": a["x"][:, :, :20]},
                                  lambda p: f"{p}: x has shape (3, 6, 20) (expected (N, 6, 30))"),
    "integer x": ("train", lambda a: {**a, "x": a["x"].astype(np.int64)},
                  lambda p: f"{p}: x is int64 (expected float sensor values)"),
    "user 5 short": ("train", lambda a: {**a, "user": a["user"][:1]},
                     lambda p: f"{p}: user has 1 rows, x has 6 (one per window)"),
    "user 40": ("train", lambda a: {**a, "user": np.where(np.arange(6) == 0, 40, a["user"])},
                lambda p: f"{p}: user holds 40 at row 0 (allowed: 0 … 13, subject number - 1)"),
    "activity 12": ("unseen", lambda a: {**a, "activity": np.array([0, 12])},
                    lambda p: f"{p}: activity holds 12 at row 1 (allowed: 0 … 11)"),
    "float activity": ("seen", lambda a: {**a, "activity": a["activity"].astype(np.float64)},
                       lambda p: f"{p}: activity is float64 (expected integer activity ids 0 … 11)"),
    "empty split": ("seen", lambda a: {k: v[:0] for k, v in a.items()},
                    lambda p: f"{p}: x has 0 rows (expected at least one window)"),
}


@pytest.mark.parametrize("case", HAR_CASES)
def test_bad_window_split_is_refused_on_load(har_dir, case):
    corrupt_then_load(har_dir, HAR_CASES[case], lambda: recordings.load_windows(har_dir))


def test_har_truncated_npz_and_list_meta(har_dir):
    rewrite(har_dir / "meta.json", "[]")
    refuses(lambda: recordings.load_windows(har_dir),
            f"{har_dir / 'meta.json'}: top level is an array, expected an object; run `dvc repro -s -f prepare@har`")
    rewrite(har_dir / "meta.json", "{}")
    truncate(har_dir / "unseen.npz")
    refuses(lambda: recordings.load_windows(har_dir),
            f"{har_dir / 'unseen.npz'}: truncated or not an .npz archive (File is not a zip file); "
            "run `dvc repro -s -f prepare@har`")


def test_prepare_refuses_non_finite_windows_and_writes_nothing(tmp_path):
    x = np.zeros((2, 6, 30), np.float32)
    x[1, 5, 29] = np.nan
    split = {"x": x, "activity": np.zeros(2, np.int64), "user": np.zeros(2, np.int64)}
    with pytest.raises(DataError, match=re.escape(non_finite(tmp_path / "har" / "train.npz", "x", 1, 360, 359,
                                                             "sensor values"))):
        recordings.write_windows(tmp_path / "har", {"train": split}, {"dataset": "har"})
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------
# token sets: rt_snippets / sst / imdb / eraser_movies (replab.data.text, read by attention_vat)

VOCAB = ["<pad>", "<unk>", "good", "bad", "film", "plot"]


@pytest.fixture
def text_dir(tmp_path):
    docs = [["good", "film"], ["bad", "plot", "film"], ["good"], ["bad", "bad"]]
    splits = {name: {"docs": docs, "labels": [1, 0, 1, 0], "evidence": [np.array([True] * len(d)) for d in docs]}
              for name in text.SPLITS}
    out = tmp_path / "rt_snippets"
    text.write_text_splits(out, splits, VOCAB, {"dataset": "rt_snippets", "source": "test"}, sos_eos=False,
                           unlabeled=[["film"], ["plot", "good"]])
    recorded(out)
    return out


def test_a_cut_pool_sequence_ends_in_eos_again(tmp_path):
    """`unlabeled_max_length` cut the pool's long sequences and with them their <EOS>: the VAT term saw sequences
    of a form no labeled one has."""
    vocab = ["<pad>", "<unk>", "<SOS>", "<EOS>", "good", "bad", "film"]
    docs = [["good", "film"], ["bad", "film"]]
    splits = {name: {"docs": docs, "labels": [1, 0]} for name in text.SPLITS}
    text.write_text_splits(tmp_path / "rt_snippets", splits, vocab, {"dataset": "rt_snippets", "source": "test"},
                           sos_eos=True, unlabeled=[["good", "bad", "film", "film", "bad"], ["film"]])
    recorded(tmp_path / "rt_snippets")
    data = load_text("rt_snippets", torch.device("cpu"), unlabeled_max_length=4, root=tmp_path)
    assert data.tokens["unlabeled"].tolist() == [[2, 4, 5, 3], [2, 6, 3, 0]]  # <SOS> good bad <EOS>; untouched
    assert data.lengths["unlabeled"].tolist() == [4, 3]
    assert data.tokens["train"].tolist() == [[2, 4, 6, 3], [2, 5, 6, 3]]  # labeled splits are never cut
    assert load_text("rt_snippets", torch.device("cpu"), unlabeled_max_length=3, root=tmp_path).tokens[
        "unlabeled"].tolist() == [[2, 4, 3], [2, 6, 3]]  # the shortest cut: one word
    whole = load_all(tmp_path / "rt_snippets")().tokens["unlabeled"].tolist()
    for wide in (7, 8, 40):  # the pool's longest is 7 tokens (<SOS> + 5 words + <EOS>): nothing to cut
        uncut = load_text("rt_snippets", torch.device("cpu"), unlabeled_max_length=wide, root=tmp_path)
        assert uncut.tokens["unlabeled"].tolist() == whole
    for too_short in (1, 2):  # <EOS> alone, <SOS> <EOS>: no word left, so the pool's VAT term would be zero
        with pytest.raises(ParamError) as err:
            load_text("rt_snippets", torch.device("cpu"), unlabeled_max_length=too_short, root=tmp_path)
        assert str(err.value) == (f"attention_vat.unlabeled_max_length = {too_short}: keeps no word of rt_snippets's "
                                  "pool sequences, which are wrapped in <SOS> … <EOS>; allowed: 0 (no cut) or ≥ 3")


def load_all(folder):
    return lambda: load_text(folder.name, torch.device("cpu"), root=folder.parent)


TEXT_CASES = {
    "token id beyond the vocabulary": ("dev", lambda a: {**a, "tokens": np.where(a["tokens"] == 4, 6, a["tokens"])},
                                       lambda p: f"{p}: tokens holds 6 at row 0 (allowed: 0 … 5, the 6 ids of "
                                                 "vocab.json)"),
    "negative token id": ("unlabeled", lambda a: {**a, "tokens": -a["tokens"]},
                          lambda p: f"{p}: tokens holds -4 at row 0 (allowed: 0 … 5, the 6 ids of vocab.json)"),
    "float tokens with nan": ("train", lambda a: {**a, "tokens": np.where(a["tokens"] == 3, np.nan, a["tokens"])},
                              lambda p: non_finite(p, "tokens", 3, 12, 3, "token ids")),
    "1-D tokens": ("test", lambda a: {**a, "tokens": a["tokens"][:, 0]},
                   lambda p: f"{p}: tokens has shape (4,) (expected (N, T))"),
    "length beyond T": ("test", lambda a: {**a, "lengths": a["lengths"] + 1},
                        lambda p: f"{p}: lengths holds 4 at row 1 (allowed: 1 … 3, the tokens' width T)"),
    "length 0": ("train", lambda a: {**a, "lengths": np.where(np.arange(4) == 2, 0, a["lengths"])},
                 lambda p: f"{p}: lengths holds 0 at row 2 (allowed: 1 … 3, the tokens' width T)"),
    "lengths shorter": ("dev", lambda a: {**a, "lengths": a["lengths"][:3]},
                        lambda p: f"{p}: lengths has 3 rows, tokens has 4 (one per text)"),
    "label 2": ("test", lambda a: {**a, "labels": np.array([1, 0, 2, 0])},
                lambda p: f"{p}: labels holds 2 at row 2 (allowed: 0 … 1)"),
    "float labels": ("train", lambda a: {**a, "labels": a["labels"].astype(np.float32)},
                     lambda p: f"{p}: labels is float32 (expected integer labels 0 … 1)"),
    "evidence wider than tokens": ("test", lambda a: {**a, "evidence": np.zeros((4, 4), np.uint8)},
                                   lambda p: f"{p}: evidence has shape (4, 4) (expected (N, 3))"),
    "no labels": ("dev", lambda a: {"tokens": a["tokens"], "lengths": a["lengths"]},
                  lambda p: f"{p}: array `labels` missing (has `tokens`, `lengths`)"),
    "empty train": ("train", lambda a: {k: v[:0] for k, v in a.items()},
                    lambda p: f"{p}: tokens has 0 rows (expected at least one text)"),
}


@pytest.mark.parametrize("case", TEXT_CASES)
def test_bad_text_split_is_refused_on_load(text_dir, case):
    corrupt_then_load(text_dir, TEXT_CASES[case], load_all(text_dir))


def test_text_loads_valid_data_unchanged(text_dir):
    path = text_dir / "test.npz"  # 0/1 evidence marks stored as booleans are as good as uint8
    save(path, {**arrays_of(path), "evidence": arrays_of(path)["evidence"].astype(bool)})
    data = load_all(text_dir)()
    stored = arrays_of(text_dir / "train.npz")
    assert data.tokens["train"].tolist() == stored["tokens"].tolist()
    assert data.labels["train"].tolist() == [1.0, 0.0, 1.0, 0.0] and data.n_unlabeled == 2


def test_text_truncated_files_and_wrong_json_kinds(text_dir):
    np.save(text_dir / "embeddings.npy", np.ones((len(VOCAB), 3), np.float32))
    truncate(text_dir / "embeddings.npy", keep=len((text_dir / "embeddings.npy").read_bytes()) - 8)
    with pytest.raises(DataError, match=re.escape(f"{text_dir / 'embeddings.npy'}: truncated or not an .npy array (")
                       + r".*\); run `dvc repro -s -f prepare@rt_snippets`$") as err:  # numpy's reason, in its words
        load_all(text_dir)()
    one_line_naming(err, "embeddings.npy")
    (text_dir / "embeddings.npy").unlink()
    recorded(text_dir)
    rewrite(text_dir / "vocab.json", json.dumps({str(i): t for i, t in enumerate(VOCAB)}))
    refuses(load_all(text_dir), f"{text_dir / 'vocab.json'}: top level is an object, expected an array; "
                                "run `dvc repro -s -f prepare@rt_snippets`")
    rewrite(text_dir / "vocab.json", json.dumps(VOCAB))
    rewrite(text_dir / "meta.json", "[]")
    refuses(load_all(text_dir), f"{text_dir / 'meta.json'}: top level is an array, expected an object; "
                                "run `dvc repro -s -f prepare@rt_snippets`")
    rewrite(text_dir / "meta.json", "{}")
    truncate(text_dir / "unlabeled.npz")
    refuses(load_all(text_dir), f"{text_dir / 'unlabeled.npz'}: truncated or not an .npz archive (File is not a "
                                "zip file); run `dvc repro -s -f prepare@rt_snippets`")


def test_attention_vat_evaluation_reads_through_the_same_checks(text_dir):
    import importlib

    ev = importlib.import_module("replab.papers.attention_vat.evaluate")  # the module, not the function

    path = text_dir / "train.npz"
    save(path, {**arrays_of(path), "labels": np.array([1, 0, 3, 0])})
    refuses(lambda: ev.linear_baseline(text_dir.name, root=text_dir.parent),
            f"{path}: labels holds 3 at row 2 (allowed: 0 … 1)")


# ---------------------------------------------------------------------------------------------------------
# read_npz / read_npy on files that are not what they claim


@pytest.mark.parametrize("content, reason", [
    (b"", "no zip header"), (b"\x93NUMPY garbage", "no zip header"), (b"PK\x03\x04" + bytes(60), "File is not a zip "
                                                                                               "file")])
def test_read_npz_names_a_damaged_file(tmp_path, content, reason):
    path = tmp_path / "train.npz"
    path.write_bytes(content)
    refuses(lambda: read_npz(path), f"{path}: truncated or not an .npz archive ({reason}); rerun the stage that "
                                    "writes it alone: `dvc repro -s -f <stage>`")


def test_read_npz_refuses_a_directory_and_pickled_objects(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(DataError, match=r"dir\.npz: truncated or not an \.npz archive \(\[Errno 21\] Is a dir"):
        read_npz(tmp_path / "dir.npz")
    np.savez(tmp_path / "obj.npz", x=np.array([1, "a", None], dtype=object))
    with pytest.raises(DataError, match=r"obj\.npz: truncated or not an \.npz archive \(Object arrays cannot be "
                                        r"loaded when allow_pickle=False\)"):
        read_npz(tmp_path / "obj.npz")
    np.savez(tmp_path / "two.npz", a=np.zeros(2))
    with pytest.raises(DataError, match=r"two\.npz: truncated or not an \.npy array \(an \.npz archive\)"):
        read_npy(tmp_path / "two.npz")


def test_read_npz_refuses_a_header_that_asks_for_a_petabyte(tmp_path):
    """np.load allocates the array its header describes before reading: a MemoryError escaped as a traceback."""
    import io
    import zipfile

    buf = io.BytesIO()
    # a petabyte, beyond any address space, so that no overcommitting kernel grants it
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": (10**15,)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as zf:
        zf.writestr("x.npy", buf.getvalue() + bytes(100))
    with pytest.raises(DataError, match=r"bomb\.npz: truncated or not an \.npz archive \(Unable to allocate .*\); "):
        read_npz(tmp_path / "bomb.npz")


# ---------------------------------------------------------------------------------------------------------
# through the command line: exit 2, one `error:` line, nothing written


def test_train_stage_on_inf_pixel_exits_2_with_one_line(image_dir, tmp_path, monkeypatch, capsys):
    from replab.cli import main

    processed = tmp_path / "data" / "processed"
    processed.mkdir(parents=True)
    image_dir.rename(processed / "mnist5k")
    path = processed / "mnist5k" / "test.npz"
    save(path, _float_with(np.inf, (5, 3, 3))(arrays_of(path)))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "autoencoder": {"dataset": "mnist5k", "seeds": [0], "models": ["simple"],
                        "simple": {"epochs": 1, "batch_size": 16}},
        "runtime": {"progress": False, "threads": 1}}))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "autoencoder", "simple-0", "model=simple", "seed=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    rel = "data/processed/mnist5k/test.npz"
    assert err == ["error: " + non_finite(rel, "x", 1, 20 * 784, 5 * 784 + 3 * 28 + 3, "pixels")]
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


# ---------------------------------------------------------------------------------------------------------
# every layout: the files prepare wrote (its manifest.json), not a well-formed edit of them


LOADERS = {
    "image_dir": lambda d: images.load_image_splits(d),
    "writer_dir": lambda d: writers.load_writer_splits(d),
    "har_dir": lambda d: recordings.load_windows(d),
    "text_dir": lambda d: load_text(d.name, torch.device("cpu"), root=d.parent),
}


@pytest.mark.parametrize("layout", LOADERS)
def test_a_processed_file_edited_since_prepare_is_refused(layout, request):
    """Half the test rows cut (np.savez, the format intact) and `replab evaluate` ran on them with exit 0, beside a
    meta.json whose counts said otherwise: prepare records every file's sha256, the loaders check them."""
    from replab.io import MANIFEST

    folder = request.getfixturevalue(layout)
    load = LOADERS[layout]
    stage = f"prepare@{folder.name}"
    (folder / MANIFEST).unlink()  # deleted, or emptied: the check had been off then
    refuses(lambda: load(folder), f"{folder / MANIFEST}: missing (prepare writes it beside the files it lists; run "
                                  f"`dvc repro -s -f {stage}`)")
    (folder / MANIFEST).write_text(json.dumps({"sha256": {}}))
    refuses(lambda: load(folder), f"{folder / MANIFEST}: sha256: expected a non-empty object of file names and "
                                  f"digests; run `dvc repro -s -f {stage}`")
    write_manifest(folder)
    listed = json.loads((folder / MANIFEST).read_text())["sha256"]
    assert "meta.json" in listed and MANIFEST not in listed
    load(folder)
    split = {"image_dir": "test", "writer_dir": "test", "har_dir": "unseen", "text_dir": "test"}[layout]
    path = folder / f"{split}.npz"
    arrays = arrays_of(path)
    np.savez_compressed(path, **{k: v[: len(v) // 2] for k, v in arrays.items()})  # an edit: not recorded
    with pytest.raises(DataError) as err:
        load(folder)
    assert re.fullmatch(rf"{re.escape(str(path))}: not the file prepare wrote \(sha256 [0-9a-f]{{12}}…, manifest.json "
                        rf"lists [0-9a-f]{{12}}…\): edited since; run `dvc repro -s -f {stage}`", str(err.value))
    path.unlink()
    refuses(lambda: load(folder), f"{path}: missing (prepare wrote it; run `dvc repro -s -f {stage}`)")
    write_manifest(folder)
    (folder / "extra.npz").write_bytes(b"")  # a file prepare did not write
    refuses(lambda: load(folder), f"{folder / 'extra.npz'}: not written by prepare (manifest.json does not list it); "
                                  f"run `dvc repro -s -f {stage}`")


def test_every_prepare_writes_the_manifest(in_tmp, monkeypatch):
    from replab.data import registry
    from replab.io import MANIFEST

    class Source:  # a data set whose prepare writes two files
        @staticmethod
        def prepare(name, cfg, raw, out, split_seed):
            (out / "sub").mkdir(parents=True)
            (out / "meta.json").write_text("{}")
            (out / "sub" / "train.npz").write_bytes(b"x")

    monkeypatch.setattr(registry, "load_data_params", lambda name, path: (None, 0))
    monkeypatch.setattr(registry, "get", lambda name: type("S", (), {"load": staticmethod(lambda: Source)}))
    out = registry.prepare("toy")
    assert sorted(json.loads((out / MANIFEST).read_text())["sha256"]) == ["meta.json", "sub/train.npz"]
