"""eraser_movies, real source: ERASER's movie reviews with token-level human rationales.

`movies.tar.gz` (3,899,487 bytes, sha256 pinned; shared/reference/datasets.md §F), read as a stream:
`movies/{train,val,test}.jsonl` (1,600 / 200 / 199 annotations) and `movies/docs/<docid>` (one sentence per
line, PTB-style tokens separated by spaces). An annotation is
`{"annotation_id", "classification": "NEG"|"POS", "evidences": [[{"docid", "start_token", "end_token", …}, …],
…], "query", "query_type"}`; `annotation_id` is the docid (movies has no `docids` key).

Tokens: the document flattened as ERASER's `load_flattened_documents` does (all lines, each split on " ",
empty tokens dropped), kept as they are (only lowercased for the vocabulary) so evidence indices stay valid;
no `<SOS>`/`<EOS>`. Evidence mask: the union over every evidence of every group of
`[start_token, end_token)` (end exclusive), as ERASER's `PositionScoredDocument` builds the truth vector.
Quirks, counted in meta.json: annotations with an empty `evidences` list are kept with an all-zero mask
(ERASER's metric scores such a document against an all-False truth); a repeated `annotation_id` within a
split is dropped (the first kept). A record of another shape (an evidence group that is not a list, an evidence
that is not an object with integer `start_token` / `end_token`, a non-string `annotation_id`, `docids` that
is not a list of strings) is a DataError naming the file and line; an evidence span outside its document, a
document left without tokens or a split without both classes one naming the file (and member).
Splits: ERASER's train / val (written as dev) / test. Unlabeled pool (`unlabeled`, for Table 2's
semi-supervised models): none by default, or lm1b's sample / aclImdb's unsup reviews, drawn as for sst and imdb
(`replab.data.imdb.unlabeled_pool`); its texts are cleaned by J&W's recipe, ERASER's tokens are not.
"""

from __future__ import annotations

import json
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.data.fasttext import embeddings_for
from replab.data.imdb import unlabeled_pool
from replab.data.text import (
    EMBEDDINGS,
    POOLS,
    file_lines,
    fit_vocab,
    pinned_raw,
    require_both_classes,
    utf8,
    write_text_splits,
)
from replab.download import RemoteFile, fetch
from replab.io import BEYOND_PYTHON, DataError, beyond_python
from replab.params import MAX_COUNT, SEED_MAX, param

ARCHIVE = RemoteFile(
    "movies.tar.gz",
    ("https://www.eraserbenchmark.com/zipped/movies.tar.gz", "http://www.eraserbenchmark.com/zipped/movies.tar.gz"),
    "66e18d4e6c9df9e9f5544572b0bfe92a39673f74ecbfc3859b46cedb2f5b2dee",  # TFDS movie_rationales, HF
    size=3_899_487,
)
SPLIT_FILES = {"train": "train.jsonl", "dev": "val.jsonl", "test": "test.jsonl"}
LABELS = {"NEG": 0, "POS": 1}
_MEMBER = re.compile(r"(?:^|/)movies/(train\.jsonl|val\.jsonl|test\.jsonl|docs/[^/]+)$")


@dataclass(frozen=True)
class EraserMoviesConfig:
    mirror: str | None = param(None, nonempty=True, doc="directory, file:// or http(s):// URL holding movies.tar.gz")
    lowercase: bool = param(True, doc="lowercase tokens for the vocabulary (positions unchanged)")
    min_df: int = param(1, ge=1, le=MAX_COUNT, doc="vocabulary: minimum document frequency on train")
    embeddings: str = param("random", choices=list(EMBEDDINGS), doc="fasttext: wiki.simple rows of the vocabulary")
    embedding_seed: int = param(0, ge=0, le=SEED_MAX, doc="seeds the random rows of words fastText lacks")
    # Table 2's semi-supervised models need a pool; the seed names only SST's and IMDB's (1 % of lm1b)
    unlabeled: str = param("none", choices=list(POOLS), doc="unlabeled pool for the semi-supervised methods")
    n_unlabeled: int = param(50_000, ge=0, le=MAX_COUNT, doc="texts drawn from the pool (0 = all)")
    pool_seed: int = param(0, ge=0, le=SEED_MAX, doc="seeds the draw from the pool")
    lm1b_fraction: float = param(0.01, gt=0.0, le=1.0, doc="= data.lm1b.fraction (so DVC reruns on a new sample)")
    lm1b_seed: int = param(0, ge=0, le=SEED_MAX, doc="= data.lm1b.seed (checked against the sample's record)")


