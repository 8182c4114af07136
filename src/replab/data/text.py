"""What every text data set shares once parsed: tokenisation, a train-fitted vocabulary, padded id arrays; the
processed layout written (`write_text_splits`) and read (`load_text_split`; `replab.loaders.text` moves it to the
device).

Processed layout (read by attention_vat), `data/processed/<name>/`:
  train.npz, dev.npz, test.npz   `tokens` int64 [N, T] (0-padded on the right, T = the split's longest),
                                  `lengths` int64 [N] (>= 1; every text holds a word besides <SOS> / <EOS>),
                                  `labels` int64 [N] (0 negative, 1 positive; both classes in every split, N >= 2),
                                  `evidence` uint8 [N, T] where the source has rationales (1 = evidence token)
  unlabeled.npz                   `tokens`, `lengths` (the semi-supervised pool, same vocabulary; absent for
                                  eraser_movies and when a set's `unlabeled` param is `none`)
  vocab.json                      token strings, index = id; 0 "<pad>", 1 "<unk>" (+ "<SOS>", "<EOS>")
  embeddings.npy                  float32 [V, 300] rows aligned with vocab.json (only with fastText)
  meta.json                       source, checksums, counts, class balance, vocabulary size, mean length,
                                  quirks counted, special ids {"pad", "unk", "sos", "eos"}

Jain & Wallace's recipe (successar/AttentionExplanation, preprocess/SST and Trainers/DatasetBC.py):
`-LRB-` removed, `-RRB-` → space, `re.sub(r"\\W", " ")`, whitespace collapsed, lowercased, then spaCy's
tokenizer. After the `\\W` substitution only letters, digits and `_` are left, so spaCy's split equals a
whitespace split except for its few tokenizer exceptions ("cannot" → "can not", "gonna" → "gon na"); we
split on whitespace and do not depend on spaCy. The vocabulary (CountVectorizer, `min_df`) is fit on train
only; every sequence is wrapped in `<SOS> … <EOS>` where J&W do so.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.io import (
    DataError,
    atomic_dir,
    npz_array,
    read_json,
    read_npz,
    rerun_hint,
    sha256_file,
    write_json,
    write_npz,
)
from replab.params import MAX_COUNT, MAX_SIZE, SEED_MAX, ParamError, param

PAD, UNK, SOS, EOS = "<pad>", "<unk>", "<SOS>", "<EOS>"
SPLITS = ("train", "dev", "test")
_NON_WORD = re.compile(r"\W+")
_PTB_BRACKETS = re.compile(r"-LRB-|-RRB-")


def jw_clean(text: str) -> str:
    """J&W's SST/IMDB cleaning of one text: brackets tokens out, non-word characters to spaces, lowercased."""
    text = _PTB_BRACKETS.sub(lambda m: "" if m.group() == "-LRB-" else " ", text)
    return _NON_WORD.sub(" ", text).strip().lower()


def jw_tokenize(texts: Iterable[str]) -> list[list[str]]:
    """Token lists of `texts` under J&W's recipe (see the module docstring)."""
    return [jw_clean(t).split() for t in texts]


# A vocabulary must know the words of at least this share of the training tokens: a larger `min_df` leaves (almost)
# every word <unk>, and training runs on nothing but the specials without a word said
MIN_COVERAGE = 0.5


def fit_vocab(train: Sequence[Sequence[str]], min_df: int = 1, sos_eos: bool = False, key: str = "min_df") -> list[str]:
    """Vocabulary fit on the training token lists: specials first, then tokens occurring in at least
    `min_df` documents, by document frequency (descending), ties alphabetical (deterministic).

    A `min_df` whose words cover less than MIN_COVERAGE of the training tokens (none at all: every word <unk>) is a
    ParamError naming `key` (the param, `data.<name>.min_df`), the vocabulary it would give and the largest value
    that keeps enough words."""
    import pandas as pd

    specials = [PAD, UNK] + ([SOS, EOS] if sos_eos else [])
    docs = pd.Series([sorted(set(doc)) for doc in train], dtype=object).explode().dropna()
    df = docs.value_counts()
    df = df[~df.index.isin(specials)]
    if min_df > 1:  # 1 keeps every word
        _check_min_df(train, df, min_df, len(specials), key)
    df = df[df >= min_df]
    order = np.lexsort((df.index.to_numpy(dtype=str), -df.to_numpy()))
    return specials + df.index.to_numpy(dtype=str)[order].tolist()


