"""fasttext, real source (optional): the 300-d fastText `wiki.simple.vec` word vectors J&W initialise with.

Pinned URL: Facebook's `dl.fbaipublicfiles.com/fasttext/vectors-wiki/wiki.simple.vec` (the S3 bucket the
older loaders name is listed second). No published checksum was found (datasets.md has none; the public
loaders pin only the URL), so the first verified download records its sha256 in `fasttext.json` and every
later use checks the file against that record; set `sha256` to pin a known copy. Format: a header
"<count> <dim>" (count >= 0, dim >= 1), then "<word> <dim floats>" per line, separated by single spaces, UTF-8
(a trailing space and CRLF line ends are accepted). Unpinned, the file is only known complete by its own header:
`check_vec` (all `count` rows there, each a word and `dim` values) runs on every copy before it is moved into
place or reused (a transfer cut short without a Content-Length would otherwise be recorded), and again in
prepare. The text sets keep only the rows of their own vocabulary (`embeddings: fasttext`; `vocab_rows`); a row
of another shape, a NaN / inf in a row they keep, a non-UTF-8 line anywhere, a file with no word of their
vocabulary, or a record that is not {"sha256": …} is a one-line DataError naming the file and line (or key).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.data.text import utf8, verified_download
from replab.download import RemoteFile, fetch
from replab.io import DataError, atomic_dir, rerun_hint, sha256_file, write_json
from replab.params import MAX_SIZE, fail, param

VEC = RemoteFile(
    "wiki.simple.vec",
    ("https://dl.fbaipublicfiles.com/fasttext/vectors-wiki/wiki.simple.vec",
     "https://s3-us-west-1.amazonaws.com/fasttext-vectors/wiki.simple.vec"),
    None,  # no published checksum: recorded at first download (module docstring)
)
RECORD = "fasttext.json"


@dataclass(frozen=True)
class FasttextConfig:
    mirror: str | None = param(None, nonempty=True, doc="directory, file:// or http(s):// URL holding wiki.simple.vec")
    sha256: str | None = param(None, doc="pin for wiki.simple.vec (none is published; null: record at download)")

    def check(self, where: str) -> None:
        # a bad pin found now, not as a mismatch after a 100 MB download
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            fail(where, f"sha256 = {self.sha256!r}: must be a sha256 in 64 lowercase hex digits (as sha256sum prints "
                 "it), or null")


DOWNLOAD_PARAMS = ("mirror", "sha256")  # what download() reads of the config (registry.download_params)


def download(name: str, cfg: FasttextConfig, raw_dir: Path, progress: bool = True) -> Path:
    raw_dir = Path(raw_dir)
    # check_vec runs inside fetch: on the temp file before it is renamed into place, and on an existing copy
    path = fetch(dataclasses.replace(VEC, sha256=cfg.sha256, check=check_vec), raw_dir, cfg.mirror,
                 progress=progress, key=f"data.{name}.mirror")
    write_json(raw_dir / RECORD, {"sha256": sha256_file(path), "pinned": cfg.sha256 is not None})
    return path


def check_vec(path: Path) -> tuple[int, int]:
    """(count, dim) of the .vec file `path` once every row its header announces is there, each a word and `dim`
    values (`_rows`); else a one-line DataError naming the file and line. Values are parsed by `vocab_rows`, for the
    rows a vocabulary keeps."""
    with _open_vec(path) as fh:
        count, dim = _parse_header(fh.readline(), path)
        for _ in _rows(fh, path, count, dim):
            pass
    return count, dim


def _open_vec(path: Path):
    try:
        return open(path, "rb")  # decoded line by line, so that an error names its own line
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err}); run `dvc repro -s -f download@fasttext`") from None


def _rows(fh, path: Path, count: int, dim: int):
    """(line number, word, its `dim` values as text) of every row after the header of the open .vec `fh`; at the
    end a DataError unless there were the `count` rows the header announces."""
    lineno = 1
    for lineno, raw in enumerate(fh, 2):
        line = utf8(raw, str(path), lineno).removesuffix("\n").removesuffix("\r").rstrip(" ")
        if "\t" in line:  # a word never holds whitespace: a tab-separated row would pass for an unknown word
            raise DataError(f"{path}: line {lineno}: a tab (expected '<word> <{dim} floats>' separated by spaces)")
        word, _, rest = line.partition(" ")
        if not word:  # a blank line would pass for a vector in the count check
            raise DataError(f"{path}: line {lineno}: no word (expected '<word> <{dim} floats>')")
        if "_" in rest or not rest.isascii():  # Python's float() reads 1_0 as 10 and other scripts' digits as digits
            raise DataError(f"{path}: line {lineno}: {word!r}'s values hold '_' or a non-ASCII character (expected "
                            f"{dim} decimal floats)")
        values = rest.split(" ")
        if len(values) != dim and not raw.endswith(b"\n"):  # the last line, cut off mid-row
            raise DataError(f"{path}: line {lineno}: cut off ({word!r} has {len(values)} of {dim} values and no line "
                            "end; truncated?)")
        if len(values) != dim:
            raise DataError(f"{path}: line {lineno}: {word!r} has {len(values)} values, the header says {dim}")
        yield lineno, word, values
    if lineno - 1 != count:
        raise DataError(f"{path}: header announces {count} vectors, file has {lineno - 1} (truncated?)")


def _parse_header(raw: bytes, path: Path) -> tuple[int, int]:
    """(count >= 0, 1 <= dim <= MAX_SIZE) of the header line `raw` (bytes: a later line's encoding is that line's
    fault)."""
    line = utf8(raw, str(path))
    try:
        fields = line.split()
        if not all(re.fullmatch(r"-?[0-9]+", v) for v in fields):  # int() reads 1_000, +5 and other scripts' digits
            raise ValueError  # (a negative one is named by the range check below)
        count, dim = (int(v) for v in fields)
    except ValueError:  # not two fields, or not integers
        raise DataError(f"{path}: line 1: expected the fastText header '<count> <dim>', got {line[:40]!r}") from None
    if count < 0 or not 1 <= dim <= MAX_SIZE:  # (attention_vat.embedding_dim's bounds, which must equal dim)
        raise DataError(f"{path}: line 1: header '{count} {dim}' (allowed: count >= 0, 1 <= dim <= {MAX_SIZE:,})")
    return count, dim


def prepare(name: str, cfg: FasttextConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """meta.json (header, sha256); the rows are taken per vocabulary by the text sets' prepare stages."""
    path = Path(raw_dir) / VEC.name
    if not path.is_file():
        raise DataError(f"{path}: missing (run `dvc repro download@{name}` first)")
    stage = f"download@{name}"
    _, actual = verified_download(path, Path(raw_dir) / RECORD, stage)
    try:  # recorded by a version that checked the header only, a truncated copy would pass the sha256
        count, dim = check_vec(path)
    except DataError as err:
        raise DataError(f"{err}; {rerun_hint(stage)}") from None
    meta = {"dataset": name, "source": "real: fastText wiki.simple.vec", "sha256": {VEC.name: actual},
            "pinned": cfg.sha256 is not None, "vectors": count, "dim": dim}
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "meta.json", meta)
    return meta