DOWNLOAD_PARAMS = ("mirror",)  # what download() reads of the config (registry.download_params)


def download(name: str, cfg: EraserMoviesConfig, raw_dir: Path, progress: bool = True) -> Path:
    return fetch(ARCHIVE, raw_dir, cfg.mirror, progress=progress, key=f"data.{name}.mirror")


def read_archive(archive: Path) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
    """({split: annotation dicts}, {docid: flattened tokens}) streamed from movies.tar.gz."""
    annotations, docs = {}, {}
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                match = _MEMBER.search(member.name)
                if match is None or not member.isfile():
                    continue
                data = utf8(tar.extractfile(member).read(), f"{archive}:{member.name}")
                key = match.group(1)
                if key.startswith("docs/"):
                    docs[key[5:]] = [tok for line in file_lines(data) for tok in line.strip().split(" ") if tok]
                else:
                    annotations[key] = _jsonl(data, f"{archive}:{member.name}")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(f"{archive}: truncated or not a gzip tar ({' '.join(str(err).split())})") from None
    for file in SPLIT_FILES.values():
        if file not in annotations:
            raise DataError(f"{archive}: has no movies/{file}")
    return {split: annotations[file] for split, file in SPLIT_FILES.items()}, docs


def _jsonl(data: str, where: str) -> list[dict]:
    rows = []
    for i, line in enumerate(file_lines(data), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: line {i}: not JSON ({err.msg})") from None
        except BEYOND_PYTHON as err:
            raise DataError(f"{where}: line {i}: JSON that Python cannot read ({beyond_python(err)})") from None
        rows.append(_annotation(row, f"{where}: line {i}"))
    return rows


def _shown(value) -> str:
    return json.dumps(value)[:40]


def _annotation(row, where: str) -> dict:
    """`row` if it has the shape of an ERASER annotation (module docstring), else a one-line DataError naming
    `where` (file and line) and the first part out of shape: later steps hash, index and slice with these."""
    if not isinstance(row, dict) or not isinstance(row.get("classification"), str) \
            or row["classification"] not in LABELS or "annotation_id" not in row \
            or not isinstance(row.get("evidences"), list):
        raise DataError(f"{where}: expected annotation_id, classification NEG|POS and evidences")
    if not isinstance(row["annotation_id"], str) or not row["annotation_id"]:
        raise DataError(f"{where}: annotation_id is {_shown(row['annotation_id'])}, expected a docid string")
    docids = row.get("docids")
    if docids is not None and not (isinstance(docids, list) and all(isinstance(d, str) and d for d in docids)):
        raise DataError(f"{where}: docids is {_shown(docids)}, expected a list of docid strings (or null)")
    for g, group in enumerate(row["evidences"]):
        if not isinstance(group, list):
            raise DataError(f"{where}: evidences[{g}] is {_shown(group)}, expected a list (a group of evidences)")
        for e, ev in enumerate(group):
            if not isinstance(ev, dict):
                raise DataError(f"{where}: evidences[{g}][{e}] is {_shown(ev)}, expected an object with "
                                "start_token and end_token")
            for key in ("start_token", "end_token"):
                if isinstance(ev.get(key), bool) or not isinstance(ev.get(key), int):
                    raise DataError(f"{where}: evidences[{g}][{e}].{key} is {_shown(ev.get(key))}, expected an "
                                    "integer token index")
    return row


def evidence_mask(row: dict, n_tokens: int, where: str) -> np.ndarray:
    """Union of every evidence span [start_token, end_token) of every group, as a bool [n_tokens] mask. An empty
    span (start = end) marks no token, as in ERASER's token-level metrics (`range(start, end)`); a span outside the
    document, reversed or not of integers is a DataError naming the annotation."""
    mask = np.zeros(n_tokens, dtype=bool)
    for group in row["evidences"]:
        for ev in group:
            start, end = ev.get("start_token"), ev.get("end_token")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= n_tokens):
                raise DataError(f"{where}: {row['annotation_id']}: evidence [{start}, {end}) is no span of the "
                                f"document's {n_tokens} tokens (allowed: 0 ≤ start ≤ end ≤ {n_tokens})")
            mask[start:end] = True
    return mask


