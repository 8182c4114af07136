"""sst, real source: the Stanford Sentiment Treebank, binary, as Jain & Wallace prepare it.

`trainDevTestTrees_PTB.zip` (789,539 bytes, sha256 pinned; shared/reference/datasets.md §D) holds
`trees/{train,dev,test}.txt`: one PTB-bracketed tree per line, `(3 (2 It) (4 (2 's) …))`, the root's label
(0–4) first, brackets in the text escaped as `-LRB-` / `-RRB-`.

Parser: a small strict reader of the bracket tokens, tested on real-format lines, instead of nltk's
`BracketParseCorpusReader`: SST escapes every bracket inside the text, so a leaf is exactly
`(<label> <token>)` with no parenthesis or space in the token, and J&W only need the root label and the
leaves in order. nltk (a large dependency) would buy nothing here. Each line must hold exactly one well-nested
tree whose every node is `(<label> <token>)` or `(<label> <node> …)` with a label 0–4; anything else (an
unclosed or extra bracket, a label 7, two trees on one line) is a one-line DataError naming the file and line.
Every split must keep both classes after the neutral drop and the length filter (else a one-line error naming
the member, or the params that emptied it).

Jain & Wallace (preprocess/SST/SST.ipynb, Trainers/DatasetBC.py): root sentences only, neutral (2) dropped,
label >= 3 → 1 (positive), 6,920 / 872 / 1,821; text cleaned and tokenised (replab.data.text); vocabulary fit
on train (min_df 1) with `<SOS> … <EOS>`. Their load-time `filterbylength` (`filter`):
`faithful` (default) keeps more than `min_length` (5) tokens *and* fewer than the split's longest, so the
longest sentence of every split is silently dropped: 6,355 / 821 / 1,725. `min_length` keeps only the length
bound; `none` keeps all. Dev is SST's own dev split.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.data.fasttext import embeddings_for
from replab.data.imdb import unlabeled_pool
from replab.data.text import (
    JwTextConfig,
    file_lines,
    fit_vocab,
    jw_length_filter,
    jw_tokenize,
    pinned_raw,
    require_both_classes,
    utf8,
    write_text_splits,
)
from replab.download import RemoteFile, fetch
from replab.io import UNREADABLE_ZIP, DataError

ARCHIVE = RemoteFile(
    "trainDevTestTrees_PTB.zip",
    ("https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip",
     "http://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"),
    "5c613a4f673fc74097d523a2c83f38e0cc462984d847b82c7aaf36b01cbbbfcc",  # HF datasets/sst dataset_infos.json
    size=789_539,
)
MEMBERS = {"train": "trees/train.txt", "dev": "trees/dev.txt", "test": "trees/test.txt"}
PAPER_COUNTS = {"before_filter": {"train": 6920, "dev": 872, "test": 1821},
                "faithful": {"train": 6355, "dev": 821, "test": 1725}}  # datasets.md §D (J&W's csv recomputed)
_TOKEN = re.compile(r"[()]|[^\s()]+")  # a bracket, or a label / word (SST escapes brackets in the text)
_LABELS = ("0", "1", "2", "3", "4")
_EMPTY, _LEAF, _INNER = 0, 1, 2  # what an open node holds so far: nothing, one word, subtrees


@dataclass(frozen=True)
class SstConfig(JwTextConfig):
    """`data.sst`: the shared J&W text params (replab.data.text.JwTextConfig); N_ul 50,000 in the paper."""


DOWNLOAD_PARAMS = ("mirror",)  # what download() reads of the config (registry.download_params)


def download(name: str, cfg: SstConfig, raw_dir: Path, progress: bool = True) -> Path:
    return fetch(ARCHIVE, raw_dir, cfg.mirror, progress=progress, key=f"data.{name}.mirror")


def parse_tree(line: str, where: str) -> tuple[int, list[str]]:
    """(root label 0–4, leaf tokens) of one PTB-bracketed SST line, read strictly: exactly one well-nested tree,
    every node `(<label> <word>)` or `(<label> <node> …)` with a label 0–4; else a one-line DataError naming
    `where` (file and line) and the first fault."""
    def bad(problem: str) -> DataError:
        return DataError(f"{where}: {problem} (expected one PTB-bracketed tree, labels 0–4): {line[:60]!r}")

    tokens = _TOKEN.findall(line)
    if not tokens or tokens[0] != "(":
        raise bad("does not start with '('")
    stack, leaves, root, closed, pos = [], [], -1, False, 0
    while pos < len(tokens):
        tok = tokens[pos]
        if tok == "(":
            if closed:
                raise bad("a second tree after the first one closed")
            if stack and stack[-1] == _LEAF:
                raise bad("a node holds both a word and subtrees")
            if pos + 1 == len(tokens):
                raise bad("a '(' ends the line")
            label = tokens[pos + 1]
            if label not in _LABELS:
                raise bad(f"node label {label!r} is not 0–4")
            if stack:
                stack[-1] = _INNER
            else:
                root = int(label)
            stack.append(_EMPTY)
            pos += 2
            continue
        if tok == ")":
            if not stack:
                raise bad("a ')' closes no node")
            if stack.pop() == _EMPTY:
                raise bad("an empty node")
            closed = not stack
        elif not stack:
            raise bad(f"word {tok!r} outside the tree")
        elif stack[-1] != _EMPTY:
            raise bad(f"word {tok!r} beside another word or subtree (a leaf is '(<label> <word>)')")
        else:
            stack[-1] = _LEAF
            leaves.append(tok)
        pos += 1
    if stack:
        raise bad(f"{len(stack)} unclosed '('")
    return root, leaves


def read_trees(archive: Path) -> dict[str, tuple[np.ndarray, list[str], list[str]]]:
    """{split: (root labels int64 [N], texts, sources)} from the zip; leaves joined by spaces (J&W); a source
    is "<archive>:<member>:<line>" (for errors about that sentence later)."""
    out = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            for split, member in MEMBERS.items():
                try:
                    lines = file_lines(utf8(zf.read(member), f"{archive}:{member}"))
                except KeyError:
                    raise DataError(f"{archive}: has no member {member}") from None
                labels, texts, sources = [], [], []
                for i, line in enumerate(lines, 1):
                    if line.strip():
                        label, leaves = parse_tree(line, f"{archive}:{member}:{i}")
                        labels.append(label)
                        texts.append(" ".join(leaves))
                        sources.append(f"{archive}:{member}:{i}")
                out[split] = (np.array(labels, dtype=np.int64), texts, sources)
    except UNREADABLE_ZIP as err:
        raise DataError(f"{archive}: not a readable zip ({err})") from None
    return out


def prepare(name: str, cfg: SstConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """J&W's binary SST → the processed text layout (replab.data.text); `split_seed` unused (SST's splits)."""
    raw_dir = Path(raw_dir)
    archive = pinned_raw(raw_dir / ARCHIVE.name, ARCHIVE.sha256, name)
    splits, counts, unfiltered = {}, {"trees": {}, "binary": {}}, {}
    for split, (labels, texts, sources) in read_trees(archive).items():
        keep = labels != 2
        docs = jw_tokenize(t for t, k in zip(texts, keep, strict=True) if k)
        names = [s for s, k in zip(sources, keep, strict=True) if k]
        y = (labels[keep] >= 3).astype(np.int64)
        lengths = np.array([len(d) for d in docs])
        kept = jw_length_filter(lengths, cfg.min_length, cfg.filter)
        # checked before anything else uses the split (the pool's length bound is train's longest)
        require_both_classes(y[kept], split, f"{archive}:{MEMBERS[split]}", noun="non-neutral sentences", before=y,
                             params=f"data.{name}.filter = {cfg.filter}, data.{name}.min_length = {cfg.min_length}")
        unfiltered[split] = docs
        counts["trees"][split], counts["binary"][split] = len(labels), int(keep.sum())
        splits[split] = {"docs": [d for d, k in zip(docs, kept, strict=True) if k], "labels": y[kept],
                         "names": [s for s, k in zip(names, kept, strict=True) if k]}
    # J&W fit the vocabulary on the whole train split when preprocessing; the length filter runs later, at load time
    vocab = fit_vocab(unfiltered["train"], 1, sos_eos=True)
    unlabeled, pool_meta = unlabeled_pool(cfg.unlabeled, raw_dir.parent, f"data.{name}.unlabeled",
                                          {"fraction": cfg.lm1b_fraction, "seed": cfg.lm1b_seed}, cfg.n_unlabeled,
                                          cfg.pool_seed, max(len(d) for d in splits["train"]["docs"]))
    embeddings, emb_meta = embeddings_for(cfg.embeddings, raw_dir.parent, vocab, cfg.pool_seed)
    meta = {"dataset": name, "source": "real: Stanford Sentiment Treebank (PTB trees), Jain & Wallace binary",
            "sha256": {ARCHIVE.name: ARCHIVE.sha256}, "filter": cfg.filter, "min_length": cfg.min_length,
            "counts_before_filter": counts["binary"], "trees": counts["trees"],
            "quirks": {"dropped_by_length_filter": {k: counts["binary"][k] - len(v["labels"])
                                                     for k, v in splits.items()}},
            "paper_counts": PAPER_COUNTS, "unlabeled_pool": pool_meta, "embeddings": emb_meta,
            "labels": {"0": "negative (root 0-1)", "1": "positive (root 3-4)"}}
    return write_text_splits(Path(out_dir), splits, vocab, meta, sos_eos=True, unlabeled=unlabeled,
                             embeddings=embeddings)
