"""A text data set's processed layout (`replab.data.text`) on the device: padded token ids, lengths, labels, the
unlabeled pool and the optional embedding rows; and a split as bag-of-words counts (for a linear model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from replab.data.registry import PROCESSED_ROOT
from replab.data.text import load_text_split, read_vocab, text_specials
from replab.io import DataError, check_manifest, read_json, read_npy, rerun_hint
from replab.params import ParamError

SPECIAL_NAMES = ("pad", "unk", "sos", "eos")  # meta.json's special_ids (replab.data.text.special_ids)


@dataclass
class TextData:
    """One processed text set on the device: per split tokens int64 [N, T] (0-padded on the right), lengths
    int64 [N] (≥ 1) and, for train/dev/test, labels float32 [N] in {0, 1}; the unlabeled pool if prepared; the
    evidence marks (host 0/1 arrays [N, T]) of the splits that have them."""

    tokens: dict[str, torch.Tensor]
    lengths: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    vocab_size: int
    special_ids: dict
    embeddings: torch.Tensor | None  # float32 [V, d] fastText rows, or None
    source: str
    name: str
    evidence: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_unlabeled(self) -> int:
        return len(self.lengths["unlabeled"]) if "unlabeled" in self.lengths else 0


def load_text(dataset: str, device: torch.device, unlabeled_max_length: int = 0, root: Path | None = None,
              splits: tuple[str, ...] = ("train", "dev", "test", "unlabeled"),
              max_length_key: str = "attention_vat.unlabeled_max_length") -> TextData:
    """data/processed/<dataset>/ → tensors on `device`: train/dev/test, the unlabeled pool (cut to
    `unlabeled_max_length` tokens if > 0; a cut sequence of a set wrapped in <SOS> … <EOS> ends in <EOS> again, as
    every sequence the model sees does) and embeddings.npy if the set was prepared with fastText rows; `splits`
    limits what is loaded (evaluation needs dev and test only). Malformed arrays raise DataError naming the file; a
    cut that keeps no word (≤ the <SOS>/<EOS> count) a ParamError naming `max_length_key`."""
    folder = (root or PROCESSED_ROOT) / dataset
    check_manifest(folder, f"prepare@{dataset}")
    meta = read_json(folder / "meta.json", expect=dict, stage=f"prepare@{dataset}")
    vocab_size = len(read_vocab(folder))
    special_ids = check_special_ids(meta.get("special_ids", {"pad": 0, "unk": 1}), vocab_size,
                                    folder / "meta.json", f"prepare@{dataset}")
    specials = text_specials(special_ids)
    tokens, lengths, labels, evidence = {}, {}, {}, {}
    for split in splits:
        if split == "unlabeled" and not (folder / "unlabeled.npz").exists():
            continue
        # ids within the vocabulary, 1 <= length <= T, a word in every text, 0/1 labels
        arrays = load_text_split(folder, split, vocab_size, specials)
        t, n = arrays["tokens"].astype(np.int64), arrays["lengths"].astype(np.int64)
        if split == "unlabeled" and unlabeled_max_length:
            if unlabeled_max_length <= len(specials):
                raise ParamError(f"{max_length_key} = {unlabeled_max_length}: keeps no word of {dataset}'s pool "
                                 f"sequences, which are wrapped in <SOS> … <EOS>; allowed: 0 (no cut) or "
                                 f"≥ {len(specials) + 1}")
            cut = n > unlabeled_max_length
            t, n = t[:, :unlabeled_max_length].copy(), np.minimum(n, unlabeled_max_length)
            if special_ids.get("eos") is not None and cut.any():  # (a limit beyond the pool's width cuts nothing)
                t[cut, unlabeled_max_length - 1] = special_ids["eos"]
        tokens[split] = torch.from_numpy(np.ascontiguousarray(t)).to(device)
        lengths[split] = torch.from_numpy(n).to(device)
        if split != "unlabeled":
            labels[split] = torch.from_numpy(arrays["labels"].astype(np.float32)).to(device)
        if "evidence" in arrays:
            evidence[split] = arrays["evidence"]
    table, path = None, folder / "embeddings.npy"
    if path.exists():
        w = read_npy(path, stage=f"prepare@{dataset}")
        if w.ndim != 2 or len(w) != vocab_size or w.dtype.kind != "f" or not np.isfinite(w).all():
            raise DataError(f"{path}: expected finite float [{vocab_size}, d] rows aligned with vocab.json")
        table = torch.from_numpy(w.astype(np.float32)).to(device)
    return TextData(tokens, lengths, labels, vocab_size, special_ids, table,
                    meta.get("source", "unknown"), dataset, evidence)


def check_special_ids(special_ids, vocab_size: int, path: Path, stage: str) -> dict:
    """meta.json's `special_ids` if it is {name: id} with names of SPECIAL_NAMES and ids of vocab.json's words
    (`sos` / `eos` null for a set without them), else a one-line DataError naming the file: the ids index the
    embedding table (`pad` is its padding row) and end cut sequences, where torch would fail with an assertion."""
    if not isinstance(special_ids, dict):
        raise DataError(f"{path}: special_ids = {special_ids!r}: expected an object {{name: token id}} "
                        f"(names {', '.join(SPECIAL_NAMES)}); {rerun_hint(stage)}")
    for name, value in special_ids.items():
        if name not in SPECIAL_NAMES:
            raise DataError(f"{path}: special_ids.{name}: unknown (allowed: {', '.join(SPECIAL_NAMES)}); "
                            f"{rerun_hint(stage)}")
        if not (value is None and name in ("sos", "eos")) and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab_size):
            raise DataError(f"{path}: special_ids.{name} = {value!r}: must be a token id in 0 … {vocab_size - 1} "
                            f"(vocab.json's words){' or null' if name in ('sos', 'eos') else ''}; {rerun_hint(stage)}")
    return special_ids


def bag_of_words(path: Path, vocab_size: int, specials: tuple[int, ...] | list[int] = ()):
    """Token counts [N, vocab_size] (scipy CSR) of a processed split's real tokens, and its labels [N]: the same
    vocabulary and tokens as the network's input (train-fit vocabulary, <unk> for unseen words). `specials`: the
    <SOS> / <EOS> ids (a text of those alone is refused, `load_text_split`)."""
    from scipy.sparse import csr_matrix

    arrays = load_text_split(path.parent, path.stem, vocab_size, specials)  # ids < vocab_size, 1 <= length <= T
    tokens, lengths = arrays["tokens"], arrays["lengths"]
    real = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
    rows = np.repeat(np.arange(len(tokens)), real.sum(1))
    counts = csr_matrix((np.ones(len(rows)), (rows, tokens[real])), shape=(len(tokens), vocab_size))
    counts.sum_duplicates()
    return counts, arrays["labels"].astype(np.int64)