def prepare(name: str, cfg: EraserMoviesConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """ERASER movies → the processed text layout with `evidence` masks; `split_seed` unused."""
    raw_dir = Path(raw_dir)
    archive = pinned_raw(raw_dir / ARCHIVE.name, ARCHIVE.sha256, name)
    annotations, docs = read_archive(archive)
    splits, quirks, rationale_rate = {}, {"empty_evidence": {}, "empty_spans": {}, "duplicate_rows_dropped": {}}, {}
    for split, rows in annotations.items():
        where = f"{archive}:movies/{SPLIT_FILES[split]}"
        seen, kept = set(), []
        for row in rows:
            if row["annotation_id"] in seen:
                continue
            seen.add(row["annotation_id"])
            kept.append(row)
        quirks["duplicate_rows_dropped"][split] = len(rows) - len(kept)
        quirks["empty_evidence"][split] = sum(not r["evidences"] for r in kept)
        tokens, masks, names = [], [], []
        for row in kept:
            docid = (row.get("docids") or [row["annotation_id"]])[0]
            if docid not in docs:
                raise DataError(f"{where}: {row['annotation_id']}: document movies/docs/{docid} missing")
            doc = docs[docid]
            tokens.append([t.lower() for t in doc] if cfg.lowercase else list(doc))
            masks.append(evidence_mask(row, len(doc), where))
            names.append(f"{archive}:movies/docs/{docid}")
        quirks["empty_spans"][split] = sum(ev["start_token"] == ev["end_token"]  # (checked by evidence_mask)
                                           for r in kept for group in r["evidences"] for ev in group)
        labels = np.array([LABELS[r["classification"]] for r in kept], dtype=np.int64)
        require_both_classes(labels, split, where, noun="annotations")  # before train's longest is taken
        splits[split] = {"docs": tokens, "labels": labels, "evidence": masks, "names": names}
        rationale_rate[split] = round(float(np.concatenate(masks).mean()), 4) if masks else 0.0
    vocab = fit_vocab(splits["train"]["docs"], cfg.min_df, sos_eos=False, key=f"data.{name}.min_df")
    unlabeled, pool_meta = unlabeled_pool(cfg.unlabeled, raw_dir.parent, f"data.{name}.unlabeled",
                                          {"fraction": cfg.lm1b_fraction, "seed": cfg.lm1b_seed}, cfg.n_unlabeled,
                                          cfg.pool_seed, max(len(d) for d in splits["train"]["docs"]))
    embeddings, emb_meta = embeddings_for(cfg.embeddings, raw_dir.parent, vocab, cfg.embedding_seed)
    meta = {"dataset": name, "source": "real: ERASER movies (Zaidan et al. rationales)",
            "sha256": {ARCHIVE.name: ARCHIVE.sha256}, "raw_counts": {k: len(v) for k, v in annotations.items()},
            "paper_counts": {"train": 1600, "dev": 200, "test": 199}, "quirks": quirks,
            "evidence": {"kind": "human token-level rationales (union of evidence groups, end exclusive)",
                         "token_rate": rationale_rate},
            "unlabeled_pool": pool_meta, "embeddings": emb_meta, "labels": {"0": "NEG", "1": "POS"}}
    return write_text_splits(Path(out_dir), splits, vocab, meta, sos_eos=False, unlabeled=unlabeled,
                             embeddings=embeddings)