def embeddings_for(kind: str, raw_root: Path, vocab: Sequence[str], seed: int) -> tuple[np.ndarray | None, dict]:
    """Embedding rows for `vocab` by a text set's `embeddings` param: None for "random" (the model initialises
    them), or the fastText rows from `raw_root/fasttext` (fasttext must be in `datasets`)."""
    if kind == "random":
        return None, {"kind": "random (initialised by the model)"}
    path = raw_root / "fasttext" / VEC.name
    if not path.is_file():
        raise DataError(f"{path}: missing; embeddings = fasttext needs `dvc repro download@fasttext` first")
    _, sha256 = verified_download(path, path.parent / RECORD, "download@fasttext")
    rows, meta = vocab_rows(path, vocab, seed, sha256)
    return rows, {"kind": "fasttext", **meta}


def vocab_rows(path: Path, vocab: Sequence[str], seed: int = 0, sha256: str | None = None) -> tuple[np.ndarray, dict]:
    """float32 [V, d] rows of a fastText `.vec` (header "<count> <dim>", then "<word> <d floats>") for the
    words of `vocab` only, streamed line by line; words without a vector get N(0, std of the found rows)
    (seeded), `<pad>` (vocab[0]) gets zeros, a word's second row is ignored (counted in the meta). DataError
    naming the file and line on a malformed header or row (a blank one too), when no word of `vocab` has a
    row, or when the found rows' values are so large that a drawn row is not finite in float32. `sha256`: the
    file's, when the caller has it."""
    index = {tok: i for i, tok in enumerate(vocab)}
    with _open_vec(path) as fh:
        count, dim = _parse_header(fh.readline(), path)
        out = np.zeros((len(vocab), dim), dtype=np.float32)
        found = np.zeros(len(vocab), dtype=bool)
        repeated = 0
        for lineno, word, values in _rows(fh, path, count, dim):
            i = index.get(word)
            if i is None or i == 0:  # not in the vocabulary, or <pad> (zeros whatever the file says)
                continue
            if found[i]:  # fastText writes each word once; a second row is ignored as gensim's reader does
                repeated += 1
                continue
            try:
                row = np.array(values, dtype=np.float64)
            except ValueError as err:
                raise DataError(f"{path}: line {lineno}: not '<word> <{dim} floats>' ({err})") from None
            if not np.isfinite(row).all():
                raise DataError(f"{path}: line {lineno}: {word!r} has a NaN or infinite value (vectors must be "
                                "finite)")
            if np.abs(row).max() > np.finfo(np.float32).max:
                raise DataError(f"{path}: line {lineno}: {word!r} has a value beyond float32's range (±3.4e38)")
            out[i], found[i] = row, True
    if len(vocab) > 1 and not found.any():  # every row random: not the embeddings asked for
        raise DataError(f"{path}: none of the vocabulary's {len(vocab) - 1:,} words (besides {vocab[0]!r}) has a "
                        f"vector among its {count:,} rows (not a word-vector file of this language?)")
    missing = ~found
    missing[0] = False  # <pad> stays zero
    std = float(out[found].std(dtype=np.float64)) if found.any() else 1.0  # (float32 squares overflow past 1.8e19)
    drawn = np.random.default_rng(seed).normal(0.0, std, size=(int(missing.sum()), dim))
    if np.abs(drawn).max(initial=0.0) > np.finfo(np.float32).max:
        raise DataError(f"{path}: its vectors' values (std {std:.3g}) make rows drawn for the vocabulary's other words "
                        "overflow float32 (word vectors are of order 1: not a word-vector file?)")
    out[missing] = drawn
    return out, {"file": str(path), "sha256": sha256 or sha256_file(path), "dim": dim, "vectors_in_file": count,
                 "vocab_found": int(found.sum()), "vocab_random": int(missing.sum()), "repeated_rows_ignored": repeated}
