"""imdb, real source: the Large Movie Review Dataset (aclImdb), split by Jain & Wallace's recipe.

`aclImdb_v1.tar.gz` (84,125,825 bytes, sha256 pinned; shared/reference/datasets.md §E):
`aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt` (12,500 each; pos rating >= 7, neg <= 4) and
`aclImdb/train/unsup/<id>_0.txt` (50,000). The tarball is read as a stream (`tarfile` "r|gz"): only the
members a split needs are read, into memory; nothing is unpacked to disk. `<br />` is replaced by a space.

J&W's split (preprocess/IMDB/IMDB.ipynb, HEAD 607eb50), rebuilt on aclImdb: reviews with fewer than
`max_tokens` (400) tokens; train → 80 % train / 20 % dev with scikit-learn's `train_test_split(…,
train_size=0.8, random_state=1378)`; test → the 20 % `train_test_split(…, train_size=0.2, random_state=1378)`;
vocabulary min_df 10 on train, `<SOS> … <EOS>`; at load time their `filterbylength` (min_length 6, and the
longest review of every split dropped under `filter: faithful`). The paper reports 17,186 / 4,294 / 4,353.
Our counts differ because J&W started from Keras' `imdb_full.pkl` (rank-indexed words in its own document
order and tokenisation: apostrophes kept, so "don't" is one token where `\\W` splits it; each `<br />` kept as
the word `br`, its 7th most frequent, where ours are spaces, so its reviews count a token more per break), which
is not reachable here: the < 400 cut and the seeded split then select other documents. Documents are ordered by
(pos before neg, numeric id) before splitting; meta.json reports our counts beside the paper's. Every split
must keep both classes after the cut, the split and the length filter (else a one-line error naming the params
that emptied it, or the archive).
"""

from __future__ import annotations

import math
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.data.fasttext import embeddings_for
from replab.data.lm1b import read_sample
from replab.data.text import (
    JwTextConfig,
    fit_vocab,
    jw_length_filter,
    jw_tokenize,
    pinned_raw,
    pool_docs,
    require_both_classes,
    utf8,
    write_text_splits,
)
from replab.download import RemoteFile, fetch
from replab.io import DataError
from replab.params import MAX_COUNT, MAX_SIZE, SEED_MAX, ParamError, param

ARCHIVE = RemoteFile(
    "aclImdb_v1.tar.gz",
    ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
     "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
     "https://bj.bcebos.com/dataset/imdb%2FaclImdb_v1.tar.gz"),
    "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",  # TFDS imdb_reviews, HF dataset_infos
    size=84_125_825,
)
REVIEW = re.compile(r"(?:^|/)aclImdb/((?:train|test)/(?:pos|neg)|train/unsup)/(\d+)_(\d+)\.txt$")
PAPER_COUNTS = {"train": 17186, "dev": 4294, "test": 4353}
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass(frozen=True)
class ImdbConfig(JwTextConfig):
    """`data.imdb`: the shared J&W text params (replab.data.text.JwTextConfig) and their IMDB split recipe."""

    max_tokens: int = param(400, ge=1, le=MAX_SIZE, doc="J&W keep reviews with fewer tokens than this")
    random_state: int = param(1378, ge=0, le=SEED_MAX, doc="J&W's train_test_split random_state")
    min_length: int = param(6, ge=0, le=MAX_SIZE, doc="keep reviews with more than this many tokens (J&W: 6)")
    min_df: int = param(10, ge=1, le=MAX_COUNT, doc="vocabulary: minimum document frequency on train (J&W: 10)")
    n_unlabeled: int = param(150_000, ge=0, le=MAX_COUNT, doc="texts drawn from the pool (0 = all); paper: 150,000")


DOWNLOAD_PARAMS = ("mirror",)  # what download() reads of the config (registry.download_params)


def download(name: str, cfg: ImdbConfig, raw_dir: Path, progress: bool = True) -> Path:
    return fetch(ARCHIVE, raw_dir, cfg.mirror, progress=progress, key=f"data.{name}.mirror")


