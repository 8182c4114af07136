"""In-memory datasets on the device and shuffled index batches.

The data sets here fit in device memory, so a DataLoader with workers only adds copies and process start-up:
each split is moved to the device once, and a batch is an index slice of a seeded `randperm`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


def images_to_tensor(x: np.ndarray, device: torch.device, flat: bool = True) -> torch.Tensor:
    """uint8 images (N, H, W) → float32 in [0, 1] on `device`, (N, H·W) or (N, 1, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    t = t.float().div_(255.0)
    return t.reshape(len(x), -1) if flat else t.unsqueeze(1)


@dataclass
class Images:
    """One processed image data set on the device: flat float images in [0, 1] and int64 labels per split."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    source: str
    name: str


def load_images(dataset: str, device: torch.device) -> Images:
    """data/processed/<dataset>/ (train/val/test) moved to `device` once."""
    from replab.data.images import load_image_splits
    from replab.data.registry import PROCESSED_ROOT

    splits, meta = load_image_splits(PROCESSED_ROOT / dataset)
    return Images(x={k: images_to_tensor(x, device) for k, (x, _) in splits.items()},
                  y={k: torch.from_numpy(y).to(device) for k, (_, y) in splits.items()},
                  source=meta.get("source", "unknown"), name=dataset)


def index_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device,
                  drop_last: bool = False) -> Iterator[torch.Tensor]:
    """One epoch of shuffled index batches (indices live on `device`)."""
    # drawn where the generator lives: a device generator avoids a host→device copy (and sync) per epoch
    perm = torch.randperm(n, generator=generator, device=generator.device).to(device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield perm[start:start + batch_size]


class EndlessBatches:
    """Index batches drawn epoch after epoch (full batches only), for pairing a small labeled set with a large
    unlabeled one. `state_dict()` / `load_state_dict()` hold the current epoch's permutation and position, so a
    resumed run draws the same batches (the generator's state is saved by its owner)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device):
        if n <= 0:
            raise ValueError("EndlessBatches needs at least one example")
        self.n, self.batch_size, self.generator, self.device = n, min(batch_size, n), generator, device
        self.stop = n - n % self.batch_size  # drop the last partial batch of every epoch
        self.perm: torch.Tensor | None = None
        self.pos = 0

    def __iter__(self) -> EndlessBatches:
        return self

    def __next__(self) -> torch.Tensor:
        if self.perm is None or self.pos >= self.stop:
            # drawn where the generator lives, as index_batches does: the same stream of batches
            self.perm = torch.randperm(self.n, generator=self.generator, device=self.generator.device).to(self.device)
            self.pos = 0
        batch = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        perm = state["perm"]
        self.perm, self.pos = (None if perm is None else perm.to(self.device)), int(state["pos"])


@torch.no_grad()
def map_batches(fn, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Apply `fn` to `x` in chunks (evaluation over a whole split without running out of memory)."""
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


# ---------------------------------------------------------------------------------------------------------
# Token sequences (processed text sets: replab/data/text.py's layout)

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
              splits: tuple[str, ...] = ("train", "dev", "test", "unlabeled")) -> TextData:
    """data/processed/<dataset>/ → tensors on `device`: train/dev/test, the unlabeled pool (cut to
    `unlabeled_max_length` tokens if > 0) and embeddings.npy if the set was prepared with fastText rows; `splits`
    limits what is loaded (evaluation needs dev and test only). Malformed arrays raise DataError naming the file."""
    from replab.data.registry import PROCESSED_ROOT
    from replab.data.text import load_text_split, read_vocab
    from replab.io import DataError, read_json, read_npy

    folder = (root or PROCESSED_ROOT) / dataset
    meta = read_json(folder / "meta.json", expect=dict, stage=f"prepare@{dataset}")
    vocab_size = len(read_vocab(folder))
    tokens, lengths, labels, evidence = {}, {}, {}, {}
    for split in splits:
        if split == "unlabeled" and not (folder / "unlabeled.npz").exists():
            continue
        arrays = load_text_split(folder, split, vocab_size)  # ids within the vocabulary, 1 <= length <= T, 0/1
        t, n = arrays["tokens"].astype(np.int64), arrays["lengths"].astype(np.int64)
        if split == "unlabeled" and unlabeled_max_length:
            t, n = t[:, :unlabeled_max_length], np.minimum(n, unlabeled_max_length)
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
    return TextData(tokens, lengths, labels, vocab_size, meta.get("special_ids", {"pad": 0, "unk": 1}), table,
                    meta.get("source", "unknown"), dataset, evidence)


def take_batch(tokens: torch.Tensor, lengths: torch.Tensor, idx: torch.Tensor, *more) -> tuple:
    """Rows `idx` of one or more (tokens, lengths) pools, stacked and cut to the batch's longest sequence
    (padding columns beyond it cost RNN steps and change nothing). `more` = further (tokens, lengths, idx)."""
    parts = [(tokens[idx], lengths[idx])]
    for t, n, i in zip(more[0::3], more[1::3], more[2::3], strict=True):
        parts.append((t[i], n[i]))
    length = int(max(int(n.max()) for _, n in parts if len(n)))
    toks = torch.cat([torch.nn.functional.pad(t[:, :length], (0, max(0, length - t.shape[1]))) for t, _ in parts])
    return toks, torch.cat([n for _, n in parts])