def _check_min_df(train: Sequence[Sequence[str]], df, min_df: int, n_specials: int, key: str) -> None:
    """ParamError unless the words of document frequency `df` ≥ `min_df` cover MIN_COVERAGE of the training tokens."""
    import pandas as pd

    counts = pd.Series(list(itertools.chain.from_iterable(train)), dtype=object).value_counts().reindex(df.index)
    total = int(counts.sum())
    covered = int(counts[df >= min_df].sum())
    if total == 0 or covered >= MIN_COVERAGE * total:
        return
    # coverage at each document frequency d (min_df = d keeps the words of df >= d), d descending: the largest d
    # that still covers MIN_COVERAGE is the largest allowed value
    by_df = counts.groupby(df).sum().sort_index(ascending=False).cumsum()
    allowed = int(by_df[by_df >= MIN_COVERAGE * total].index.max())
    words, kept = int((df >= min_df).sum()), int((df >= allowed).sum())
    gives = (f"the {n_specials} specials alone" if not words else
             f"{n_specials + words} entries: the specials and {words} of the training texts' {len(df)} words")
    raise ParamError(f"{key} = {min_df}: gives a vocabulary of {gives}, covering {covered / total:.1%} of the "
                     f"training tokens (the rest read as {UNK}); allowed: ≤ {allowed}, the largest that keeps "
                     f"{MIN_COVERAGE:.0%} ({kept} word{'s' * (kept != 1)}, {by_df[allowed] / total:.1%})")


def special_ids(vocab: Sequence[str]) -> dict[str, int | None]:
    index = {tok: i for i, tok in enumerate(vocab[:4])}
    return {"pad": 0, "unk": 1, "sos": index.get(SOS), "eos": index.get(EOS)}