def read_reviews(archive: Path, dirs: tuple[str, ...]) -> dict[tuple[str, int], tuple[str, int, str]]:
    """{(dir, id): (text with <br /> removed, rating, member name)} of the reviews under `dirs` (e.g.
    "train/pos"), streamed from the tarball. DataError naming the archive (and member) if it is truncated, not a
    gzip tar, a member is not UTF-8, or a rating contradicts its folder."""
    out = {}
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                match = REVIEW.search(member.name)
                if match is None or not member.isfile() or match.group(1) not in dirs:
                    continue
                folder, rating = match.group(1), int(match.group(3))
                ok = {"pos": rating >= 7, "neg": 1 <= rating <= 4, "unsup": rating == 0}[folder.split("/")[1]]
                if not ok:
                    raise DataError(f"{archive}: {member.name}: rating {rating} contradicts its folder")
                text = utf8(tar.extractfile(member).read(), f"{archive}:{member.name}")
                out[(folder, int(match.group(2)))] = (_BR.sub(" ", text), rating, member.name)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(f"{archive}: truncated or not a gzip tar ({' '.join(str(err).split())})") from None
    missing = [d for d in dirs if not any(k[0] == d for k in out)]
    if missing:
        raise DataError(f"{archive}: no reviews under aclImdb/{missing[0]}/")
    return out


def unlabeled_pool(pool: str, raw_root: Path, where: str, lm1b_expect: dict, n: int, seed: int,
                   max_tokens: int) -> tuple[list[list[str]] | None, dict]:
    """The unlabeled pool of a text set by its `unlabeled` param (replab.data.text.pool_docs): none, the lm1b
    sample (replab.data.lm1b.read_sample) or aclImdb's 50,000 `unsup` reviews from `raw_root/imdb`. A pool with
    fewer usable texts than `n` is a ParamError naming the set's n_unlabeled (not a smaller N_ul in silence)."""
    if pool == "none":
        return None, {"pool": "none"}
    if pool == "lm1b":
        texts, path = read_sample(raw_root, lm1b_expect, where)
    else:
        path = raw_root / "imdb" / ARCHIVE.name
        if not path.is_file():
            raise DataError(f"{path}: missing; {where} = imdb_unsup needs `dvc repro download@imdb` first")
        texts = [t for t, *_ in read_reviews(path, ("train/unsup",)).values()]
    docs, meta = pool_docs(pool, texts, path, n, seed, max_tokens)
    if n and len(docs) < n:  # fewer than asked would be a smaller N_ul than the run's params say
        raise ParamError(f"{where.removesuffix('.unlabeled')}.n_unlabeled = {n:,}: the {pool} pool holds "
                         f"{len(docs):,} texts of 1 to {max_tokens or 'any'} tokens after J&W's cleaning ({path}; "
                         f"allowed: at most {len(docs):,}, or 0 = all)")
    return docs, meta


def _labeled(reviews: dict, part: str, archive: Path) -> tuple[list[list[str]], np.ndarray, list[str]]:
    """(token lists, labels, "<archive>:<member>" of each) of the reviews of `part` (train or test), in order."""
    keys = sorted((k for k in reviews if k[0].startswith(part)), key=lambda k: (k[0].endswith("neg"), k[1]))
    return (jw_tokenize(reviews[k][0] for k in keys), np.array([k[0].endswith("pos") for k in keys], dtype=np.int64),
            [f"{archive}:{reviews[k][2]}" for k in keys])


def _seeded_split(idx: list[int], y: np.ndarray, train_size: float, random_state: int, archive: Path, part: str,
                  params: str) -> tuple[list[int], list[int]]:
    """J&W's `train_test_split(idx, train_size=…, random_state=…)` of the reviews `idx` of aclImdb's `part`
    (train or test) left by the cut `params`; a one-line error first if they lack a class or are too few for a
    non-empty first part (scikit-learn keeps floor(train_size × n))."""
    from sklearn.model_selection import train_test_split

    require_both_classes(y[idx], f"aclImdb/{part}", str(archive), noun="reviews", before=y, params=params)
    if math.floor(train_size * len(idx)) == 0:
        few = f"too few to split {train_size:g} / {1 - train_size:g} (the first part would be empty)"
        if len(idx) < len(y):
            raise ParamError(f"{params}: leaves {len(idx)} reviews of {archive}:aclImdb/{part}, {few}")
        raise DataError(f"{archive}: aclImdb/{part} holds {len(idx)} reviews, {few}")
    return train_test_split(idx, train_size=train_size, random_state=random_state)


