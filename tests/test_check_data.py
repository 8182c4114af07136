"""The check_data stage (`replab check --data`): every limit of params.yaml that depends on the prepared data is
refused after `prepare` and before any training stage, in one line naming the param key (or the data folder), by
the checks training itself runs. On the smoke baseline's prepared data, in a temporary working directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import one_line_naming
from replab.io import DataError, write_manifest
from replab.papers import check_data
from replab.params import ParamError

PROCESSED = "data/processed"


@pytest.fixture
def prepared(smoke_baseline, tmp_path, monkeypatch) -> dict:
    """The smoke baseline's params (returned) and prepared data (copied), with the copy's folder as the working
    directory."""
    shutil.copytree(smoke_baseline / PROCESSED, tmp_path / PROCESSED)
    monkeypatch.chdir(tmp_path)
    return yaml.safe_load((smoke_baseline / "params.yaml").read_text())


def edit_split(folder: str, split: str, edit) -> None:
    """Rewrite data/processed/<folder>/<split>.npz with `edit(arrays)` applied (what another prepare would write)."""
    path = f"{PROCESSED}/{folder}/{split}.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    edit(arrays)
    np.savez_compressed(path, **arrays)
    write_manifest(f"{PROCESSED}/{folder}")  # as that prepare would record it


def test_the_smoke_profile_passes_on_its_own_data(prepared):
    check_data(prepared)


# (params edit, the key it names, the whole message): the smoke profile's mnist5k holds 350 training images of its
# rarest class, its writers 50 writers with 60–100 training images; rt_snippets' vocabulary (V words) and pool (N
# sequences) are read off its files, as {V} and {N}
LIMITS = [
    (lambda p, v, n: p["aae_ssl"].update(n_labeled=[100, 4000]), "aae_ssl.n_labeled",
     "params.yaml: aae_ssl.n_labeled = 4000: larger than the training set allows (350 images in the rarest class; "
     "allowed: ≤ 3500)"),
    (lambda p, v, n: p["aae_ssl"]["style"].update(n_labeled=5000), "aae_ssl.style.n_labeled",
     "params.yaml: aae_ssl.style.n_labeled = 5000: larger than the training set allows (350 images in the rarest "
     "class; allowed: ≤ 3500)"),
    (lambda p, v, n: p["split_vae"]["exp2"].update(n_writers=51), "split_vae.exp2.n_writers",
     "params.yaml: split_vae.exp2.n_writers = 51: data/processed/writers has 50 writers with 60–100 training images "
     "(allowed: ≤ 50, or 0 = all writers)"),
    (lambda p, v, n: p["attention_vat"].update(neighbours=v - 2), "attention_vat.neighbours",
     "params.yaml: attention_vat.neighbours = {V-2}: the vocabulary of {V} words has {V-3} others to choose from "
     "(allowed: 1 … {V-3})"),
    (lambda p, v, n: p["attention_vat"].update(n_unlabeled=n + 1), "attention_vat.n_unlabeled",
     "params.yaml: attention_vat.n_unlabeled = {N+1}: data/processed/rt_snippets has {N} unlabeled sequences "
     "(allowed: 0 = all … {N})"),
]


def text_sizes() -> tuple[int, int]:
    """(words in rt_snippets' vocab.json, sequences in its unlabeled.npz), read with json and numpy."""
    with np.load(f"{PROCESSED}/rt_snippets/unlabeled.npz") as npz:
        return len(json.loads(Path(f"{PROCESSED}/rt_snippets/vocab.json").read_text())), len(npz["lengths"])


@pytest.mark.parametrize("edit,key,message", LIMITS, ids=[key for _, key, _ in LIMITS])
def test_a_param_beyond_the_prepared_data_is_named(prepared, edit, key, message):
    vocab, pool = text_sizes()
    edit(prepared, vocab, pool)
    with pytest.raises(ParamError) as err:
        check_data(prepared)
    sizes = {"{V-2}": vocab - 2, "{V-3}": vocab - 3, "{V}": vocab, "{N+1}": pool + 1, "{N}": pool}
    for name, value in sizes.items():
        message = message.replace(name, f"{value:,}")
    assert one_line_naming(err, key) == message


def test_the_limits_are_inclusive(prepared):
    """The largest allowed values pass: the bounds are the data's, not off by one."""
    vocab, pool = text_sizes()
    prepared["aae_ssl"].update(n_labeled=[3500])
    prepared["split_vae"]["exp2"].update(n_writers=50)
    prepared["attention_vat"].update(neighbours=vocab - 3, n_unlabeled=pool)
    check_data(prepared)


def test_neighbours_are_only_checked_where_a_word_iat_or_ivat_method_trains(prepared):
    prepared["attention_vat"].update(neighbours=10**5, methods=["vanilla", "attention_ivat"],
                                     semi_methods=["attention_vat"])
    prepared["attention_vat"]["fig2"].update(methods=["attention_vat"])
    check_data(prepared)
    prepared["attention_vat"]["fig2"].update(methods=["word_ivat"])
    with pytest.raises(ParamError, match="attention_vat.neighbours = 100,000"):
        check_data(prepared)


def test_a_held_out_class_missing_from_the_prepared_test_split(prepared):
    edit_split("mnist5k", "test", lambda a: a.update(x=a["x"][a["y"] != 1], y=a["y"][a["y"] != 1]))
    with pytest.raises(DataError) as err:
        check_data(prepared)
    assert one_line_naming(err, "autoencoder.anomaly.held_out").startswith("data/processed/mnist5k: class 1 ")


def test_the_encoder_is_checked_against_the_prepared_windows(prepared):
    """censor.encoder against the windows prepare wrote (another data.har.window): 2 blocks of kernel 5 and pool 2
    take 16 samples to 6, then to 1; 15 samples to 5, then to none."""
    for split in ("train", "seen", "unseen"):
        edit_split("har", split, lambda a: a.update(x=np.ascontiguousarray(a["x"][..., :15])))
    prepared["censor"]["encoder"].update(filters=[8, 8], kernel=5, pool=2)
    with pytest.raises(DataError) as err:
        check_data(prepared)
    assert one_line_naming(err, "data.har.window") == (
        "data/processed/har: windows of 15 samples are too short for censor.encoder (2 blocks of kernel 5 and pool 2 "
        "need 16; allowed: data.har.window ≥ 16, or fewer or smaller blocks)")
    for split in ("train", "seen", "unseen"):  # 16 samples: 12 → 6 → 2 → 1
        edit_split("har", split, lambda a: a.update(x=np.concatenate([a["x"], a["x"][..., :1]], axis=-1)))
    check_data(prepared)


def test_a_deep_encoder_on_long_windows_passes_check_params():
    """4 blocks of kernel 3 and pool 2 need 46 samples: refused by check_params against a hard-coded 30-sample
    window although data.har.window was 60."""
    from conftest import compose
    from replab.papers import check_params

    check_params(compose("profile=smoke", "data.har.window=60", "data.har.stride=30",
                         "censor.encoder.filters=[8,8,8,8]"))


def test_similarity_methods_need_partners_for_every_window(prepared):
    """SCT's pairs need a second user; LSM's also, for every window, another user's window of its activity and
    one of another user and activity (found by counting, not by 1000 failed draws)."""
    def users(rule):
        edit_split("har", "train", lambda a: a.update(user=rule(a)))

    def refused(methods: list[str]) -> str:
        prepared["censor"].update(methods=methods)
        with pytest.raises(DataError) as err:
            check_data(prepared)
        return one_line_naming(err, "data.har.train_users")

    users(lambda a: np.where(a["activity"] % 2 == 0, 1, 2))  # two users, no activity shared
    prepared["censor"].update(methods=["afl_mlp", "sct"])
    check_data(prepared)
    assert refused(["lsm"]) == ("data/processed/har/train.npz: censor pairs: the train split has an activity of one "
                                "user only, and Eq. 5 pairs each window with another user's of its activity "
                                "(data.har.train_users; censor.methods)")
    edit_split("har", "train", lambda a: a.update(activity=np.zeros_like(a["activity"]),
                                                  user=np.arange(len(a["user"])) % 2 + 1))  # one activity, two users
    assert refused(["lsm"]).startswith("data/processed/har/train.npz: censor pairs: the train split has a window "
                                       "that no other user's window of another activity can pair with (Eq. 5)")
    users(lambda a: np.ones_like(a["user"]))
    assert refused(["sct"]).startswith("data/processed/har/train.npz: censor pairs: the train split has windows of "
                                       "1 user only, and Eq. 2 pairs each with a window of another user")