def encode(docs: Sequence[Sequence[str]], vocab: Sequence[str], sos_eos: bool = False,
           where: str = "text", names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(tokens int64 [N, T] 0-padded, lengths int64 [N]); unknown tokens → 1, `<SOS>`/`<EOS>` added when
    `sos_eos`. A text token spelt like a special (`<pad>` in an ERASER document) is a word the vocabulary does not
    hold (`fit_vocab` leaves specials out of its words): 1 too, never the special's id (a <pad> within the length).
    Vectorised: one pandas index lookup over all tokens. An empty document is an error naming `where` and, if
    given, its source in `names` (one per document: file, archive member, line)."""
    import pandas as pd

    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    if len(docs) and lengths.min() == 0:
        i = int(np.argmin(lengths))
        raise DataError(f"{names[i]}: no tokens after cleaning ({where}, document {i})" if names is not None
                        else f"{where}: document {i} has no tokens after cleaning")
    flat = [tok for doc in docs for tok in doc]
    ids = pd.Index(list(vocab)).get_indexer(flat).astype(np.int64) if flat else np.zeros(0, np.int64)
    ids[ids < (4 if list(vocab[2:4]) == [SOS, EOS] else 2)] = 1  # not found (−1), or one of fit_vocab's specials
    if sos_eos:
        sos, eos = vocab.index(SOS), vocab.index(EOS)
        starts = np.cumsum(lengths) - lengths
        # interleaved per document, so that at a shared index EOS of one precedes SOS of the next
        # (np.insert keeps the given order of equal indices)
        ids = np.insert(ids, np.stack([starts, starts + lengths], 1).ravel(), np.tile([sos, eos], len(docs)))
        lengths = lengths + 2
    return pad(ids, lengths), lengths


def pad(flat: np.ndarray, lengths: np.ndarray, dtype=np.int64) -> np.ndarray:
    """Scatter the concatenated sequences `flat` into a right-padded [N, max(lengths)] array of zeros."""
    out = np.zeros((len(lengths), int(lengths.max()) if len(lengths) else 0), dtype=dtype)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = flat
    return out


def pad_masks(masks: Sequence[np.ndarray], sos_eos: bool = False) -> np.ndarray:
    """Per-document boolean token masks → uint8 [N, T] aligned with `encode` (0 on SOS/EOS and padding)."""
    if sos_eos:
        masks = [np.concatenate([[False], m, [False]]) for m in masks]
    lengths = np.fromiter((len(m) for m in masks), dtype=np.int64, count=len(masks))
    flat = np.concatenate(masks) if masks else np.zeros(0, bool)
    return pad(flat.astype(np.uint8), lengths, dtype=np.uint8)


def jw_length_filter(lengths: np.ndarray, min_length: int, mode: str) -> np.ndarray:
    """Keep-mask of J&W's `filterbylength` (DatasetBC.py), on token counts without SOS/EOS.

    faithful: `min_length < len < max(len)`: `max_length=None` becomes the split's maximum with a strict
    `<`, so the longest document(s) of every split are silently dropped (the quirk, kept by default);
    min_length: only `len > min_length`; none: keep everything."""
    if mode == "none" or len(lengths) == 0:
        return np.ones(len(lengths), dtype=bool)
    keep = lengths > min_length
    if mode == "faithful":
        keep &= lengths < lengths.max()
    return keep


def check_text_split(path: Path, arrays: dict[str, np.ndarray], vocab_size: int, labeled: bool = True,
                     nonempty: bool = True, specials: Sequence[int] = ()) -> dict[str, np.ndarray]:
    """The arrays of one split if tokens is int [N, T] of ids 0 … vocab_size - 1, lengths int [N] in 1 … T, every
    text holding a word (a token within its length that is none of `specials`, the ids of <SOS> and <EOS>: a text
    of those alone has nothing to classify or attend to, and every per-token measure is undefined on it) and,
    when `labeled`, N ≥ 1 (if `nonempty`) and labels int [N] of 0/1 and evidence (if present) 0/1 of the tokens'
    shape; else a one-line DataError naming `path`, the array (and row) and what is allowed."""
    tokens = npz_array(path, arrays, "tokens", dtype="integer", shape=("N", "T"), noun="token ids", row="text",
                       values=(0, vocab_size - 1), of=f"the {vocab_size} ids of vocab.json",
                       nonempty=labeled and nonempty)
    npz_array(path, arrays, "lengths", dtype="integer", shape=("N",), noun="lengths", row="text",
              values=(1, tokens.shape[1]), of="the tokens' width T", like="tokens")
    require_words(path, tokens, arrays["lengths"], specials)
    if labeled:
        npz_array(path, arrays, "labels", dtype="integer", shape=("N",), noun="labels", row="text", values=(0, 1),
                  like="tokens")
        if "evidence" in arrays:
            npz_array(path, arrays, "evidence", dtype="integer", shape=("N", tokens.shape[1]), noun="evidence marks",
                      row="text", values=(0, 1), like="tokens")
    return arrays


def require_words(path: Path, tokens: np.ndarray, lengths: np.ndarray, specials: Sequence[int] = ()) -> None:
    """Return if every row of `tokens` [N, T] holds a word within its length (`lengths` [N], checked to be 1 … T): a
    token that is none of `specials` (the <SOS> / <EOS> ids); else a one-line DataError naming `path` and the row."""
    if not len(specials) or not tokens.size:
        return  # lengths >= 1: every text holds a token, and without <SOS> / <EOS> each token is a word
    real = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
    words = (real & ~np.isin(tokens, np.asarray(specials))).sum(1)
    if (words == 0).any():
        row = int(np.argmax(words == 0))
        raise DataError(f"{path}: text row {row} holds no word (lengths[{row}] = {int(lengths[row])}: <SOS> / <EOS> "
                        f"only; allowed: at least 1 word between <SOS> and <EOS>, lengths ≥ {len(specials) + 1})")


def text_specials(special_ids: dict) -> list[int]:
    """The ids that are no word (<SOS>, <EOS>) of a set's special ids (meta.json's `special_ids`)."""
    return [int(special_ids[k]) for k in ("sos", "eos") if special_ids.get(k) is not None]


def load_text_split(folder: Path, split: str, vocab_size: int, specials: Sequence[int] = ()) -> dict[str, np.ndarray]:
    """`folder`/`split`.npz of a processed text set, checked (`check_text_split`; `unlabeled` has no labels;
    `specials`: the <SOS> / <EOS> ids, `text_specials` of meta.json's special_ids)."""
    path = Path(folder) / f"{split}.npz"
    return check_text_split(path, read_npz(path, stage=f"prepare@{Path(folder).name}"), vocab_size,
                            labeled=split != "unlabeled", specials=specials)


def read_vocab(folder: Path) -> list[str]:
    """vocab.json of a processed text set: a JSON array of distinct token strings, "<pad>" and "<unk>" first
    (ids 0 and 1, which the arrays use whatever the data); else a one-line DataError naming the file."""
    path, stage = Path(folder) / "vocab.json", f"prepare@{Path(folder).name}"
    vocab = read_json(path, expect=list, stage=stage)
    if vocab[:2] != [PAD, UNK]:  # an empty array too: the arrays' ids would then have no allowed value
        got = f"starts with {json.dumps(vocab[:2])[:60]}" if vocab else "is empty"
        raise DataError(f"{path}: {got}, expected [\"{PAD}\", \"{UNK}\", …] (ids 0 and 1); {rerun_hint(stage)}")
    if (bad := next((i for i, tok in enumerate(vocab) if not isinstance(tok, str)), None)) is not None:
        raise DataError(f"{path}: entry {bad} is {json.dumps(vocab[bad])[:40]}, expected a token string; "
                        f"{rerun_hint(stage)}")
    if len(set(vocab)) != len(vocab):
        raise DataError(f"{path}: {len(vocab) - len(set(vocab))} repeated tokens (each id needs its own); "
                        f"{rerun_hint(stage)}")
    return vocab


def write_text_splits(out_dir: Path, splits: dict[str, dict], vocab: list[str], meta: dict, *,
                      sos_eos: bool, unlabeled: Sequence[Sequence[str]] | None = None,
                      embeddings: np.ndarray | None = None) -> dict:
    """Encode and write the processed layout atomically (the whole directory appears, or nothing changes).

    `splits[name]` = {"docs": token lists, "labels": int array, optional "evidence": bool masks per doc,
    optional "names": the source of each doc (file, archive member, line) for errors}. Each labeled split must
    hold both classes (`require_both_classes`)."""
    counts, balance, mean_len = {}, {}, {}
    for name, split in splits.items():  # the prepare stages check with their files named; this catches the rest
        require_both_classes(split["labels"], name, meta["dataset"])
    specials = text_specials(special_ids(vocab))
    with atomic_dir(out_dir) as tmp:
        for name, split in splits.items():
            tokens, lengths = encode(split["docs"], vocab, sos_eos, where=f"{meta['dataset']} {name}",
                                     names=split.get("names"))
            labels = np.asarray(split["labels"], dtype=np.int64)
            arrays = {"tokens": tokens, "lengths": lengths, "labels": labels}
            if "evidence" in split:
                arrays["evidence"] = pad_masks(split["evidence"], sos_eos)
            check_text_split(Path(out_dir) / f"{name}.npz", arrays, len(vocab), nonempty=False, specials=specials)
            write_npz(tmp / f"{name}.npz", **arrays)
            counts[name] = int(len(labels))
            balance[name] = {"negative": int((labels == 0).sum()), "positive": int((labels == 1).sum())}
            mean_len[name] = round(float(lengths.mean()), 2) if len(lengths) else 0.0
        if unlabeled is not None:
            tokens, lengths = encode(unlabeled, vocab, sos_eos, where=f"{meta['dataset']} unlabeled")
            check_text_split(Path(out_dir) / "unlabeled.npz", {"tokens": tokens, "lengths": lengths}, len(vocab),
                             labeled=False, specials=specials)
            write_npz(tmp / "unlabeled.npz", tokens=tokens, lengths=lengths)
            counts["unlabeled"] = int(len(lengths))
            mean_len["unlabeled"] = round(float(lengths.mean()), 2) if len(lengths) else 0.0
        if embeddings is not None:
            np.save(tmp / "embeddings.npy", embeddings.astype(np.float32))
        write_json(tmp / "vocab.json", vocab)
        known = set(vocab)
        unk = {name: round(float(np.mean([tok not in known for doc in s["docs"][:2000] for tok in doc] or [0.0])), 4)
               for name, s in splits.items() if name != "train"}
        meta = {**meta, "counts": counts, "class_balance": balance, "vocab_size": len(vocab),
                "mean_length": mean_len, "mean_length_counts_sos_eos": sos_eos,
                "oov_rate_first_2000": unk, "special_ids": special_ids(vocab)}
        write_json(tmp / "meta.json", meta)
    return meta


def require_both_classes(labels: Sequence[int] | np.ndarray, split: str, source: str, *, noun: str = "texts",
                         before: Sequence[int] | np.ndarray | None = None, params: str = "", hint: str = "") -> None:
    """Return if the labeled `split` holds `noun` of both classes (0 and 1): training needs both, and model
    selection by dev AUC and the test AUC are undefined on one (an empty split is the extreme case).

    Else a one-line error. When `before` (the split's labels before a filter set by params, e.g. the length
    filter) still held both classes, the filter is what emptied it: a ParamError naming `params` (the keys and
    their values). Otherwise a DataError naming `source` (the file, archive member or data set the split comes
    from), followed by `hint` (what else decides the split)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=2)[:2]
    if counts.all():
        return
    held = (f"no {noun}" if not counts.any() else
            f"only {'positive' if counts[1] else 'negative'} {noun} ({int(counts.sum())})")
    need = "train, dev and test each need both classes"
    if before is not None and np.bincount(np.asarray(before, dtype=np.int64), minlength=2)[:2].all():
        raise ParamError(f"{params}: leaves the {split} split of {source} with {held}, of {len(before)} before "
                         f"it; {need}")
    raise DataError(f"{source}: the {split} split holds {held}; {need}{f' ({hint})' if hint else ''}")


_FIELD_KINDS = {str: "a string", int: "an integer", float: "a finite number"}


def verified_download(path: Path, record_path: Path, stage: str,
                      fields: dict[str, type] | None = None) -> tuple[dict, str]:
    """(the record, the file's sha256) of the downloaded file `path`: the JSON `record_path` written by the DVC
    stage `stage`, holding `fields` and `sha256` of their kinds (`record_fields`), once `path`'s sha256 equals the
    recorded one; else a one-line DataError naming the file (replaced or edited since, e.g. by hand) and saying to
    rerun the download."""
    record = record_fields(record_path, read_json(record_path, expect=dict, stage=stage),
                           {**(fields or {}), "sha256": str}, stage)
    if (actual := sha256_file(path)) != record["sha256"]:
        raise DataError(f"{path}: sha256 {actual} differs from {record['sha256']} recorded at download "
                        f"({record_path.name}); {rerun_hint(stage)}")
    return record, actual


def record_fields(path: Path, record: dict, fields: dict[str, type], stage: str) -> dict:
    """`record` (a JSON object read from `path`, written by the DVC stage `stage`) if every key of `fields` is
    present with a value of its kind (str, int, or float = any finite number; a boolean is neither), else a
    one-line DataError naming the file and the key."""
    for key, kind in fields.items():
        if key not in record:
            raise DataError(f"{path}: key `{key}` missing (has {', '.join(f'`{k}`' for k in record) or 'none'}); "
                            f"{rerun_hint(stage)}")
        value = record[key]
        ok = (not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
              if kind is float else not isinstance(value, bool) and isinstance(value, kind))
        if not ok:  # a NaN written by another tool reads as null (read_json): refused here
            raise DataError(f"{path}: `{key}` is {json.dumps(value)[:40]}, expected {_FIELD_KINDS[kind]}; "
                            f"{rerun_hint(stage)}")
    return record


def pinned_raw(path: Path, sha256: str, name: str) -> Path:
    """`path` (a raw file of data set `name`), checked against its pinned sha256 before parsing; a one-line
    DataError naming it if it is missing or changed since the download stage."""
    if not path.is_file():
        raise DataError(f"{path}: missing (run `dvc repro download@{name}` first)")
    if (actual := sha256_file(path)) != sha256:
        raise DataError(f"{path}: sha256 {actual}, expected {sha256} (download it again)")
    return path


# ---------------------------------------------------------------------------------------------------------
# Unlabeled pools shared by the real text sets (the readers are in replab.data.lm1b and replab.data.imdb)

POOLS = ("none", "lm1b", "imdb_unsup")
EMBEDDINGS = ("random", "fasttext")


@dataclass(frozen=True)
class JwTextConfig:
    """Params shared by the real labeled text sets that follow Jain & Wallace (sst, imdb): mirror, their
    load-time length filter, the unlabeled pool and the embeddings. `lm1b_fraction` / `lm1b_seed` mirror
    `data.lm1b` in conf/ (interpolated), so that DVC reruns the set's prepare stage on a new lm1b sample."""

    mirror: str | None = param(None, nonempty=True,
                               doc="directory, file:// or http(s):// URL holding the pinned archive")
    filter: str = param("faithful", choices=["faithful", "min_length", "none"],
                        doc="J&W's load-time length filter (faithful also drops every split's longest text)")
    min_length: int = param(5, ge=0, le=MAX_SIZE, doc="keep texts with more than this many tokens")
    unlabeled: str = param("lm1b", choices=list(POOLS), doc="unlabeled pool for the semi-supervised methods")
    n_unlabeled: int = param(50_000, ge=0, le=MAX_COUNT, doc="texts drawn from the pool (0 = all)")
    pool_seed: int = param(0, ge=0, le=SEED_MAX, doc="seeds the draw from the pool and random embedding rows")
    lm1b_fraction: float = param(0.01, gt=0.0, le=1.0, doc="= data.lm1b.fraction (so DVC reruns on a new sample)")
    lm1b_seed: int = param(0, ge=0, le=SEED_MAX, doc="= data.lm1b.seed (checked against the sample's record)")
    embeddings: str = param("random", choices=list(EMBEDDINGS), doc="fasttext: wiki.simple rows of the vocabulary")


def pool_docs(pool: str, texts: Sequence[str], path: Path, n: int, seed: int,
              max_tokens: int = 0) -> tuple[list[list[str]], dict]:
    """Token lists of `n` seeded-random `texts` (0 = all) of the unlabeled pool `pool` read from `path`,
    cleaned by J&W's recipe, plus a meta record (source file, sha256, sizes). Texts longer than `max_tokens`
    (if > 0; the labeled train set's longest) are skipped, so that padding the pool to its longest text stays
    within the labeled data's range (an LM1B line can run to hundreds of tokens). Tokenised lazily in the
    seeded order up to `n`: the lm1b sample has ~300k sentences, a pool needs fewer."""
    order = np.random.default_rng(seed).permutation(len(texts))
    limit = max_tokens or float("inf")
    docs = list(itertools.islice((d for d in map(lambda i: jw_clean(texts[i]).split(), order) if 0 < len(d) <= limit),
                                 n or None))
    return docs, {"pool": pool, "file": str(path), "sha256": sha256_file(path), "available": len(texts),
                  "used": len(docs), "max_tokens": max_tokens or None, "seed": seed}


def utf8(data: bytes, where: str, first_line: int = 1) -> str:
    """`data` (the bytes of a file or archive member `where`, starting at line `first_line`) decoded as UTF-8;
    else a one-line DataError naming `where`, the line and the offending byte (not the codec's position)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data.count(b"\n", 0, err.start)
        raise DataError(f"{where}: line {line}: not UTF-8 text (byte 0x{data[err.start]:02x})") from None


def read_text(path: Path) -> str:
    """The whole of a UTF-8 text file; one-line DataError naming it (and the line of a non-UTF-8 byte)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    return utf8(data, str(path))


def file_lines(text: str) -> list[str]:
    """The lines of a file's `text` as Python's text files and the corpora's own readers yield them (universal
    newlines: \\n, \\r\\n or \\r ends a line), without their ends. Not `str.splitlines`, which also ends a line
    at \\v, \\f, \\x1c–\\x1e, \\x85, U+2028 and U+2029: characters a corpus can hold inside a line (a form feed
    inside an ERASER document's line would shift every later token against the evidence offsets)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":  # the end of the last line, or an empty text
        lines.pop()
    return lines


def read_lines(path: Path) -> list[str]:
    """Non-empty lines (`file_lines`) of a UTF-8 text file; one-line DataError naming it otherwise."""
    return [line for line in file_lines(read_text(path)) if line.strip()]