def prepare(name: str, cfg: ImdbConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """aclImdb → J&W's splits → the processed text layout; `split_seed` unused (J&W's random_state)."""
    raw_dir = Path(raw_dir)
    archive = pinned_raw(raw_dir / ARCHIVE.name, ARCHIVE.sha256, name)
    reviews = read_reviews(archive, ("train/pos", "train/neg", "test/pos", "test/neg"))
    (tr_docs, tr_y, tr_names), (te_docs, te_y, te_names) = (_labeled(reviews, "train", archive),
                                                            _labeled(reviews, "test", archive))
    short_tr = [i for i, d in enumerate(tr_docs) if len(d) < cfg.max_tokens]
    short_te = [i for i, d in enumerate(te_docs) if len(d) < cfg.max_tokens]
    cut = f"data.{name}.max_tokens = {cfg.max_tokens}"
    train_idx, dev_idx = _seeded_split(short_tr, tr_y, 0.8, cfg.random_state, archive, "train", cut)
    test_idx, _ = _seeded_split(short_te, te_y, 0.2, cfg.random_state, archive, "test", cut)
    splits, before, unfiltered = {}, {}, {}
    for split, docs, y, names, idx in (("train", tr_docs, tr_y, tr_names, train_idx),
                                       ("dev", tr_docs, tr_y, tr_names, dev_idx),
                                       ("test", te_docs, te_y, te_names, test_idx)):
        chosen = [docs[i] for i in idx]
        kept = jw_length_filter(np.array([len(d) for d in chosen]), cfg.min_length, cfg.filter)
        # checked before anything else uses the split (the pool's length bound is train's longest)
        require_both_classes(y[idx][kept], split, f"{archive}:aclImdb/{'test' if split == 'test' else 'train'}",
                             noun="reviews", before=y[idx], params=f"data.{name}.filter = {cfg.filter}, "
                             f"data.{name}.min_length = {cfg.min_length}",
                             hint=f"split by data.{name}.random_state = {cfg.random_state}")
        before[split], unfiltered[split] = len(chosen), chosen
        splits[split] = {"docs": [d for d, k in zip(chosen, kept, strict=True) if k], "labels": y[idx][kept],
                         "names": [names[i] for i, k in zip(idx, kept, strict=True) if k]}
    # J&W fit the vocabulary on the whole train split when preprocessing; the length filter runs later, at load time
    vocab = fit_vocab(unfiltered["train"], cfg.min_df, sos_eos=True, key=f"data.{name}.min_df")
    unlabeled, pool_meta = unlabeled_pool(cfg.unlabeled, raw_dir.parent, f"data.{name}.unlabeled",
                                          {"fraction": cfg.lm1b_fraction, "seed": cfg.lm1b_seed}, cfg.n_unlabeled,
                                          cfg.pool_seed, max(len(d) for d in splits["train"]["docs"]))
    embeddings, emb_meta = embeddings_for(cfg.embeddings, raw_dir.parent, vocab, cfg.pool_seed)
    meta = {"dataset": name, "source": "real: aclImdb v1, Jain & Wallace's split recipe rebuilt",
            "sha256": {ARCHIVE.name: ARCHIVE.sha256}, "reviews": {"train": len(tr_docs), "test": len(te_docs)},
            "under_max_tokens": {"train": len(short_tr), "test": len(short_te)},
            "counts_before_filter": before, "filter": cfg.filter, "min_length": cfg.min_length,
            "paper_counts": PAPER_COUNTS,
            "why_counts_differ": "J&W split Keras' imdb_full.pkl (its own order and tokens); ours is aclImdb",
            "unlabeled_pool": pool_meta, "embeddings": emb_meta, "labels": {"0": "neg (<= 4)", "1": "pos (>= 7)"}}
    return write_text_splits(Path(out_dir), splits, vocab, meta, sos_eos=True, unlabeled=unlabeled,
                             embeddings=embeddings)
